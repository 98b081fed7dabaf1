/**
 * @module The wire contract of serve deployments: deployed apps, their replicas and config, the ingress's record, the
 * requests and responses forwarded to replicas, and their Redis keys. One definition read by the ingress (which also
 * runs the deployments' controller), the replica actors and the CLI (`nodus serve ...`).
 */
import { DEFAULT_PREFIX, type RuntimeEnvDescriptor } from './index';

/** Bumped whenever an app record, a forwarded request or a key layout changes incompatibly. */
export const DEPLOY_PROTOCOL_VERSION = 1;

/** Namespace of the replica actors; each is named `${app}#${generation}-${n}`. */
export const DEPLOY_NAMESPACE = 'nodus-deploy';

/** The port the ingress listens on unless told otherwise (Ray Serve's). */
export const DEFAULT_SERVE_PORT = 8000;

/** A deployment's config, resolved (units: ms and counts; see serve/deploy/config.ts for the user-facing options). */
export interface DeploymentConfig {
  /** Replicas while autoscaling is off; the start count while it is on. */
  replicas: number;
  /** Autoscaling range; min === max means a fixed count (`replicas`). */
  minReplicas: number;
  maxReplicas: number;
  /** Autoscaling aims at this many ongoing requests per replica (Ray Serve's target_ongoing_requests). */
  targetOngoingRequests: number;
  /** The most requests one replica is given at once; more wait in the app's queue. */
  maxOngoingRequests: number;
  /** The most requests waiting for a replica; more are answered 503 with Retry-After. */
  maxQueuedRequests: number;
  /** How long demand must stay above the replicas before one is added. */
  upscaleDelayMs: number;
  /** How long demand must stay below the replicas before one is removed. */
  downscaleDelayMs: number;
  /** How long a replica taken out of routing may take to finish its requests before it is killed anyway. */
  gracefulShutdownTimeoutMs: number;
  /** Resources each replica holds. */
  numCpus: number;
  numGpus: number;
  resources: Record<string, number>;
}

/** What a deploy asks for: the desired state of one app. */
export interface AppSpec {
  name: string;
  /** Path prefix the ingress routes to it (`/my_service`; `/` for the root). */
  routePrefix: string;
  /**
   * The module and the export that serves: a ServeAPI, an express app, a `(req, res)` handler. The module is a path
   * relative to the runtime env's working dir when the env ships one (the replicas run the shipped copy), else absolute.
   */
  module: string;
  export?: string;
  config: DeploymentConfig;
  /** The runtime env the replicas run in, its working dir already stored in the cluster (as tasks carry it). */
  runtimeEnv?: RuntimeEnvDescriptor;
  /**
   * The folder the deploy was run from. Replicas without a working dir of their own run there (where it exists on
   * their node), so that paths relative to it (a ServeAPI's `Launch(request, 'services/x/calc')`) work as standalone.
   */
  cwd?: string;
}

export type ReplicaState = 'starting' | 'running' | 'draining';

/** One replica actor of an app, as the controller records it. */
export interface ReplicaRecord {
  /** Actor name in DEPLOY_NAMESPACE. */
  name: string;
  /** The app's generation it was started for: a redeploy rolls replicas of older generations. */
  generation: number;
  state: ReplicaState;
  node?: string;
  pid?: number;
  /** The loopback port the ingress sends its requests to, when it runs on the ingress's machine; else actor calls. */
  directPort?: number;
  startedAt: number;
}

export type AppStatus = 'deploying' | 'running' | 'failed' | 'deleting';

/** What was deployed under a name, as kept in Redis (written by the CLI): the desired state. */
export interface AppRecord extends AppSpec {
  v: number;
  /** Bumped by every deploy of this name; replicas of an older one are rolled. */
  generation: number;
  /** `nodus serve delete` asked for it to go. */
  deleting?: boolean;
  createdAt: number;
  updatedAt: number;
}

/**
 * Where the controller has got an app to (written by the ingress only, so deploys and the controller never overwrite
 * each other): survives an ingress restart, whose controller adopts the replicas by name.
 */
export interface AppState {
  /** The generation this state is working towards. */
  generation: number;
  status: AppStatus;
  /** Why it failed, or what it is doing. */
  message?: string;
  /** Replicas the controller aims at now (autoscaling moves it between minReplicas and maxReplicas). */
  target: number;
  replicas: ReplicaRecord[];
  updatedAt: number;
}

/** The ingress as it records itself: where it listens, for `nodus serve status`, the CLI and `nodus stop`. */
export interface IngressInfo {
  pid: number;
  host: string;
  port: number;
  url: string;
  hostname: string;
  startedAt: number;
}

/** A request forwarded by the ingress to a replica. */
export interface ForwardedRequest {
  method: string;
  /** Path and query as the client sent them (the route prefix included). */
  url: string;
  headers: Record<string, string | string[]>;
  body: Uint8Array | null;
}

/**
 * A replica's answer. `stream` is set when the response was still being written when it answered (Server-Sent Events,
 * a long download): `body` is what came so far, and the rest comes from the replica's `pull(stream)` generator.
 */
export interface ForwardedResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  stream?: string;
}

/** Names of every Redis key and channel of serve deployments, under the cluster's prefix. */
export class DeployKeys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {}
  /** Hash: app name → JSON AppRecord (the CLI writes it). */
  get apps(): string { return `${this.prefix}:dp:apps`; }
  /** Hash: app name → JSON AppState (the ingress's controller writes it). */
  get state(): string { return `${this.prefix}:dp:state`; }
  /** Pub/sub: an app's name is published whenever its record changes (the ingress reconciles and reroutes). */
  get changed(): string { return `${this.prefix}:dp:changed`; }
  /** String (expires): the ingress holding the controller's lease, JSON IngressInfo. Renewed while it lives. */
  get ingress(): string { return `${this.prefix}:dp:ingress`; }
}
