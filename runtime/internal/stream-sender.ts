/** @module A producer's item sender: small generator items go to Redis in batches, in order, while the generator runs on. */
import type { Redis } from 'ioredis';
import type { Keys } from '../protocol';
import type { ObjectCommands } from '../protocol/commands';

/** One small item, encoded: its object id, stored value, note for the consumer and the refs nested in it. */
export interface SmallItem {
  id: string;
  value: Buffer;
  note: Buffer;
  inner: string[];
}

/** Items in one send at most (the backpressure window bounds it too). */
const MAX_BATCH = 256;

/**
 * Sends small items as they come, one command at a time: while one is under way the next items gather and
 * go together when it returns (Nagle's rule), so a fast generator pays one Redis round trip per batch, not
 * per item, and a slow one still sends each item at once. Commands go out in order on one connection, so
 * the consumer sees items in the order they were yielded. After a failed send nothing more is sent: the
 * stream ends after the items that went through, with that failure.
 */
export class ItemSender {
  private queue: SmallItem[] = [];
  private inFlight: Promise<void> | undefined;
  private failure: unknown;
  private gone = false;
  /** Items Redis has taken so far. */
  sent = 0;

  constructor(
    private readonly redis: Redis & ObjectCommands,
    private readonly keys: Keys,
    private readonly target: { owner: string; consumer: string; inbox: string },
  ) {}

  /** Queues an item; throws the failure of an earlier send, so the generator stops at once. */
  add(item: SmallItem): void {
    if (this.gone) throw this.failure;
    this.queue.push(item);
    if (!this.inFlight) this.inFlight = this.pump();
  }

  /** Waits until every queued item is sent; throws when a send failed. */
  async drain(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.gone) throw this.failure;
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length && !this.gone) {
        const batch = this.queue.splice(0, MAX_BATCH);
        const args: (string | Buffer | number)[] = [this.keys.prefix, this.target.owner, this.target.consumer, this.target.inbox];
        for (const it of batch) args.push(it.id, it.value, it.note, it.inner.length, ...it.inner);
        await this.redis.nodusStreamItems(...args);
        this.sent += batch.length;
      }
    } catch (err) {
      this.gone = true;
      this.failure = err;
      this.queue = [];
    } finally {
      this.inFlight = undefined;
    }
  }
}
