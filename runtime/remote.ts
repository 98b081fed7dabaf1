/** @module remote(): turns a function into a remote function that runs on the cluster's workers. */
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from './errors';
import { requireContext } from './internal/global';
import { makeActorClass, type ActorClass, type AnyClass } from './actor';
import type { ObjectRef, ObjectRefGenerator, RemoteArgs } from './object-ref';
import { resolveRemoteOptions, type ActorOptions, type RemoteOptions, type ResolvedRemoteOptions } from './options';
import type { FunctionDescriptor } from './protocol';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => any;

export type { RemoteArgs };

/**
 * What `.remote()` returns: a ref to the result, or for an async generator function an async iterable of
 * refs; with `numReturns: n` (n > 1) one ref per element of the returned tuple.
 */
export type RemoteResult<R, N extends number = 1> = [N] extends [1]
  ? R extends AsyncIterable<infer Y>
    ? ObjectRefGenerator<Y>
    : ObjectRef<Awaited<R>>
  : ReturnRefs<Awaited<R>>;

/** One ref per element: a tuple of values gives a tuple of refs, an array an array. */
export type ReturnRefs<T> = T extends readonly unknown[] ? { -readonly [K in keyof T]: ObjectRef<T[K]> } : ObjectRef<unknown>[];

/**
 * A function that runs in the cluster. `.remote(...args)` submits it and returns an
 * ObjectRef to its result at once; `.options({...})` returns a copy with other options.
 * Calling it directly throws, showing the right call.
 *
 * @example
 * export const square = remote(async function square(x: number) { return x * x; });
 * const nine = await get(square.remote(3));
 */
export interface RemoteFunction<F extends AnyFunction, N extends number = 1> {
  /** Submits the task; its ObjectRef carries the awaited return type (with numReturns, one ref per returned element). */
  remote(...args: RemoteArgs<Parameters<F>>): RemoteResult<ReturnType<F>, N>;
  /** A copy with some options changed; this one is not modified. */
  options<M extends number = N>(opts: RemoteOptions & { numReturns?: M }): RemoteFunction<F, M>;
  readonly name: string;
}

interface RegistryEntry {
  fn: AnyFunction;
  descriptor: FunctionDescriptor;
}

/** Remote functions by defining module and key. On globalThis so that every copy of the package sees one registry. */
const REGISTRY = Symbol.for('nodus.remoteRegistry');
type Registry = Map<string, Map<string, RegistryEntry>>;

function registry(): Registry {
  const g = globalThis as { [REGISTRY]?: Registry };
  return (g[REGISTRY] ??= new Map());
}

const RUNTIME_DIR = dirname(__filename);

/** The file that called remote(): the first stack frame outside this package's runtime folder. */
function callerModule(): string | undefined {
  const saved = Error.prepareStackTrace;
  const savedLimit = Error.stackTraceLimit;
  try {
    Error.prepareStackTrace = (_e, frames) => frames;
    Error.stackTraceLimit = 30;
    const frames = new Error().stack as unknown as NodeJS.CallSite[];
    for (const f of frames) {
      let file = f.getFileName();
      if (!file) continue;
      if (file.startsWith('file://')) file = fileURLToPath(file);
      if (file.startsWith('node:') || file.startsWith(RUNTIME_DIR)) continue;
      try {
        return realpathSync(file);
      } catch {
        return file;
      }
    }
    return undefined;
  } finally {
    Error.prepareStackTrace = saved;
    Error.stackTraceLimit = savedLimit;
  }
}

const REMOTE = Symbol.for('nodus.remoteFunction');

/**
 * Makes a remote function. Define it at the top level of a module and export it:
 * workers import that module to find it.
 *
 * @example
 * export const square = remote(async function square(x: number) { return x * x; });
 * export const heavy = remote({ numCpus: 2, maxRetries: 1 }, function heavy(a: Float64Array) { return a.length; });
 */
export function remote<C extends AnyClass>(cls: C, options?: ActorOptions): ActorClass<C>;
export function remote<C extends AnyClass>(options: ActorOptions, cls: C): ActorClass<C>;
export function remote<F extends AnyFunction, N extends number = 1>(fn: F, options?: RemoteOptions & { numReturns?: N }): RemoteFunction<F, N>;
export function remote<F extends AnyFunction, N extends number = 1>(options: RemoteOptions & { numReturns?: N }, fn: F): RemoteFunction<F, N>;
export function remote(a: unknown, b?: unknown): unknown {
  const [options, fn] = (typeof a === 'function' ? [b ?? {}, a] : [a, b]) as [object, unknown];
  if (typeof fn !== 'function') {
    throw new ConfigError('remote() takes a function or a class, and options before or after it: remote({ numCpus: 2 }, function heavy() {...}), remote(Counter, { maxRestarts: 2 }).');
  }
  const isClass = /^class[\s{]/.test(Function.prototype.toString.call(fn));
  const resolved = isClass ? undefined : resolveRemoteOptions(options as RemoteOptions);
  const module = callerModule();
  if (!module) throw new ConfigError('remote() could not tell which module defines this function; define remote functions at the top level of a module file.');
  const baseName = fn.name || 'anonymous';
  const inModule = registry().get(module) ?? new Map<string, RegistryEntry>();
  registry().set(module, inModule);
  let key = baseName;
  for (let n = 2; inModule.has(key); n++) key = `${baseName}#${n}`;
  const entry: RegistryEntry = { fn: fn as AnyFunction, descriptor: { module, key, name: baseName } };
  inModule.set(key, entry);
  if (isClass) return makeActorClass(fn as AnyClass, entry.descriptor, options as ActorOptions);
  return makeRemoteFunction(entry, options as RemoteOptions, resolved!);
}

function makeRemoteFunction<F extends AnyFunction>(entry: RegistryEntry, options: RemoteOptions, resolved: ResolvedRemoteOptions): RemoteFunction<F> {
  const name = resolved.name ?? entry.descriptor.name;
  const generator = entry.fn.constructor?.name === 'AsyncGeneratorFunction';
  if (generator && resolved.numReturns > 1) throw new ConfigError(`${name} is a generator: its items stream as refs of their own, so numReturns does not apply; leave it out.`);
  const rf = function (...args: unknown[]) {
    const shown = args.map((x) => preview(x)).join(', ');
    throw new TypeError(
      `${name} is a remote function and cannot be called directly. Call ${name}.remote(${shown}) to run it in the cluster; ` +
        `it returns an ObjectRef at once, and await get(${name}.remote(${shown})) gives the result.`,
    );
  } as unknown as RemoteFunction<F>;
  Object.defineProperty(rf, 'name', { value: name });
  Object.defineProperty(rf, REMOTE, { value: entry });
  Object.assign(rf, {
    remote: (...args: unknown[]) => requireContext(`${name}.remote()`).submit(entry.descriptor, args, resolved, generator),
    options: (more: RemoteOptions) => {
      const merged = { ...options, ...more };
      return makeRemoteFunction<F>(entry, merged, resolveRemoteOptions(merged));
    },
  });
  return rf;
}

function preview(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x.length > 20 ? `${x.slice(0, 20)}…` : x);
  if (typeof x === 'number' || typeof x === 'boolean' || x == null) return String(x);
  return Array.isArray(x) ? '[…]' : '{…}';
}

/** Finds a remote function by where it was defined; for worker processes. */
export function lookupRemote(descriptor: FunctionDescriptor): AnyFunction | undefined {
  const reg = registry();
  let inModule = reg.get(descriptor.module);
  if (!inModule) {
    try {
      inModule = reg.get(realpathSync(descriptor.module));
    } catch {
      /* the module does not exist here */
    }
  }
  return inModule?.get(descriptor.key)?.fn;
}

/** True for what remote() returns. */
export function isRemoteFunction(value: unknown): boolean {
  return typeof value === 'function' && REMOTE in value;
}
