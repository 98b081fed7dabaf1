/** @module The wire contract between drivers, the head, node agents and worker processes: versions, key names, job and message shapes. */

/** Bumped whenever a job, message or key layout changes incompatibly. */
export const PROTOCOL_VERSION = 1;

/** Default key prefix; every key and queue of a cluster lives under it. */
export const DEFAULT_PREFIX = 'nodus';

/** Objects up to this size travel inline with a task's completion message. */
export const INLINE_RESULT_BYTES = 100 * 1024;

/**
 * Values larger than this are split over several Redis strings. Redis refuses a
 * single bulk string over proto-max-bulk-len (512 MiB by default), and smaller
 * chunks keep one huge allocation off the Redis heap.
 */
export const DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024;

/** First byte of every stored value. */
export const enum ValueTag {
  Value = 0,
  Chunked = 1,
  Error = 2,
  /** A record of where the object's bytes are in a node's object store (runtime/internal/local-store.ts). */
  Stored = 3,
}

/** Names of every Redis key and channel, derived from one prefix. */
export class Keys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {}
  value(id: string): string { return `${this.prefix}:v:${id}`; }
  chunk(id: string, i: number): string { return `${this.prefix}:v:${id}:${i}`; }
  meta(id: string): string { return `${this.prefix}:m:${id}`; }
  inner(id: string): string { return `${this.prefix}:in:${id}`; }
  owned(owner: string): string { return `${this.prefix}:owned:${owner}`; }
  held(proc: string): string { return `${this.prefix}:held:${proc}`; }
  inbox(proc: string): string { return `${this.prefix}:inbox:${proc}`; }
  logs(driver: string): string { return `${this.prefix}:logs:${driver}`; }
  actor(id: string): string { return `${this.prefix}:actor:${id}`; }
  /** An actor's mailbox: calls waiting to run, in submission order. */
  mailbox(id: string): string { return `${this.prefix}:actor:${id}:mbox`; }
  /** Calls an actor's process has taken and is running. */
  running(id: string): string { return `${this.prefix}:actor:${id}:run`; }
  /** Calls whose method has begun (a call taken by a process that died at once never began). */
  started(id: string): string { return `${this.prefix}:actor:${id}:started`; }
  actorNames(namespace: string): string { return `${this.prefix}:actor-names:${namespace}`; }
  ownedActors(owner: string): string { return `${this.prefix}:owned-actors:${owner}`; }
  get actors(): string { return `${this.prefix}:actors`; }
  get nodes(): string { return `${this.prefix}:nodes`; }
  get nodeHeartbeats(): string { return `${this.prefix}:node-hb`; }
  get drivers(): string { return `${this.prefix}:drivers`; }
  get driverHeartbeats(): string { return `${this.prefix}:driver-hb`; }
  get head(): string { return `${this.prefix}:head`; }
  get shapes(): string { return `${this.prefix}:shapes`; }
  get infeasible(): string { return `${this.prefix}:infeasible`; }
  get cancelled(): string { return `${this.prefix}:cancelled`; }
  /** Pub/sub: a shape key is published when tasks of that shape are queued. */
  get wakeChannel(): string { return `${this.prefix}:wake`; }
  /** Pub/sub: control messages to node agents (cancel). */
  get controlChannel(): string { return `${this.prefix}:ctl`; }
  /** BullMQ prefix: BullMQ puts its own keys under `${bullPrefix}:${queue}:...`. */
  get bullPrefix(): string { return `${this.prefix}:q`; }
  /** BullMQ's lock of an active job: its value is the token of the node that holds it. */
  jobLock(queue: string, jobId: string): string { return `${this.bullPrefix}:${queue}:${jobId}:lock`; }
  /** How far a bundle job got: the index of the last of its tasks that completed. */
  bundleProgress(queue: string, jobId: string): string { return `${this.bullPrefix}:${queue}:${jobId}:progress`; }
  /** A task's cancel mark, checked by the node that runs it. */
  cancelMark(taskId: string): string { return `${this.cancelled}:${taskId}`; }
  /** Hash: a stored package (a runtime env's working dir, shipped node_modules) by content hash: size, chunks, when. Written last. */
  envPackage(hash: string): string { return `${this.prefix}:pkg:${hash}`; }
  /** The i-th chunk of a stored package's bytes (a gzipped tar). */
  envPackageChunk(hash: string, i: number): string { return `${this.prefix}:pkg:${hash}:${i}`; }
  /** Constrained queues (node affinity, labels, bundles): queue name to its QueueConstraint (JSON). */
  get placements(): string { return `${this.prefix}:placements`; }
  /** Placement groups: id to PlacementGroupRecord (JSON). */
  get placementGroups(): string { return `${this.prefix}:pgs`; }
  /** The bundles the head asked a node to hold: `<pg>-<index>` to BundleEntry (JSON). */
  nodeBundles(node: string): string { return `${this.prefix}:bundles:${node}`; }
  /** Placement groups whose removal was asked for (the head releases their bundles and drops them). */
  get removedPlacementGroups(): string { return `${this.prefix}:pgs-removed`; }
  /** A placement group's reservation replies: bundle index to `ok:<node>` or `no:<node>`. */
  bundleReplies(pg: string): string { return `${this.prefix}:pg-replies:${pg}`; }
  /** Pub/sub: wakes the head's placement of groups (a group made, removed, a reservation answered). */
  get placementChannel(): string { return `${this.prefix}:placement`; }
}

/** Resources are named counts; CPU and GPU are the built-in ones. */
export type Resources = Record<string, number>;

/** Where a remote function lives: workers import `module` and look up `key`. */
export interface FunctionDescriptor {
  /** Absolute path of the module that defines the function. */
  module: string;
  /** Name of the function within its module, `#n` appended for repeats. */
  key: string;
  /** Human name, used in logs and errors. */
  name: string;
}

/**
 * A runtime environment as tasks and actors carry it: content hashes of what a node fetches, and the variables
 * its worker processes get. Workers of different envs are never shared, and each env has its own queues.
 */
export interface RuntimeEnvDescriptor {
  /** Identity of the env: a hash of every field below. */
  key: string;
  /** Content hash of the packed working dir (a stored package, see Keys.envPackage); none: no working dir. */
  pkg?: string;
  /** Hash of the working dir's package.json and npm lockfile, when it has both: nodes run `npm ci` once per hash. */
  lock?: string;
  /** Content hash of the submitter's node_modules, shipped for nodes that cannot install (npm ci fails or NODUS_OFFLINE). */
  mods?: string;
  /** Environment variables of the env's worker processes. */
  vars: Record<string, string>;
}

/**
 * Where the modules of a runtime env's working dir are: a FunctionDescriptor's `module` that is relative (no
 * leading `/`) is relative to the env's working dir, wherever a node unpacked it.
 */
export function isEnvRelative(module: string): boolean {
  return !module.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(module);
}

/** The data of one BullMQ job: everything a node agent needs to run a task. */
export interface TaskJob {
  v: number;
  /** Task id, which is also the id of its return object. */
  id: string;
  fn: FunctionDescriptor;
  /** msgpack-encoded argument array, base64, or null when stored as object `argsRef`. */
  args: string | null;
  argsRef: string | null;
  /** Root driver whose lifetime bounds the objects the task creates. */
  owner: string;
  /** Process to notify when the task finishes (its inbox). */
  caller: string;
  demand: Resources;
  maxRetries: number;
  /** Retries already used before this job (a task split out of a bundle after a crash). */
  retried?: number;
  /** The runtime env it runs in (its queue is that env's); none: the node's own code and environment. */
  env?: RuntimeEnvDescriptor;
  /** Objects the task returns (its result is a list of that many values): 1 when left out. */
  numReturns?: number;
  /** Run again (within maxRetries) when the function throws: true for any error, else these error names. */
  retryExceptions?: true | string[];
  /**
   * A bundle: tasks of the same shape and submitter that run after this one, in order, in the same job.
   * A driver that submits many tasks at once bundles them (one queue operation for several tasks);
   * after a crash the tasks not yet done are split out into jobs of their own.
   */
  more?: TaskJob[];
}

/** Completion message pushed to the caller's inbox. */
export interface Completion {
  id: string;
  /** The stored value bytes (tag byte included) when small enough to inline, else null. */
  inline: Buffer | null;
}

/** Control message published on the control channel. */
export type ControlMessage =
  | { type: 'cancel'; id: string; force: boolean }
  | { type: 'kill'; actorId: string; noRestart: boolean }
  /** The head changed the bundles a node holds (see Keys.nodeBundles): that node syncs them now. */
  | { type: 'bundles'; node: string };

/** Log lines a worker printed, published to the driver that owns the task. */
export interface LogMessage {
  /** e.g. `(square pid=123 node=node-ab12)` */
  prefix: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

/** What a node agent writes about itself on each heartbeat. */
export interface NodeInfo {
  id: string;
  host: string;
  pid: number;
  state: 'alive' | 'dead';
  total: Resources;
  free: Resources;
  workers: number;
  running: number;
  startedAt: number;
  diedAt?: number;
  deathReason?: string;
  isHeadNode?: boolean;
  /** Labels given at `nodus worker join --labels`, matched by labelSelector. */
  labels?: Record<string, string>;
  /** The node's object store for large objects (shared memory), when it has one. */
  store?: StoreInfo;
}

/** A node's object store, as its processes use it (runtime/internal/local-store.ts); the agent owns it (workers/store-host.ts). */
export interface StoreInfo {
  /** `<agent pid>-<random>`: the store's folder name. */
  id: string;
  /** The shared-memory folder (under /dev/shm by default). */
  dir: string;
  /** The folder on disk for objects that do not fit. */
  spill: string;
  /** Bytes of shared memory objects may take. */
  capacity: number;
  /** Objects of at least this many bytes go to the store. */
  minBytes: number;
  /** Where the agent serves the store's objects to other machines: "ip,ip,...:port". */
  addr: string;
  secret: string;
}

export interface DriverInfo {
  id: string;
  pid: number;
  host: string;
  startedAt: number;
  /** The job whose driver this is (NODUS_JOB_ID): stopping the job ends what this driver owns. */
  job?: string;
}

export interface HeadInfo {
  pid: number;
  host: string;
  startedAt: number;
  version: number;
  nodeTimeoutMs: number;
  /** The cluster-wide Prometheus metrics the head serves. */
  metricsUrl?: string;
}

export * from './placement';

/** Canonical name of a resource demand, usable as a BullMQ queue name. */
export function shapeKey(demand: Resources): string {
  const parts = Object.keys(demand)
    .filter((k) => demand[k] > 0)
    .sort()
    .map((k) => `${k}${demand[k]}`);
  return parts.length ? parts.join('.') : 'none';
}

/** Tasks of one shape and runtime env share a queue: a worker leased for it runs its tasks back to back in one env. */
export function taskQueueName(shape: string, envKey?: string): string {
  return envKey ? `task.${shape}~${envKey}` : `task.${shape}`;
}

/** Actor creations wait in their own queues, one per shape (and runtime env), placed by the same pull scheduling as tasks. */
export function actorQueueName(shape: string, envKey?: string): string {
  return envKey ? `actor.${shape}~${envKey}` : `actor.${shape}`;
}

/** The BullMQ job that asks a node to host an actor; the actor's record is in Redis. */
export interface ActorJob {
  v: number;
  actorId: string;
}

export type ActorState = 'pending' | 'alive' | 'restarting' | 'dead';

/** An actor's record (a Redis hash, all strings there). */
export interface ActorRecord {
  id: string;
  /** Class name, for status and errors. */
  cls: string;
  module: string;
  key: string;
  /** Constructor arguments, msgpack base64, or '' when stored as object `argsRef`. */
  args: string;
  argsRef: string;
  /** Driver whose death ends a non-detached actor. */
  owner: string;
  namespace: string;
  name: string;
  detached: '1' | '0';
  state: ActorState;
  node: string;
  pid: string;
  /** The worker id of the process serving it now ('' while it restarts): only that process takes calls in its reports. */
  proc: string;
  restarts: string;
  maxRestarts: string;
  maxTaskRetries: string;
  maxConcurrency: string;
  demand: string;
  /** JSON list of the class's async generator methods. */
  gens: string;
  /** Why it died: a failure, msgpack base64. */
  cause: string;
  /** Node hosting it now ('' while it waits for one): a node that lost it must not act on its exit. */
  host: string;
  /** Why it was killed for good ('0' while it was not): kill(), or its driver's end. */
  killed: string;
  createdAt: string;
  /** Its runtime env, JSON of a RuntimeEnvDescriptor ('' or missing: none). */
  env?: string;
  /** While the head moves it off a dead node: that node, and the placement job's id (a head killed midway leaves the move to the next). */
  movingFrom?: string;
  moveJob?: string;
  /** JSON of its Placement (schedulingStrategy, labels, bundle), '' for none: it is placed again through it after its node died. */
  placement?: string;
  /** The placement group it runs in, '' for none. */
  pg?: string;
  /** JSON: retry a method that threw (within maxTaskRetries): true, or a list of error names. */
  retryExceptions?: string;
  /**
   * Where its current process takes calls directly (runtime/internal/actor-channels.ts): "host:port:secret";
   * absent while it has none (restarting, or maxConcurrency above 1). A caller proves it may call by the secret.
   */
  chan?: string;
}

/**
 * One actor call in a mailbox (msgpack array):
 * [callId, method, args (msgpack bytes) | null, argsRef | null, caller, owner, isGenerator, tries]
 */
export type ActorCall = [string, string, Buffer | null, string | null, string, string, boolean, number];

/** Messages in a process's inbox (msgpack arrays, first element the kind). */
export const enum Note {
  /** [Done, id, inline stored bytes | null] — a task or actor call finished. */
  Done = 0,
  /** [Item, streamId, index, itemObjectId, inline | null, producerProc] — a streaming generator yielded. */
  Item = 1,
  /** [End, streamId, count, failure bytes | null] — a stream finished (or failed after `count` items). */
  End = 2,
  /** [Credit, streamId, n] — the consumer took n items: the producer may send n more. */
  Credit = 3,
  /** [Stop, streamId] — the consumer stopped early. */
  Stop = 4,
}

/** A direct actor channel's first frame from the actor, once the caller's secret checked out (see ActorRecord.chan). */
export const ACTOR_CHANNEL_ACK = 'nodus-actor-channel-1';

/** Items a producer may send ahead of its consumer (backpressure window). */
export const STREAM_WINDOW = 64;
