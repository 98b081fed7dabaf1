/** @module Submission: .remote() of a task, the flush that sends each tick's batch (tasks bundled per shape, new shapes registered, infeasible ones warned about) and cancel(). */
import type { Queue } from 'bullmq';
import { ConfigError, NotInitializedError, ObjectStoreFullError, cancelledFailure } from '../errors';
import { isObjectRef, type ObjectRef } from '../object-ref';
import type { ResolvedRemoteOptions } from '../options';
import { PROTOCOL_VERSION, shapeKey, taskQueueName, type ControlMessage, type FunctionDescriptor, type NodeInfo, type Resources, type TaskJob } from '../protocol';
import type { Actors } from './actors';
import type { Batch, BatchContents } from './batch';
import type { Inbox } from './inbox';
import { failureBytes, newId, storeError } from './object-store';
import { isFeasible, largestNode } from './policy';
import { openReturns } from './returns';
import { failPlacement, type Strategies } from './strategies';
import { checkRef, type References } from './references';
import { envModulePath, type PreparedEnv, type RuntimeEnvs } from './runtime-env';
import { encode } from './serialization';
import type { RefStream, StreamTable } from './streams';
import { deferred, envFailure, settleWith, type ActorCreate, type PendingTask, type ProcessState, type QueuedJob } from './tasks';

/** Cluster node list cache for infeasibility warnings. */
const NODES_TTL_MS = 1000;
/** Bundles of tasks per CPU of the cluster, at least, when tasks are bundled; and the largest bundle. */
const BUNDLE_PER_CPU = 4;
const MAX_BUNDLE = 64;

export class Submitter {
  private readonly knownShapes = new Set<string>();
  private readonly warnedShapes = new Set<string>();
  private nodesCache: { at: number; nodes: NodeInfo[] } | undefined;

  constructor(
    private readonly state: ProcessState,
    private readonly batch: Batch,
    private readonly refs: References,
    private readonly streams: StreamTable,
    private readonly inbox: Inbox,
    private readonly actors: Actors,
    private readonly envs: RuntimeEnvs,
    private readonly strategies: Strategies,
  ) {}

  /** Submits a task; returns its ref at once. Bad arguments throw here, at the call site. */
  submit(fn: FunctionDescriptor, args: unknown[], opts: ResolvedRemoteOptions, generator = false): ObjectRef | RefStream<unknown> {
    if (this.state.closed) throw new NotInitializedError('the runtime was shut down: call init() again before submitting tasks.');
    const name = opts.name ?? fn.name;
    const enc = encode(args, `argument of ${name}.remote()`);
    const id = newId();
    const shape = shapeKey(opts.demand);
    const entry: PendingTask = { done: deferred(), name, shape, args, enqueued: false, cancelled: false };
    this.state.pending.set(id, entry);
    this.state.observer.submitted(id, name, this.state.ownerId, shape);
    let result: ObjectRef | RefStream<unknown>;
    if (generator) {
      // A generator's items are objects of their own; the task's own result (a count) is not kept.
      result = this.streams.open(id);
    } else {
      result = this.refs.makeRef(id, true);
      this.batch.creates.push(id);
    }
    this.inbox.startInbox();
    // Its runtime env: ready now (the job's, or one asked for before), or once its working dir is shipped.
    const env = this.envs.resolve(opts.runtimeEnv);
    const root = env instanceof Promise ? this.envs.rootOf(opts.runtimeEnv) : env?.root;
    const job: TaskJob = {
      v: PROTOCOL_VERSION,
      id,
      fn: { ...fn, name, module: envModulePath(fn.module, root) },
      args: null,
      argsRef: null,
      owner: this.state.ownerId,
      caller: this.state.procId,
      demand: opts.demand,
      maxRetries: opts.maxRetries,
      ...(opts.numReturns > 1 ? { numReturns: opts.numReturns } : {}),
      ...(opts.retryExceptions ? { retryExceptions: opts.retryExceptions } : {}),
    };
    const deps = args.filter(isObjectRef).map((r) => r.id);
    const packed = this.refs.packArgs(enc, entry.args, deps);
    job.args = packed.args;
    job.argsRef = packed.argsRef;
    const queued: QueuedJob = { queue: taskQueueName(shape), demand: opts.demand, name, id, data: job, attempts: Math.min(opts.maxRetries + 1, 2 ** 31 - 1) };
    if (!generator) this.refs.recordLineage(id, queued);
    const go = (ready: PreparedEnv | undefined) => {
      if (ready) {
        job.env = ready.desc;
        queued.queue = taskQueueName(shape, ready.desc.key);
      }
      // A placement constrains the env's queue (or the plain one): `task.<shape>[~env]@<constraint>`.
      this.strategies.place(queued, opts.placement, opts.bundleChoices);
      entry.queue = queued.queue;
      if (!deps.length) this.batch.enqueue(entry, queued);
      else void this.refs.enqueueWhenReady(entry, queued, deps);
      this.batch.scheduleFlush();
    };
    if (!(env instanceof Promise)) go(env);
    else {
      env.then(go, (err) => {
        if (!this.state.closed && !entry.cancelled) return settleWith(this.state, id, failureBytes(envFailure(name, err)));
      }).catch(() => undefined);
    }
    // numReturns: the task's other return objects, each with a ref of its own.
    if (opts.numReturns > 1) return openReturns(this.state, this.refs, this.batch, entry, id, opts.numReturns, result as ObjectRef) as unknown as ObjectRef;
    return result;
  }

  /** Sends one tick's batch (the batch calls this, one send at a time). */
  async flush({ creates, jobs, refOps, actorCreates, actorCalls, notes }: BatchContents): Promise<void> {
    // Known before anything is sent, so the commands below go out in order.
    const cpus = jobs.length >= 2 * BUNDLE_PER_CPU ? await this.clusterCpus() : 0;
    // SPREAD and node affinity pick a node's queue among the alive nodes; an impossible hard affinity fails here.
    const unplaceable = this.strategies.needsNodes(jobs) ? this.strategies.route(jobs, await this.clusterNodes().catch(() => [])) : [];
    if (unplaceable.length) jobs = jobs.filter((q) => !unplaceable.some((u) => u.job === q));
    const work: Promise<unknown>[] = [];
    // Before the jobs, and written to the socket now: their result objects and actor records (see sendFirst).
    if (creates.length || actorCreates.length) work.push(this.sendFirst(creates, actorCreates));
    for (const u of unplaceable) work.push(failPlacement(this.state, u.job, u.failure));
    const byQueue = new Map<string, QueuedJob[]>();
    for (const q of jobs) {
      const list = byQueue.get(q.queue);
      if (list) list.push(q);
      else byQueue.set(q.queue, [q]);
    }
    for (const [queue, list] of byQueue) {
      if (!this.knownShapes.has(queue)) {
        this.knownShapes.add(queue);
        // Before the shape: an agent that sees a new queue reads its constraint at once.
        const constraint = this.strategies.constraintOf(queue);
        if (constraint) work.push(this.state.redis.hset(this.state.keys.placements, queue, JSON.stringify(constraint)));
        // Registered again by the next submission if this write fails (Redis out of memory, say): node
        // agents only take work from queues they find here.
        work.push(this.state.redis.hset(this.state.keys.shapes, queue, JSON.stringify(list[0].demand)).catch((err) => {
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
          .then(() => this.state.redis.publish(this.state.keys.wakeChannel, queue)),
      );
    }
    for (const [actorId, calls] of actorCalls) work.push(this.actors.pushCalls(actorId, calls));
    // Control notes (stream credits and stops): small, and they get through when Redis is out of memory.
    for (const [inbox, note] of notes) work.push(this.state.redis.nodusControl('l', inbox, note));
    for (const part of slices(refOps)) work.push(this.state.redis.nodusRefs(this.state.keys.prefix, this.state.procId, ...part));
    try {
      await Promise.all(work);
    } catch (err) {
      // Nothing of this batch may hang: what could not be submitted fails here with the reason.
      const e = storeError(err, 0) as Error;
      const failure = failureBytes({ kind: e instanceof ObjectStoreFullError ? 'full' : 'system', task: '?', name: e.name, message: `could not submit to the cluster: ${e.message}` });
      for (const id of [...jobs.map((j) => j.id), ...[...actorCalls.values()].flat().map((c) => c[0])]) this.inbox.onCompletion(id, failure);
      throw err;
    }
  }

  /**
   * What a job needs in place before a worker may take it: the objects of its results (a task that completes
   * before its result object exists has the result dropped, and whoever reads it waits forever) and the
   * records of actors. In one pipeline, written to the socket at once (before any await): BullMQ's addBulk
   * writes a pipeline of its own straight to the socket too, whereas a command left to the connection's
   * auto-pipeline goes out a tick later, or later still while an earlier auto-pipeline awaits its reply. On a
   * busy machine a lingering worker took a job, ran it and completed it in that gap.
   */
  private async sendFirst(creates: string[], actorCreates: ActorCreate[]): Promise<void> {
    // Both commands bypass auto-pipelining (redis.ts): each is written to the socket as it is called, in
    // this order, ahead of the jobs, without building a pipeline (which copies every command defined on
    // the connection, most of a small submission's cost).
    const sent: Promise<unknown>[] = [];
    for (const part of slices(creates)) sent.push(this.state.redis.nodusCreate(this.state.keys.prefix, this.state.ownerId, this.state.procId, ...part));
    for (const c of actorCreates) sent.push(this.state.redis.nodusActorCreate(...c.args));
    await Promise.all(sent);
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
      if (part.length > 1) for (const q of part) this.state.pending.get(q.id)!.bundled = true;
      out.push({ ...part[0], data: { ...(part[0].data as TaskJob), more: part.slice(1).map((q) => q.data as TaskJob) } });
    }
    return out;
  }

  private async clusterCpus(): Promise<number> {
    const nodes = await this.clusterNodes().catch(() => [] as NodeInfo[]);
    return nodes.filter((n) => n.state === 'alive').reduce((sum, n) => sum + (n.total.CPU ?? 0), 0);
  }

  private queue(name: string): Queue {
    return this.state.queues.get(name);
  }

  async clusterNodes(maxAgeMs = NODES_TTL_MS): Promise<NodeInfo[]> {
    if (this.nodesCache && Date.now() - this.nodesCache.at < maxAgeMs) return this.nodesCache.nodes;
    const raw = await this.state.redis.hvals(this.state.keys.nodes);
    const nodes = raw.map((s) => JSON.parse(s) as NodeInfo);
    this.nodesCache = { at: Date.now(), nodes };
    return nodes;
  }

  /** Warns the submitter when no node in the cluster could ever run a task (or host an actor) of this shape. */
  private async checkFeasible(shape: string, demand: Resources, name: string): Promise<void> {
    const nodes = this.strategies.eligible(shape, await this.clusterNodes());
    if (!nodes || isFeasible(demand, nodes)) return;
    await this.state.redis.hset(this.state.keys.infeasible, shape, JSON.stringify({ demand, task: name, since: Date.now() }));
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

  /** Cancels a task this process submitted: dequeued if waiting, its worker process killed if running. */
  async cancel(given: ObjectRef, force: boolean): Promise<void> {
    checkRef(given, 'cancel()');
    // One of a task's other returns (numReturns): cancels the task.
    const of = this.state.pending.get(given.id)?.of;
    const ref = of ? { id: of } : given;
    const entry = this.state.pending.get(ref.id);
    if (!entry || entry.cancelled) return;
    if (!entry.shape) throw new ConfigError('cancel() of an actor call is not supported; kill(actor) stops the actor.');
    entry.cancelled = true;
    const failure = failureBytes(cancelledFailure(entry.name));
    if (!entry.enqueued) {
      await settleWith(this.state, ref.id, failure);
      return;
    }
    await this.batch.settled();
    await this.state.redis.set(this.state.keys.cancelMark(ref.id), '1', 'EX', 3600);
    // A bundled task's job holds other tasks too: it is skipped or stopped where it runs instead.
    const removed = !entry.bundled && (await this.queue(entry.queue ?? taskQueueName(entry.shape)).remove(ref.id).catch(() => 0));
    if (removed) await settleWith(this.state, ref.id, failure);
    else await this.state.redis.publish(this.state.keys.controlChannel, JSON.stringify({ type: 'cancel', id: ref.id, force } satisfies ControlMessage));
  }
}

function fmtResources(r: Resources): string {
  return `{${Object.entries(r)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ')}}`;
}

/** Splits a script's argument list into parts of at most `size` (even, so pairs stay together): a spread of 100k+ arguments overflows the stack. */
function slices<T>(list: T[], size = 4096): T[][] {
  const parts: T[][] = [];
  for (let i = 0; i < list.length; i += size) parts.push(list.slice(i, i + size));
  return parts;
}
