/** @module A caller's direct channels to actors: sync calls go over TCP straight to the actor's process and back, with the Redis mailbox as the fallback and the durable record. */
import { connect as tcpConnect, type Socket } from 'node:net';
import { ACTOR_CHANNEL_ACK } from '../protocol';
import { diedFailure } from './actor-lifecycle';
import { FrameReader, frame } from './frames';
import { failureBytes } from './object-store';
import { decode } from './serialization';
import type { ProcessState } from './tasks';

/** After a channel fails, calls use the mailbox this long before the next try (the actor may be restarting). */
const RETRY_MS = 1000;
/** A channel whose actor has not answered its hello by then is given up (calls use the mailbox). */
const HELLO_MS = 2000;
/** How long a call left unanswered by a dropped channel waits before its fate is looked up (see resend). */
const RESEND_GRACE_MS = 300;


interface Channel {
  /** 'none': the actor takes no direct calls (maxConcurrency above 1); 'closed': try again after RETRY_MS, or at once when closedAt is 0. */
  state: 'connecting' | 'open' | 'closed' | 'none';
  socket?: Socket;
  /** Calls sent over it and not answered yet: their exact bytes, for the resend. */
  sent: Map<string, Buffer>;
  closedAt: number;
}

/**
 * One channel per actor this process calls (workers/actor-channel.ts is the other end). A call goes
 * direct only while this process has no other call to that actor under way, so calls that went to the
 * mailbox before it can never be overtaken: a loop of `get(a.f.remote())` goes direct, a burst of calls
 * goes through the mailbox in one batch as before. The actor makes each direct call durable in Redis
 * before it runs it (actor-take) and reports it there as any call, so restarts, kill() and the orphan
 * sweep see it. If the channel drops with calls unanswered, each is either already in Redis's hands
 * (its outcome comes through the inbox) or never ran and goes to the mailbox now (actor-resend).
 */
export class ActorChannels {
  private readonly channels = new Map<string, Channel>();
  /** Calls of this process under way, per actor, and the actor of each. */
  private readonly outstanding = new Map<string, number>();
  private readonly actorOf = new Map<string, string>();

  constructor(
    private readonly state: ProcessState,
    /** A call's result arrived (stored bytes): the same path as a completion from the inbox. */
    private readonly onResult: (id: string, bytes: Buffer) => void,
  ) {
    state.completionListeners.add((id) => this.finished(id));
  }

  /** Counts a call to `actorId` as under way until this process sees it finish. */
  track(actorId: string, callId: string): void {
    this.actorOf.set(callId, actorId);
    this.outstanding.set(actorId, (this.outstanding.get(actorId) ?? 0) + 1);
  }

  /**
   * Sends the call (its mailbox encoding) over the actor's channel when it is open and no other call of
   * this process to that actor is under way; false: use the mailbox (and the channel is opened for later).
   * Call before track().
   */
  trySend(actorId: string, callId: string, raw: Buffer): boolean {
    const ch = this.channels.get(actorId);
    if (!ch || (ch.state === 'closed' && Date.now() - ch.closedAt > (ch.closedAt ? RETRY_MS : 0))) {
      void this.open(actorId);
      return false;
    }
    if (ch.state !== 'open' || this.outstanding.get(actorId) || this.state.closed) return false;
    ch.sent.set(callId, raw);
    ch.socket!.write(frame(raw));
    return true;
  }

  /** Closes every channel (at shutdown). */
  close(): void {
    for (const ch of this.channels.values()) {
      ch.sent.clear();
      ch.socket?.destroy();
    }
    this.channels.clear();
  }

  private finished(id: string): void {
    const actorId = this.actorOf.get(id);
    if (!actorId) return;
    this.actorOf.delete(id);
    const n = (this.outstanding.get(actorId) ?? 1) - 1;
    if (n > 0) this.outstanding.set(actorId, n);
    else this.outstanding.delete(actorId);
    this.channels.get(actorId)?.sent.delete(id);
  }

  private async open(actorId: string): Promise<void> {
    const ch: Channel = { state: 'connecting', sent: new Map(), closedAt: 0 };
    this.channels.set(actorId, ch);
    const fail = (retryNow = false) => {
      if (ch.state === 'closed') return;
      ch.state = 'closed';
      ch.closedAt = retryNow ? 0 : Date.now();
      ch.socket?.destroy();
      const unanswered = [...ch.sent];
      ch.sent.clear();
      for (const [id, raw] of unanswered) void this.resend(actorId, id, raw);
    };
    try {
      const [chan, state, concurrency] = await this.state.redis.hmget(this.state.keys.actor(actorId), 'chan', 'state', 'maxConcurrency');
      if (Number(concurrency) > 1) {
        ch.state = 'none';
        return;
      }
      // Not started yet (or restarting): its process writes the channel before it takes its first call.
      if (!chan && state !== 'alive' && state !== 'dead') return fail(true);
      const m = chan ? /^(.*):(\d+):([\w-]+)$/.exec(chan) : null;
      if (!m || this.state.closed || !this.reachable(m[1])) return fail();
      const socket = tcpConnect({ host: m[1], port: Number(m[2]) });
      ch.socket = socket;
      socket.setNoDelay(true);
      socket.unref();
      const reader = new FrameReader();
      const hello = setTimeout(() => fail(), HELLO_MS);
      hello.unref();
      socket.on('connect', () => socket.write(frame(Buffer.from(m[3], 'utf8'))));
      socket.on('data', (chunk: Buffer) => {
        try {
          for (const f of reader.push(chunk)) {
            if (ch.state === 'connecting') {
              // Open only once the actor answered the secret: nothing is sent to whatever else listens there.
              if (f.toString('utf8') !== ACTOR_CHANNEL_ACK) return fail();
              clearTimeout(hello);
              ch.state = 'open';
              continue;
            }
            const [id, bytes] = decode<[string, Buffer]>(f);
            if (ch.sent.delete(id)) this.onResult(id, Buffer.from(bytes));
          }
        } catch {
          fail();
        }
      });
      socket.on('error', () => fail());
      socket.on('close', () => {
        clearTimeout(hello);
        fail();
      });
    } catch {
      fail();
    }
  }

  /**
   * An actor on a loopback address listens on the machine of Redis, where it reached Redis through
   * loopback: only a caller that reaches Redis through loopback too is on that machine.
   */
  private reachable(host: string): boolean {
    if (!/^(127\.|::1$|::ffff:127\.)/.test(host)) return true;
    const mine = (this.state.redis as unknown as { stream?: { localAddress?: string } }).stream?.localAddress ?? '';
    return /^(127\.|::1$|::ffff:127\.)/.test(mine);
  }

  /**
   * A call sent over a channel that dropped before its answer: see actor-resend. Decided only after
   * RESEND_GRACE_MS: the actor writes its take (the durable mark that it has the call) as it starts the
   * method, so a take still on its way when the channel dropped — the actor alive, or its process just
   * killed with the write in the kernel's buffer — lands first, and the call is not queued a second time.
   */
  private async resend(actorId: string, id: string, raw: Buffer): Promise<void> {
    await new Promise((r) => setTimeout(r, RESEND_GRACE_MS).unref());
    if (this.state.closed) return;
    try {
      const c = decode<unknown[]>(raw);
      const [state, cause] = await this.state.redis.nodusActorResend(this.state.keys.prefix, actorId, raw, id, c[5] as string, c[4] as string);
      if (state === 'dead') this.onResult(id, failureBytes(diedFailure(actorId, cause)));
    } catch (err) {
      if (!this.state.closed) this.onResult(id, failureBytes({ kind: 'system', task: '?', name: 'ActorChannelError', message: `a call sent to actor ${actorId} could not be handed back to its mailbox after its channel dropped: ${(err as Error).message}` }));
    }
  }
}
