/** @module Public option types and the one resolve function per component that validates them. */
import { isAbsolute, resolve } from 'node:path';
import { freemem } from 'node:os';
import { ConfigError } from './errors';
import type { LabelSelector, Placement, Resources } from './protocol';

/**
 * A runtime environment: the code and settings tasks and actors run with on whichever node runs them, given to
 * `init({ runtimeEnv })` for the whole job and to `remote()` / `.options()` per task or actor (merged over the job's:
 * fields given replace the job's, `env` is merged variable by variable).
 *
 * @example
 * await init({ address: 'redis://10.0.0.5:6379', runtimeEnv: { workingDir: '.', env: { LOG_LEVEL: 'debug' } } });
 * square.options({ runtimeEnv: { env: { MODE: 'fast' } } }).remote(2);
 */
export interface RuntimeEnv {
  /**
   * A folder (relative to the current directory) packed, stored in the cluster once per content and unpacked on each
   * node that runs the task: the worker's current directory, and where the task's module is found when it is inside.
   * .gitignore'd files, `.git` and `node_modules` are left out; a package.json with a package-lock.json there is
   * installed on each node with `npm ci`. @default none: the code must sit at the same path on every node
   */
  workingDir?: string;
  /** Environment variables of the worker processes. @default {} */
  env?: Record<string, string>;
  /** More files to leave out of workingDir, as .gitignore patterns relative to it (e.g. `['data/', '*.bin']`). @default [] */
  excludes?: string[];
  /**
   * Also ship workingDir/node_modules as it is installed here (without nodus itself), for nodes that cannot install:
   * they use it when `npm ci` fails or when NODUS_OFFLINE=1 is set there. @default false
   */
  shipNodeModules?: boolean;
}

/**
 * Not public: a runtime env option whose working dir was shipped already, by its package hashes (what `nodus serve`
 * ships from the deploying machine, so that the ingress on another one can start replicas in it). A Symbol.for key so
 * that it survives copies of the options, stays out of the option names users see and works across package copies.
 */
export const SHIPPED_WORKING_DIR = Symbol.for('nodus.runtimeEnv.shipped');

/** A working dir stored in the cluster: the package hashes a RuntimeEnvDescriptor carries. */
export interface ShippedPackage {
  pkg: string;
  lock?: string;
  mods?: string;
}

/** A checked RuntimeEnv: workingDir absolute; fields not given stay undefined so that merging keeps the job's. */
export interface ResolvedRuntimeEnv {
  workingDir?: string;
  env: Record<string, string>;
  excludes?: string[];
  shipNodeModules?: boolean;
  /** A working dir shipped already (see SHIPPED_WORKING_DIR); exclusive with workingDir. */
  shipped?: ShippedPackage;
}

const RUNTIME_ENV_OPTION_NAMES = ['workingDir', 'env', 'excludes', 'shipNodeModules'] as const;
const ENV_VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables a node sets for its workers itself: a runtime env cannot change them. */
const RESERVED_VARS = ['NODUS_ADDRESS', 'NODUS_NODE_ID', 'NODUS_NAMESPACE', 'NODUS_WORKER_ID', 'NODUS_ACTOR_ID', 'NODUS_ENV_DIR', 'NODUS_RUNTIME_ENV'];

/** Checks a runtimeEnv option; relative working dirs are resolved against the current directory now. */
export function resolveRuntimeEnv(given: unknown, what = 'runtimeEnv'): ResolvedRuntimeEnv | undefined {
  if (given === undefined) return undefined;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new ConfigError(`${what} must be an object like { workingDir: '.', env: { KEY: 'value' } }, got ${JSON.stringify(given)}.`);
  }
  rejectUnknownKeys(what, given, RUNTIME_ENV_OPTION_NAMES);
  const o = given as RuntimeEnv;
  const out: ResolvedRuntimeEnv = { env: {} };
  if (o.workingDir !== undefined) {
    if (typeof o.workingDir !== 'string' || !o.workingDir) throw new ConfigError(`${what}.workingDir must be a folder path, e.g. '.', got ${JSON.stringify(o.workingDir)}.`);
    out.workingDir = isAbsolute(o.workingDir) ? resolve(o.workingDir) : resolve(process.cwd(), o.workingDir);
  }
  if (o.env !== undefined) {
    if (typeof o.env !== 'object' || o.env === null || Array.isArray(o.env)) throw new ConfigError(`${what}.env must be an object of variable names to string values, e.g. { LOG_LEVEL: 'debug' }.`);
    for (const [k, v] of Object.entries(o.env)) {
      if (!ENV_VAR_NAME.test(k)) throw new ConfigError(`${what}.env: '${k}' is not a valid environment variable name (letters, digits and _, not starting with a digit).`);
      if (RESERVED_VARS.includes(k)) throw new ConfigError(`${what}.env: ${k} is set by the node for its workers and cannot be changed; reserved: ${RESERVED_VARS.join(', ')}.`);
      if (typeof v !== 'string') throw new ConfigError(`${what}.env.${k} must be a string, got ${JSON.stringify(v)}; write String(value).`);
      out.env[k] = v;
    }
  }
  if (o.excludes !== undefined) {
    if (!Array.isArray(o.excludes) || o.excludes.some((e) => typeof e !== 'string' || !e)) throw new ConfigError(`${what}.excludes must be a list of .gitignore patterns, e.g. ['data/', '*.bin'].`);
    out.excludes = [...o.excludes];
  }
  if (o.shipNodeModules !== undefined) {
    if (typeof o.shipNodeModules !== 'boolean') throw new ConfigError(`${what}.shipNodeModules must be true or false.`);
    out.shipNodeModules = o.shipNodeModules;
  }
  const shipped = (given as { [SHIPPED_WORKING_DIR]?: unknown })[SHIPPED_WORKING_DIR];
  if (shipped !== undefined) {
    const sh = shipped as Partial<ShippedPackage> | null;
    const hash = (v: unknown) => v === undefined || (typeof v === 'string' && /^[0-9a-f]{16,64}$/.test(v));
    if (!sh || typeof sh.pkg !== 'string' || ![sh.pkg, sh.lock, sh.mods].every(hash)) throw new ConfigError(`${what}: a shipped working dir is { pkg, lock?, mods? } of package hashes.`);
    if (out.workingDir !== undefined) throw new ConfigError(`${what}: give workingDir or a shipped working dir, not both.`);
    out.shipped = { pkg: sh.pkg, ...(sh.lock ? { lock: sh.lock } : {}), ...(sh.mods ? { mods: sh.mods } : {}) };
  }
  return out;
}

/** A task's or actor's runtime env over the job's: fields given replace the job's, variables are merged. */
export function mergeRuntimeEnv(base: ResolvedRuntimeEnv | undefined, over: ResolvedRuntimeEnv | undefined): ResolvedRuntimeEnv | undefined {
  if (!over) return base;
  if (!base) return over;
  const out: ResolvedRuntimeEnv = { ...base, env: { ...base.env, ...over.env } };
  if (over.workingDir !== undefined) {
    out.workingDir = over.workingDir;
    delete out.shipped;
  }
  if (over.shipped !== undefined) {
    out.shipped = over.shipped;
    delete out.workingDir;
  }
  if (over.excludes !== undefined) out.excludes = over.excludes;
  if (over.shipNodeModules !== undefined) out.shipNodeModules = over.shipNodeModules;
  return out;
}

/** Where a task or an actor runs, and in what: the options tasks and actors share. */
export interface PlacementOptions {
  /** The runtime env its process runs in, merged over the job's (init's). @default the job's */
  runtimeEnv?: RuntimeEnv;
  /** Memory in bytes it holds (a task while it runs, an actor while it lives); its process is killed with OutOfMemoryError if it grows past it. @default none */
  memory?: number;
  /** Where it runs: any node with room, round-robin over the nodes, or a given node (see SchedulingStrategy). @default 'DEFAULT' */
  schedulingStrategy?: SchedulingStrategy;
  /** Only nodes whose labels match (`nodus worker join --labels`), e.g. `{ zone: 'a' }`, `{ zone: '!a' }`, `{ zone: 'in(a,b)' }`. @default none */
  labelSelector?: LabelSelector;
  /** Run in a bundle of this placement group (see placementGroup()). @default none */
  placementGroup?: PlacementGroupRef;
  /** Which bundle of `placementGroup`; -1: any bundle it fits in (a task: one per submission, round-robin; an actor: the first). @default -1 */
  bundleIndex?: number;
}

/** Options of a remote function, given to `remote(opts, fn)` or `.options(opts)`. */
export interface RemoteOptions extends PlacementOptions {
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
  /** The function returns a list of this many values, each its own object: `.remote()` returns that many refs. @default 1 */
  numReturns?: number;
  /** Run the task again (within maxRetries) when its function throws: true for any error, or only these errors (classes or names). @default false */
  retryExceptions?: RetryExceptions;
}

/**
 * `'DEFAULT'`: any node with room (work spreads as nodes pull it). `'SPREAD'`: round-robin over the nodes
 * that could run it. `{ nodeId, soft }`: that node (`getRuntimeContext().nodeId`, `nodus status`); with
 * `soft: false` the task fails with TaskUnschedulableError when the node is dead or too small, with
 * `soft: true` it runs elsewhere then.
 */
export type SchedulingStrategy = 'DEFAULT' | 'SPREAD' | { nodeId: string; soft?: boolean };

/** What retryExceptions takes: true, or a list of error classes or error names. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RetryExceptions = boolean | (string | (abstract new (...args: any[]) => Error))[];

/** What options need of a placement group (the PlacementGroup that placementGroup() returns). */
export interface PlacementGroupRef {
  readonly id: string;
  readonly bundleSpecs: readonly Resources[];
}

export interface ResolvedRemoteOptions {
  demand: Resources;
  maxRetries: number;
  name: string | undefined;
  runtimeEnv?: ResolvedRuntimeEnv;
  placement?: Placement;
  /** With a placement group and no bundleIndex: the bundles the demand fits in, one chosen per submission. */
  bundleChoices?: number[];
  numReturns: number;
  retryExceptions?: true | string[];
}

const REMOTE_OPTION_NAMES = [
  'numCpus', 'numGpus', 'resources', 'maxRetries', 'name', 'runtimeEnv', 'memory', 'schedulingStrategy', 'labelSelector', 'placementGroup', 'bundleIndex', 'numReturns', 'retryExceptions',
] as const;

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
    if (k === 'CPU' || k === 'GPU' || k === 'memory') throw new ConfigError(`${what}: give CPU, GPU and memory with numCpus / numGpus / memory, not as custom resources.`);
    out[k] = checkCount(`${what}.${k}`, v);
  }
  return out;
}

/** CPUs, GPUs and custom resources as one demand (or a node's totals); zero GPUs are left out. */
function resolveDemand(o: { numCpus?: number; numGpus?: number; resources?: unknown; memory?: number }, defaultCpus: number, integer = false): Resources {
  const demand: Resources = { CPU: checkCount('numCpus', o.numCpus ?? defaultCpus, { integer }) };
  const gpus = checkCount('numGpus', o.numGpus ?? 0, { integer });
  if (gpus > 0) demand.GPU = gpus;
  const memory = checkCount('memory (bytes)', o.memory ?? 0, { integer: true });
  if (memory > 0) demand.memory = memory;
  return Object.assign(demand, resolveResources('resources', o.resources));
}

/** Resolves where a task or actor may run (strategy, labels, placement group); checks the pieces fit together. */
function resolvePlacement(
  what: string,
  o: { schedulingStrategy?: unknown; labelSelector?: unknown; placementGroup?: unknown; bundleIndex?: unknown },
  demand: Resources,
): { placement?: Placement; bundleChoices?: number[] } {
  const s = o.schedulingStrategy ?? 'DEFAULT';
  let labels: LabelSelector | undefined;
  if (o.labelSelector !== undefined) {
    const l = o.labelSelector;
    if (typeof l !== 'object' || l === null || Array.isArray(l) || !Object.values(l).every((v) => typeof v === 'string')) {
      throw new ConfigError(`labelSelector must be an object of label names to strings, e.g. { zone: 'a' } (or '!a', 'in(a,b)'), got ${JSON.stringify(l)}.`);
    }
    labels = Object.keys(l).length ? (l as LabelSelector) : undefined;
  }
  if (o.placementGroup !== undefined) {
    const pg = o.placementGroup as PlacementGroupRef;
    if (typeof pg !== 'object' || pg === null || typeof pg.id !== 'string' || !Array.isArray(pg.bundleSpecs)) {
      throw new ConfigError('placementGroup must be what placementGroup([...bundles]) returned.');
    }
    if (s !== 'DEFAULT' || labels) throw new ConfigError(`${what}: placementGroup places it already; leave schedulingStrategy and labelSelector out.`);
    const index = o.bundleIndex ?? -1;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < -1 || index >= pg.bundleSpecs.length) {
      throw new ConfigError(`bundleIndex must be -1 (any bundle) or 0..${pg.bundleSpecs.length - 1} (the group has ${pg.bundleSpecs.length} bundles), got ${JSON.stringify(index)}.`);
    }
    const fitsIn = (b: Resources) => Object.entries(demand).every(([k, v]) => !(v > 0) || (b[k] ?? 0) + 1e-9 >= v);
    const show = (r: Resources) => JSON.stringify(r);
    if (index >= 0) {
      if (!fitsIn(pg.bundleSpecs[index])) throw new ConfigError(`${what} needs ${show(demand)}, more than bundle ${index} of its placement group holds (${show(pg.bundleSpecs[index])}): ask for less, or choose a larger bundle.`);
      return { placement: { kind: 'bundle', pg: pg.id, bundle: index } };
    }
    const choices = pg.bundleSpecs.map((b, i) => (fitsIn(b) ? i : -1)).filter((i) => i >= 0);
    if (!choices.length) throw new ConfigError(`${what} needs ${show(demand)}, more than any bundle of its placement group holds (${pg.bundleSpecs.map(show).join(', ')}).`);
    return { placement: { kind: 'bundle', pg: pg.id, bundle: choices[0] }, bundleChoices: choices };
  }
  if (o.bundleIndex !== undefined) throw new ConfigError('bundleIndex needs placementGroup.');
  if (s === 'DEFAULT') return labels ? { placement: { kind: 'labels', labels } } : {};
  if (s === 'SPREAD') return { placement: labels ? { kind: 'spread', labels } : { kind: 'spread' } };
  if (typeof s === 'object' && s !== null && !Array.isArray(s)) {
    rejectUnknownKeys('schedulingStrategy', s, ['nodeId', 'soft']);
    const { nodeId, soft } = s as { nodeId?: unknown; soft?: unknown };
    if (typeof nodeId !== 'string' || !/^[\w.-]+$/.test(nodeId)) throw new ConfigError(`schedulingStrategy.nodeId must be a node id (as nodus status or getRuntimeContext().nodeId show it), got ${JSON.stringify(nodeId)}.`);
    if (soft !== undefined && typeof soft !== 'boolean') throw new ConfigError(`schedulingStrategy.soft must be true or false, got ${JSON.stringify(soft)}.`);
    return { placement: { kind: 'node', node: nodeId, soft: soft ?? false, ...(labels ? { labels } : {}) } };
  }
  throw new ConfigError(`schedulingStrategy must be 'DEFAULT', 'SPREAD' or { nodeId, soft }, got ${JSON.stringify(s)}.`);
}

/** retryExceptions as names: classes become their names. */
function resolveRetryExceptions(v: unknown): true | string[] | undefined {
  if (v === undefined || v === false) return undefined;
  if (v === true) return true;
  const bad = () => new ConfigError(`retryExceptions must be true, false, or a list of error classes or names (e.g. [TypeError, 'TimeoutError']), got ${JSON.stringify(v)}.`);
  if (!Array.isArray(v) || !v.length) throw bad();
  return v.map((e) => {
    if (typeof e === 'string' && e) return e;
    if (typeof e === 'function' && e.name) return e.name as string;
    throw bad();
  });
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
  const numReturns = checkCount('numReturns', opts.numReturns ?? 1, { integer: true, min: 1 });
  const retryExceptions = resolveRetryExceptions(opts.retryExceptions);
  return { demand, maxRetries, name: opts.name, runtimeEnv: resolveRuntimeEnv(opts.runtimeEnv), numReturns, ...(retryExceptions ? { retryExceptions } : {}), ...resolvePlacement('the task', opts, demand) };
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
  /** The job's runtime env: every task and actor of this driver runs in it (each may add to it). @default none */
  runtimeEnv?: RuntimeEnv;
}

export interface ResolvedInitOptions {
  address: string | undefined;
  numCpus: number | undefined;
  numGpus: number;
  resources: Resources;
  logToDriver: boolean;
  namespace: string;
  runtimeEnv?: ResolvedRuntimeEnv;
}

const INIT_OPTION_NAMES = ['address', 'numCpus', 'numGpus', 'resources', 'logToDriver', 'namespace', 'runtimeEnv'] as const;

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
    runtimeEnv: resolveRuntimeEnv(opts.runtimeEnv),
  };
}

/** Options of a node agent (`nodus start --head` / `nodus worker join`). */
export interface NodeOptions {
  numCpus?: number;
  numGpus?: number;
  resources?: Resources;
  /** Memory in bytes tasks and actors may ask for with `memory`. @default the machine's free memory */
  memory?: number;
}

export function resolveNodeResources(opts: NodeOptions, defaultCpus: number, defaultMemory = freemem()): Resources {
  rejectUnknownKeys('node', opts, ['numCpus', 'numGpus', 'resources', 'memory']);
  return resolveDemand({ ...opts, memory: opts.memory ?? defaultMemory }, defaultCpus, true);
}

/** Node labels (`--labels '{"zone":"a"}'`): names and values are plain strings. */
export function resolveNodeLabels(given: unknown): Record<string, string> {
  if (given === undefined) return {};
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new ConfigError(`labels must be a JSON object of names to strings, e.g. '{"zone":"a"}'.`);
  for (const [k, v] of Object.entries(given)) {
    if (!RESOURCE_NAME.test(k)) throw new ConfigError(`label name '${k}' must match ${RESOURCE_NAME}.`);
    if (typeof v !== 'string' || !/^[\w.-]{0,63}$/.test(v)) throw new ConfigError(`label ${k} must be a string of letters, digits, '_', '.', '-' (at most 63), got ${JSON.stringify(v)}.`);
  }
  return given as Record<string, string>;
}

/** Options of an actor class, given to `remote(Class, opts)` or `.options(opts)`. */
export interface ActorOptions extends PlacementOptions {
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
  /** Run a method again (within maxTaskRetries) when it throws: true for any error, or only these. @default false */
  retryExceptions?: RetryExceptions;
}

export interface ResolvedActorOptions {
  demand: Resources;
  maxRestarts: number;
  maxTaskRetries: number;
  maxConcurrency: number;
  name: string | undefined;
  namespace: string;
  detached: boolean;
  runtimeEnv?: ResolvedRuntimeEnv;
  placement?: Placement;
  retryExceptions?: true | string[];
}

const ACTOR_OPTION_NAMES = [
  'numCpus', 'numGpus', 'resources', 'maxRestarts', 'maxTaskRetries', 'maxConcurrency', 'name', 'namespace', 'lifetime',
  'runtimeEnv', 'memory', 'schedulingStrategy', 'labelSelector', 'placementGroup', 'bundleIndex', 'retryExceptions',
] as const;

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
  const { placement } = resolvePlacement('the actor', opts, demand);
  const retryExceptions = resolveRetryExceptions(opts.retryExceptions);
  return {
    ...(placement ? { placement } : {}),
    ...(retryExceptions ? { retryExceptions } : {}),
    demand,
    maxRestarts: countOrUnlimited('maxRestarts', opts.maxRestarts, 0),
    maxTaskRetries: countOrUnlimited('maxTaskRetries', opts.maxTaskRetries, 0),
    maxConcurrency,
    name: opts.name,
    namespace,
    detached: opts.lifetime === 'detached',
    runtimeEnv: resolveRuntimeEnv(opts.runtimeEnv),
  };
}
