import { SerializationError } from '../../runtime/errors';
import { checkSerializable, decode, encode } from '../../runtime/internal/serialization';
import { fromStored, toStoredForm } from '../../runtime/internal/object-store';
import { ObjectRef } from '../../runtime/object-ref';

const roundTrip = <T>(v: T): T => decode<T>(encode(v).bytes);

describe('serialization', () => {
  test('typed arrays, Buffers, Maps, Sets, Dates and bigint keep their types', () => {
    const v = {
      f64: new Float64Array([1.25, -3]),
      f32: new Float32Array([0.5]),
      i32: new Int32Array([-7, 7]),
      u8: new Uint8Array([255]),
      big64: new BigInt64Array([-(2n ** 62n)]),
      buf: Buffer.from([1, 2, 3]),
      map: new Map<unknown, unknown>([[1, 'a'], [{ k: 1 }, new Set([2])]]),
      set: new Set([1, 'two']),
      date: new Date('2024-01-02T03:04:05.006Z'),
      small: 3n,
      huge: -(2n ** 100n),
      obj: { nested: { arr: [1, null, 'x', true, undefined] } },
    };
    const out = roundTrip(v);
    expect(out).toEqual(v);
    expect(out.f64).toBeInstanceOf(Float64Array);
    expect(Buffer.isBuffer(out.buf)).toBe(true);
    expect(out.map).toBeInstanceOf(Map);
    expect(out.obj).not.toBeInstanceOf(Map);
    expect(typeof out.small).toBe('bigint');
    expect(typeof out.obj.nested.arr[0]).toBe('number');
  });

  test('cycles survive', () => {
    const a: { self?: unknown; n: number } = { n: 1 };
    a.self = a;
    const out = roundTrip(a);
    expect(out.self).toBe(out);
  });

  test('ObjectRefs nested anywhere come back as ObjectRefs and are collected', () => {
    const r1 = new ObjectRef('aaa');
    const r2 = new ObjectRef('bbb');
    const enc = encode({ list: [r1], map: new Map([['k', r2]]) });
    expect(enc.refs.sort()).toEqual(['aaa', 'bbb']);
    const out = decode<{ list: ObjectRef[]; map: Map<string, ObjectRef> }>(enc.bytes);
    expect(out.list[0]).toBeInstanceOf(ObjectRef);
    expect(out.list[0].id).toBe('aaa');
    expect(out.map.get('k')!.id).toBe('bbb');
  });

  test('functions and symbols are rejected with the path to them and what to do', () => {
    expect(() => encode({ a: [1, { fn: () => 1 }] }, 'argument of f.remote()')).toThrow(SerializationError);
    expect(() => encode({ a: [1, { fn: () => 1 }] }, 'arg')).toThrow('arg.a[1].fn is a function, which cannot be sent to another process');
    expect(() => checkSerializable(new Map([['k', Symbol('x')]]), 'v')).toThrow('v.get(k) is a symbol');
    expect(() => checkSerializable(Promise.resolve(1), 'v')).toThrow(/await it/);
  });

  test('large values are split into chunks and the tag byte tells a value from an error', () => {
    const bytes = encode(new Uint8Array(1000)).bytes;
    const form = toStoredForm(bytes, 300);
    expect(form.chunks.length).toBe(Math.ceil(bytes.length / 300));
    expect(Buffer.concat(form.chunks)).toEqual(bytes);
    const small = toStoredForm(encode('hi').bytes, 300);
    expect(small.chunks).toEqual([]);
    expect(fromStored(small.head)).toBe('hi');
  });
});
