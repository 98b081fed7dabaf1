/**
 * @module The wire contract of model serving: deployments of unit tasks (model hosts), registered apps, their Redis
 * keys. Read by nodus/serving (apps, unit tasks), the gateway, the CLI and `nodus status`.
 */
import { DEFAULT_PREFIX } from './index';

/** Bumped whenever a deployment or app record changes incompatibly. */
export const SERVING_PROTOCOL_VERSION = 1;

/** Namespace of the model-host and app actors. */
export const SERVING_NAMESPACE = 'nodus-serving';

export type UnitKind = 'encoder' | 'llm';

/**
 * A deployment: the model hosts (actors) of one unit task configuration, shared by every app and driver that
 * uses an equal unit task (same kind and config), kept while any holder needs it.
 */
export interface Deployment {
  v: number;
  /** `${kind}-${hash of kind and config}`: equal unit tasks have equal keys. */
  key: string;
  kind: UnitKind;
  /** The host's constructor argument (model id, modality, batching settings). */
  config: Record<string, unknown>;
  /** Resources of one host. */
  numGpus: number;
  numCpus: number;
  /** Actor names of the replicas (in SERVING_NAMESPACE), `${key}-${i}`. */
  replicas: string[];
  /** Who keeps it: app ids, or `driver:<id>` for a driver that called a unit task directly. */
  holders: string[];
  createdAt: number;
}

/** A registered app: its module, its alias, the deployments it holds, and the actor that runs its `serve`. */
export interface AppRecord {
  v: number;
  id: string;
  alias: string;
  /** Absolute path of the app module (exports `config` with `tasks`, and `serve`). */
  source: string;
  state: 'deploying' | 'ready' | 'failed';
  /** Deployment keys it holds. */
  deployments: string[];
  /** Name of its app actor (in SERVING_NAMESPACE). */
  actor: string;
  /** `serve` is an async generator: invoke answers NDJSON. */
  streaming: boolean;
  error?: string;
  createdAt: number;
}

/** What a model host reports about itself (kept for `nodus app list` and `nodus status`). */
export interface HostInfo {
  deployment: string;
  replica: string;
  modelId: string;
  device: 'cpu' | 'cuda';
  node: string;
  pid: number;
}

export class ServingKeys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {}
  /** Hash: deployment key → JSON Deployment. */
  get deployments(): string { return `${this.prefix}:sv:deployments`; }
  /** Hash: app id → JSON AppRecord. */
  get apps(): string { return `${this.prefix}:sv:apps`; }
  /** Hash: alias → app id. */
  get aliases(): string { return `${this.prefix}:sv:aliases`; }
  /** Hash: replica actor name → JSON HostInfo (written by the host when its model is loaded). */
  get hosts(): string { return `${this.prefix}:sv:hosts`; }
  /** A short lock while a deployment is created or torn down (one writer at a time). */
  lock(key: string): string { return `${this.prefix}:sv:lock:${key}`; }
}
