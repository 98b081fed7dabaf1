/** @module Public option types and the one resolve function per component that validates them. */
import { ConfigError } from './errors';
import type { Resources } from './protocol';

/** Options of a remote function, given to `remote(opts, fn)` or `.options(opts)`. */
export interface RemoteOptions {
  /** CPUs the task holds while it runs. @default 1 */
  numCpus?: number;
  /** GPUs the task holds while it runs. @default 0 */
  numGpus?: number;
  /** Custom resources, e.g. `{ accel: 1 }`; a node must have declared them. @default {} */
  resources?: Resources;
  /** How many times a task whose worker process died is run again. @default 3 */
  maxRetries?: number;
  /** Name shown in logs, errors and `nodus status`. @default the function's name */
  name?: string;
}

export interface ResolvedRemoteOptions {
  demand: Resources;
  maxRetries: number;
  name: string | undefined;
}

const REMOTE_OPTION_NAMES = ['numCpus', 'numGpus', 'resources', 'maxRetries', 'name'] as const;

/** Names of custom resources become part of queue names, so they are kept plain. */
const RESOURCE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** Rejects keys that are not in `valid`, naming the valid ones (and the closest match). */
export function rejectUnknownKeys(what: string, given: object, valid: readonly string[]): void {
  for (const key of Object.keys(given)) {
    if (!valid.includes(key)) {
      const near = valid.find((v) => v.toLowerCase() === key.toLowerCase().replace(/[_-]/g, '')) ?? valid.find((v) => editDistance(v.toLowerCase(), key.toLowerCase()) <= 2);
      throw new ConfigError(
        `Unknown ${what} option '${key}'.${near ? ` Did you mean '${near}'?` : ''} Valid options: ${valid.join(', ')}.`,
      );
    }
  }
}

/** Levenshtein distance, for "did you mean" on a mistyped option name. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

function checkCount(what: string, v: unknown, opts: { integer?: boolean; min?: number } = {}): number {
  const min = opts.min ?? 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (opts.integer && !Number.isInteger(v))) {
    throw new ConfigError(`${what} must be ${opts.integer ? 'an integer' : 'a number'} >= ${min}, got ${JSON.stringify(v)}.`);
  }
  return v;
}

/** Checks a resource map (custom resources of a task or a node). */
export function resolveResources(what: string, given: unknown): Resources {
  if (given === undefined) return {};
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new ConfigError(`${what} must be an object of resource names to counts, e.g. {"accel": 2}.`);
  }
  const out: Resources = {};
  for (const [k, v] of Object.entries(given)) {
    if (!RESOURCE_NAME.test(k)) throw new ConfigError(`${what}: resource name '${k}' must match ${RESOURCE_NAME}.`);
    if (k === 'CPU' || k === 'GPU') throw new ConfigError(`${what}: give CPU and GPU with numCpus / numGpus, not as custom resources.`);
    out[k] = checkCount(`${what}.${k}`, v);
  }
  return out;
}

/** CPUs, GPUs and custom resources as one demand (or a node's totals); zero GPUs are left out. */
function resolveDemand(o: { numCpus?: number; numGpus?: number; resources?: unknown }, defaultCpus: number, integer = false): Resources {
  const demand: Resources = { CPU: checkCount('numCpus', o.numCpus ?? defaultCpus, { integer }) };
  const gpus = checkCount('numGpus', o.numGpus ?? 0, { integer });
  if (gpus > 0) demand.GPU = gpus;
  return Object.assign(demand, resolveResources('resources', o.resources));
}

/** A count where -1 means no limit. */
function countOrUnlimited(what: string, v: number | undefined, dflt: number): number {
  const n = checkCount(what, v ?? dflt, { integer: true, min: -1 });
  return n === -1 ? Number.MAX_SAFE_INTEGER : n;
}

/** Applies defaults to remote options and checks them. Throws ConfigError listing valid names on a typo. */
export function resolveRemoteOptions(opts: RemoteOptions = {}): ResolvedRemoteOptions {
  if (typeof opts !== 'object' || opts === null) throw new ConfigError('remote options must be an object.');
  rejectUnknownKeys('remote', opts, REMOTE_OPTION_NAMES);
  const demand = resolveDemand(opts, 1);
  const maxRetries = countOrUnlimited('maxRetries', opts.maxRetries, 3);
  if (opts.name !== undefined && (typeof opts.name !== 'string' || !opts.name)) throw new ConfigError('name must be a non-empty string.');
  return { demand, maxRetries, name: opts.name };
}

/** Options of `init()`. */
export interface InitOptions {
  /**
   * Cluster to join: `redis://host:port`, `'auto'` (the cluster started on this machine by `nodus start`),
   * or nothing to start a local cluster for this process. @default process.env.NODUS_ADDRESS
   */
  address?: string;
  /** CPUs of the local cluster's node when no address is given. @default os.availableParallelism() */
  numCpus?: number;
  /** GPUs of the local cluster's node. @default 0 */
  numGpus?: number;
  /** Custom resources of the local cluster's node. @default {} */
  resources?: Resources;
  /** Print the output of remote tasks in this terminal. @default true */
  logToDriver?: boolean;
  /** Key prefix, to run several clusters on one Redis. @default 'nodus' */
  namespace?: string;
}

export interface ResolvedInitOptions {
  address: string | undefined;
  numCpus: number | undefined;
  numGpus: number;
  resources: Resources;
  logToDriver: boolean;
  namespace: string;
}

const INIT_OPTION_NAMES = ['address', 'numCpus', 'numGpus', 'resources', 'logToDriver', 'namespace'] as const;

export function resolveInitOptions(opts: InitOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedInitOptions {
  rejectUnknownKeys('init', opts, INIT_OPTION_NAMES);
  const address = opts.address ?? (env.NODUS_ADDRESS || undefined);
  if (address !== undefined && address !== 'auto' && !/^rediss?:\/\//.test(address)) {
    throw new ConfigError(`address must be 'auto' or a Redis URL like redis://127.0.0.1:6379, got '${address}'.`);
  }
  const namespace = opts.namespace ?? env.NODUS_NAMESPACE ?? 'nodus';
  if (!/^[A-Za-z0-9_.-]+$/.test(namespace)) throw new ConfigError(`namespace must match [A-Za-z0-9_.-]+, got '${namespace}'.`);
  return {
    address,
    numCpus: opts.numCpus === undefined ? undefined : checkCount('numCpus', opts.numCpus, { integer: true }),
    numGpus: checkCount('numGpus', opts.numGpus ?? 0, { integer: true }),
    resources: resolveResources('resources', opts.resources),
    logToDriver: opts.logToDriver ?? true,
    namespace,
  };
}

/** Options of a node agent (`nodus start --head` / `nodus worker join`). */
export interface NodeOptions {
  numCpus?: number;
  numGpus?: number;
  resources?: Resources;
}

export function resolveNodeResources(opts: NodeOptions, defaultCpus: number): Resources {
  rejectUnknownKeys('node', opts, ['numCpus', 'numGpus', 'resources']);
  return resolveDemand(opts, defaultCpus, true);
}

/** Options of an actor class, given to `remote(Class, opts)` or `.options(opts)`. */
export interface ActorOptions {
  /** CPUs the actor holds while it lives. @default 0 */
  numCpus?: number;
  /** GPUs the actor holds while it lives. @default 0 */
  numGpus?: number;
  /** Custom resources the actor holds while it lives. @default {} */
  resources?: Resources;
  /** How many times the actor is restarted (its constructor run again) when its process dies; -1: no limit. @default 0 */
  maxRestarts?: number;
  /** How many times a call that was running when the process died is run again after a restart; -1: no limit. @default 0 */
  maxTaskRetries?: number;
  /** Calls that may run at once (async methods interleave). @default 1 */
  maxConcurrency?: number;
  /** A name any driver can find the actor by with getActor(). @default none */
  name?: string;
  /** Namespace of the name. @default 'default' */
  namespace?: string;
  /** 'detached': the actor outlives the driver that created it, until kill(). @default ends with its driver */
  lifetime?: 'detached';
}

export interface ResolvedActorOptions {
  demand: Resources;
  maxRestarts: number;
  maxTaskRetries: number;
  maxConcurrency: number;
  name: string | undefined;
  namespace: string;
  detached: boolean;
}

const ACTOR_OPTION_NAMES = ['numCpus', 'numGpus', 'resources', 'maxRestarts', 'maxTaskRetries', 'maxConcurrency', 'name', 'namespace', 'lifetime'] as const;

export function resolveActorOptions(opts: ActorOptions = {}): ResolvedActorOptions {
  if (typeof opts !== 'object' || opts === null) throw new ConfigError('actor options must be an object.');
  rejectUnknownKeys('actor', opts, ACTOR_OPTION_NAMES);
  const demand = resolveDemand(opts, 0);
  const maxConcurrency = checkCount('maxConcurrency', opts.maxConcurrency ?? 1, { integer: true, min: 1 });
  if (opts.name !== undefined && (typeof opts.name !== 'string' || !/^[^/\s][^/]{0,199}$/.test(opts.name))) {
    throw new ConfigError(`name must be a non-empty string without '/', got ${JSON.stringify(opts.name)}.`);
  }
  const namespace = opts.namespace ?? 'default';
  if (typeof namespace !== 'string' || !/^[A-Za-z0-9_.-]{1,100}$/.test(namespace)) throw new ConfigError(`namespace must match [A-Za-z0-9_.-]+, got ${JSON.stringify(namespace)}.`);
  if (opts.lifetime !== undefined && opts.lifetime !== 'detached') throw new ConfigError(`lifetime must be 'detached' or left out, got ${JSON.stringify(opts.lifetime)}.`);
  return {
    demand,
    maxRestarts: countOrUnlimited('maxRestarts', opts.maxRestarts, 0),
    maxTaskRetries: countOrUnlimited('maxTaskRetries', opts.maxTaskRetries, 0),
    maxConcurrency,
    name: opts.name,
    namespace,
    detached: opts.lifetime === 'detached',
  };
}
