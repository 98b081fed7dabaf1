/** @module The node agent: registers a node's resources, pulls the tasks that fit them from BullMQ, runs them in worker processes. */
import { randomBytes } from 'node:crypto';
import { cpus as osCpus, hostname } from 'node:os';
import { Worker as BullWorker, Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { dispatchOrder, fits } from '../runtime/internal/policy';
import { cancelledFailure, type SerializedFailure } from '../runtime/errors';
import { crashFailure, settleBundle } from '../head/recovery';
import { failureBytes, settleCall } from '../runtime/internal/object-store';
import { Queues } from '../runtime/internal/queues';
import { connect, waitForRedis } from '../runtime/internal/redis';
import { envFailure } from '../runtime/internal/tasks';
import { PROTOCOL_VERSION, type ActorJob, type ControlMessage, type Keys, type LogMessage, type NodeInfo, type Resources, type RuntimeEnvDescriptor, type TaskJob } from '../runtime/protocol';
import { BundleSync, queueTarget } from './bundle-sync';
import { MemoryMonitor, mib } from './memory-monitor';
import { Pools } from './pools';
import { withCommands, type ObjectCommands } from '../runtime/protocol/commands';
import { MetricsPusher } from '../runtime/internal/metrics';
import { TaskObserver } from '../runtime/internal/observer';
import { nodeMetrics } from './node-metrics';
import { TaskLogStore } from './task-logs';
import { ActorHost } from './actor-host';
import { EnvCache, resolveEnvCacheOptions, type EnvCacheSettings, type ReadyEnv } from './env-cache';
import { JobSupervisor } from './job-supervisor';
import { StoreHost, resolveStoreSettings, type StoreSettings } from './store-host';
import { STORE_VAR } from '../runtime/internal/local-store';
import { WorkerExit, WorkerPool, type TaskStart, type WorkerProcess } from './worker-pool';

export interface AgentOptions {
  address: string;
  keys: Keys;
  resources: Resources;
  /** The node the head runs on (shown in status). */
  headNode?: boolean;
  logger: Logger;
  /** Labels of this node (`--labels`), matched by labelSelector. */
  labels?: Record<string, string>;
  /** @default 1000 */
  heartbeatMs?: number;
  /** How long BullMQ keeps a job's lock; renewed at half of it. A node that dies gives its jobs back after this. @default 30000 */
  lockDurationMs?: number;
  /** The runtime env cache's settings. @default from NODUS_ENV_CACHE_* and NODUS_OFFLINE */
  envCache?: EnvCacheSettings;
  /** The object store's settings; null: none (large objects in Redis). @default from NODUS_STORE_DIR, NODUS_OBJECT_STORE_BYTES ... */
  store?: StoreSettings | null;
}

interface Shape {
  /** The BullMQ queue: task.<shape> or actor.<shape>. */
  key: string;
  actor: boolean;
  demand: Resources;
  worker: BullWorker;
  /** The pool it takes from: '' for the node's, else the placement-group bundle it belongs to. */
  pool: string;
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
  /** Killed by the memory monitor: the bytes it held then. */
  oom?: number;
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
  /** The node's resources and the bundles it holds (see Pools). */
  private readonly pools: Pools;
  private readonly bundles: BundleSync;
  private readonly memory = new MemoryMonitor();
  private readonly shapes = new Map<string, Shape>();
  private readonly running = new Map<string, Running>();
  /** Per queue, the one lease that may linger when the queue runs dry (workers/linger.ts): its token. */
  private readonly lingerSlots = new Map<string, string>();
  /** Queues whose lingering lease waits for the next job now: the dispatch loop leaves them to it. */
  private readonly idleQueues = new Set<string>();
  private readonly cancelled = new Set<string>();
  private pool!: WorkerPool;
  /** Worker pools of runtime envs, by env key: workers of different envs are never shared. */
  private readonly envPools = new Map<string, { pool: WorkerPool; dir?: string }>();
  private workerEnv: NodeJS.ProcessEnv = {};
  private readonly envCache: EnvCache;
  /** Jobs whose runtime env is being set up: their locks are kept while that takes (an npm ci can take minutes). */
  private readonly preparing = new Set<{ shape: Shape; jobId: string; token: string }>();
  private actorHost!: ActorHost;
  /** The node's object store for large objects, when its folder could be made. */
  private store: StoreHost | undefined;
  /** The jobs whose drivers run on this node. */
  private jobs!: JobSupervisor;
  private readonly timers: NodeJS.Timeout[] = [];
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private tokenSeq = 0;
  private closing = false;
  private logBuffer = new Map<string, LogMessage[]>();
  private logFlush: NodeJS.Immediate | undefined;
  private readonly startedAt = Date.now();
  private loop: Promise<void> = Promise.resolve();
  /** Task events of what happens to tasks here rather than in a worker (crashes, retries, cancels), and their metrics. */
  private readonly observer: TaskObserver;
  private readonly metrics: MetricsPusher;
  /** What tasks and actors print, kept for `nodus logs`. */
  private readonly logStore: TaskLogStore;

  constructor(private readonly o: AgentOptions) {
    this.keys = o.keys;
    this.total = { ...o.resources };
    this.pools = new Pools(o.resources);
    this.redis = withCommands(connect(o.address, { name: `nodus:agent:${this.nodeId}` }));
    this.bull = connect(o.address, { blocking: true, name: `nodus:agent-bull:${this.nodeId}` });
    this.sub = connect(o.address, { blocking: true, name: `nodus:agent-sub:${this.nodeId}` });
    this.queues = new Queues(this.redis, this.keys.bullPrefix);
    this.envCache = new EnvCache({
      ...(o.envCache ?? resolveEnvCacheOptions()),
      redis: this.redis,
      keys: this.keys,
      nodeId: () => this.nodeId,
      logger: o.logger,
      inUse: (dir) => [...this.envPools.values()].some((p) => p.dir === dir && p.pool.all.size > 0) || this.actorHost?.usesDir(dir) || !!this.jobs?.usesDir(dir),
      onEvict: (dir) => {
        for (const [key, p] of this.envPools) {
          if (p.dir !== dir) continue;
          this.envPools.delete(key);
          void p.pool.close();
        }
      },
    });
    this.observer = new TaskObserver(this.redis, this.keys.prefix);
    this.logStore = new TaskLogStore(this.redis, this.keys.prefix);
    nodeMetrics(() => ({ node: this.nodeId, total: this.total, free: this.pools.node.free, workers: this.workerCount(), actors: this.actorHost?.processes ?? 0 }));
    this.metrics = new MetricsPusher(this.redis, this.keys.prefix, `agent:${process.pid}`);
    this.bundles = new BundleSync({
      redis: this.redis,
      keys: this.keys,
      pools: this.pools,
      nodeId: () => this.nodeId,
      logger: o.logger,
      // A bundle committed: open its queues. Released: close them and stop the tasks running in it.
      onChange: (released) => {
        for (const key of released) this.closeShapes((s) => s.pool === key);
        void this.loadShapes().then(() => this.wake(), () => undefined);
      },
    });
  }

  /** Its connections to Redis, for the process's lifecycle to watch (it logs their loss, and gives up at last). */
  get connections(): Redis[] {
    return [this.redis, this.bull, this.sub];
  }

  async start(): Promise<NodeInfo> {
    await waitForRedis(this.redis, this.o.address);
    const storeSettings = this.o.store === undefined ? resolveStoreSettings() : this.o.store;
    if (storeSettings) {
      try {
        this.store = await StoreHost.open(this.redis, this.keys, storeSettings, this.o.logger);
      } catch (err) {
        this.o.logger.warn({ err: (err as Error).message, dir: storeSettings.base }, 'no object store on this node (its folder cannot be made): large objects go to Redis. Set NODUS_STORE_DIR to a writable folder, or NODUS_OBJECT_STORE=0 to silence this');
      }
    }
    this.startProcesses();
    this.sub.on('message', (channel: string, msg: string) => {
      if (channel === this.jobs.channel) this.jobs.onMessage(msg);
      else if (channel === this.keys.controlChannel) {
        const m = JSON.parse(msg) as ControlMessage;
        if (m.type === 'bundles') {
          if (m.node === this.nodeId) this.bundles.sync();
        } else this.onControl(m);
      }
      else if (!this.shapes.has(msg)) void this.loadShapes().then(() => this.wake(), () => undefined);
      else this.wake();
    });
    await this.sub.subscribe(this.keys.wakeChannel, this.keys.controlChannel, this.jobs.channel);
    await this.loadShapes();
    await this.heartbeat();
    this.jobs.start();
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
    this.metrics.start();
    this.loop = this.dispatchLoop();
    this.o.logger.info({ node: this.nodeId, resources: this.total }, 'node agent started');
    return this.info();
  }

  /** The pool of worker processes and the actor host, under the current node id. */
  private startProcesses(): void {
    const cpus = Math.ceil(this.total.CPU ?? 0);
    const env: NodeJS.ProcessEnv = { ...process.env, NODUS_ADDRESS: this.o.address, NODUS_NODE_ID: this.nodeId, NODUS_NAMESPACE: this.keys.prefix };
    if (this.store) env[STORE_VAR] = JSON.stringify(this.store.info);
    else delete env[STORE_VAR];
    // A runtime env's variables are the user's; the agent's own settings for it do not leak into its workers.
    delete env.NODUS_RUNTIME_ENV;
    delete env.NODUS_ENV_DIR;
    this.workerEnv = env;
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
      prepareEnv: (desc) => this.envCache.prepare(desc),
      envVars: (ready) => this.envVars(ready),
      logger: this.o.logger,
      events: { onLog: (w, stream, text) => this.forwardLog(w, stream, text) },
      release: (demand, pool) => {
        this.pools.give(pool, demand);
        this.wake();
      },
      memory: this.memory,
      onProcessExit: freeWorker,
    });
    this.jobs = new JobSupervisor({
      redis: this.redis,
      keys: this.keys,
      address: this.o.address,
      nodeId: () => this.nodeId,
      headNode: !!this.o.headNode,
      total: this.total,
      logger: this.o.logger,
      // A job's driver holds what it asked for while it runs, as a task does.
      reserve: (demand) => {
        if (!this.pools.fits('', demand)) return false;
        this.pools.take('', demand);
        return true;
      },
      release: (demand) => {
        this.pools.give('', demand);
        this.wake();
      },
      queue: (name) => this.queue(name),
      prepare: (desc) => this.envCache.prepare(desc),
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
    await this.jobs.close();
    await this.pool.close();
    await this.closeEnvPools();
    for (let i = 0; i < 100 && this.running.size; i++) await new Promise((r) => setTimeout(r, 20));
    this.nodeId = newNodeId();
    this.pools.reset();
    // Queues of the old node id (its affinity, its bundles) are the head's to hand on now.
    this.closeShapes((s) => s.pool !== '' || isNodeQueue(s.key));
    this.startProcesses();
    await this.heartbeat();
    this.jobs.start();
    this.o.logger.warn({ old, node: this.nodeId }, 'joined again as a new node');
    this.wake();
  }

  /** Task worker processes: the node's own pool and each runtime env's. */
  private workerCount(): number {
    return (this.pool?.all.size ?? 0) + [...this.envPools.values()].reduce((n, p) => n + p.pool.all.size, 0);
  }

  private info(): NodeInfo {
    return {
      id: this.nodeId,
      host: hostname(),
      pid: process.pid,
      state: 'alive',
      total: this.total,
      // Below zero for a moment after a waiting task takes its lent CPU back: none is free then.
      free: Object.fromEntries(Object.entries(this.pools.node.free).map(([k, v]) => [k, Math.max(0, v)])),
      workers: this.workerCount() + (this.actorHost?.processes ?? 0),
      running: this.running.size,
      startedAt: this.startedAt,
      isHeadNode: this.o.headNode,
      ...(this.o.labels && Object.keys(this.o.labels).length ? { labels: this.o.labels } : {}),
      ...(this.store ? { store: this.store.info } : {}),
    };
  }

  private rejoining = false;

  private async heartbeat(): Promise<void> {
    const alive = await this.redis.nodusNodeBeat(this.keys.prefix, this.nodeId, JSON.stringify(this.info()), Date.now());
    if (alive) await Promise.all([this.actorHost.sweepKilled(), this.sweepCancelled(), this.bundles.sync()]);
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
    const [all, placements] = await Promise.all([this.redis.hgetall(this.keys.shapes), this.redis.hgetall(this.keys.placements)]);
    this.knownShapeCount = Object.keys(all).length;
    for (const [key, raw] of Object.entries(all)) {
      if (this.shapes.has(key)) continue;
      const demand = JSON.parse(raw) as Resources;
      // A constrained queue (node affinity, labels, a bundle) is opened only by the nodes it names.
      const target = queueTarget(key, placements[key], { nodeId: this.nodeId, labels: this.o.labels, pools: this.pools });
      if (!target || !fits(demand, this.pools.of(target.pool).total)) continue;
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
      this.shapes.set(key, { key, actor: key.startsWith('actor.'), demand, worker, pool: target.pool });
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
        while (!this.closing && this.shapes.get(shape.key) === shape && this.pools.fits(shape.pool, shape.demand)) {
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
          this.pools.take(shape.pool, shape.demand);
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
    let pool = this.pool;
    const env = (job.data as TaskJob | undefined)?.env;
    if (env) {
      try {
        pool = await this.envPool(shape, job, env, token);
      } catch (err) {
        await this.failSetup(shape, job, token, err).catch((e) => this.o.logger.error({ job: job.id, err: String(e) }, 'could not report a runtime env failure'));
        this.pools.give(shape.pool, shape.demand);
        this.wake();
        return;
      }
    }
    const worker = pool.acquire();
    let run: Running | undefined;
    // A task waiting in get()/wait() lends its CPU to other work, as Ray does (a task that waits on the
    // tasks it submitted would otherwise deadlock a full node); it takes it back when it goes on, and if
    // the node is then over its total, the lease ends after that task.
    const cpu = shape.demand.CPU ?? 0;
    let lent = 0;
    const onBlocked = (blocked: boolean) => {
      if (blocked && !lent && cpu > 0) {
        lent = cpu;
        this.pools.give(shape.pool, { CPU: cpu });
        this.wake();
      } else if (!blocked && lent) {
        this.pools.reclaim(shape.pool, { CPU: lent });
        lent = 0;
        if ((this.pools.of(shape.pool).free.CPU ?? 0) < 0) worker.send({ t: 'yield' });
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
      const r = run;
      // The memory monitor: a task that grows past the memory it asked for is stopped, not the node.
      if (shape.demand.memory) this.memory.watch(worker.pid, shape.demand.memory, (rss) => {
        if (run !== r) return;
        r.oom = rss;
        worker.kill('SIGKILL');
      });
      this.running.set(t.id, run);
      if (run.cancelled) worker.kill('SIGKILL');
    };
    try {
      const data = job.data as TaskJob | undefined;
      const first = { id: typeof data?.id === 'string' ? data.id : job.id!, job: job.id!, index: 0, owner: data?.owner ?? '', name: String(data?.fn?.name ?? '?') };
      const reason = await worker.lease({ queue: shape.key, job: job.asJSON(), token, linger }, first, onStart, onBlocked, () => setIdle(true));
      if (reason) this.o.logger.warn({ queue: shape.key, reason }, 'lease ended early');
      pool.release(worker);
    } catch (err) {
      if (!(err instanceof WorkerExit)) this.o.logger.error({ job: job.id, err: String(err) }, 'lease failed');
      else if (run) await this.onWorkerExit(run, err).catch((e) => this.o.logger.error({ job: run?.id, err: String(e) }, 'could not finish job'));
    } finally {
      setIdle(false);
      if (linger) this.lingerSlots.delete(shape.key);
      if (run) this.running.delete(run.id);
      if (shape.demand.memory) this.memory.unwatch(worker.pid);
      this.pools.give(shape.pool, lent ? { ...shape.demand, CPU: cpu - lent } : shape.demand);
      this.wake();
    }
  }

  /** The worker pool of a job's runtime env, set up on this node first if need be (the job's lock kept meanwhile). */
  private async envPool(shape: Shape, job: Job<TaskJob>, desc: RuntimeEnvDescriptor, token: string): Promise<WorkerPool> {
    const hold = { shape, jobId: job.id!, token };
    this.preparing.add(hold);
    try {
      const ready = await this.envCache.prepare(desc);
      let p = this.envPools.get(desc.key);
      if (!p) {
        const pool = new WorkerPool(
          // None kept warm: an env's workers start on demand and stop after idling (workers of the node's own pool are the warm ones).
          { env: this.envVars(ready), cwd: ready.dir, size: 0 },
          {
            onLog: (w, stream, text) => this.forwardLog(w, stream, text),
            onStartFailure: (w, times) => this.o.logger.error({ worker: w.id, env: desc.key, times }, 'a worker process of a runtime env died before it was ready; see its output above'),
            onWorkerExit: (w) => void this.redis.nodusFreeProc(this.keys.prefix, w.id, '0').catch(() => undefined),
          },
        );
        this.envPools.set(desc.key, (p = { pool, dir: ready.dir }));
      }
      return p.pool;
    } finally {
      this.preparing.delete(hold);
    }
  }

  /** What the worker processes of a runtime env get: the node's settings, the env's variables, where its working dir is. */
  private envVars(ready: ReadyEnv): NodeJS.ProcessEnv {
    return { ...this.workerEnv, ...ready.desc.vars, NODUS_RUNTIME_ENV: JSON.stringify(ready.desc), ...(ready.dir ? { NODUS_ENV_DIR: ready.dir } : {}) };
  }

  /** A job whose runtime env could not be set up here: each of its tasks fails with the reason (not retried: it would fail again). */
  private async failSetup(shape: Shape, job: Job<TaskJob>, token: string, err: unknown): Promise<void> {
    this.o.logger.warn({ job: job.id, err: (err as Error).message }, 'runtime env set-up failed');
    const data = job.data;
    const lock = this.keys.jobLock(shape.key, job.id!);
    for (const t of [data, ...(data.more ?? [])]) await settleCall(this.redis, this.keys, t.id, t.caller, failureBytes(envFailure(t.fn.name, err)), lock, token);
    await job.moveToCompleted(null, token, false);
  }

  private async closeEnvPools(): Promise<void> {
    const pools = [...this.envPools.values()];
    this.envPools.clear();
    await Promise.all(pools.map((p) => p.pool.close()));
  }

  /** A leased worker died while it ran `run`: report it cancelled, retry it, or report the crash. */
  private async onWorkerExit(run: Running, exit: WorkerExit): Promise<void> {
    const job = run.job ?? ((await Job.fromId(run.shape.worker, run.jobId)) as Job<TaskJob> | undefined);
    // Gone: the worker completed it and died before it said so.
    if (!job?.data) return;
    if (job.data.more?.length) {
      const ctx = { redis: this.redis, keys: this.keys, queue: (name: string) => this.queue(name) };
      let index = run.index;
      if (run.oom !== undefined) {
        // The task that grew past its memory fails; the bundle's later ones go back to the queue.
        const t = [job.data, ...job.data.more][index];
        await settleCall(this.redis, this.keys, t.id, t.caller, failureBytes(oomFailure(t.fn.name, run, this.nodeId)), this.keys.jobLock(run.shape.key, run.jobId), run.token);
        index++;
      }
      return settleBundle(ctx, run.shape.key, job, run.token, index, run.cancelled, `${exit.message}; last worker pid ${run.worker.pid} on node ${this.nodeId}`);
    }
    if (run.oom !== undefined) {
      await this.complete(run, job, failureBytes(oomFailure(job.data.fn.name, run, this.nodeId)));
      await job.moveToCompleted(null, run.token, false);
      return;
    }
    if (!run.cancelled) return this.onCrash(run, job, exit);
    const cancelled = cancelledFailure(job.data.fn.name);
    this.observer.failedOnNode(job.data.id, job.data.fn.name, this.nodeId, run.worker.id, cancelled);
    await this.complete(run, job, failureBytes(cancelled));
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
      await this.actorHost.host(job.data.actorId, shape.demand, shape.pool);
    } catch (err) {
      this.o.logger.error({ job: job.id, err: String(err) }, 'could not host actor');
      this.pools.give(shape.pool, shape.demand);
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
      this.observer.retried(data.id, this.nodeId, run.worker.id, `worker process died (${exit.message})`);
      await job.moveToFailed(new Error(`worker died: ${exit.message}`), token, false);
      return;
    }
    const failure = crashFailure(data, `The worker process running ${data.fn.name} died (${exit.message}; last ${where}) ${crashes} time${crashes > 1 ? 's' : ''}`);
    this.observer.failedOnNode(data.id, data.fn.name, this.nodeId, run.worker.id, failure);
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
    if (msg.type === 'bundles') return;
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
    const byShape = new Map<Shape, { jobId: string; token: string }[]>();
    for (const r of [...this.running.values(), ...this.preparing]) byShape.set(r.shape, [...(byShape.get(r.shape) ?? []), r]);
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
    if (w.task) this.logStore.task(w.task.id, stream, text);
    else if (w.label?.actorId) this.logStore.actor(w.label.actorId, stream, text);
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

  /** Stops taking from the queues `which` picks (a bundle released, a node id given up), and stops the tasks running from them. */
  private closeShapes(which: (s: Shape) => boolean): void {
    for (const s of [...this.shapes.values()].filter(which)) {
      this.shapes.delete(s.key);
      void s.worker.close(true).catch(() => undefined);
      for (const r of this.running.values()) {
        if (r.shape !== s || r.cancelled) continue;
        r.cancelled = true;
        r.worker.kill('SIGKILL');
      }
    }
  }

  /** Leaves the cluster: stops taking work, stops its workers, and marks the node dead. */
  async stop(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.wake();
    for (const t of this.timers) clearInterval(t);
    await this.jobs?.close();
    this.memory.stop();
    await this.actorHost?.stop();
    await this.pool?.close();
    await this.closeEnvPools();
    await this.envCache.close();
    await this.store?.close();
    await Promise.all([this.observer.flush(), this.logStore.flush(), this.metrics.stop()]);
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

/** A queue pinned to one node by affinity (`@node-…`, `@soft-node-…`). */
function isNodeQueue(queue: string): boolean {
  return /@(soft-)?node-/.test(queue);
}

/** OutOfMemoryError: the task's worker grew past the memory it asked for and was stopped. */
function oomFailure(task: string, run: { oom?: number; shape: { demand: Resources }; worker: { pid: number } }, node: string): SerializedFailure {
  const limit = run.shape.demand.memory ?? 0;
  return {
    kind: 'oom',
    task,
    name: 'OutOfMemoryError',
    message:
      `task ${task} used ${mib(run.oom ?? 0)} of memory, more than the ${mib(limit)} it asked for (memory: ${limit}), so its worker process (pid ${run.worker.pid}) on node ${node} was stopped; the node is fine. ` +
      'Ask for more with .options({ memory: <bytes> }), or make the task use less.',
  };
}
