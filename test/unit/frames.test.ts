import { FrameReader, frame } from '../../runtime/internal/frames';

describe('frames of the direct actor channels', () => {
  test('frames split across chunks and several frames in one chunk come out whole and in order', () => {
    const payloads = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('last')];
    const wire = Buffer.concat(payloads.map(frame));
    const reader = new FrameReader();
    const out: Buffer[] = [];
    // Odd-sized chunks cut through lengths and payloads alike.
    for (let off = 0; off < wire.length; off += 3001) out.push(...reader.push(wire.subarray(off, off + 3001)));
    expect(out.map((b) => b.toString('hex'))).toEqual(payloads.map((b) => b.toString('hex')));
  });

  test('a length too large to be a frame of ours is refused', () => {
    const bogus = Buffer.from('GET / HTTP/1.1\r\n');
    expect(() => new FrameReader().push(bogus)).toThrow(/not a nodus actor channel/);
  });
});
