/** @module An actor process's direct channel: callers that hold its secret send calls over TCP and get results back the same way, two hops instead of four through Redis. */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { FrameReader, frame } from '../runtime/internal/frames';
import { ACTOR_CHANNEL_ACK } from '../runtime/protocol';

/** Sends a call's result frame back to the caller that sent it (a no-op once that caller is gone). */
export type Reply = (payload: Buffer) => void;

/**
 * A TCP server on the interface this process reaches Redis through (so other machines of the cluster can
 * reach it when they can reach Redis). The first frame of a connection must be the secret, which only
 * readers of the actor's record in Redis know; each frame after it is one call, in the mailbox's encoding.
 */
export class ActorChannelServer {
  private readonly secret = randomBytes(18).toString('base64url');
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;

  constructor(private readonly onCall: (raw: Buffer, reply: Reply) => void) {}

  /** Listens on `host` (an ephemeral port); resolves to the record's `chan` value, "host:port:secret". */
  async listen(host: string): Promise<string> {
    const server = createServer((s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    server.on('error', () => undefined);
    server.unref();
    const port = (server.address() as { port: number }).port;
    return `${host}:${port}:${this.secret}`;
  }

  private accept(s: Socket): void {
    s.setNoDelay(true);
    this.sockets.add(s);
    const reader = new FrameReader();
    let trusted = false;
    const reply: Reply = (payload) => {
      if (!s.destroyed) s.write(frame(payload));
    };
    s.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch {
        return s.destroy();
      }
      for (const f of frames) {
        if (!trusted) {
          if (f.toString('utf8') !== this.secret) return s.destroy();
          trusted = true;
          // The caller sends no call before this: it knows it reached this actor, not another server.
          reply(Buffer.from(ACTOR_CHANNEL_ACK));
        } else this.onCall(Buffer.from(f), reply);
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => this.sockets.delete(s));
  }

  close(): void {
    this.server?.close();
    for (const s of this.sockets) s.destroy();
  }
}
