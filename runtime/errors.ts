/** @module Error classes of the public API; each has a stable `code` and survives a trip between processes. */

const BRAND = Symbol.for('nodus.error');

/** Base class of every error nodus throws. `code` is stable; `retryable` says whether trying again may help. */
export class NodusError extends Error {
  readonly code: string = 'NODUS_ERROR';
  readonly retryable: boolean = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    (this as unknown as Record<symbol, boolean>)[BRAND] = true;
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    // Works across duplicate copies of the package: compare by brand and name chain.
    if (this === NodusError) return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** An option or configuration value was wrong; the message lists what is valid. */
export class ConfigError extends NodusError {
  override readonly code = 'CONFIG';
}

/** A value could not be serialized (a function, a symbol, a class instance with a method-only state...). */
export class SerializationError extends NodusError {
  override readonly code = 'SERIALIZATION';
}

/**
 * A remote task threw. `remoteName`, `message` and `remoteStack` come from the
 * worker; `cause` is the original error rebuilt in this process.
 *
 * @example
 * try { await get(ref) } catch (e) { if (e instanceof TaskError) console.error(e.cause) }
 */
export class TaskError extends NodusError {
  override readonly code = 'TASK_ERROR';
  constructor(
    message: string,
    readonly taskName: string,
    readonly remoteName: string,
    readonly remoteStack: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The worker process running a task died (killed, exited, out of memory) more often than `maxRetries` allows. */
export class WorkerCrashedError extends NodusError {
  override readonly code = 'WORKER_CRASHED';
  override readonly retryable = true;
}

/**
 * The actor is dead: its constructor threw (the error is `cause`), it was killed, or its process
 * died more often than `maxRestarts` allows. Calls that were running when its process died fail
 * with it too, unless `maxTaskRetries` lets them run again.
 */
export class ActorDiedError extends NodusError {
  override readonly code = 'ACTOR_DIED';
}

/**
 * The worker process running a task (or an actor) grew past the `memory` it asked for, and its node
 * killed it (Ray's memory monitor): the node itself stays up. Ask for more memory, or use less.
 */
export class OutOfMemoryError extends NodusError {
  override readonly code = 'OUT_OF_MEMORY';
}

/**
 * No node may ever run the task: its hard node affinity names a node that is dead or too small
 * (`schedulingStrategy: { nodeId, soft: false }`), or its placement group was removed.
 */
export class TaskUnschedulableError extends NodusError {
  override readonly code = 'TASK_UNSCHEDULABLE';
}

/** `get` ran out of time before the objects were ready. The tasks keep running. */
export class GetTimeoutError extends NodusError {
  override readonly code = 'GET_TIMEOUT';
  override readonly retryable = true;
}

/** The task was cancelled with `cancel()` before it finished. */
export class TaskCancelledError extends NodusError {
  override readonly code = 'TASK_CANCELLED';
}

/** The object is gone: its owner released it or died, or its only copy was lost and could not be rebuilt. */
export class ObjectLostError extends NodusError {
  override readonly code = 'OBJECT_LOST';
  /** The id of the object that is gone. */
  readonly objectId?: string;
  constructor(message: string, options?: { cause?: unknown; objectId?: string }) {
    super(message, options);
    if (options?.objectId) this.objectId = options.objectId;
  }
}

/** Redis, which holds the object store, is out of memory: free objects or raise its maxmemory. */
export class ObjectStoreFullError extends NodusError {
  override readonly code = 'OBJECT_STORE_FULL';
  override readonly retryable = true;
}

/** The runtime is not connected: call init() first, or it was shut down. */
export class NotInitializedError extends NodusError {
  override readonly code = 'NOT_INITIALIZED';
}

/** The cluster could not be started or reached. */
export class ClusterError extends NodusError {
  override readonly code = 'CLUSTER';
  override readonly retryable = true;
}

/**
 * A runtime env could not be made: its working dir could not be packed (too big, unreadable), or a node could not
 * set it up (fetch, unpack, npm ci). The message names the node and the step, and what to do.
 */
export class RuntimeEnvError extends NodusError {
  override readonly code = 'RUNTIME_ENV';
}

/** A failure as it travels between processes (Temporal's Failure vs Error split). */
export interface SerializedFailure {
  kind: 'task' | 'crash' | 'cancelled' | 'lost' | 'system' | 'actor' | 'full' | 'env' | 'oom' | 'unschedulable';
  /** Name of the task that failed (or whose argument failed). */
  task: string;
  name: string;
  message: string;
  stack?: string;
  /** Own enumerable fields of the original error that could be carried (code, errno...). */
  props?: Record<string, unknown>;
  cause?: SerializedFailure;
}

const MAX_CAUSE_DEPTH = 8;

/** Turns a thrown value into plain data that msgpack can carry. */
export function toFailure(err: unknown, kind: SerializedFailure['kind'], task: string, depth = 0): SerializedFailure {
  if (err instanceof Error) {
    const props: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(err)) {
      if (k === 'cause' || typeof v === 'function' || typeof v === 'symbol') continue;
      if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) props[k] = v;
    }
    const failure: SerializedFailure = { kind, task, name: err.name, message: err.message, stack: err.stack, props };
    if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) failure.cause = toFailure(err.cause, kind, task, depth + 1);
    return failure;
  }
  return { kind, task, name: 'Error', message: typeof err === 'string' ? err : `non-Error value thrown: ${safeString(err)}` };
}

function safeString(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Rebuilds the user's error (same name, message, stack, fields and cause chain). */
function rebuildCause(f: SerializedFailure): Error {
  const e = new Error(f.message);
  e.name = f.name;
  if (f.stack) e.stack = f.stack;
  Object.assign(e, f.props ?? {});
  if (f.cause) (e as Error & { cause?: unknown }).cause = rebuildCause(f.cause);
  return e;
}

/** Turns a failure that came back from the cluster into the error `get` throws. */
export function fromFailure(f: SerializedFailure): NodusError {
  switch (f.kind) {
    case 'crash':
      return new WorkerCrashedError(f.message);
    case 'cancelled':
      return new TaskCancelledError(f.message);
    case 'lost':
      return new ObjectLostError(f.message, { objectId: typeof f.props?.objectId === 'string' ? f.props.objectId : undefined });
    case 'system':
      return new NodusError(f.message);
    case 'full':
      return new ObjectStoreFullError(f.message);
    case 'env':
      return new RuntimeEnvError(f.message);
    case 'oom':
      return new OutOfMemoryError(f.message);
    case 'unschedulable':
      return new TaskUnschedulableError(f.message);
    case 'actor':
      return new ActorDiedError(f.message, f.cause ? { cause: f.cause.kind === 'task' ? rebuildCause(f.cause) : fromFailure(f.cause) } : undefined);
    default: {
      const cause = rebuildCause(f);
      return new TaskError(`task ${f.task} failed: ${f.name}: ${f.message}`, f.task, f.name, f.stack, { cause });
    }
  }
}

/** What get() of a cancelled task throws, as stored. */
export function cancelledFailure(task: string): SerializedFailure {
  return { kind: 'cancelled', task, name: 'TaskCancelledError', message: `task ${task} was cancelled` };
}
