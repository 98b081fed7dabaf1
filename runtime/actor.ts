/** @module Actors: a class instance living in its own worker process, called through a typed handle. */
import { ConfigError } from './errors';
import { requireContext } from './internal/global';
import type { ObjectRef, ObjectRefGenerator, RemoteArgs } from './object-ref';
import { rejectUnknownKeys, resolveActorOptions, type ActorOptions, type ResolvedActorOptions } from './options';
import type { FunctionDescriptor } from './protocol';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyClass = new (...args: any[]) => any;

/** A method of an actor, as its handle shows it: `.remote(...)` only. Generator methods return an async iterable of refs. */
export type ActorMethod<M> = M extends (...args: infer A) => infer R
  ? R extends AsyncIterable<infer Y>
    ? { remote(...args: RemoteArgs<A>): ObjectRefGenerator<Y> }
    : { remote(...args: RemoteArgs<A>): ObjectRef<Awaited<R>> }
  : never;

/**
 * A handle to an actor: each method of the class, called with `.remote(...)`. Handles can be passed
 * to tasks and other actors, returned from them and stored inside objects.
 *
 * @example
 * const c = CounterActor.remote(10);
 * await get(c.incr.remote(5)); // 15
 */
export type ActorHandle<T> = { readonly [K in keyof T as T[K] extends AnyFunction ? K : never]: ActorMethod<T[K]> } & {
  /** The actor's id, unique in the cluster. */
  readonly actorId: string;
};

/**
 * A class made remote: `.remote(...constructorArgs)` creates an actor somewhere in the cluster and
 * returns its handle at once; `.options({...})` returns a copy with other options.
 */
export interface ActorClass<C extends AnyClass> {
  remote(...args: RemoteArgs<ConstructorParameters<C>>): ActorHandle<InstanceType<C>>;
  options(opts: ActorOptions): ActorClass<C>;
  readonly name: string;
}

/** The runtime side of a handle; user code sees it through a Proxy that turns property names into methods. */
export class ActorHandleBase {
  constructor(
    readonly actorId: string,
    readonly className: string,
    /** Names of the class's async generator methods (their calls stream). */
    readonly generators: string[],
  ) {
    Object.defineProperty(this, HANDLE_BRAND, { value: true });
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[HANDLE_BRAND] === true;
  }

  toString(): string {
    return `ActorHandle(${this.className} ${this.actorId})`;
  }

  toJSON(): { actorId: string; className: string } {
    return { actorId: this.actorId, className: this.className };
  }
}

const HANDLE_BRAND = Symbol.for('nodus.ActorHandle');
const OWN = new Set<string | symbol>(['actorId', 'className', 'generators', 'toString', 'toJSON', 'constructor', 'valueOf']);

/** What submitting an actor call needs from the runtime. */
interface ActorRuntime {
  submitActorCall(actorId: string, method: string, args: unknown[], generator: boolean): unknown;
  createActor(cls: FunctionDescriptor, args: unknown[], opts: ResolvedActorOptions, generators: string[]): unknown;
  getActor(name: string, namespace: string): Promise<unknown>;
  killActor(actorId: string, noRestart: boolean): Promise<void>;
}

const runtime = (what: string) => requireContext(what) as unknown as ActorRuntime;

/** Wraps a handle's base in the Proxy users call methods on. */
export function makeHandle<T>(base: ActorHandleBase): ActorHandle<T> {
  const methods = new Map<string, unknown>();
  return new Proxy(base, {
    get(target, prop, receiver) {
      // Not thenable: a handle must survive being returned from an async function.
      if (prop === 'then') return undefined;
      if (typeof prop === 'symbol' || OWN.has(prop)) return Reflect.get(target, prop, receiver);
      let m = methods.get(prop);
      if (!m) {
        m = methodStub(target, prop);
        methods.set(prop, m);
      }
      return m;
    },
  }) as unknown as ActorHandle<T>;
}

function methodStub(h: ActorHandleBase, method: string): unknown {
  const stub = function (...args: unknown[]) {
    const shown = args.map((a) => (typeof a === 'string' ? JSON.stringify(a) : typeof a === 'number' || typeof a === 'boolean' ? String(a) : '…')).join(', ');
    throw new TypeError(
      `${method} is a method of actor ${h.className}, which lives in another process: call handle.${method}.remote(${shown}); ` +
        'it returns an ObjectRef at once, and get() of that ref gives the result.',
    );
  };
  Object.defineProperty(stub, 'name', { value: method });
  return Object.assign(stub, {
    remote: (...args: unknown[]) => runtime(`${h.className}.${method}.remote()`).submitActorCall(h.actorId, method, args, h.generators.includes(method)),
  });
}

/** Names of a class's async generator methods, along its prototype chain. */
export function generatorMethods(cls: AnyClass): string[] {
  const names = new Set<string>();
  for (let proto = cls.prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, name);
      if (d && typeof d.value === 'function' && d.value.constructor?.name === 'AsyncGeneratorFunction') names.add(name);
    }
  }
  return [...names];
}

/** Makes the ActorClass that remote(Class) returns. */
export function makeActorClass<C extends AnyClass>(cls: C, descriptor: FunctionDescriptor, options: ActorOptions): ActorClass<C> {
  const resolved = resolveActorOptions(options);
  const generators = generatorMethods(cls);
  return {
    name: cls.name,
    remote: (...args: unknown[]) => runtime(`${cls.name}.remote()`).createActor(descriptor, args, resolved, generators) as ActorHandle<InstanceType<C>>,
    options: (more: ActorOptions) => makeActorClass(cls, descriptor, { ...options, ...more }),
  };
}

/**
 * Finds a named actor from any driver.
 *
 * @example
 * const counter = await getActor<Counter>('global', { namespace: 'app' });
 */
export function getActor<T>(name: string, options: { namespace?: string } = {}): Promise<ActorHandle<T>> {
  rejectUnknownKeys('getActor', options, ['namespace']);
  if (typeof name !== 'string' || !name) throw new ConfigError('getActor() takes the name the actor was created with.');
  return runtime('getActor()').getActor(name, options.namespace ?? 'default') as Promise<ActorHandle<T>>;
}

/**
 * Kills an actor's process. With `noRestart: false` it restarts (if maxRestarts allows), as if it had crashed.
 *
 * @example
 * await kill(counter);
 */
export async function kill(handle: ActorHandle<unknown>, options: { noRestart?: boolean } = {}): Promise<void> {
  rejectUnknownKeys('kill', options, ['noRestart']);
  if (!(handle instanceof ActorHandleBase)) throw new TypeError('kill() takes an actor handle (from ActorClass.remote() or getActor()).');
  await runtime('kill()').killActor(handle.actorId, options.noRestart ?? true);
}
