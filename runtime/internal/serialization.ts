/** @module msgpack encoding of task arguments, results and objects, with ObjectRefs nested anywhere. */
import { Packr, addExtension } from 'msgpackr';
import { SerializationError } from '../errors';
import { ActorHandleBase, makeHandle } from '../actor';
import { ObjectRef, refFromWire } from '../object-ref';

/** Extension type of an ObjectRef on the wire: its id as a string. */
const REF_EXT = 0x6e;

// Kept on globalThis: a worker process may load two copies of this module (ours and the one its user's
// module imports), and msgpackr's extension table is shared, so either copy's writer may run.
const COLLECTOR = Symbol.for('nodus.refCollector');
const holder = globalThis as { [COLLECTOR]?: string[] | null };

addExtension({
  Class: ObjectRef,
  type: REF_EXT,
  write(ref: ObjectRef) {
    holder[COLLECTOR]?.push(ref.id);
    return ref.id;
  },
  read(id: string) {
    return refFromWire(id);
  },
});

/** Extension type of an actor handle: [actorId, className, generator methods]. */
const HANDLE_EXT = 0x6f;

addExtension({
  Class: ActorHandleBase,
  type: HANDLE_EXT,
  write(h: ActorHandleBase) {
    return [h.actorId, h.className, h.generators];
  },
  read([id, cls, gens]: [string, string, string[]]) {
    return makeHandle(new ActorHandleBase(id, cls, gens));
  },
});

// Records keep plain objects apart from Maps on the way back; structuredClone adds Set, Date, Error, cycles;
// int64AsType 'bigint' brings bigint back as bigint. Records are embedded in each message, nothing is shared.
const packr = new Packr({
  structuredClone: true,
  moreTypes: true,
  useRecords: true,
  mapsAsObjects: false,
  int64AsType: 'bigint',
});

export interface Encoded {
  bytes: Buffer;
  /** Ids of every ObjectRef inside the value. */
  refs: string[];
}

/** Encodes a value; throws SerializationError naming the path of anything that cannot travel. */
export function encode(value: unknown, what = 'value'): Encoded {
  checkSerializable(value, what);
  const refs: string[] = [];
  holder[COLLECTOR] = refs;
  try {
    return { bytes: packr.pack(value), refs };
  } catch (err) {
    throw new SerializationError(`${what} cannot be serialized: ${(err as Error).message}`, { cause: err });
  } finally {
    holder[COLLECTOR] = null;
    // msgpackr keeps the last value's reference map (for cycles) until the next pack; packing a
    // primitive drops it, so the value's ObjectRefs can be collected and their objects freed.
    packr.pack(null);
  }
}

export function decode<T = unknown>(bytes: Uint8Array): T {
  return packr.unpack(bytes) as T;
}

const MAX_CHECK_DEPTH = 64;

/**
 * msgpack would silently drop functions and throw a bare "Unknown type: symbol";
 * walk the value first so the error says where the bad part is and what to do.
 */
export function checkSerializable(value: unknown, path: string): void {
  const seen = new Set<object>();
  const visit = (v: unknown, p: string, depth: number): void => {
    const t = typeof v;
    if (t === 'function') {
      throw new SerializationError(
        `${p} is a function, which cannot be sent to another process. Send data instead, or define the function as a remote function and call it from the task.`,
      );
    }
    if (t === 'symbol') throw new SerializationError(`${p} is a symbol, which cannot be sent to another process. Use a string instead.`);
    if (t !== 'object' || v === null || depth > MAX_CHECK_DEPTH) return;
    const o = v as object;
    if (seen.has(o) || ArrayBuffer.isView(o) || o instanceof ArrayBuffer || o instanceof Date || o instanceof RegExp || o instanceof ObjectRef || o instanceof ActorHandleBase) return;
    seen.add(o);
    if (o instanceof Promise) throw new SerializationError(`${p} is a Promise: await it before passing the value, or pass an ObjectRef.`);
    if (o instanceof WeakMap || o instanceof WeakSet) throw new SerializationError(`${p} is a WeakMap/WeakSet, which cannot be serialized.`);
    if (Array.isArray(o)) o.forEach((x, i) => visit(x, `${p}[${i}]`, depth + 1));
    else if (o instanceof Map) for (const [k, x] of o) { visit(k, `${p} key`, depth + 1); visit(x, `${p}.get(${String(k)})`, depth + 1); }
    else if (o instanceof Set) for (const x of o) visit(x, `${p} element`, depth + 1);
    else for (const k of Object.keys(o)) visit((o as Record<string, unknown>)[k], `${p}.${k}`, depth + 1);
  };
  visit(value, path, 0);
}
