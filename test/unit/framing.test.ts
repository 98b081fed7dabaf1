import { decodeFramed, encodeLarge, frameEncoded, type Framed } from '../../runtime/internal/framing';
import { encode } from '../../runtime/internal/serialization';
import { ObjectRef } from '../../runtime/object-ref';

/** The frame as the store's files hold it: its pieces one after the other, in a buffer of its own (8-byte aligned). */
function join(f: Framed): Buffer {
  const out = Buffer.alloc(f.size);
  let off = 0;
  for (const p of f.pieces) off += Buffer.from(p.buffer, p.byteOffset, p.byteLength).copy(out, off);
  expect(off).toBe(f.size);
  return out;
}

describe('the framed form of large values', () => {
  test('large typed arrays travel out of band and come back as views of the same kind, beside everything else', () => {
    const a: { self?: unknown; f64: Float64Array; list: unknown[]; ref: ObjectRef; small: Uint8Array; big: bigint } = {
      f64: new Float64Array(100_000).map((_, i) => i / 3),
      list: [new Int32Array(50_000).fill(-7), Buffer.alloc(70_000, 9), new Map([['m', 1]])],
      ref: new ObjectRef('abc'),
      small: new Uint8Array([1, 2, 3]),
      big: 2n ** 70n,
    };
    a.self = a; // a cycle stays in the skeleton
    const enc = encodeLarge(a, 'value', 64 * 1024);
    if (!('framed' in enc)) throw new Error('expected a framed value');
    expect(enc.framed.refs).toEqual(['abc']);
    // The arrays are not copied into the pieces: they are the caller's memory.
    expect(enc.framed.pieces.some((p) => p.buffer === a.f64.buffer)).toBe(true);
    const bytes = join(enc.framed);
    const out = decodeFramed<typeof a>(bytes);
    expect(out.f64).toBeInstanceOf(Float64Array);
    expect(out.f64).toEqual(a.f64);
    expect(out.f64.buffer).toBe(bytes.buffer); // a view: no copy on the way out
    expect(out.list[0]).toEqual(new Int32Array(50_000).fill(-7));
    expect(Buffer.isBuffer(out.list[1])).toBe(true);
    expect((out.list[1] as Buffer)[69_999]).toBe(9);
    expect(out.list[2]).toEqual(new Map([['m', 1]]));
    expect(out.ref).toBeInstanceOf(ObjectRef);
    expect(out.small).toEqual(new Uint8Array([1, 2, 3]));
    expect(out.big).toBe(2n ** 70n);
    expect(out.self).toBe(out);
    // The caller's value is as it was.
    expect(a.list[0]).toBeInstanceOf(Int32Array);
  });

  test('a value with no large arrays is encoded plainly; its bytes can be framed as one section-less frame', () => {
    const v = { text: 'x'.repeat(200_000), n: 1 };
    const enc = encodeLarge(v, 'value', 64 * 1024);
    expect('encoded' in enc).toBe(true);
    const framed = frameEncoded(encode(v));
    expect(decodeFramed(join(framed))).toEqual(v);
  });

  test('a damaged frame is refused with a clear error', () => {
    expect(() => decodeFramed(Buffer.from('not a frame at all'))).toThrow(/not a framed value/);
  });
});
