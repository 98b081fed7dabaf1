/** @module ObjectRef: a handle to a value in the cluster's object store. */
import { currentContext, requireContext } from './internal/global';

const REF_BRAND = Symbol.for('nodus.ObjectRef');

/** Type-only key that carries a ref's value type (and keeps plain `{ id }` objects from passing for refs). */
declare const refType: unique symbol;

/**
 * Any reference to an object, as get(), wait() and `.remote()` accept it. put() resolves to an
 * ObjectRef typed as Ref<T>: refs are awaitable, so TypeScript would type `await put(x)` as the
 * value if put() promised an ObjectRef<T>, while at run time it gives the ref.
 */
export interface Ref<T = unknown> {
  readonly id: string;
  readonly [refType]: T;
}

/**
 * A reference to an object that lives in the cluster: a task's return value or
 * a value given to `put()`. It is returned at once; `get(ref)` (or `await ref`)
 * waits for the value. Refs can be passed to tasks, where top-level ones arrive
 * as their values, and stored inside other objects.
 *
 * Because a ref is awaitable, returning one from an async function resolves it
 * to its value, as returning a promise would; wrap it (`[ref]`, `{ ref }`) to pass the ref itself.
 *
 * @example
 * const ref = square.remote(3);
 * console.log(await get(ref)); // 9
 */
/**
 * What a streaming generator call returns: an async iterable of refs to the items, in the order they
 * were yielded. An error thrown by the generator is thrown after the items before it; leaving the
 * loop early stops the producer. Items are typed Ref<T> (they are ObjectRefs at run time): `for await`
 * would type an awaitable item as its value.
 *
 * @example
 * for await (const ref of counter.count.remote(3)) console.log(await get(ref));
 */
export interface ObjectRefGenerator<T> extends AsyncIterableIterator<Ref<T>> {
  /** Id of the generator call. */
  readonly id: string;
}

/** Each argument may be given as its value or as a ref to it (resolved before the call runs). */
export type RemoteArgs<P extends unknown[]> = { [K in keyof P]: P[K] | Ref<P[K]> };

export class ObjectRef<T = unknown> implements PromiseLike<T>, Ref<T> {
  /** The object's id, unique in the cluster. */
  readonly id: string;
  declare readonly [refType]: T;

  /** @internal refs are made by the runtime: `.remote()`, `put()`, or receiving one. */
  constructor(id: string) {
    this.id = id;
    Object.defineProperty(this, REF_BRAND, { value: true });
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[REF_BRAND] === true;
  }

  declare then: <R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ) => Promise<R1 | R2>;

  toString(): string {
    return `ObjectRef(${this.id})`;
  }

  toJSON(): { objectRef: string } {
    return { objectRef: this.id };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

/** Refs for which `then` is hidden, so that a promise can resolve to the ref itself rather than its value. */
const unwrapping = new WeakSet<object>();

function thenImpl(this: ObjectRef, onfulfilled?: (v: unknown) => unknown, onrejected?: (e: unknown) => unknown): Promise<unknown> {
  return requireContext('await ref').get(this, undefined).then(onfulfilled, onrejected);
}

Object.defineProperty(ObjectRef.prototype, 'then', {
  configurable: true,
  get(this: ObjectRef) {
    return unwrapping.has(this) ? undefined : thenImpl;
  },
});

/** Resolves a promise with the ref itself instead of adopting its value (Promise resolution reads `then` synchronously). */
export function resolveWithRef<T>(resolve: (v: ObjectRef<T>) => void, ref: ObjectRef<T>): void {
  unwrapping.add(ref);
  try {
    resolve(ref);
  } finally {
    unwrapping.delete(ref);
  }
}

export function isObjectRef(value: unknown): value is ObjectRef {
  return value instanceof ObjectRef;
}

/** Makes a ref through the running context so that it is reference-counted; a bare ref when there is none. */
export function refFromWire(id: string): ObjectRef {
  const ctx = currentContext();
  return ctx ? (ctx.refFromWire(id) as ObjectRef) : new ObjectRef(id);
}
