/**
 * @module The framed form of a large value, as the node-local store keeps it: a small msgpack skeleton plus the
 * bytes of its large typed arrays and Buffers kept out of band, each 8-byte aligned. Writing it copies those
 * bytes once (from the caller's memory into the store); reading it gives typed arrays that are views on the
 * one buffer the file was read into, so a get copies them once too.
 *
 * Layout: magic "NDF1", skeleton length (u32), section count (u32), 4 zero bytes; per section its offset and
 * length (two float64, exact below 2^53); the skeleton; zero padding to 8; each section, padded to 8.
 */
import { addExtension } from 'msgpackr';
import { decode, encode, type Encoded } from './serialization';

const MAGIC = 0x3146444e; // "NDF1", little-endian
const HEADER = 16;
const ENTRY = 16;
/** Extension type of a section placeholder in the skeleton: [index, kind]. */
const SECTION_EXT = 0x70;

/** The typed arrays that travel out of band, by the kind number written in the skeleton. */
const KINDS = [
  Buffer, Uint8Array, Int8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
] as const;
type View = InstanceType<(typeof KINDS)[number]>;

/** Stands in the skeleton for a section. */
class Section {
  constructor(readonly index: number, readonly kind: number) {}
}

// On globalThis, as serialization.ts's collector: a process may load two copies of this module.
const READING = Symbol.for('nodus.framedSections');
const holder = globalThis as { [READING]?: Uint8Array[] | null };

addExtension({
  Class: Section,
  type: SECTION_EXT,
  write(s: Section) {
    return [s.index, s.kind];
  },
  read([index, kind]: [number, number]) {
    const bytes = holder[READING]?.[index];
    if (!bytes) throw new Error('a framed value refers to a section it does not have; was it written by another version of nodus?');
    return view(bytes, kind);
  },
});

function view(bytes: Uint8Array, kind: number): View {
  const Kind = KINDS[kind];
  if (Kind === Buffer) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const per = (Kind as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
  // Sections are 8-byte aligned in the frame; a frame read somewhere unaligned gets a copy instead.
  const aligned = bytes.byteOffset % per === 0 ? bytes : new Uint8Array(bytes);
  return new (Kind as unknown as new (b: ArrayBufferLike, o: number, n: number) => View)(aligned.buffer, aligned.byteOffset, aligned.byteLength / per);
}

function kindOf(v: ArrayBufferView): number {
  if (Buffer.isBuffer(v)) return 0;
  return KINDS.findIndex((K) => v.constructor === K);
}

/**
 * The value with each typed array or Buffer of at least `min` bytes replaced by a Section, and those arrays.
 * Only plain objects and arrays on the way to them are copied (shallowly); the caller's value is untouched.
 * An array inside anything else (a Map, a class instance) stays in the skeleton.
 */
function extract(value: unknown, min: number): { value: unknown; sections: ArrayBufferView[] } {
  const sections: ArrayBufferView[] = [];
  const onPath = new Set<object>();
  const visit = (v: unknown, depth: number): unknown => {
    if (typeof v !== 'object' || v === null || depth > 64) return v;
    if (ArrayBuffer.isView(v)) {
      const kind = kindOf(v);
      if (kind < 0 || v.byteLength < min) return v;
      sections.push(v);
      return new Section(sections.length - 1, kind);
    }
    if (onPath.has(v)) return v;
    const plain = Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null;
    if (!plain) return v;
    onPath.add(v);
    let copy: Record<string, unknown> | undefined;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const r = visit(v[i], depth + 1);
        if (r !== v[i]) (copy ??= v.slice() as unknown as Record<string, unknown>)[i] = r;
      }
    } else {
      for (const k of Object.keys(v)) {
        const x = (v as Record<string, unknown>)[k];
        const r = visit(x, depth + 1);
        if (r !== x) (copy ??= { ...(v as Record<string, unknown>) })[k] = r;
      }
    }
    onPath.delete(v);
    return copy ?? v;
  };
  return { value: visit(value, 0), sections };
}

/** A framed value ready to write: its pieces in order (no copies of the sections), their total, the refs inside. */
export interface Framed {
  pieces: Uint8Array[];
  size: number;
  refs: string[];
}

const pad = (n: number) => (8 - (n % 8)) % 8;
const ZEROS = Buffer.alloc(8);

/** Frames encoded bytes with no out-of-band sections (a value with no large arrays). */
export function frameEncoded(enc: Encoded): Framed {
  return frame(enc, []);
}

/**
 * Encodes `value` framed when it holds at least `min` bytes of large arrays (the arrays out of band), or
 * encodes it plainly: `framed` or `encoded` says which. Throws SerializationError as encode() does.
 */
export function encodeLarge(value: unknown, what: string, min: number): { framed: Framed } | { encoded: Encoded } {
  const { value: skeleton, sections } = extract(value, Math.min(min, 64 * 1024));
  const outOfBand = sections.reduce((n, s) => n + s.byteLength, 0);
  if (outOfBand < min) return { encoded: encode(value, what) };
  return { framed: frame(encode(skeleton, what), sections) };
}

function frame(enc: Encoded, sections: ArrayBufferView[]): Framed {
  const tableEnd = HEADER + ENTRY * sections.length;
  const headLen = tableEnd + enc.bytes.length;
  const head = Buffer.alloc(headLen + pad(headLen));
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(enc.bytes.length, 4);
  head.writeUInt32LE(sections.length, 8);
  enc.bytes.copy(head, tableEnd);
  const pieces: Uint8Array[] = [head];
  let offset = head.length;
  sections.forEach((s, i) => {
    head.writeDoubleLE(offset, HEADER + ENTRY * i);
    head.writeDoubleLE(s.byteLength, HEADER + ENTRY * i + 8);
    pieces.push(new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
    offset += s.byteLength;
    const p = pad(s.byteLength);
    if (p) pieces.push(ZEROS.subarray(0, p));
    offset += p;
  });
  return { pieces, size: offset, refs: enc.refs };
}

/** True when bytes start as a frame. */
export function isFramed(bytes: Uint8Array): boolean {
  return bytes.length >= HEADER && Buffer.from(bytes.buffer, bytes.byteOffset, 4).readUInt32LE(0) === MAGIC;
}

/** Decodes a frame; its large arrays are views on `bytes` (no copy when `bytes` is 8-byte aligned). */
export function decodeFramed<T = unknown>(bytes: Buffer): T {
  if (!isFramed(bytes)) throw new Error('not a framed value: the object store file is damaged or from another version of nodus');
  const skeletonLen = bytes.readUInt32LE(4);
  const n = bytes.readUInt32LE(8);
  const tableEnd = HEADER + ENTRY * n;
  const sections: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const off = bytes.readDoubleLE(HEADER + ENTRY * i);
    const len = bytes.readDoubleLE(HEADER + ENTRY * i + 8);
    sections.push(bytes.subarray(off, off + len));
  }
  const previous = holder[READING];
  holder[READING] = sections;
  try {
    return decode<T>(bytes.subarray(tableEnd, tableEnd + skeletonLen));
  } finally {
    holder[READING] = previous ?? null;
  }
}
