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
const SECTION_EXT = 0x71; // msgpackr itself uses 0x42, 0x62, 0x65, 0x69, 0x70, 0x73, 0x74, 0x78 and 0xff; ours 0x6e and 0x6f (serialization.ts)

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
 * Only plain objects and arrays on the way to them are copied (shallowly), each once, so shared references
 * and cycles among them keep their shape; the caller's value is untouched. An array inside anything else (a
 * Map, a class instance) stays in the skeleton.
 */
function extract(value: unknown, min: number): { value: unknown; sections: ArrayBufferView[] } {
  const sections: ArrayBufferView[] = [];
  const large = (v: unknown): v is ArrayBufferView => ArrayBuffer.isView(v) && v.byteLength >= min && kindOf(v) >= 0;
  const plain = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && (Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);
  // First: which plain containers hold a large array, at any depth.
  const holds = new Map<object, boolean>();
  const scan = (v: unknown, depth: number): boolean => {
    if (large(v)) return true;
    if (!plain(v) || depth > 64) return false;
    const known = holds.get(v);
    if (known !== undefined) return known;
    holds.set(v, false); // on the way: a cycle back here adds nothing
    let found = false;
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (scan(x, depth + 1)) found = true;
    holds.set(v, found);
    return found;
  };
  if (!scan(value, 0)) return { value, sections };
  // Then: copies of those containers (each made before its children, so a cycle finds it), arrays as Sections.
  const copies = new Map<object, unknown>();
  const placed = new Map<ArrayBufferView, Section>();
  const build = (v: unknown): unknown => {
    if (large(v)) {
      let s = placed.get(v);
      if (!s) {
        sections.push(v);
        placed.set(v, (s = new Section(sections.length - 1, kindOf(v))));
      }
      return s;
    }
    if (!plain(v) || !holds.get(v)) return v;
    const made = copies.get(v);
    if (made) return made;
    if (Array.isArray(v)) {
      const copy: unknown[] = new Array(v.length);
      copies.set(v, copy);
      for (let i = 0; i < v.length; i++) copy[i] = build(v[i]);
      return copy;
    }
    const copy: Record<string, unknown> = Object.getPrototypeOf(v) === null ? Object.create(null) : {};
    copies.set(v, copy);
    for (const k of Object.keys(v)) copy[k] = build(v[k]);
    return copy;
  };
  return { value: build(value), sections };
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

/**
 * How a value goes out from a process whose node store takes objects of `min` bytes or more (null: no store):
 * framed when it is that large (its large arrays out of band), else as plain encoded bytes.
 */
export function encodeForStore(value: unknown, what: string, min: number | null): { framed: Framed } | { encoded: Encoded } {
  if (min === null) return { encoded: encode(value, what) };
  const enc = encodeLarge(value, what, min);
  return 'encoded' in enc && enc.encoded.bytes.length >= min ? { framed: frameEncoded(enc.encoded) } : enc;
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
