/** @module The per-process runtime (Ray's "core worker"): submits tasks, tracks references, gets and puts objects. */
import { hostname } from 'node:os';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { isFeasible, largestNode } from './policy';
import { ActorHandleBase, makeHandle } from '../actor';
import { ConfigError, GetTimeoutError, cancelledFailure, NotInitializedError, ObjectLostError, ObjectStoreFullError, toFailure, type SerializedFailure } from '../errors';
import { ObjectRef, isObjectRef, resolveWithRef } from '../object-ref';
import type { ResolvedActorOptions, ResolvedRemoteOptions } from '../options';
import {
  INLINE_RESULT_BYTES,
  Keys,
  Note,
  PROTOCOL_VERSION,
  ValueTag,
  actorQueueName,
  shapeKey,
  taskQueueName,
  type ActorCall,
  type ActorJob,
  type ActorRecord,
  type ControlMessage,
  type DriverInfo,
  type FunctionDescriptor,
  type LogMessage,
  type NodeInfo,
  type Resources,
  type TaskJob,
} from '../protocol';
import { withCommands } from '../protocol/commands';
import { setContext, type RuntimeContext } from './global';
import { failureBytes, fromStored, isFailure, newId, readStored, settleCall, storeError, toStoredForm, writeChunks, type CommandClient } from './object-store';
import { cancelOwnedTasks } from './owned-tasks';
import { Queues } from './queues';
import { connect, redact, waitForRedis } from './redis';
import { decode, encode } from './serialization';
import { RefStream, type ConsumerHost, type ProducerHost } from './streams';

export interface ContextConfig {
  address: string;
  keys: Keys;
  role: 'driver' | 'worker';
  /** This process's id: inbox, held references, and (for a driver) owner of its objects. */
  procId: string;
  logToDriver: boolean;
  /** Called at shutdown, e.g. to stop a local cluster this driver started. */
  onShutdown?: () => Promise<void>;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

interface PendingTask {
  done: Deferred;
  name: string;
  shape: string;
  /** Keeps argument refs alive (and so held) until the task has finished with them. */
  args: unknown[];
  enqueued: boolean;
  cancelled: boolean;
  /** Queued in a bundle with other tasks: cancel cannot take its job off the queue. */
  bundled?: boolean;
  /** Times it ran again after a lost argument was rebuilt. */
  rebuilds?: number;
}

interface QueuedJob {
  /** BullMQ queue name (task.<shape> or actor.<shape>). */
  queue: string;
  demand: Resources;
  name: string;
  id: string;
  data: TaskJob | ActorJob;
  attempts: number;
}

interface ActorCreate {
  args: string[];
}

/** Calls to one actor wait here while an earlier one waits for its arguments, to keep their order. */
interface ActorLine {
  blocked: boolean;
  waiting: { call: ActorCall; deps: string[]; name: string }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** shutdown() waits this long at most for Redis; a driver must be able to exit when its cluster is gone. */
const SHUTDOWN_REDIS_MS = 3000;
/** How often a driver says it is alive; the head frees a driver's objects after several missed beats. */
const DRIVER_HEARTBEAT_MS = 1000;
/** Cluster node list cache for infeasibility warnings. */
const NODES_TTL_MS = 1000;
/** Bundles of tasks per CPU of the cluster, at least, when tasks are bundled; and the largest bundle. */
const BUNDLE_PER_CPU = 4;
const MAX_BUNDLE = 64;
/** Times a task runs again after an argument it needed was lost and rebuilt. */
const MAX_REBUILDS = 3;
/** A task's get() or wait() that has not returned after this long lends the task's CPU (see onBlocked). */
const BLOCKED_AFTER_MS = 10;

export class CoreContext implements RuntimeContext, ConsumerHost, ProducerHost {
  readonly redis: CommandClient;
  readonly keys: Keys;
  readonly procId: string;
  readonly role: 'driver' | 'worker';
  /** Root driver that owns what this process creates; a worker sets it per task. */
  ownerId: string;
  /** Set by a worker process while a task runs, for getRuntimeContext(). */
  current: { taskId?: string; nodeId?: string } = {};
  /**
   * Set by a worker process while a task's function runs: told when the task starts and stops waiting
   * in get() or wait(), so that its node lends the task's CPU to other work meanwhile (as Ray does).
   */
  onBlocked: ((blocked: boolean) => void) | undefined;
  private waiting = 0;

  private blocking: Redis | undefined;
  private sub: Redis | undefined;
  private readonly queues: Queues;
  private readonly pending = new Map<string, PendingTask>();
  private readonly local = new Map<string, Buffer>();
  private readonly counts = new Map<string, number>();
  private readonly held = new Set<string>();
  private readonly finalizer = new FinalizationRegistry<string>((id) => this.dropInstance(id));
  private refOps: string[] = [];
  private creates: string[] = [];
  private jobs: QueuedJob[] = [];
  private actorCreates: ActorCreate[] = [];
  private actorCalls = new Map<string, ActorCall[]>();
  private readonly actorLines = new Map<string, ActorLine>();
  private readonly streams = new Map<string, RefStream<unknown>>();
  private readonly producers = new Map<string, { credit(n: number): void; stop(): void }>();
  /** How each task result this process owns was made, while it holds the ref: a lost result is made again from it. */
  private readonly lineage = new Map<string, QueuedJob>();
  /** Objects this process put(): they have no lineage, so a lost one is reported by its creator. */
  private readonly puts = new Set<string>();
  /** wait() calls under way, told of each task this process sees finish. */
  private readonly completionListeners = new Set<(id: string) => void>();
  private notes: [string, Buffer][] = [];
  private flushScheduled = false;
  private flushing: Promise<void> = Promise.resolve();
  private readonly knownShapes = new Set<string>();
  private readonly warnedShapes = new Set<string>();
  private nodesCache: { at: number; nodes: NodeInfo[] } | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private inboxStarted = false;
  private closed = false;

  private constructor(private readonly config: ContextConfig) {
    this.keys = config.keys;
    this.procId = config.procId;
    this.role = config.role;
    this.ownerId = config.procId;
    this.redis = withCommands(connect(config.address, { name: `nodus:${config.role}:${config.procId}` }));
    this.queues = new Queues(this.redis, this.keys.bullPrefix);
    // A lost connection must not crash the process: ioredis reconnects, commands wait.
    this.redis.on('error', () => undefined);
  }

  /** Connects to the cluster and, for a driver, registers it and starts its inbox, logs and heartbeat. */
  static async connect(config: ContextConfig): Promise<CoreContext> {
    const ctx = new CoreContext(config);
    try {
      await waitForRedis(ctx.redis, config.address);
      if (config.role === 'driver') {
        const info: DriverInfo = { id: ctx.procId, pid: process.pid, host: hostname(), startedAt: Date.now() };
        await ctx.redis
          .multi()
          .hset(ctx.keys.drivers, ctx.procId, JSON.stringify(info))
          .zadd(ctx.keys.driverHeartbeats, Date.now(), ctx.procId)
          .exec();
        ctx.heartbeat = setInterval(() => {
          ctx.redis.nodusControl('z', ctx.keys.driverHeartbeats, Date.now(), ctx.procId).catch(() => undefined);
        }, DRIVER_HEARTBEAT_MS);
        ctx.heartbeat.unref();
        ctx.startInbox();
        if (config.logToDriver) await ctx.subscribeLogs();
      }
    } catch (err) {
      ctx.redis.disconnect();
      throw err;
    }
    return ctx;
  }

  // ---------------------------------------------------------------- references

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
    if (this.held.delete(id) && !this.closed) this.queueRefOp('r', id);
  }

  private queueRefOp(op: 'h' | 'r', id: string): void {
    this.refOps.push(op, id);
    this.scheduleFlush();
  }

  // ---------------------------------------------------------------- submission

  /** Submits a task; returns its ref at once. Bad arguments throw here, at the call site. */
  submit(fn: FunctionDescriptor, args: unknown[], opts: ResolvedRemoteOptions, generator = false): ObjectRef | RefStream<unknown> {
    if (this.closed) throw new NotInitializedError('the runtime was shut down: call init() again before submitting tasks.');
    const name = opts.name ?? fn.name;
    const enc = encode(args, `argument of ${name}.remote()`);
    const id = newId();
    const shape = shapeKey(opts.demand);
    const entry: PendingTask = { done: deferred(), name, shape, args, enqueued: false, cancelled: false };
    this.pending.set(id, entry);
    let result: ObjectRef | RefStream<unknown>;
    if (generator) {
      // A generator's items are objects of their own; the task's own result (a count) is not kept.
      result = new RefStream(id, this);
      this.streams.set(id, result);
    } else {
      result = this.makeRef(id, true);
      this.creates.push(id);
    }
    this.startInbox();
    const job: TaskJob = {
      v: PROTOCOL_VERSION,
      id,
      fn: { ...fn, name },
      args: null,
      argsRef: null,
      owner: this.ownerId,
      caller: this.procId,
      demand: opts.demand,
      maxRetries: opts.maxRetries,
    };
    const deps = args.filter(isObjectRef).map((r) => r.id);
    const packed = this.packArgs(enc, entry.args, deps);
    job.args = packed.args;
    job.argsRef = packed.argsRef;
    const queued: QueuedJob = { queue: taskQueueName(shape), demand: opts.demand, name, id, data: job, attempts: Math.min(opts.maxRetries + 1, 2 ** 31 - 1) };
    if (!generator) this.lineage.set(id, queued);
    if (!deps.length) this.enqueue(entry, queued);
    else this.enqueueWhenReady(entry, queued, deps);
    this.scheduleFlush();
    return result;
  }

  /** Small arguments ride in the job as base64; large ones go to the object store (as Ray does) and become a dependency. */
  private packArgs(enc: { bytes: Buffer; refs: string[] }, keepAlive: unknown[], deps: string[]): { args: string | null; argsRef: string | null; bytes: Buffer | null } {
    if (enc.bytes.length <= INLINE_RESULT_BYTES) return { args: enc.bytes.toString('base64'), argsRef: null, bytes: enc.bytes };
    const argsRef = this.putEncoded(enc.bytes, enc.refs);
    keepAlive.push(argsRef);
    deps.push(argsRef.id);
    return { args: null, argsRef: argsRef.id, bytes: null };
  }

  private enqueue(entry: PendingTask, queued: QueuedJob): void {
    if (entry.cancelled) return;
    entry.enqueued = true;
    this.jobs.push(queued);
    this.scheduleFlush();
  }

  /** Ray resolves a task's dependencies before it is scheduled, so a waiting task never holds a worker. */
  private async enqueueWhenReady(entry: PendingTask, queued: QueuedJob, deps: string[]): Promise<void> {
    try {
      for (const dep of deps) {
        const failure = await this.dependencyFailure(dep);
        if (failure) {
          if (queued.queue.startsWith('actor.')) {
            // An actor whose constructor argument failed never starts: it is dead, with that error as cause.
            const cause = decode<SerializedFailure>(failure.subarray(1));
            await endActor(this.redis, this.keys, queued.id, 'dead', actorFailure(`actor ${queued.name} (${queued.id}) is dead: a constructor argument failed: ${cause.message}`, cause), 0);
          } else await this.settleWith(queued.id, failure);
          return;
        }
      }
      this.enqueue(entry, queued);
    } catch (err) {
      if (!this.closed) await this.settleWith(queued.id, failureBytes(systemFailure(entry.name, err)));
    }
  }

  /** Waits for an object to exist; returns its stored bytes when it holds a failure, else null. */
  private async dependencyFailure(id: string): Promise<Buffer | null> {
    const p = this.pending.get(id);
    if (p) await p.done.promise;
    const local = this.local.get(id);
    if (local) return local[0] === ValueTag.Error ? local : null;
    for (let delay = 1, rebuilds = 0; ; delay = Math.min(delay * 2, 100)) {
      if (this.closed) throw new NotInitializedError('runtime shut down');
      // The first byte tells a failure from a value without reading a large value.
      const [[, tag], [, exists]] = (await this.redis.multi().getrange(this.keys.value(id), 0, 0).exists(this.keys.meta(id)).exec()) as [[null, string], [null, number]];
      if (tag === String.fromCharCode(ValueTag.Error)) return readStored(this.redis, this.keys, id);
      if (tag) return null;
      if (!exists) {
        // Lost: rebuilt first when this process made it and its lineage allows (then the task runs).
        if (rebuilds++ < MAX_REBUILDS && this.resubmit(id)) {
          await this.pending.get(id)?.done.promise;
          continue;
        }
        const e = this.made(id) ? this.unrebuildable(id) : new ObjectLostError(lostMessage(id), { objectId: id });
        return failureBytes(toFailure(e, 'lost', '?'));
      }
      await sleep(delay);
    }
  }

  /** Ends a task without running it (a failed dependency, a cancel before dispatch). */
  private async settleWith(id: string, bytes: Buffer, caller = this.procId): Promise<void> {
    await settleCall(this.redis, this.keys, id, caller, bytes);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate, not a microtask: a loop of .remote() calls lands in one batch.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing = this.flushing.then(() => this.flush()).catch((err) => {
        // The calls of the batch have failed with the reason already; this says it once for the process.
        if (!this.closed) console.error(`[nodus] could not submit to Redis: ${(storeError(err, 0) as Error).message}`);
      });
    });
  }

  private async flush(): Promise<void> {
    const creates = this.creates;
    const jobs = this.jobs;
    const refOps = this.refOps;
    const actorCreates = this.actorCreates;
    const actorCalls = this.actorCalls;
    const notes = this.notes;
    this.creates = [];
    this.jobs = [];
    this.refOps = [];
    this.actorCreates = [];
    this.actorCalls = new Map();
    this.notes = [];
    // Known before anything is sent, so the commands below go out in order.
    const cpus = jobs.length >= 2 * BUNDLE_PER_CPU ? await this.clusterCpus() : 0;
    const work: Promise<unknown>[] = [];
    // Order matters and holds: one connection, commands issued in this order.
    for (const part of slices(creates)) work.push(this.redis.nodusCreate(this.keys.prefix, this.ownerId, this.procId, ...part));
    for (const c of actorCreates) work.push(this.redis.nodusActorCreate(...c.args));
    const byQueue = new Map<string, QueuedJob[]>();
    for (const q of jobs) {
      const list = byQueue.get(q.queue);
      if (list) list.push(q);
      else byQueue.set(q.queue, [q]);
    }
    for (const [queue, list] of byQueue) {
      if (!this.knownShapes.has(queue)) {
        this.knownShapes.add(queue);
        // Registered again by the next submission if this write fails (Redis out of memory, say): node
        // agents only take work from queues they find here.
        work.push(this.redis.hset(this.keys.shapes, queue, JSON.stringify(list[0].demand)).catch((err) => {
          this.knownShapes.delete(queue);
          throw err;
        }));
        work.push(this.checkFeasible(queue, list[0].demand, list[0].name));
      }
      const jobs = queue.startsWith('task.') ? this.bundle(list, cpus) : list;
      // Wake the nodes only once the jobs are in: addBulk is async inside BullMQ, so a PUBLISH issued
      // beside it can overtake it, and a node that finds nothing sleeps until its next poll.
      work.push(
        this.queue(queue)
          .addBulk(jobs.map((q) => ({ name: q.name, data: q.data, opts: { jobId: q.id, attempts: q.attempts, removeOnComplete: true, removeOnFail: true } })))
          .then(() => this.redis.publish(this.keys.wakeChannel, queue)),
      );
    }
    for (const [actorId, calls] of actorCalls) work.push(this.pushCalls(actorId, calls));
    // Control notes (stream credits and stops): small, and they get through when Redis is out of memory.
    for (const [inbox, note] of notes) work.push(this.redis.nodusControl('l', inbox, note));
    for (const part of slices(refOps)) work.push(this.redis.nodusRefs(this.keys.prefix, this.procId, ...part));
    try {
      await Promise.all(work);
    } catch (err) {
      // Nothing of this batch may hang: what could not be submitted fails here with the reason.
      const e = storeError(err, 0) as Error;
      const failure = failureBytes({ kind: e instanceof ObjectStoreFullError ? 'full' : 'system', task: '?', name: e.name, message: `could not submit to the cluster: ${e.message}` });
      for (const id of [...jobs.map((j) => j.id), ...[...actorCalls.values()].flat().map((c) => c[0])]) this.onCompletion(id, failure);
      throw err;
    }
  }

  /**
   * Many tasks of one shape submitted at once go into bundles: one job runs several tasks in order,
   * which saves BullMQ's per-job work (most of what Redis does per task). Bundles stay small enough to
   * leave BUNDLE_PER_CPU of them for each CPU of the cluster, so that work still spreads over every node.
   */
  private bundle(list: QueuedJob[], cpus: number): QueuedJob[] {
    const size = Math.min(MAX_BUNDLE, Math.floor(list.length / (BUNDLE_PER_CPU * Math.max(1, cpus))));
    if (size < 2) return list;
    const out: QueuedJob[] = [];
    for (let i = 0; i < list.length; i += size) {
      const part = list.slice(i, i + size);
      if (part.length > 1) for (const q of part) this.pending.get(q.id)!.bundled = true;
      out.push({ ...part[0], data: { ...(part[0].data as TaskJob), more: part.slice(1).map((q) => q.data as TaskJob) } });
    }
    return out;
  }

  private async clusterCpus(): Promise<number> {
    const nodes = await this.clusterNodes().catch(() => [] as NodeInfo[]);
    return nodes.filter((n) => n.state === 'alive').reduce((sum, n) => sum + (n.total.CPU ?? 0), 0);
  }

  private queue(name: string): Queue {
    return this.queues.get(name);
  }

  async clusterNodes(maxAgeMs = NODES_TTL_MS): Promise<NodeInfo[]> {
    if (this.nodesCache && Date.now() - this.nodesCache.at < maxAgeMs) return this.nodesCache.nodes;
    const raw = await this.redis.hvals(this.keys.nodes);
    const nodes = raw.map((s) => JSON.parse(s) as NodeInfo);
    this.nodesCache = { at: Date.now(), nodes };
    return nodes;
  }

  /** Warns the submitter when no node in the cluster could ever run a task (or host an actor) of this shape. */
  private async checkFeasible(shape: string, demand: Resources, name: string): Promise<void> {
    const nodes = await this.clusterNodes();
    if (isFeasible(demand, nodes)) return;
    await this.redis.hset(this.keys.infeasible, shape, JSON.stringify({ demand, task: name, since: Date.now() }));
    if (this.warnedShapes.has(shape)) return;
    this.warnedShapes.add(shape);
    const biggest = largestNode(nodes);
    const flags = Object.entries(demand)
      .map(([k, v]) => (k === 'CPU' ? `--num-cpus ${v}` : k === 'GPU' ? `--num-gpus ${v}` : `--resources '{"${k}":${v}}'`))
      .join(' ');
    console.warn(
      `[nodus] warning: ${shape.startsWith('actor.') ? 'actor' : 'task'} ${name} needs ${fmtResources(demand)}, but no node in the cluster has that much ` +
        `(${biggest ? `largest node: ${fmtResources(biggest)}` : 'no node is alive'}). ` +
        `It stays queued until a node that fits joins: npx nodus worker join --address <head> ${flags}`,
    );
  }

  // ---------------------------------------------------------------- results

  startInbox(): void {
    if (this.inboxStarted || this.closed) return;
    this.inboxStarted = true;
    this.blocking = connect(this.config.address, { blocking: true, name: `nodus:inbox:${this.procId}` });
    this.blocking.on('error', () => undefined);
    void this.inboxLoop(this.blocking);
  }

  private async inboxLoop(conn: Redis): Promise<void> {
    const key = this.keys.inbox(this.procId);
    while (!this.closed) {
      try {
        // Capped at 2 s so that shutdown never waits on a blocked connection for long.
        const res = (await conn.callBuffer('BLMPOP', 2, 1, key, 'LEFT', 'COUNT', 1000)) as [Buffer, Buffer[]] | null;
        if (!res) continue;
        for (const raw of res[1]) this.onNote(decode<unknown[]>(raw));
      } catch {
        if (this.closed) return;
        await sleep(100);
      }
    }
  }

  private onNote(note: unknown[]): void {
    switch (note[0]) {
      case Note.Done:
        return this.onCompletion(note[1] as string, note[2] as Buffer | null);
      case Note.Item:
        this.streams.get(note[1] as string)?.onItem(note[2] as number, note[3] as string, note[4] as Buffer | null, note[5] as string);
        if (!this.streams.has(note[1] as string)) this.dropHeld(note[3] as string);
        return;
      case Note.End:
        return this.streams.get(note[1] as string)?.onEnd(note[3] as Buffer | null);
      case Note.Credit:
        return this.producers.get(note[1] as string)?.credit(note[2] as number);
      case Note.Stop:
        return this.producers.get(note[1] as string)?.stop();
    }
  }

  private onCompletion(id: string, inline: Buffer | null): void {
    const entry = this.pending.get(id);
    if (!entry) return; // a duplicate (a retried task), or not ours
    if (inline && isFailure(inline) && !this.streams.has(id)) {
      const after = this.afterLoss(id, entry, inline);
      if (after === 'retry') return;
      inline = after;
    }
    this.pending.delete(id);
    const stream = this.streams.get(id);
    if (stream) stream.onDone(inline);
    else if (inline && this.counts.has(id)) this.local.set(id, inline);
    entry.done.resolve();
    for (const listener of this.completionListeners) listener(id);
  }

  // ---------------------------------------------------------------- stream hosts

  cacheLocal(id: string, bytes: Buffer): void {
    if (this.counts.has(id)) this.local.set(id, bytes);
  }

  dropHeld(id: string): void {
    this.queueRefOp('r', id);
  }

  sendNote(proc: string, note: unknown[]): void {
    this.notes.push([this.keys.inbox(proc), encode(note).bytes]);
    this.scheduleFlush();
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

  // ---------------------------------------------------------------- actors

  /** Creates an actor: its record and name at once (in this tick's batch), its placement once its arguments are ready. */
  createActor(cls: FunctionDescriptor, args: unknown[], opts: ResolvedActorOptions, generators: string[]): unknown {
    if (this.closed) throw new NotInitializedError('the runtime was shut down: call init() again before creating actors.');
    const enc = encode(args, `argument of ${cls.name}.remote()`);
    const actorId = newId();
    const keepAlive: unknown[] = [...args];
    const deps = args.filter(isObjectRef).map((r) => r.id);
    const packed = this.packArgs(enc, keepAlive, deps);
    const record: ActorRecord = {
      id: actorId,
      cls: cls.name,
      module: cls.module,
      key: cls.key,
      args: packed.args ?? '',
      argsRef: packed.argsRef ?? '',
      owner: this.ownerId,
      namespace: opts.namespace,
      name: opts.name ?? '',
      detached: opts.detached ? '1' : '0',
      state: 'pending',
      node: '',
      pid: '',
      proc: '',
      restarts: '0',
      maxRestarts: String(opts.maxRestarts),
      maxTaskRetries: String(opts.maxTaskRetries),
      maxConcurrency: String(opts.maxConcurrency),
      demand: JSON.stringify(opts.demand),
      gens: JSON.stringify(generators),
      cause: '',
      host: '',
      killed: '0',
      createdAt: String(Date.now()),
    };
    const taken = actorFailure(
      `cannot create actor ${cls.name}: the name '${opts.name}' is taken in namespace '${opts.namespace}'. ` +
        `Use getActor('${opts.name}', { namespace: '${opts.namespace}' }) to reach the existing one, or choose another name.`,
    );
    const fields = Object.entries(record).flat();
    this.actorCreates.push({
      args: [this.keys.prefix, actorId, opts.name ? `${opts.namespace}/${opts.name}` : '', taken, record.detached, this.ownerId, ...fields],
    });
    const shape = shapeKey(opts.demand);
    const entry: PendingTask = { done: deferred(), name: cls.name, shape, args: keepAlive, enqueued: false, cancelled: false };
    const data: ActorJob = { v: PROTOCOL_VERSION, actorId };
    const queued: QueuedJob = { queue: actorQueueName(shape), demand: opts.demand, name: cls.name, id: actorId, data, attempts: 1 };
    // An actor's creation holds no pending entry: its "completion" is the actor going alive.
    if (!deps.length) this.enqueue(entry, queued);
    else void this.enqueueWhenReady(entry, queued, deps);
    this.scheduleFlush();
    return makeHandle(new ActorHandleBase(actorId, cls.name, generators));
  }

  /** Calls a method: calls from this process to one actor reach its mailbox in the order they were made. */
  submitActorCall(actorId: string, method: string, args: unknown[], generator: boolean): unknown {
    if (this.closed) throw new NotInitializedError('the runtime was shut down: call init() again before calling actors.');
    const name = method;
    const enc = encode(args, `argument of ${method}.remote()`);
    const id = newId();
    const entry: PendingTask = { done: deferred(), name, shape: '', args, enqueued: true, cancelled: false };
    this.pending.set(id, entry);
    let result: unknown;
    if (generator) {
      const stream = new RefStream(id, this);
      this.streams.set(id, stream);
      result = stream;
    } else {
      result = this.makeRef(id, true);
      this.creates.push(id);
    }
    this.startInbox();
    const deps = args.filter(isObjectRef).map((r) => r.id);
    const packed = this.packArgs(enc, entry.args, deps);
    const call: ActorCall = [id, method, packed.bytes, packed.argsRef, this.procId, this.ownerId, generator, 0];
    let line = this.actorLines.get(actorId);
    if (!deps.length && !line?.blocked) {
      this.queueCall(actorId, call);
    } else {
      if (!line) this.actorLines.set(actorId, (line = { blocked: false, waiting: [] }));
      line.waiting.push({ call, deps, name });
      if (!line.blocked) void this.drainLine(actorId, line);
    }
    this.scheduleFlush();
    return result;
  }

  private queueCall(actorId: string, call: ActorCall): void {
    const list = this.actorCalls.get(actorId);
    if (list) list.push(call);
    else this.actorCalls.set(actorId, [call]);
    this.scheduleFlush();
  }

  private async drainLine(actorId: string, line: ActorLine): Promise<void> {
    line.blocked = true;
    try {
      while (line.waiting.length) {
        const next = line.waiting[0];
        let failure: Buffer | null = null;
        for (const dep of next.deps) {
          failure = await this.dependencyFailure(dep).catch((err) => failureBytes(systemFailure(next.name, err)));
          if (failure) break;
        }
        line.waiting.shift();
        if (failure) await this.settleWith(next.call[0], failure);
        else this.queueCall(actorId, next.call);
      }
    } finally {
      line.blocked = false;
      this.actorLines.delete(actorId);
    }
  }

  /** Pushes calls to a mailbox; if the actor is dead they fail at once with its cause. */
  private async pushCalls(actorId: string, calls: ActorCall[]): Promise<void> {
    const [state, cause] = await this.redis.nodusActorCall(this.keys.prefix, actorId, ...calls.map((c) => encode(c).bytes));
    if (state !== 'dead') return;
    const failure = failureBytes(diedFailure(actorId, cause));
    await Promise.all(calls.map((c) => this.settleWith(c[0], failure)));
  }

  /** Waits until everything this process has queued so far has reached Redis. */
  async settled(): Promise<void> {
    if (this.flushScheduled) await new Promise((r) => setImmediate(r));
    await this.flushing;
  }

  async getActor(name: string, namespace: string): Promise<unknown> {
    // An actor this process just created must be findable by its name.
    await this.settled();
    const id = await this.redis.hget(this.keys.actorNames(namespace), name);
    const rec = id ? ((await this.redis.hgetall(this.keys.actor(id))) as unknown as ActorRecord) : undefined;
    if (!id || !rec?.id || rec.state === 'dead') {
      const names = (await this.redis.hkeys(this.keys.actorNames(namespace))).sort();
      throw new ConfigError(
        `No actor named '${name}' in namespace '${namespace}'. ` +
          (names.length ? `Named actors there: ${names.join(', ')}.` : 'That namespace has no named actors.') +
          " Create one with MyActor.options({ name, namespace }).remote(); a name is only kept while its actor lives (and past its driver with lifetime: 'detached').",
      );
    }
    return makeHandle(new ActorHandleBase(id, rec.cls, JSON.parse(rec.gens || '[]') as string[]));
  }

  /** Kills an actor's process; without a restart it is dead when this resolves. */
  async killActor(actorId: string, noRestart: boolean, reason = 'it was killed with kill()'): Promise<void> {
    await this.settled();
    await killActor(this.redis, this.keys, actorId, noRestart, reason);
    if (!noRestart) return;
    for (let i = 0; i < 400 && (await this.redis.hget(this.keys.actor(actorId), 'state')) !== 'dead'; i++) await sleep(25);
    // The tasks it started die with it (Ray's owner fate-sharing): nobody is left to take their results.
    await cancelOwnedTasks({ redis: this.redis, keys: this.keys, queue: (q) => this.queue(q) }, actorId);
  }

  /** get(ref) or get([refs]): waits for values; throws the task's error, GetTimeoutError or ObjectLostError. */
  async get(input: unknown, timeoutMs: number | undefined): Promise<unknown> {
    return this.blocked(this.getValues(input, timeoutMs));
  }

  /** Reports a wait of a running task that lasts more than BLOCKED_AFTER_MS (see onBlocked). */
  private async blocked<T>(work: Promise<T>): Promise<T> {
    const hook = this.onBlocked;
    if (!hook) return work;
    let told = false;
    const timer = setTimeout(() => {
      told = true;
      if (this.waiting++ === 0) hook(true);
    }, BLOCKED_AFTER_MS);
    try {
      return await work;
    } finally {
      clearTimeout(timer);
      if (told && --this.waiting === 0) hook(false);
    }
  }

  private async getValues(input: unknown, timeoutMs: number | undefined): Promise<unknown> {
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
    const p = this.pending.get(id);
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
      const bytes = await readStored(this.redis, this.keys, id);
      if (bytes) return bytes;
      if (!(await this.redis.exists(this.keys.meta(id)))) {
        // This process holds the ref, so the object was not freed: it was lost. Rebuild it if we can.
        if (this.counts.has(id)) return this.rebuild(ref, deadline, timeoutMs, of);
        throw new ObjectLostError(lostMessage(id), { objectId: id });
      }
      if (Date.now() >= deadline) throw timeoutError(timeoutMs, of, undefined);
      if (this.closed) throw new NotInitializedError('the runtime was shut down while get() waited.');
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
    if (!this.pending.has(id)) {
      const entry: PendingTask = { done: deferred(), name: job.name, shape: shapeKey(job.demand), args: [], enqueued: false, cancelled: false };
      this.pending.set(id, entry);
      this.creates.push(id);
      this.enqueue(entry, job);
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
      ? `it was the result of task ${job.name}, whose maxRetries of 0 does not allow running it again. Created by ${this.procId}.`
      : this.puts.has(id)
        ? `it was stored with put(), which has no lineage to rebuild it from. Created by ${this.procId}.`
        : 'only its owner, the process that made it, can rebuild it.';
    return new ObjectLostError(`Object ${id} is lost (its only copy is gone) and cannot be rebuilt here: ${why}`, { objectId: id });
  }

  /**
   * A task of this process failed because an argument was lost while it waited or ran. When this
   * process made the argument and its lineage allows, the argument is rebuilt and the task runs again
   * (as Ray does; at most MAX_REBUILDS times per task): 'retry'. Otherwise the failure to report, which
   * names the object and why it could not be rebuilt when this process made it.
   */
  private afterLoss(id: string, entry: PendingTask, bytes: Buffer): 'retry' | Buffer {
    const f = decode<SerializedFailure>(bytes.subarray(1));
    const lost = f.kind === 'lost' ? f.props?.objectId : undefined;
    if (typeof lost !== 'string' || !this.made(lost)) return bytes;
    const job = this.lineage.get(id);
    if (job && !entry.cancelled && (entry.rebuilds ?? 0) < MAX_REBUILDS && this.resubmit(lost)) {
      entry.rebuilds = (entry.rebuilds ?? 0) + 1;
      // The failure the worker stored must not reach a borrower meanwhile.
      void this.redis.del(this.keys.value(id)).catch(() => undefined);
      void this.enqueueWhenReady(entry, job, [lost]);
      return 'retry';
    }
    const e = this.unrebuildable(lost);
    return failureBytes({ ...toFailure(e, 'lost', entry.name), message: `${entry.name} could not read an argument: ${e.message}` });
  }

  /** Resolves when `numReturns` refs are ready or the timeout passes; keeps the input order in both lists. */
  wait(refs: ObjectRef[], numReturns: number, timeoutMs: number | undefined): Promise<[ObjectRef[], ObjectRef[]]> {
    return this.blocked(this.waitFor(refs, numReturns, timeoutMs));
  }

  private async waitFor(refs: ObjectRef[], numReturns: number, timeoutMs: number | undefined): Promise<[ObjectRef[], ObjectRef[]]> {
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
      if (this.pending.has(r.id)) mine.add(r.id);
      else if (this.local.has(r.id)) mark(r.id);
      else borrowed.push(r.id);
    }
    // One listener for all of this call's pending tasks (a loop of wait() over 1000 refs stays linear).
    const listener = (id: string) => mine.has(id) && mark(id);
    if (mine.size && ready.size < numReturns) this.completionListeners.add(listener);
    if (borrowed.length) {
      void (async () => {
        for (let delay = 1; !stop && !this.closed; delay = Math.min(delay * 2, 50)) {
          const pipe = this.redis.pipeline();
          const ids = borrowed.filter((id) => !ready.has(id));
          if (!ids.length) return;
          ids.forEach((id) => pipe.exists(this.keys.value(id)));
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
    this.completionListeners.delete(listener);
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
    if (this.closed) return Promise.reject(new NotInitializedError('the runtime was shut down: call init() again before put().'));
    let ref: ObjectRef<T>;
    try {
      const enc = encode(value, 'put() value');
      ref = this.putEncoded(enc.bytes, enc.refs) as ObjectRef<T>;
    } catch (err) {
      return Promise.reject(err);
    }
    const written = this.putWrites.get(ref) ?? this.lastPut;
    return new Promise((resolve, reject) => written.then(() => resolveWithRef(resolve, ref), reject));
  }

  private lastPut: Promise<unknown> = Promise.resolve();

  /** Stores encoded bytes under a new id; the ref is usable at once (its write is ordered before later commands). */
  private putEncoded(bytes: Buffer, innerRefs: string[]): ObjectRef {
    const id = newId();
    const form = toStoredForm(bytes);
    const ref = this.makeRef(id, true);
    const write = async () => {
      try {
        await writeChunks(this.redis, this.keys, id, form.chunks);
        await this.redis.nodusPut(this.keys.prefix, this.ownerId, this.procId, id, form.head, form.chunks.length, ...innerRefs);
      } catch (err) {
        // Leave nothing half-written behind; the objects already stored are untouched.
        if (form.chunks.length) await this.redis.del(...form.chunks.map((_, i) => this.keys.chunk(id, i))).catch(() => undefined);
        throw storeError(err, bytes.length);
      }
    };
    this.puts.add(id);
    // Objects never change: the process that put a small one reads it back from memory.
    if (!form.chunks.length && form.head.length <= INLINE_RESULT_BYTES) this.local.set(id, form.head);
    const written = write();
    // Later commands queue behind this write, but a failed put must not fail the next one.
    this.lastPut = written.catch(() => undefined);
    this.putWrites.set(ref, written);
    return ref;
  }

  /** The write of each put(), so that put() can report its own failure. */
  private readonly putWrites = new WeakMap<object, Promise<void>>();

  // ---------------------------------------------------------------- cancel

  /** Cancels a task this process submitted: dequeued if waiting, its worker process killed if running. */
  async cancel(ref: ObjectRef, force: boolean): Promise<void> {
    checkRef(ref, 'cancel()');
    const entry = this.pending.get(ref.id);
    if (!entry || entry.cancelled) return;
    if (!entry.shape) throw new ConfigError('cancel() of an actor call is not supported; kill(actor) stops the actor.');
    entry.cancelled = true;
    const failure = failureBytes(cancelledFailure(entry.name));
    if (!entry.enqueued) {
      await this.settleWith(ref.id, failure);
      return;
    }
    await this.settled();
    await this.redis.set(this.keys.cancelMark(ref.id), '1', 'EX', 3600);
    // A bundled task's job holds other tasks too: it is skipped or stopped where it runs instead.
    const removed = !entry.bundled && (await this.queue(taskQueueName(entry.shape)).remove(ref.id).catch(() => 0));
    if (removed) await this.settleWith(ref.id, failure);
    else await this.redis.publish(this.keys.controlChannel, JSON.stringify({ type: 'cancel', id: ref.id, force } satisfies ControlMessage));
  }

  // ---------------------------------------------------------------- logs

  private async subscribeLogs(): Promise<void> {
    this.sub = connect(this.config.address, { blocking: true, name: `nodus:logs:${this.procId}` });
    this.sub.on('error', () => undefined);
    this.sub.on('message', (_channel: string, raw: string) => {
      const msgs = JSON.parse(raw) as LogMessage[];
      for (const m of msgs) {
        const out = m.stream === 'stderr' ? process.stderr : process.stdout;
        const prefix = out.isTTY ? `\x1b[36m${m.prefix}\x1b[0m` : m.prefix;
        const text = m.text.endsWith('\n') ? m.text.slice(0, -1) : m.text;
        out.write(text.split('\n').map((l) => `${prefix} ${l}`).join('\n') + '\n');
      }
    });
    await this.sub.subscribe(this.keys.logs(this.procId));
  }

  // ---------------------------------------------------------------- shutdown

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Frees what this process owns and holds, and closes its connections. Bounded: when Redis does not answer
   * within SHUTDOWN_REDIS_MS it says what it could not release and returns (the head frees a gone driver's objects).
   */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    const deadline = Date.now() + SHUTDOWN_REDIS_MS;
    const missed: string[] = [];
    // Each step waits for Redis only until the shared deadline; what did not get through is named below.
    const step = async (what: string, work: () => Promise<unknown>): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), Math.max(0, deadline - Date.now()))));
      const done = await Promise.race([work().then(() => 'ok' as const, () => 'failed' as const), late]);
      clearTimeout(timer);
      if (done !== 'ok') missed.push(what);
    };
    await step('send the last submissions', () => Promise.all([this.flushing, this.lastPut]));
    if (this.role === 'driver') {
      // Actors die with the driver that created them, unless detached.
      await step("stop this driver's actors", async () => {
        const owned = await this.redis.smembers(this.keys.ownedActors(this.procId));
        await Promise.all(owned.map((id) => this.killActor(id, true, `its driver ${this.procId} shut down`)));
      });
    }
    this.closed = true;
    clearInterval(this.heartbeat);
    await step(`free the objects this ${this.role} owns and holds`, async () => {
      await this.redis.nodusFreeProc(this.keys.prefix, this.procId, this.role === 'driver' ? '1' : '0');
      if (this.role === 'driver') await this.redis.multi().hdel(this.keys.drivers, this.procId).zrem(this.keys.driverHeartbeats, this.procId).exec();
    });
    for (const [id, entry] of this.pending) {
      entry.done.resolve();
      for (const listener of this.completionListeners) listener(id);
    }
    this.pending.clear();
    for (const s of this.streams.values()) s.onEnd(failureBytes({ kind: 'system', task: '?', name: 'NotInitializedError', message: 'the runtime was shut down' }));
    await step('close the task queues', () => this.queues.close());
    this.blocking?.disconnect();
    this.sub?.disconnect();
    if (missed.length && this.role === 'driver') {
      console.warn(
        `[nodus] shutdown(): the cluster's Redis at ${redact(this.config.address)} did not answer within ${SHUTDOWN_REDIS_MS / 1000} s, so it could not ${missed.join(', ')}. ` +
          `The head does that once it sees this driver gone (${DRIVER_HEARTBEAT_MS * 10 / 1000} s without a heartbeat).`,
      );
    }
    if (missed.length) this.redis.disconnect();
    else await this.redis.quit().catch(() => this.redis.disconnect());
    setContext(undefined);
    await this.config.onShutdown?.();
  }

  /** The cluster's Redis address this process is connected to. */
  get address(): string {
    return this.config.address;
  }

  /** For tests and status: how many refs this process holds. */
  heldCount(): number {
    return this.held.size;
  }
}

function checkRef(value: unknown, where: string): void {
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

function systemFailure(task: string, err: unknown): SerializedFailure {
  const e = err instanceof Error ? err : new Error(String(err));
  return { kind: 'system', task, name: e.name, message: e.message, stack: e.stack };
}

function fmtResources(r: Resources): string {
  return `{${Object.entries(r)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ')}}`;
}

/** The failure of an actor-level death, as a base64 string for the actor record. */
export function actorFailure(message: string, cause?: SerializedFailure): string {
  const f: SerializedFailure = { kind: 'actor', task: '?', name: 'ActorDiedError', message, cause };
  return encode(f).bytes.toString('base64');
}

/** Turns an actor record's `cause` into the failure a call of a dead actor gets. */
export function diedFailure(actorId: string, cause: string): SerializedFailure {
  if (cause) return decode<SerializedFailure>(Buffer.from(cause, 'base64'));
  return { kind: 'actor', task: '?', name: 'ActorDiedError', message: `actor ${actorId} is dead` };
}

/**
 * Ends an actor's process life (dead, or about to restart) and settles the calls that cannot run:
 * all of them when it is dead; when it restarts, the running ones beyond maxTaskRetries (the others go
 * back to the front of its mailbox). Shared by node agents, the head and drivers.
 */
export async function endActor(redis: CommandClient, keys: Keys, actorId: string, mode: 'dead' | 'restart', cause: string, maxTaskRetries: number): Promise<void> {
  const [running, queued, startedIds] = await redis.nodusActorEndBuffer(keys.prefix, actorId, mode, mode === 'dead' ? cause : '');
  const started = new Set(startedIds.map((b) => b.toString()));
  if (mode === 'restart') return settleTaken(redis, keys, actorId, running, started, maxTaskRetries);
  const base = failureBytes(diedFailure(actorId, cause));
  for (const call of [...running, ...queued].map((raw) => decode<ActorCall>(raw))) {
    await settleCall(redis, keys, call[0], call[4], base);
  }
}

/**
 * Calls an actor process took and did not finish, handed back as a restart does: those never begun go
 * back to the front of the mailbox; begun ones run again if maxTaskRetries allows, else fail with
 * ActorDiedError.
 */
async function settleTaken(redis: CommandClient, keys: Keys, actorId: string, taken: Buffer[], started: Set<string>, maxTaskRetries: number): Promise<void> {
  const retry: Buffer[] = [];
  const fail: ActorCall[] = [];
  for (const raw of taken) {
    const call = decode<ActorCall>(raw);
    if (!started.has(call[0])) {
      // Taken by the process as it died, never begun: it simply waits for the next one.
      retry.push(raw);
    } else if (call[7] < maxTaskRetries) {
      call[7]++;
      retry.push(encode(call).bytes);
    } else fail.push(call);
  }
  // Back in front, in their original order: they were taken first.
  if (retry.length) await redis.lpush(keys.mailbox(actorId), ...retry.reverse());
  for (const call of fail) {
    const bytes = failureBytes({
      kind: 'actor',
      task: call[1],
      name: 'ActorDiedError',
      message: `the process of actor ${actorId} died while ${call[1]}() ran, and maxTaskRetries (${maxTaskRetries}) does not allow running it again; the actor is restarting`,
    });
    await settleCall(redis, keys, call[0], call[4], bytes);
  }
}

/**
 * Calls left in an actor's running list that no live process of it holds: a process that outlived its
 * restart (its node was declared dead but lived on a moment, or was cut off) took them after the restart
 * had handed the running calls back. The actor's current process, when idle, settles those it has seen
 * there twice in a row, as a restart would have; a call the old process finishes meanwhile is left alone.
 */
export async function adoptOrphans(redis: CommandClient, keys: Keys, actorId: string, orphans: Buffer[], maxTaskRetries: number): Promise<number> {
  const mine: Buffer[] = [];
  const started = new Set<string>();
  for (const raw of orphans) {
    if (!(await redis.lrem(keys.running(actorId), 1, raw))) continue;
    mine.push(raw);
    const id = decode<ActorCall>(raw)[0];
    if (await redis.hdel(keys.started(actorId), id)) started.add(id);
  }
  await settleTaken(redis, keys, actorId, mine, started, maxTaskRetries);
  return mine.length;
}

/**
 * Asks for an actor's death (noRestart) or restart: a placed actor's node kills its process; one not
 * placed yet is ended here. `reason` ends up in the ActorDiedError its calls get.
 */
export async function killActor(redis: CommandClient, keys: Keys, actorId: string, noRestart: boolean, reason: string): Promise<void> {
  const key = keys.actor(actorId);
  if (noRestart) await redis.hset(key, 'killed', reason);
  const [state, cls] = await redis.hmget(key, 'state', 'cls');
  if (!state || state === 'dead') return;
  if (state === 'pending' && noRestart) {
    await endActor(redis, keys, actorId, 'dead', actorFailure(`actor ${cls} (${actorId}) is dead: ${reason} before it started`), 0);
    return;
  }
  await redis.publish(keys.controlChannel, JSON.stringify({ type: 'kill', actorId, noRestart } satisfies ControlMessage));
}

/** Splits a script's argument list into parts of at most `size` (even, so pairs stay together): a spread of 100k+ arguments overflows the stack. */
function slices<T>(list: T[], size = 4096): T[][] {
  const parts: T[][] = [];
  for (let i = 0; i < list.length; i += size) parts.push(list.slice(i, i + size));
  return parts;
}
