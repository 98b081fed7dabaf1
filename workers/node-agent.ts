/** @module The node agent: registers a node's resources, pulls the tasks that fit them from BullMQ, runs them in worker processes. */
import { randomBytes } from 'node:crypto';
import { cpus as osCpus, hostname } from 'node:os';
import { Worker as BullWorker, Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { dispatchOrder, fits, give, reclaim, take } from '../runtime/internal/policy';
import { cancelledFailure } from '../runtime/errors';
import { crashFailure, settleBundle } from '../head/recovery';
import { failureBytes, settleCall } from '../runtime/internal/object-store';
import { Queues } from '../runtime/internal/queues';
import { connect, waitForRedis } from '../runtime/internal/redis';
import { PROTOCOL_VERSION, type ActorJob, type ControlMessage, type Keys, type LogMessage, type NodeInfo, type Resources, type TaskJob } from '../runtime/protocol';
import { withCommands, type ObjectCommands } from '../runtime/protocol/commands';
import { ActorHost } from './actor-host';
import { WorkerExit, WorkerPool, type TaskStart, type WorkerProcess } from './worker-pool';

export interface AgentOptions {
  address: string;
  keys: Keys;
  resources: Resources;
  /** The node the head runs on (shown in status). */
  headNode?: boolean;
  logger: Logger;
  /** @default 1000 */
  heartbeatMs?: number;
  /** How long BullMQ keeps a job's lock; renewed at half of it. A node that dies gives its jobs back after this. @default 30000 */
  lockDurationMs?: number;
}

interface Shape {
  /** The BullMQ queue: task.<shape> or actor.<shape>. */
  key: string;
  actor: boolean;
  demand: Resources;
  worker: BullWorker;
}

/** A task under way on this node (one of a lease's). */
interface Running {
  /** The task's id. */
  id: string;
  /** Its job's id, and its place in the job (a bundle runs several tasks in order). */
  jobId: string;
  index: number;
  token: string;
  shape: Shape;
  worker: WorkerProcess;
  /** The job as fetched, for the lease's first job; the others are read again if their worker dies. */
  job?: Job<TaskJob>;
  cancelled: boolean;
}

function newNodeId(): string {
  return `node-${randomBytes(4).toString('hex')}`;
}

/** Idle agents look for work this often even without a wake-up message (one may be missed on reconnect). */
const POLL_MS = 1000;

export class NodeAgent {
  /** Changes when the node, declared dead by the head, joins again. */
  nodeId = newNodeId();
  private readonly redis: Redis & ObjectCommands;
  private readonly bull: Redis;
  private readonly sub: Redis;
  private readonly keys: Keys;
  private readonly total: Resources;
  private free: Resources;
  private readonly shapes = new Map<string, Shape>();
  private readonly running = new Map<string, Running>();
  /** Per queue, the one lease that may linger when the queue runs dry (workers/linger.ts): its token. */
  private readonly lingerSlots = new Map<string, string>();
  /** Queues whose lingering lease waits for the next job now: the dispatch loop leaves them to it. */
  private readonly idleQueues = new Set<string>();
  private readonly cancelled = new Set<string>();
  private pool!: WorkerPool;
  private actorHost!: ActorHost;
  private readonly timers: NodeJS.Timeout[] = [];
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private tokenSeq = 0;
  private closing = false;
  private logBuffer = new Map<string, LogMessage[]>();
  private logFlush: NodeJS.Immediate | undefined;
  private readonly startedAt = Date.now();
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly o: AgentOptions) {
    this.keys = o.keys;
    this.total = { ...o.resources };
    this.free = { ...o.resources };
    this.redis = withCommands(connect(o.address, { name: `nodus:agent:${this.nodeId}` }));
    this.bull = connect(o.address, { blocking: true, name: `nodus:agent-bull:${this.nodeId}` });
    this.sub = connect(o.address, { blocking: true, name: `nodus:agent-sub:${this.nodeId}` });
    this.queues = new Queues(this.redis, this.keys.bullPrefix);
  }

  /** Its connections to Redis, for the process's lifecycle to watch (it logs their loss, and gives up at last). */
  get connections(): Redis[] {
    return [this.redis, this.bull, this.sub];
  }

  async start(): Promise<NodeInfo> {
    await waitForRedis(this.redis, this.o.address);
    this.startProcesses();
    this.sub.on('message', (channel: string, msg: string) => {
      if (channel === this.keys.controlChannel) this.onControl(JSON.parse(msg) as ControlMessage);
      else if (!this.shapes.has(msg)) void this.loadShapes().then(() => this.wake(), () => undefined);
      else this.wake();
    });
    await this.sub.subscribe(this.keys.wakeChannel, this.keys.controlChannel);
    await this.loadShapes();
    await this.heartbeat();
    const hb = setInterval(() => void this.heartbeat().catch(() => undefined), this.o.heartbeatMs ?? 1000);
    const lockMs = this.o.lockDurationMs ?? 30_000;
    const locks = setInterval(() => void this.extendLocks(lockMs).catch(() => undefined), lockMs / 2);
    // The poll also picks up queues this node missed the wake-up message of (pub/sub is not durable).
    const poll = setInterval(() => {
      void this.redis
        .hlen(this.keys.shapes)
        .then((n) => (n !== this.knownShapeCount ? this.loadShapes() : undefined))
        .catch(() => undefined)
        .finally(() => this.wake());
    }, POLL_MS);
    this.timers.push(hb, locks, poll);
    this.loop = this.dispatchLoop();
    this.o.logger.info({ node: this.nodeId, resources: this.total }, 'node agent started');
    return this.info();
  }

  /** The pool of worker processes and the actor host, under the current node id. */
  private startProcesses(): void {
    const cpus = Math.ceil(this.total.CPU ?? 0);
    const env = { ...process.env, NODUS_ADDRESS: this.o.address, NODUS_NODE_ID: this.nodeId, NODUS_NAMESPACE: this.keys.prefix };
    const freeWorker = (w: WorkerProcess) => void this.redis.nodusFreeProc(this.keys.prefix, w.id, '0').catch(() => undefined);
    this.pool = new WorkerPool(
      // One warm worker per CPU, but not more than the machine has cores: more start on demand.
      { env, size: Math.max(1, Math.min(cpus, osCpus().length)) },
      {
        onLog: (w, stream, text) => this.forwardLog(w, stream, text),
        onStartFailure: (w, times) => this.o.logger.error({ worker: w.id, times }, 'a worker process died before it was ready; see its output above'),
        // A dead worker's references would otherwise be held forever.
        onWorkerExit: freeWorker,
      },
    );
    this.actorHost = new ActorHost({
      redis: this.redis,
      keys: this.keys,
      nodeId: () => this.nodeId,
      env,
      logger: this.o.logger,
      events: { onLog: (w, stream, text) => this.forwardLog(w, stream, text) },
      release: (demand) => {
        this.free = give(this.free, demand, this.total);
        this.wake();
      },
      onProcessExit: freeWorker,
    });
  }

  /**
   * The head declared this node dead (it missed heartbeats: a pause, a partition) and gave its tasks
   * and actors to other nodes. Drop all of it and join again as a new node, as Ray does.
   */
  private async rejoin(): Promise<void> {
    const old = this.nodeId;
    this.o.logger.warn({ node: old }, 'this node was declared dead by the head; stopping its work and joining again as a new node');
    await this.actorHost.abandon();
    await this.pool.close();
    for (let i = 0; i < 100 && this.running.size; i++) await new Promise((r) => setTimeout(r, 20));
    this.nodeId = newNodeId();
    this.free = { ...this.total };
    this.startProcesses();
    await this.heartbeat();
    this.o.logger.warn({ old, node: this.nodeId }, 'joined again as a new node');
    this.wake();
  }

  private info(): NodeInfo {
    return {
      id: this.nodeId,
      host: hostname(),
      pid: process.pid,
      state: 'alive',
      total: this.total,
      // Below zero for a moment after a waiting task takes its lent CPU back: none is free then.
      free: Object.fromEntries(Object.entries(this.free).map(([k, v]) => [k, Math.max(0, v)])),
      workers: (this.pool?.all.size ?? 0) + (this.actorHost?.processes ?? 0),
      running: this.running.size,
      startedAt: this.startedAt,
      isHeadNode: this.o.headNode,
    };
  }

  private rejoining = false;

  private async heartbeat(): Promise<void> {
    const alive = await this.redis.nodusNodeBeat(this.keys.prefix, this.nodeId, JSON.stringify(this.info()), Date.now());
    if (alive) await Promise.all([this.actorHost.sweepKilled(), this.sweepCancelled()]);
    if (alive || this.rejoining || this.closing) return;
    this.rejoining = true;
    try {
      await this.rejoin();
    } finally {
      this.rejoining = false;
    }
  }

  /** Opens a BullMQ worker (manual fetching) for each shape of task this node could ever run. */
  private knownShapeCount = 0;

  private async loadShapes(): Promise<void> {
    const all = await this.redis.hgetall(this.keys.shapes);
    this.knownShapeCount = Object.keys(all).length;
    for (const [key, raw] of Object.entries(all)) {
      if (this.shapes.has(key)) continue;
      const demand = JSON.parse(raw) as Resources;
      if (!fits(demand, this.total)) continue;
      const worker = new BullWorker(key, null, {
        connection: this.bull,
        prefix: this.keys.bullPrefix,
        autorun: false,
        lockDuration: this.o.lockDurationMs ?? 30_000,
        stalledInterval: Math.max(1000, (this.o.lockDurationMs ?? 30_000) / 2),
        // Retries after a dead node are counted against maxRetries by attempts, not by stalls.
        maxStalledCount: 1000,
      });
      worker.on('error', (err) => this.o.logger.debug({ err: String(err) }, 'bullmq worker error'));
      void worker.startStalledCheckTimer();
      this.shapes.set(key, { key, actor: key.startsWith('actor.'), demand, worker });
      this.o.logger.info({ queue: key }, 'taking work from a new queue');
    }
  }

  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /**
   * Offers free resources to each shape's queue, largest demands first, and takes
   * one job at a time while it fits: a node never holds more than it has.
   */
  private async dispatchLoop(): Promise<void> {
    while (!this.closing) {
      this.woken = false;
      let took = false;
      for (const shape of dispatchOrder([...this.shapes.values()])) {
        // An idle leased worker of this queue takes its next job itself, one hop sooner than a new lease;
        // once it has, it says so ('start'), and this loop runs again for the jobs after it.
        if (this.idleQueues.has(shape.key)) continue;
        while (!this.closing && fits(shape.demand, this.free)) {
          const token = `${this.nodeId}:${++this.tokenSeq}`;
          let job: Job<TaskJob> | undefined;
          try {
            job = (await shape.worker.getNextJob(token, { block: false })) as Job<TaskJob> | undefined;
          } catch (err) {
            this.o.logger.debug({ err: String(err) }, 'fetch failed');
          }
          if (!job) break;
          // A waiting task can take its lent CPU back while the fetch is under way: then the node runs
          // over its total for a moment, as after any reclaim, and takes nothing more until it is back.
          this.free = fits(shape.demand, this.free) ? take(this.free, shape.demand) : reclaim(this.free, shape.demand);
          took = true;
          if (shape.actor) void this.hostActor(shape, job as unknown as Job<ActorJob>, token);
          else void this.runLease(shape, job, token);
        }
      }
      if (!took && !this.woken && !this.closing) await new Promise<void>((r) => (this.wakeUp = r));
      this.wakeUp = undefined;
    }
  }

  /**
   * Leases a worker for the job just taken: it runs it, then the next jobs of the same queue, each
   * fetched as the one before completes, until the queue is empty; the lease holds the shape's
   * resources all along. The agent follows which task runs (to cancel it, or to retry it when the
   * process dies) but takes no part in running or completing them.
   */
  private async runLease(shape: Shape, job: Job<TaskJob>, token: string): Promise<void> {
    const worker = this.pool.acquire();
    let run: Running | undefined;
    // A task waiting in get()/wait() lends its CPU to other work, as Ray does (a task that waits on the
    // tasks it submitted would otherwise deadlock a full node); it takes it back when it goes on, and if
    // the node is then over its total, the lease ends after that task.
    const cpu = shape.demand.CPU ?? 0;
    let lent = 0;
    const onBlocked = (blocked: boolean) => {
      if (blocked && !lent && cpu > 0) {
        lent = cpu;
        this.free = give(this.free, { CPU: cpu }, this.total);
        this.wake();
      } else if (!blocked && lent) {
        this.free = reclaim(this.free, { CPU: lent });
        lent = 0;
        if ((this.free.CPU ?? 0) < 0) worker.send({ t: 'yield' });
      }
    };
    // One lease per queue on this node may linger: more would all wake for each job and find it taken.
    const linger = !this.lingerSlots.has(shape.key);
    if (linger) this.lingerSlots.set(shape.key, token);
    const setIdle = (now: boolean) => {
      if (!linger || this.idleQueues.has(shape.key) === now) return;
      if (now) this.idleQueues.add(shape.key);
      else {
        this.idleQueues.delete(shape.key);
        this.wake();
      }
    };
    const onStart = (t: TaskStart) => {
      setIdle(false);
      if (run) this.running.delete(run.id);
      run = { id: t.id, jobId: t.job, index: t.index, token, shape, worker, job: t.job === job.id ? job : undefined, cancelled: this.cancelled.has(t.id) };
      this.running.set(t.id, run);
      if (run.cancelled) worker.kill('SIGKILL');
    };
    try {
      const data = job.data as TaskJob | undefined;
      const first = { id: typeof data?.id === 'string' ? data.id : job.id!, job: job.id!, index: 0, owner: data?.owner ?? '', name: String(data?.fn?.name ?? '?') };
      const reason = await worker.lease({ queue: shape.key, job: job.asJSON(), token, linger }, first, onStart, onBlocked, () => setIdle(true));
      if (reason) this.o.logger.warn({ queue: shape.key, reason }, 'lease ended early');
      this.pool.release(worker);
    } catch (err) {
      if (!(err instanceof WorkerExit)) this.o.logger.error({ job: job.id, err: String(err) }, 'lease failed');
      else if (run) await this.onWorkerExit(run, err).catch((e) => this.o.logger.error({ job: run?.id, err: String(e) }, 'could not finish job'));
    } finally {
      setIdle(false);
      if (linger) this.lingerSlots.delete(shape.key);
      if (run) this.running.delete(run.id);
      this.free = give(this.free, lent ? { ...shape.demand, CPU: cpu - lent } : shape.demand, this.total);
      this.wake();
    }
  }

  /** A leased worker died while it ran `run`: report it cancelled, retry it, or report the crash. */
  private async onWorkerExit(run: Running, exit: WorkerExit): Promise<void> {
    const job = run.job ?? ((await Job.fromId(run.shape.worker, run.jobId)) as Job<TaskJob> | undefined);
    // Gone: the worker completed it and died before it said so.
    if (!job?.data) return;
    if (job.data.more?.length) {
      const ctx = { redis: this.redis, keys: this.keys, queue: (name: string) => this.queue(name) };
      return settleBundle(ctx, run.shape.key, job, run.token, run.index, run.cancelled, `${exit.message}; last worker pid ${run.worker.pid} on node ${this.nodeId}`);
    }
    if (!run.cancelled) return this.onCrash(run, job, exit);
    await this.complete(run, job, failureBytes(cancelledFailure(job.data.fn.name)));
    await job.moveToCompleted(null, run.token, false);
  }

  /** Queues to put tasks back in (split out of a bundle after a crash). */
  private readonly queues: Queues;

  private queue(name: string): Queue {
    return this.queues.get(name);
  }

  /** An actor creation: the actor keeps the resources just taken until it is dead for good. */
  private async hostActor(shape: Shape, job: Job<ActorJob>, token: string): Promise<void> {
    try {
      await job.moveToCompleted(null, token, false);
      if (job.data?.v !== PROTOCOL_VERSION || typeof job.data.actorId !== 'string') throw new Error('malformed actor job');
      await this.actorHost.host(job.data.actorId, shape.demand);
    } catch (err) {
      this.o.logger.error({ job: job.id, err: String(err) }, 'could not host actor');
      this.free = give(this.free, shape.demand, this.total);
      this.wake();
    }
  }

  /** The worker process died mid-task: run it again elsewhere while maxRetries allows, else report WorkerCrashedError. */
  private async onCrash(run: Running, job: Job<TaskJob>, exit: WorkerExit): Promise<void> {
    const { token } = run;
    const data = job.data;
    const crashes = job.attemptsMade + (data.retried ?? 0) + 1;
    const where = `worker pid ${run.worker.pid} on node ${this.nodeId}`;
    if (crashes <= data.maxRetries) {
      this.o.logger.warn({ task: data.fn.name, id: data.id, crashes }, `worker died (${exit.message}); retrying`);
      this.forward(data.owner, { prefix: `(${data.fn.name} ${where})`, stream: 'stderr', text: `worker process died (${exit.message}); retrying the task (${crashes} of ${data.maxRetries} retries used)\n` });
      await job.moveToFailed(new Error(`worker died: ${exit.message}`), token, false);
      return;
    }
    const failure = crashFailure(data, `The worker process running ${data.fn.name} died (${exit.message}; last ${where}) ${crashes} time${crashes > 1 ? 's' : ''}`);
    await this.complete(run, job, failureBytes(failure));
    await job.moveToCompleted(null, token, false);
  }

  /** Stores a failure and tells the caller, in one Lua command — only while this node holds the job's lock. */
  private async complete(run: Running, job: Job<TaskJob>, value: Buffer): Promise<void> {
    const data = job.data;
    const done = await settleCall(this.redis, this.keys, data.id, data.caller, value, this.keys.jobLock(run.shape.key, run.jobId), run.token);
    if (done === -1) this.o.logger.warn({ task: data.fn.name, id: data.id }, 'result dropped: this node lost the job (it was declared dead and the task given to another node)');
  }

  private onControl(msg: ControlMessage): void {
    if (msg.type === 'kill') {
      if (this.actorHost.kill(msg.actorId)) this.o.logger.info({ actor: msg.actorId, noRestart: msg.noRestart }, 'killing actor process');
      return;
    }
    this.cancelled.add(msg.id);
    // Bounded memory: cancels are rare, and a retried task re-checks Redis anyway.
    if (this.cancelled.size > 10_000) this.cancelled.delete(this.cancelled.values().next().value!);
    const run = this.running.get(msg.id);
    if (run) {
      run.cancelled = true;
      run.worker.kill('SIGKILL');
    }
  }

  /** Cancels running tasks whose cancel message this node missed (pub/sub is not durable); called with each heartbeat. */
  private async sweepCancelled(): Promise<void> {
    const runs = [...this.running.values()].filter((r) => !r.cancelled);
    if (!runs.length) return;
    const pipe = this.redis.pipeline();
    for (const r of runs) pipe.exists(this.keys.cancelMark(r.id));
    const res = (await pipe.exec()) ?? [];
    res.forEach(([, n], i) => {
      if (n) this.onControl({ type: 'cancel', id: runs[i].id, force: true });
    });
  }

  private async extendLocks(durationMs: number): Promise<void> {
    const byShape = new Map<Shape, Running[]>();
    for (const r of this.running.values()) byShape.set(r.shape, [...(byShape.get(r.shape) ?? []), r]);
    for (const [shape, runs] of byShape) {
      await this.redis.nodusExtendLocks(`${this.keys.bullPrefix}:${shape.key}`, durationMs, ...runs.flatMap((r) => [r.jobId, r.token]));
    }
  }

  private forwardLog(w: WorkerProcess, stream: 'stdout' | 'stderr', text: string): void {
    const to = w.task ?? w.label;
    if (!to) {
      if (text.trim()) this.o.logger.info({ worker: w.id, pid: w.pid, stream }, text.trimEnd());
      return;
    }
    this.forward(to.owner, { prefix: `(${to.name} pid=${w.pid} node=${this.nodeId})`, stream, text });
  }

  /** Batches log lines per driver into one PUBLISH per tick. */
  private forward(owner: string, msg: LogMessage): void {
    const list = this.logBuffer.get(owner);
    if (list) list.push(msg);
    else this.logBuffer.set(owner, [msg]);
    this.logFlush ??= setImmediate(() => {
      this.logFlush = undefined;
      const buf = this.logBuffer;
      this.logBuffer = new Map();
      for (const [driver, msgs] of buf) void this.redis.publish(this.keys.logs(driver), JSON.stringify(msgs)).catch(() => undefined);
    });
  }

  /** Leaves the cluster: stops taking work, stops its workers, and marks the node dead. */
  async stop(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.wake();
    for (const t of this.timers) clearInterval(t);
    await this.actorHost?.stop();
    await this.pool?.close();
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, 1000))]);
    await Promise.all([...this.shapes.values()].map((s) => s.worker.close(true).catch(() => undefined)));
    await this.queues.close();
    const dead: NodeInfo = { ...this.info(), state: 'dead', diedAt: Date.now(), deathReason: 'stopped', running: 0, free: {} };
    await this.redis
      .multi()
      .hset(this.keys.nodes, this.nodeId, JSON.stringify(dead))
      .zrem(this.keys.nodeHeartbeats, this.nodeId)
      .exec()
      .catch(() => undefined);
    this.sub.disconnect();
    this.bull.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
