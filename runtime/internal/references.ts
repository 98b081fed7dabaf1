/** @module References and objects: the refs this process holds (counted, released when collected), its local copies, put(), get() and wait(), a task's arguments waited on before it is queued, and the lineage that makes a lost result again. */
import { GetTimeoutError, NotInitializedError, ObjectLostError, toFailure, type SerializedFailure } from '../errors';
import { ObjectRef, isObjectRef, resolveWithRef } from '../object-ref';
import { INLINE_RESULT_BYTES, ValueTag, shapeKey } from '../protocol';
import { actorFailure, endActor } from './actor-lifecycle';
import type { Batch } from './batch';
import type { ObjectClient } from './object-connection';
import { decodeFramed, encodeForStore, frameEncoded, type Framed } from './framing';
import type { LocalStore } from './local-store';
import { failureBytes, fromStored, newId, readStored, storeError, toStoredForm, writeChunks } from './object-store';
import { decode, encode } from './serialization';
import { deferred, settleWith, sleep, systemFailure, type PendingTask, type ProcessState, type QueuedJob } from './tasks';

/** Times a task runs again after an argument it needed was lost and rebuilt. */
const MAX_REBUILDS = 3;

export class References {
  private readonly local = new Map<string, Buffer>();
  private readonly counts = new Map<string, number>();
  private readonly held = new Set<string>();
  private readonly finalizer = new FinalizationRegistry<string>((id) => this.dropInstance(id));
  /** How each task result this process owns was made, while it holds the ref: a lost result is made again from it. */
  private readonly lineage = new Map<string, QueuedJob>();
  /** Objects this process put(): they have no lineage, so a lost one is reported by its creator. */
  private readonly puts = new Set<string>();

  constructor(
    private readonly state: ProcessState,
    private readonly batch: Batch,
  ) {}

  /** Makes a tracked ref. `alreadyHeld`: this process's reference was counted when the object was created. */
  makeRef<T>(id: string, alreadyHeld: boolean): ObjectRef<T> {
    const ref = new ObjectRef<T>(id);
    this.finalizer.register(ref, id);
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
    if (!this.held.has(id)) {
      this.held.add(id);
      if (!alreadyHeld) this.queueRefOp('h', id);
    }
    return ref;
  }

  refFromWire(id: string): ObjectRef {
    return this.makeRef(id, false);
  }

  private dropInstance(id: string): void {
    const n = (this.counts.get(id) ?? 1) - 1;
    if (n > 0) {
      this.counts.set(id, n);
      return;
    }
    this.counts.delete(id);
    this.local.delete(id);
    this.lineage.delete(id);
    this.puts.delete(id);
    if (this.held.delete(id) && !this.state.closed) this.queueRefOp('r', id);
  }

  private queueRefOp(op: 'h' | 'r', id: string): void {
    this.batch.refOps.push(op, id);
    this.batch.scheduleFlush();
  }

  cacheLocal(id: string, bytes: Buffer): void {
    if (this.counts.has(id)) this.local.set(id, bytes);
  }

  dropHeld(id: string): void {
    this.queueRefOp('r', id);
  }

  /** For tests and status: how many refs this process holds. */
  heldCount(): number {
    return this.held.size;
  }

  /** Remembers how a task result was made (its job), so that a lost one can be made again. */
  recordLineage(id: string, job: QueuedJob): void {
    this.lineage.set(id, job);
  }

  /** Small arguments ride in the job as base64; large ones go to the object store (as Ray does) and become a dependency. */
  packArgs(enc: { bytes: Buffer; refs: string[] }, keepAlive: unknown[], deps: string[]): { args: string | null; argsRef: string | null; bytes: Buffer | null } {
    if (enc.bytes.length <= INLINE_RESULT_BYTES) return { args: enc.bytes.toString('base64'), argsRef: null, bytes: enc.bytes };
    // On the main connection: the write must reach Redis before the job that reads it.
    const argsRef = this.putEncoded(enc.bytes, enc.refs, this.state.redis);
    keepAlive.push(argsRef);
    deps.push(argsRef.id);
    return { args: null, argsRef: argsRef.id, bytes: null };
  }

  /** Ray resolves a task's dependencies before it is scheduled, so a waiting task never holds a worker. */
  async enqueueWhenReady(entry: PendingTask, queued: QueuedJob, deps: string[]): Promise<void> {
    try {
      for (const dep of deps) {
        const failure = await this.dependencyFailure(dep);
        if (failure) {
          if (queued.queue.startsWith('actor.')) {
            // An actor whose constructor argument failed never starts: it is dead, with that error as cause.
            const cause = decode<SerializedFailure>(failure.subarray(1));
            await endActor(this.state.redis, this.state.keys, queued.id, 'dead', actorFailure(`actor ${queued.name} (${queued.id}) is dead: a constructor argument failed: ${cause.message}`, cause), 0);
          } else await settleWith(this.state, queued.id, failure);
          return;
        }
      }
      this.batch.enqueue(entry, queued);
    } catch (err) {
      if (!this.state.closed) await settleWith(this.state, queued.id, failureBytes(systemFailure(entry.name, err)));
    }
  }

  /** Waits for an object to exist; returns its stored bytes when it holds a failure, else null. */
  async dependencyFailure(id: string): Promise<Buffer | null> {
    const p = this.state.pending.get(id);
    if (p) await p.done.promise;
    // A put of this process still being written (a large argument): its record is not in Redis yet.
    await this.writing.get(id)?.catch(() => undefined);
    const local = this.local.get(id);
    if (local) return local[0] === ValueTag.Error ? local : null;
    for (let delay = 1, rebuilds = 0; ; delay = Math.min(delay * 2, 100)) {
      if (this.state.closed) throw new NotInitializedError('runtime shut down');
      // The first byte tells a failure from a value without reading a large value.
      const [[, tag], [, exists]] = (await this.state.redis.multi().getrange(this.state.keys.value(id), 0, 0).exists(this.state.keys.meta(id)).exec()) as [[null, string], [null, number]];
      if (tag === String.fromCharCode(ValueTag.Error)) return readStored(this.state.objects, this.state.keys, id, this.state.store);
      if (tag) return null;
      if (!exists) {
        // Lost: rebuilt first when this process made it and its lineage allows (then the task runs).
        if (rebuilds++ < MAX_REBUILDS && this.resubmit(id)) {
          await this.state.pending.get(id)?.done.promise;
          continue;
        }
        const e = this.made(id) ? this.unrebuildable(id) : new ObjectLostError(lostMessage(id), { objectId: id });
        return failureBytes(toFailure(e, 'lost', '?'));
      }
      await sleep(delay);
    }
  }

  async getValues(input: unknown, timeoutMs: number | undefined): Promise<unknown> {
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    if (Array.isArray(input)) {
      input.forEach((r, i) => checkRef(r, `get([...]) element ${i}`));
      const all = await Promise.all((input as ObjectRef[]).map((r) => this.readBytes(r, deadline, timeoutMs, input.length)));
      return all.map((b) => fromStored(b));
    }
    checkRef(input, 'get()');
    return fromStored(await this.readBytes(input as ObjectRef, deadline, timeoutMs, 1));
  }

  private async readBytes(ref: ObjectRef, deadline: number, timeoutMs: number | undefined, of: number): Promise<Buffer> {
    const id = ref.id;
    const p = this.state.pending.get(id);
    if (p) {
      if (deadline === Infinity) await p.done.promise;
      else {
        let timer: NodeJS.Timeout | undefined;
        const expired = await Promise.race([
          p.done.promise.then(() => false),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(true), Math.max(0, deadline - Date.now())))),
        ]);
        clearTimeout(timer);
        if (expired) throw timeoutError(timeoutMs, of, p.name);
      }
    }
    const local = this.local.get(id);
    if (local) return local;
    for (let delay = 1; ; delay = Math.min(delay * 2, 100)) {
      let bytes: Buffer | null;
      try {
        bytes = await readStored(this.state.objects, this.state.keys, id, this.state.store);
      } catch (err) {
        // Its bytes were on a node that is gone: rebuilt when this process made it and its lineage allows.
        if (err instanceof ObjectLostError && this.lineage.has(id) && this.counts.has(id)) return this.rebuild(ref, deadline, timeoutMs, of);
        throw err;
      }
      if (bytes) return bytes;
      if (!(await this.state.redis.exists(this.state.keys.meta(id)))) {
        // This process holds the ref, so the object was not freed: it was lost. Rebuild it if we can.
        if (this.counts.has(id)) return this.rebuild(ref, deadline, timeoutMs, of);
        throw new ObjectLostError(lostMessage(id), { objectId: id });
      }
      if (Date.now() >= deadline) throw timeoutError(timeoutMs, of, undefined);
      if (this.state.closed) throw new NotInitializedError('the runtime was shut down while get() waited.');
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
    }
  }

  /**
   * A lost object this process owns: a task's result is made again by running the task again
   * (lineage, as Ray does) when its maxRetries allows; a put() object has no lineage.
   */
  private async rebuild(ref: ObjectRef, deadline: number, timeoutMs: number | undefined, of: number): Promise<Buffer> {
    if (!this.resubmit(ref.id)) throw this.unrebuildable(ref.id);
    return this.readBytes(ref, deadline, timeoutMs, of);
  }

  /** Runs again the task that made a lost object this process holds, when its lineage allows; false when not. */
  private resubmit(id: string): boolean {
    const job = this.lineage.get(id);
    if (!job || job.attempts <= 1 || !this.counts.has(id)) return false;
    if (!this.state.pending.has(id)) {
      const entry: PendingTask = { done: deferred(), name: job.name, shape: shapeKey(job.demand), args: [], enqueued: false, cancelled: false };
      this.state.pending.set(id, entry);
      this.batch.creates.push(id);
      this.batch.enqueue(entry, job);
    }
    return true;
  }

  /** True for an object this process made and still knows how: a task result with its lineage, or a put(). */
  private made(id: string): boolean {
    return this.lineage.has(id) || this.puts.has(id);
  }

  private unrebuildable(id: string): ObjectLostError {
    const job = this.lineage.get(id);
    const why = job
      ? `it was the result of task ${job.name}, whose maxRetries of 0 does not allow running it again. Created by ${this.state.procId}.`
      : this.puts.has(id)
        ? `it was stored with put(), which has no lineage to rebuild it from. Created by ${this.state.procId}.`
        : 'only its owner, the process that made it, can rebuild it.';
    return new ObjectLostError(`Object ${id} is lost (its only copy is gone) and cannot be rebuilt here: ${why}`, { objectId: id });
  }

  /**
   * A task of this process failed because an argument was lost while it waited or ran. When this
   * process made the argument and its lineage allows, the argument is rebuilt and the task runs again
   * (as Ray does; at most MAX_REBUILDS times per task): 'retry'. Otherwise the failure to report, which
   * names the object and why it could not be rebuilt when this process made it.
   */
  afterLoss(id: string, entry: PendingTask, bytes: Buffer): 'retry' | Buffer {
    const f = decode<SerializedFailure>(bytes.subarray(1));
    const lost = f.kind === 'lost' ? f.props?.objectId : undefined;
    if (typeof lost !== 'string' || !this.made(lost)) return bytes;
    const job = this.lineage.get(id);
    if (job && !entry.cancelled && (entry.rebuilds ?? 0) < MAX_REBUILDS && this.resubmit(lost)) {
      entry.rebuilds = (entry.rebuilds ?? 0) + 1;
      // The failure the worker stored must not reach a borrower meanwhile.
      void this.state.redis.del(this.state.keys.value(id)).catch(() => undefined);
      void this.enqueueWhenReady(entry, job, [lost]);
      return 'retry';
    }
    const e = this.unrebuildable(lost);
    return failureBytes({ ...toFailure(e, 'lost', entry.name), message: `${entry.name} could not read an argument: ${e.message}` });
  }

  async waitFor(refs: ObjectRef[], numReturns: number, timeoutMs: number | undefined): Promise<[ObjectRef[], ObjectRef[]]> {
    refs.forEach((r, i) => checkRef(r, `wait() element ${i}`));
    const ready = new Set<string>();
    let stop = false;
    let wake!: () => void;
    const enough = new Promise<void>((r) => (wake = r));
    const mark = (id: string) => {
      ready.add(id);
      if (ready.size >= numReturns) wake();
    };
    const borrowed: string[] = [];
    const mine = new Set<string>();
    for (const r of refs) {
      if (this.state.pending.has(r.id)) mine.add(r.id);
      else if (this.local.has(r.id)) mark(r.id);
      else borrowed.push(r.id);
    }
    // One listener for all of this call's pending tasks (a loop of wait() over 1000 refs stays linear).
    const listener = (id: string) => mine.has(id) && mark(id);
    if (mine.size && ready.size < numReturns) this.state.completionListeners.add(listener);
    if (borrowed.length) {
      void (async () => {
        for (let delay = 1; !stop && !this.state.closed; delay = Math.min(delay * 2, 50)) {
          const pipe = this.state.redis.pipeline();
          const ids = borrowed.filter((id) => !ready.has(id));
          if (!ids.length) return;
          ids.forEach((id) => pipe.exists(this.state.keys.value(id)));
          const res = (await pipe.exec()) ?? [];
          res.forEach(([, n], i) => n && mark(ids[i]));
          await sleep(delay);
        }
      })().catch(() => undefined);
    }
    if (ready.size < numReturns) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = timeoutMs === undefined ? null : new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)));
      await (timeout ? Promise.race([enough, timeout]) : enough);
      clearTimeout(timer);
    }
    stop = true;
    this.state.completionListeners.delete(listener);
    // Ray returns at most numReturns ready refs, in input order.
    const readyList: ObjectRef[] = [];
    const notReady: ObjectRef[] = [];
    for (const r of refs) (ready.has(r.id) && readyList.length < numReturns ? readyList : notReady).push(r);
    return [readyList, notReady];
  }

  /**
   * put(value): stores a value and returns a ref to it. Not an async function on purpose:
   * an async function's promise would adopt the (awaitable) ref and resolve to its value.
   */
  put<T>(value: T): Promise<ObjectRef<T>> {
    if (this.state.closed) return Promise.reject(new NotInitializedError('the runtime was shut down: call init() again before put().'));
    let ref: ObjectRef<T>;
    try {
      const store = this.state.store;
      // With a node store, large arrays inside the value are written to it from where they are (no copy in msgpack).
      const enc = encodeForStore(value, 'put() value', store?.minBytes ?? null);
      // On the object connection: the ref is handed out only once the write is acknowledged.
      ref = ('framed' in enc ? this.putFramed(store!, enc.framed, this.state.objects) : this.putEncoded(enc.encoded.bytes, enc.encoded.refs, this.state.objects)) as ObjectRef<T>;
    } catch (err) {
      return Promise.reject(err);
    }
    const written = this.putWrites.get(ref) ?? this.lastPut;
    return new Promise((resolve, reject) => written.then(() => resolveWithRef(resolve, ref), reject));
  }

  /** The latest put()'s write; shutdown waits for it. */
  lastPut: Promise<unknown> = Promise.resolve();

  /** Stores encoded bytes under a new id; the ref is usable at once (its write is ordered before later commands). */
  private putEncoded(bytes: Buffer, innerRefs: string[], redis: ObjectClient): ObjectRef {
    const store = this.state.store;
    if (store && bytes.length >= store.minBytes) return this.putFramed(store, frameEncoded({ bytes, refs: innerRefs }), redis);
    const id = newId();
    const form = toStoredForm(bytes);
    const ref = this.makeRef(id, true);
    const write = async () => {
      try {
        await writeChunks(redis, this.state.keys, id, form.chunks);
        await redis.nodusPut(this.state.keys.prefix, this.state.ownerId, this.state.procId, id, form.head, form.chunks.length, ...innerRefs);
      } catch (err) {
        // Leave nothing half-written behind; the objects already stored are untouched.
        if (form.chunks.length) await redis.del(...form.chunks.map((_, i) => this.state.keys.chunk(id, i))).catch(() => undefined);
        throw storeError(err, bytes.length);
      }
    };
    this.puts.add(id);
    // Objects never change: the process that put a small one reads it back from memory.
    if (!form.chunks.length && form.head.length <= INLINE_RESULT_BYTES) this.local.set(id, form.head);
    return this.track(ref, write());
  }

  /** Stores a large value in this node's object store; Redis gets its record. */
  private putFramed(store: LocalStore, framed: Framed, redis: ObjectClient): ObjectRef {
    const id = newId();
    const ref = this.makeRef(id, true);
    const write = async () => {
      let record: Buffer;
      try {
        record = await store.write(id, framed.pieces, framed.size);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        // The node's store is gone (its agent stopped): Redis until another is found.
        if (this.state.store === store) {
          this.state.store = null;
          this.state.onStoreGone?.();
        }
        const form = toStoredForm(encode(decodeFramed(Buffer.concat(framed.pieces))).bytes);
        await writeChunks(redis, this.state.keys, id, form.chunks);
        await redis.nodusPut(this.state.keys.prefix, this.state.ownerId, this.state.procId, id, form.head, form.chunks.length, ...framed.refs);
        return;
      }
      try {
        await redis.nodusPut(this.state.keys.prefix, this.state.ownerId, this.state.procId, id, record, 0, ...framed.refs);
      } catch (err) {
        await store.discard(id, record);
        throw storeError(err, framed.size);
      }
    };
    this.puts.add(id);
    return this.track(ref, write());
  }

  private track(ref: ObjectRef, written: Promise<void>): ObjectRef {
    // Later commands queue behind this write, but a failed put must not fail the next one.
    this.lastPut = written.catch(() => undefined);
    this.putWrites.set(ref, written);
    this.writing.set(ref.id, written);
    void written.finally(() => this.writing.delete(ref.id)).catch(() => undefined);
    return ref;
  }

  /** Puts being written, by object id. */
  private readonly writing = new Map<string, Promise<void>>();

  /** The write of each put(), so that put() can report its own failure. */
  private readonly putWrites = new WeakMap<object, Promise<void>>();
}

export function checkRef(value: unknown, where: string): void {
  if (!isObjectRef(value)) {
    throw new TypeError(`${where} takes ObjectRefs (from f.remote() or put()), got ${value === null ? 'null' : typeof value}.`);
  }
}

function timeoutError(timeoutMs: number | undefined, of: number, name: string | undefined): GetTimeoutError {
  return new GetTimeoutError(
    `get() timed out after ${timeoutMs} ms waiting for ${of === 1 ? 'an object' : `${of} objects`}${name ? ` (task ${name})` : ''}. ` +
      'The tasks keep running: call get() again, raise the timeout, or cancel() them.',
  );
}

function lostMessage(id: string): string {
  return `Object ${id} is gone: the driver that owned it released it or died. Keep a reference to the ObjectRef while you need its value.`;
}
