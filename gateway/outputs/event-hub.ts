/**
 * @module One reader of execution events per gateway, fanned out to every subscriber (each an open event stream).
 * A single `XREAD BLOCK` on one blocking connection covers all watched streams, so hundreds of open streams cost one
 * connection and one command, and an event reaches its readers as soon as Redis has it.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { connect } from '../../runtime/internal/redis';
import { parseEvent, type ExecEvent, type ServiceKeys } from '../../runtime/protocol/services';
import { readEvents } from '../../serve/store';

/** Orders two stream ids (`ms-seq`) as numbers: negative when a < b. '0' counts as '0-0'. */
export function compareIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}

/** A subscriber's end of the hub. */
export interface Subscription {
  /** Settles once the subscriber has caught up with the stream's past and receives live events. */
  readonly ready: Promise<void>;
  /** Id of the last event delivered (or the one it started after). */
  readonly lastId: string;
  close(): void;
}

/** How long one XREAD blocks: also the longest a newly watched stream could wait if every wake-up were missed. */
const BLOCK_MS = 2000;
/** Entries read per stream per XREAD. */
const READ_COUNT = 500;
const CATCH_UP_PAGE = 1000;

class Subscriber implements Subscription {
  ready!: Promise<void>;
  closed = false;
  /** Live events that arrived while catching up; undefined once live. */
  private pending: ExecEvent[] | undefined = [];

  constructor(
    public lastId: string,
    private readonly listener: (events: ExecEvent[]) => void,
    readonly close: () => void,
    private readonly logger?: Logger,
  ) {}

  /** Delivers the events newer than the last one delivered, so overlapping reads never duplicate. */
  deliver(events: ExecEvent[]): void {
    const fresh = events.filter((e) => compareIds(e.id, this.lastId) > 0);
    if (!fresh.length || this.closed) return;
    this.lastId = fresh[fresh.length - 1].id;
    try {
      this.listener(fresh);
    } catch (err) {
      this.logger?.warn({ err }, 'an event subscriber threw; it is dropped');
      this.close();
    }
  }

  /** From the hub's reader: held back until the catch-up is done. */
  live(events: ExecEvent[]): void {
    if (this.pending) this.pending.push(...events);
    else this.deliver(events);
  }

  goLive(): void {
    const held = this.pending ?? [];
    this.pending = undefined;
    this.deliver(held);
  }
}

interface Watch {
  key: string;
  /** Where the hub's XREAD continues; undefined until its starting point is known. */
  lastId: string | undefined;
  ready: Promise<void>;
  subs: Set<Subscriber>;
}

/**
 * Watches execution event streams for many subscribers with one `XREAD BLOCK` loop.
 *
 * A subscriber is registered first, then catches up with XRANGE from where it wants to start; live events that arrive
 * meanwhile are held and delivered after it, and every delivery skips ids it already has. When a stream is first
 * watched, the hub starts reading after the stream's newest entry at that moment, which the catch-up (issued after) covers:
 * so nothing falls between the catch-up and the live reads. A new stream joins the blocked XREAD by waking it with
 * `CLIENT UNBLOCK` from the other connection.
 *
 * @example
 * const hub = new EventHub(redis, keys, address); hub.start();
 * const sub = hub.subscribe(fid, '0', (events) => send(events));   // later: sub.close(); await hub.stop();
 */
export class EventHub {
  private reader: Redis | undefined;
  private readerId: string | undefined;
  private readonly watches = new Map<string, Watch>();
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private blocked = false;
  /** A watch was added since the current XREAD was issued. */
  private dirty = false;
  private waking = false;
  private idle: (() => void) | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: ServiceKeys,
    private readonly address: string,
    private readonly logger?: Logger,
  ) {}

  /** Opens the blocking connection and starts the read loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const reader = connect(this.address, { name: 'nodus:gateway-events', blocking: true });
    reader.on('error', () => undefined); // the gateway's main connection reports Redis trouble
    // A reconnected reader is a new client: learn its id again for CLIENT UNBLOCK.
    reader.on('ready', () => {
      this.readerId = undefined;
      (reader.call('CLIENT', 'ID') as Promise<number>).then((id) => (this.readerId = String(id))).catch(() => undefined);
    });
    this.reader = reader;
    this.loopDone = this.loop(reader);
  }

  /** Stops reading and closes the connection; subscribers receive nothing more. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.idle?.();
    this.reader?.disconnect();
    await this.loopDone;
    for (const w of this.watches.values()) for (const s of w.subs) s.closed = true;
    this.watches.clear();
  }

  /** Number of streams watched now (for tests and status). */
  get watching(): number {
    return this.watches.size;
  }

  /**
   * Calls `listener` with every event of execution `fid` after `afterId` ('0': from the start), in order, each once:
   * first the past, then live ones as they are written. `ready` rejects if the catch-up could not be read.
   */
  subscribe(fid: string, afterId: string, listener: (events: ExecEvent[]) => void): Subscription {
    const key = this.keys.events(fid);
    let w = this.watches.get(key);
    if (!w) {
      const watch: Watch = { key, lastId: undefined, subs: new Set(), ready: Promise.resolve() };
      watch.ready = (this.redis.xrevrange(key, '+', '-', 'COUNT', 1) as Promise<[string, string[]][]>).then(
        (last) => {
          watch.lastId = last[0]?.[0] ?? '0-0';
          this.wake();
        },
        (err: unknown) => {
          if (this.watches.get(key) === watch) this.watches.delete(key);
          throw err;
        },
      );
      this.watches.set(key, watch);
      w = watch;
    }
    const watch = w;
    const sub: Subscriber = new Subscriber(afterId, listener, () => this.drop(watch, sub), this.logger);
    watch.subs.add(sub);
    sub.ready = (async () => {
      try {
        await watch.ready;
        for (let after = afterId; !sub.closed; ) {
          const page = await readEvents(this.redis, this.keys, fid, after, CATCH_UP_PAGE);
          sub.deliver(page);
          if (page.length < CATCH_UP_PAGE) break;
          after = page[page.length - 1].id;
        }
        sub.goLive();
      } catch (err) {
        sub.close();
        throw err;
      }
    })();
    sub.ready.catch(() => undefined); // the caller may not wait for it; the rejection is theirs to read
    return sub;
  }

  private drop(w: Watch, sub: Subscriber): void {
    sub.closed = true;
    w.subs.delete(sub);
    // A stream nobody watches leaves the next XREAD; the current one may still return it, and that is ignored.
    if (!w.subs.size && this.watches.get(w.key) === w) this.watches.delete(w.key);
  }

  /** Makes the loop re-issue its XREAD with the new set of streams. */
  private wake(): void {
    this.dirty = true;
    this.idle?.();
    if (this.blocked && !this.waking) void this.unblock();
  }

  /**
   * CLIENT UNBLOCK goes over another connection, so it can reach Redis before the XREAD it means to end: then it
   * unblocks nothing (answers 0), and is tried again shortly while that XREAD is still out.
   */
  private async unblock(): Promise<void> {
    this.waking = true;
    try {
      for (let i = 0; i < 50 && this.running && this.blocked && this.dirty; i++) {
        if (this.readerId && Number(await this.redis.call('CLIENT', 'UNBLOCK', this.readerId)) === 1) return;
        await new Promise((r) => setTimeout(r, 2));
      }
    } catch {
      // Redis is away; the XREAD ends by itself within BLOCK_MS.
    } finally {
      this.waking = false;
    }
  }

  private async loop(reader: Redis): Promise<void> {
    while (this.running) {
      this.dirty = false;
      const watched = [...this.watches.values()].filter((w): w is Watch & { lastId: string } => w.lastId !== undefined);
      if (!watched.length) {
        await new Promise<void>((r) => (this.idle = r));
        this.idle = undefined;
        continue;
      }
      let reply: [string, [string, string[]][]][] | null;
      this.blocked = true;
      try {
        const args = ['COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', ...watched.map((w) => w.key), ...watched.map((w) => w.lastId)];
        reply = (await reader.call('XREAD', ...args)) as typeof reply;
      } catch (err) {
        if (!this.running) break;
        this.logger?.debug({ err: (err as Error).message }, 'event reader: XREAD failed; retrying');
        await new Promise((r) => setTimeout(r, 200));
        continue;
      } finally {
        this.blocked = false;
      }
      for (const [key, entries] of reply ?? []) {
        const w = this.watches.get(key);
        if (!w?.lastId || !entries.length) continue;
        const events = entries.map(([id, fields]) => parseEvent(id, fields));
        const last = events[events.length - 1].id;
        if (compareIds(last, w.lastId) > 0) w.lastId = last;
        for (const s of [...w.subs]) s.live(events);
      }
    }
  }
}
