/** @module The public verbs: init, shutdown, get, put, wait, cancel, getRuntimeContext. */
import { randomBytes } from 'node:crypto';
import { ConfigError } from './errors';
import { CoreContext } from './internal/context';
import { currentContext, requireContext, setContext } from './internal/global';
import { startLocalCluster } from './internal/local-cluster';
import { readSession } from './internal/session';
import { inheritedEnv } from './internal/runtime-env';
import type { ObjectRef, Ref } from './object-ref';
import { rejectUnknownKeys, resolveInitOptions, type InitOptions } from './options';
import { Keys } from './protocol';

/** What init() connected to. */
export interface ClusterInfo {
  /** The cluster's Redis address (password redacted is up to you: it is included when one was given). */
  address: string;
  /** True when init() started a local cluster that shutdown() stops. */
  local: boolean;
  /** This driver's id. */
  driverId: string;
  /**
   * The job's runtime env, when init() was given one: its key, and whether this call stored its working dir in the
   * cluster (false: a package of the same content was there already, nothing was sent).
   */
  runtimeEnv?: { key: string; uploaded: boolean; bytes: number; files: number };
}

function core(what: string): CoreContext {
  return requireContext(what) as CoreContext;
}

/**
 * Connects this process to a cluster as a driver. With no address (and no NODUS_ADDRESS),
 * starts a local cluster — Redis, a head and a node agent with workers — that lives as long as this process.
 *
 * @example
 * await init();                                        // local cluster
 * await init({ address: 'redis://10.0.0.5:6379' });    // join a running one ('auto': the one on this machine)
 */
export async function init(options: InitOptions = {}): Promise<ClusterInfo> {
  const opts = resolveInitOptions(options);
  const existing = currentContext() as CoreContext | undefined;
  if (existing && !existing.isClosed) {
    // Inside a worker process the runtime is already connected: init() there is a no-op, as in Ray.
    if (existing.role === 'worker') return { address: '', local: false, driverId: existing.procId };
    throw new ConfigError('init() was already called in this process; call shutdown() first to connect elsewhere.');
  }
  let address = opts.address;
  let stopLocal: (() => Promise<void>) | undefined;
  if (address === 'auto') {
    address = readSession()?.address;
    if (!address) throw new ConfigError("init({ address: 'auto' }) found no cluster started on this machine. Start one with `npx nodus start --head`, or call init() with no address for a local cluster.");
  }
  if (!address) {
    const cluster = await startLocalCluster({ numCpus: opts.numCpus, numGpus: opts.numGpus, resources: opts.resources, namespace: opts.namespace });
    address = cluster.address;
    stopLocal = () => cluster.stop();
  }
  const driverId = `driver-${randomBytes(6).toString('hex')}`;
  let runtimeEnv: ClusterInfo['runtimeEnv'];
  try {
    const ctx = await CoreContext.connect({
      address,
      keys: new Keys(opts.namespace),
      role: 'driver',
      procId: driverId,
      logToDriver: opts.logToDriver,
      onShutdown: stopLocal,
      runtimeEnv: opts.runtimeEnv,
      // A job's driver runs in its job's runtime env (set by its node): its tasks and actors run in it too.
      inheritedEnv: inheritedEnv(),
    });
    // The job's working dir is shipped now, so that a folder that cannot be shipped fails here, not task by task.
    try {
      const env = await ctx.envs.resolve(undefined);
      if (env) runtimeEnv = { key: env.desc.key, uploaded: env.shipped?.uploaded ?? false, bytes: env.shipped?.pkgBytes ?? 0, files: env.shipped?.files ?? 0 };
    } catch (err) {
      await ctx.shutdown();
      throw err;
    }
    setContext(ctx);
  } catch (err) {
    await stopLocal?.();
    throw err;
  }
  return { address, local: !!stopLocal, driverId, runtimeEnv };
}

/**
 * Disconnects: frees every object this driver owns and, if init() started a local cluster, stops it.
 *
 * @example
 * await shutdown();
 */
export async function shutdown(): Promise<void> {
  const ctx = currentContext() as CoreContext | undefined;
  if (!ctx || ctx.role === 'worker') return;
  await ctx.shutdown();
}

/** Options of get(). */
export interface GetOptions {
  /** Milliseconds to wait before GetTimeoutError. @default no limit */
  timeout?: number;
}

/**
 * Waits for the values of one ref or a list of refs. A task's error is thrown as
 * TaskError (the remote error as `cause`); a crashed worker as WorkerCrashedError.
 *
 * @example
 * const nine = await get(square.remote(3));
 * const [a, b] = await get([square.remote(1), square.remote(2)], { timeout: 5000 });
 */
export function get<T>(ref: Ref<T>, options?: GetOptions): Promise<T>;
export function get<T extends readonly Ref<unknown>[]>(refs: T, options?: GetOptions): Promise<{ -readonly [K in keyof T]: T[K] extends Ref<infer V> ? V : never }>;
export function get<T>(refs: Ref<T>[], options?: GetOptions): Promise<T[]>;
export function get(refs: unknown, options: GetOptions = {}): Promise<unknown> {
  rejectUnknownKeys('get', options, ['timeout']);
  if (options.timeout !== undefined && !(options.timeout >= 0)) throw new ConfigError('get() timeout must be a number of milliseconds >= 0.');
  return core('get()').get(refs, options.timeout);
}

/**
 * Stores a value in the object store; resolves to a ref any task in the cluster can take as an argument.
 *
 * @example
 * const big = await put(new Float64Array(1_000_000));
 * await get(sum.remote(big));
 */
export function put<T>(value: T): Promise<Ref<T>> {
  return core('put()').put(value);
}

/** Options of wait(). */
export interface WaitOptions {
  /** How many refs must be ready. @default 1 */
  numReturns?: number;
  /** Milliseconds to wait at most. @default no limit */
  timeout?: number;
}

/**
 * Waits until `numReturns` of the refs are ready (done or failed) or the timeout passes.
 * Returns [ready, notReady], each in the order of the input.
 *
 * @example
 * const [ready, notReady] = await wait(refs, { numReturns: 2, timeout: 100 });
 */
export function wait<R extends Ref<unknown>>(refs: R[], options: WaitOptions = {}): Promise<[R[], R[]]> {
  rejectUnknownKeys('wait', options, ['numReturns', 'timeout']);
  if (!Array.isArray(refs)) throw new TypeError('wait() takes an array of ObjectRefs.');
  const numReturns = options.numReturns ?? 1;
  if (!Number.isInteger(numReturns) || numReturns < 1 || numReturns > refs.length) {
    throw new ConfigError(`wait() numReturns must be an integer from 1 to the number of refs (${refs.length}), got ${numReturns}.`);
  }
  return core('wait()').wait(refs as unknown as ObjectRef[], numReturns, options.timeout) as unknown as Promise<[R[], R[]]>;
}

/**
 * Cancels a task submitted from this process: a queued task never runs; a running one has its
 * worker process stopped (JavaScript cannot interrupt a running function). get() then throws TaskCancelledError.
 *
 * @example
 * const ref = slow.remote();
 * cancel(ref);
 */
export function cancel(ref: Ref<unknown>, options: { force?: boolean } = {}): Promise<void> {
  rejectUnknownKeys('cancel', options, ['force']);
  return core('cancel()').cancel(ref as ObjectRef, options.force ?? true);
}

/** Where the calling code runs (like ray.get_runtime_context()). */
export interface RuntimeContextInfo {
  /** 'driver', or 'worker' inside a task. */
  role: 'driver' | 'worker';
  /** Id of this driver or worker process. */
  processId: string;
  /** Node the task runs on (workers only). */
  nodeId?: string;
  /** Id of the running task (workers only). */
  taskId?: string;
  /** Id of the actor whose process this is (inside an actor's methods; Ray's get_actor_id()). */
  actorId?: string;
}

/**
 * @example
 * export const where = remote(function where() { return getRuntimeContext().nodeId; });
 */
export function getRuntimeContext(): RuntimeContextInfo {
  const ctx = core('getRuntimeContext()');
  return { role: ctx.role, processId: ctx.procId, nodeId: ctx.current.nodeId, taskId: ctx.current.taskId, actorId: process.env.NODUS_ACTOR_ID || undefined };
}
