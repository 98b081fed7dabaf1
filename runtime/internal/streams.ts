/** @module Streaming generators: items flow from the producing process to the consumer's inbox, with credit-based backpressure; the table of a process's open streams. */
import type { Redis } from 'ioredis';
import { ObjectStoreFullError, toFailure } from '../errors';
import type { ObjectRef, ObjectRefGenerator } from '../object-ref';
import { INLINE_RESULT_BYTES, Keys, Note, STREAM_WINDOW } from '../protocol';
import type { ObjectCommands } from '../protocol/commands';
import { failureBytes, fromStored, isFailure, newId, storeError, toStoredForm, writeChunks } from './object-store';
import type { Batch } from './batch';
import { ItemSender } from './stream-sender';
import { encode } from './serialization';

/** What a consumer needs from its process's runtime. */
export interface ConsumerHost {
  makeRef(id: string, alreadyHeld: boolean): ObjectRef;
  cacheLocal(id: string, bytes: Buffer): void;
  /** Drops the reference the producer created for this process (a duplicate item after a retry). */
  dropHeld(id: string): void;
  sendNote(proc: string, note: unknown[]): void;
  unregisterStream(id: string): void;
}

/** The consumer's side of a stream: buffers item refs as they arrive and pays credits back as they are taken. */
export class RefStream<T> implements ObjectRefGenerator<T> {
  private readonly buffer: ObjectRef<T>[] = [];
  private received = 0;
  private owed = 0;
  private producer: string | undefined;
  private ended = false;
  private error: unknown;
  private stopped = false;
  private wake: (() => void) | undefined;

  /** @internal made by `.remote()` of a generator. */
  constructor(
    readonly id: string,
    private readonly host: ConsumerHost,
  ) {}

  /** @internal an item note arrived. */
  onItem(index: number, itemId: string, inline: Buffer | null, producer: string): void {
    this.producer = producer;
    if (this.stopped || this.ended || index < this.received) {
      // A retried producer sends its items again from the start; we keep the first copy.
      this.host.dropHeld(itemId);
      if (!this.stopped && !this.ended) this.host.sendNote(producer, [Note.Credit, this.id, 1]);
      else if (this.stopped) this.host.sendNote(producer, [Note.Stop, this.id]);
      return;
    }
    const ref = this.host.makeRef(itemId, true) as ObjectRef<T>;
    if (inline) this.host.cacheLocal(itemId, inline);
    this.buffer.push(ref);
    this.received++;
    this.notify();
  }

  /** @internal the producer finished (failure: stored failure bytes). */
  onEnd(failure: Buffer | null): void {
    if (this.ended) return;
    this.ended = true;
    if (failure) this.error = errorOf(failure);
    this.notify();
  }

  /** @internal the call itself completed; a failure there (a crash, a dead actor) ends the stream. */
  onDone(bytes: Buffer | null): void {
    if (bytes && isFailure(bytes)) this.onEnd(bytes);
    else if (!this.ended) {
      // A successful Done before End cannot happen (End is pushed first); treat it as the end.
      this.onEnd(null);
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private payCredits(): void {
    if (this.owed && this.producer) {
      this.host.sendNote(this.producer, [Note.Credit, this.id, this.owed]);
      this.owed = 0;
    }
  }

  async next(): Promise<IteratorResult<ObjectRef<T>>> {
    for (;;) {
      const ref = this.buffer.shift();
      if (ref) {
        this.owed++;
        // Credits go back in batches: fewer messages, while the producer never waits on a full window.
        if (this.owed >= STREAM_WINDOW / 4) this.payCredits();
        return { value: ref, done: false };
      }
      if (this.ended) {
        this.host.unregisterStream(this.id);
        if (this.error !== undefined) {
          const e = this.error;
          this.error = undefined;
          throw e;
        }
        return { value: undefined, done: true };
      }
      this.payCredits();
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  /** Stops early: the producer's generator is closed (its finally blocks run) and no more items come. */
  async return(): Promise<IteratorResult<ObjectRef<T>>> {
    if (!this.stopped && !this.ended) {
      this.stopped = true;
      if (this.producer) this.host.sendNote(this.producer, [Note.Stop, this.id]);
      this.buffer.length = 0;
    }
    this.ended = true;
    this.host.unregisterStream(this.id);
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * The streams this process consumes and produces, by id: its inbox hands each stream note to the
 * stream or producer it names through here. It is also the consumers' host.
 */
export class StreamTable implements ConsumerHost {
  private readonly streams = new Map<string, RefStream<unknown>>();
  private readonly producers = new Map<string, { credit(n: number): void; stop(): void }>();

  constructor(
    private readonly refs: Pick<ConsumerHost, 'makeRef' | 'cacheLocal' | 'dropHeld'>,
    private readonly batch: Batch,
    private readonly keys: Keys,
  ) {}

  /** The consumer's side of a generator call, found by the call's id when its notes arrive. */
  open(id: string): RefStream<unknown> {
    const stream = new RefStream(id, this);
    this.streams.set(id, stream);
    return stream;
  }

  get(id: string): RefStream<unknown> | undefined {
    return this.streams.get(id);
  }

  has(id: string): boolean {
    return this.streams.has(id);
  }

  producer(streamId: string): { credit(n: number): void; stop(): void } | undefined {
    return this.producers.get(streamId);
  }

  /** Ends every stream this process still reads with a failure (at shutdown). */
  endAll(failure: Buffer): void {
    for (const s of this.streams.values()) s.onEnd(failure);
  }

  makeRef(id: string, alreadyHeld: boolean): ObjectRef {
    return this.refs.makeRef(id, alreadyHeld);
  }

  cacheLocal(id: string, bytes: Buffer): void {
    this.refs.cacheLocal(id, bytes);
  }

  dropHeld(id: string): void {
    this.refs.dropHeld(id);
  }

  sendNote(proc: string, note: unknown[]): void {
    this.batch.notes.push([this.keys.inbox(proc), encode(note).bytes]);
    this.batch.scheduleFlush();
  }

  unregisterStream(id: string): void {
    this.streams.delete(id);
  }

  registerProducer(streamId: string, handlers: { credit(n: number): void; stop(): void }): void {
    this.producers.set(streamId, handlers);
  }

  unregisterProducer(streamId: string): void {
    this.producers.delete(streamId);
  }
}

function errorOf(failure: Buffer): unknown {
  try {
    fromStored(failure);
    return new Error('stream ended with an unreadable failure');
  } catch (e) {
    return e;
  }
}

/** What a producer needs from its process's runtime. */
export interface ProducerHost {
  redis: Redis & ObjectCommands;
  keys: Keys;
  procId: string;
  /** Receives Credit and Stop notes for a stream from this process's inbox. */
  registerProducer(streamId: string, handlers: { credit(n: number): void; stop(): void }): void;
  unregisterProducer(streamId: string): void;
  /** Makes sure this process reads its inbox (credits come there). */
  startInbox(): void;
}

export interface StreamTarget {
  streamId: string;
  /** The consuming process: its inbox gets the items, it holds their references. */
  consumer: string;
  /** Owner of the item objects (the consumer's root driver). */
  owner: string;
  name: string;
}

/**
 * Runs a generator to its end, sending each item as it is yielded. Waits for credits before asking
 * the generator for the next item, so a slow consumer holds the producer back. Returns the number of
 * items sent; the generator's own error is sent to the consumer as the stream's end.
 */
export async function produce(host: ProducerHost, it: AsyncIterator<unknown>, t: StreamTarget): Promise<number> {
  let credits = STREAM_WINDOW;
  let stopped = false;
  let wake: (() => void) | undefined;
  host.registerProducer(t.streamId, {
    credit: (n) => {
      credits += n;
      wake?.();
    },
    stop: () => {
      stopped = true;
      wake?.();
    },
  });
  host.startInbox();
  const inbox = host.keys.inbox(t.consumer);
  const sender = new ItemSender(host.redis, host.keys, { owner: t.owner, consumer: t.consumer, inbox });
  let count = 0;
  let large = 0;
  let failure: Buffer | null = null;
  try {
    for (;;) {
      while (credits <= 0 && !stopped) await new Promise<void>((r) => (wake = r));
      if (stopped) {
        await it.return?.();
        break;
      }
      const r = await it.next();
      if (r.done) break;
      credits--;
      const enc = encode(r.value, `item ${count} of ${t.name}`);
      const form = toStoredForm(enc.bytes);
      const itemId = newId();
      const inline = !form.chunks.length && form.head.length <= INLINE_RESULT_BYTES;
      const note = encode([Note.Item, t.streamId, count, itemId, inline ? form.head : null, host.procId]).bytes;
      if (inline) {
        // Small items go in batches (stream-sender.ts); the generator runs on meanwhile.
        sender.add({ id: itemId, value: form.head, note, inner: enc.refs });
      } else {
        // A large one waits for the items before it, then goes alone, its chunks first.
        await sender.drain();
        await writeChunks(host.redis, host.keys, itemId, form.chunks);
        await host.redis.set(host.keys.value(itemId), form.head);
        await host.redis.nodusStreamItem(host.keys.prefix, itemId, t.owner, t.consumer, inbox, '', form.chunks.length, note, ...enc.refs);
        large++;
      }
      count++;
    }
    await sender.drain();
  } catch (err) {
    const e = storeError(err, 0);
    failure = failureBytes(toFailure(e, e instanceof ObjectStoreFullError ? 'full' : 'task', t.name));
    // What the consumer got: the items Redis took (a failed batch took none of its items).
    await sender.drain().catch(() => undefined);
  } finally {
    host.unregisterProducer(t.streamId);
  }
  // After a failure the count is what reached the consumer (a failed batch delivered none of its items).
  if (failure) count = sender.sent + large;
  // A control write: it gets through when Redis is out of memory, so the consumer is not left waiting.
  await host.redis.nodusControl('l', inbox, encode([Note.End, t.streamId, count, failure]).bytes);
  return count;
}

/** True for what an async generator function returns. */
export function isAsyncIterator(value: unknown): value is AsyncIterator<unknown> & AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' && typeof (value as AsyncIterator<unknown>).next === 'function';
}
