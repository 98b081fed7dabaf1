/** @module Length-prefixed frames on a byte stream (a 4-byte big-endian length, then the bytes): the direct actor channels' framing. */

/** Frames one message. */
export function frame(payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(payload.length, 0);
  return Buffer.concat([head, payload]);
}

/** Frames larger than this end the connection: a peer that sends one is not speaking this protocol. */
const MAX_FRAME = 256 * 1024 * 1024;

/** Cuts a stream's chunks into the frames they carry. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** The whole frames completed by this chunk; throws on a frame too large to be ours. */
  push(chunk: Buffer): Buffer[] {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: Buffer[] = [];
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw new Error(`a frame of ${len} bytes: not a nodus actor channel`);
      if (buf.length < 4 + len) break;
      out.push(buf.subarray(4, 4 + len));
      buf = buf.subarray(4 + len);
    }
    this.pending = buf;
    return out;
  }
}
