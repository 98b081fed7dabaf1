/** @module The per-process runtime (Ray's "core worker"): one object that puts together submission, references, the inbox, actors and streams, and owns the process's connection, registration and shutdown. */
import { hostname } from 'node:os';
import type { ObjectRef } from '../object-ref';
import type { ResolvedActorOptions, ResolvedRemoteOptions, ResolvedRuntimeEnv } from '../options';
import type { DriverInfo, FunctionDescriptor, Keys, NodeInfo } from '../protocol';
import { withCommands } from '../protocol/commands';
import { JOB_ID_VAR } from '../protocol/jobs';
import { Actors } from './actors';
import { Batch } from './batch';
import { setContext, type RuntimeContext } from './global';
import { Inbox } from './inbox';
import { MetricsPusher } from './metrics';
import { TaskObserver } from './observer';
import { closeObjectConnection, openObjectConnection } from './object-connection';
import { findLocalStore, storeFromEnv, type LocalStore } from './local-store';
import { failureBytes, type CommandClient } from './object-store';
import { removeOwnedGroups } from './placement-groups';
import { Queues } from './queues';
import { connect, redact, waitForRedis } from './redis';
import { References } from './references';
import { RuntimeEnvs, type PreparedEnv } from './runtime-env';
import { StreamTable, type ProducerHost, type RefStream } from './streams';
import { Strategies } from './strategies';
import { Submitter } from './submission';
import type { ProcessState } from './tasks';

export interface ContextConfig {
  address: string;
  keys: Keys;
  role: 'driver' | 'worker';
  /** This process's id: inbox, held references, and (for a driver) owner of its objects. */
  procId: string;
  logToDriver: boolean;
  /** Called at shutdown, e.g. to stop a local cluster this driver started. */
  onShutdown?: () => Promise<void>;
  /** The job's runtime env (init's), under every task and actor this process starts. */
  runtimeEnv?: ResolvedRuntimeEnv;
  /** In a worker: the runtime env it runs in, which the tasks and actors it starts inherit. */
  inheritedEnv?: PreparedEnv;
}

/** shutdown() waits this long at most for Redis; a driver must be able to exit when its cluster is gone. */
const SHUTDOWN_REDIS_MS = 3000;
/** How often a driver says it is alive; the head frees a driver's objects after several missed beats. */
const DRIVER_HEARTBEAT_MS = 1000;
/** A task's get() or wait() that has not returned after this long lends the task's CPU (see onBlocked). */
const BLOCKED_AFTER_MS = 10;

export class CoreContext implements RuntimeContext, ProducerHost {
  readonly redis: CommandClient;
  readonly keys: Keys;
  readonly procId: string;
  readonly role: 'driver' | 'worker';
  /** Set by a worker process while a task runs, for getRuntimeContext(). */
  current: { taskId?: string; nodeId?: string } = {};
  /**
   * Set by a worker process while a task's function runs: told when the task starts and stops waiting
   * in get() or wait(), so that its node lends the task's CPU to other work meanwhile (as Ray does).
   */
  onBlocked: ((blocked: boolean) => void) | undefined;
  private waiting = 0;

  private readonly state: ProcessState;
  private readonly batch: Batch;
  private readonly refs: References;
  private readonly streams: StreamTable;
  private readonly inbox: Inbox;
  private readonly actors: Actors;
  private readonly submitter: Submitter;
  /** The runtime envs of what this process submits. */
  readonly envs: RuntimeEnvs;
  private heartbeat: NodeJS.Timeout | undefined;
  private metrics: MetricsPusher | undefined;

  private constructor(private readonly config: ContextConfig) {
    this.keys = config.keys;
    this.procId = config.procId;
    this.role = config.role;
    this.redis = withCommands(connect(config.address, { name: `nodus:${config.role}:${config.procId}` }));
    const queues = new Queues(this.redis, this.keys.bullPrefix);
    // A lost connection must not crash the process: ioredis reconnects, commands wait.
    this.redis.on('error', () => undefined);
    this.state = {
      redis: this.redis,
      objects: openObjectConnection(config.address, `nodus:${config.role}:${config.procId}:objects`),
      keys: this.keys,
      procId: this.procId,
      role: this.role,
      address: config.address,
      queues,
      observer: new TaskObserver(this.redis, this.keys.prefix),
      ownerId: config.procId,
      closed: false,
      pending: new Map(),
      completionListeners: new Set(),
      store: config.role === 'worker' ? storeFromEnv(this.redis, this.keys) : null,
    };
    // Each part gets the parts it uses, made before it; only the batch reaches up, to send through the submitter.
    this.batch = new Batch(this.state, (contents) => this.submitter.flush(contents));
    this.refs = new References(this.state, this.batch);
    this.streams = new StreamTable(this.refs, this.batch, this.keys);
    this.inbox = new Inbox(this.state, this.refs, this.streams);
    this.envs = new RuntimeEnvs(this.redis, this.keys, config.runtimeEnv, config.inheritedEnv);
    const strategies = new Strategies(this.state);
    this.actors = new Actors(this.state, this.batch, this.refs, this.streams, this.inbox, this.envs, strategies);
    this.submitter = new Submitter(this.state, this.batch, this.refs, this.streams, this.inbox, this.actors, this.envs, strategies);
  }

  /**
   * A driver uses the object store of a node on its machine (one whose store folder it can see); until one
   * is there (a cluster still starting), it looks again every 2 s, and Redis holds its large objects.
   */
  private async findStore(): Promise<void> {
    if (this.state.closed) return;
    this.state.store = await findLocalStore(this.redis, this.keys).catch(() => null);
    if (this.state.store || this.state.closed) return;
    const again = setTimeout(() => void this.findStore(), 2000);
    again.unref();
  }

  /** Root driver that owns what this process creates; a worker sets it per task. */
  get ownerId(): string {
    return this.state.ownerId;
  }

  set ownerId(id: string) {
    this.state.ownerId = id;
  }

  /** Connects to the cluster and, for a driver, registers it and starts its inbox, logs and heartbeat. */
  static async connect(config: ContextConfig): Promise<CoreContext> {
    const ctx = new CoreContext(config);
    try {
      await waitForRedis(ctx.redis, config.address);
      if (config.role === 'driver') {
        const info: DriverInfo = { id: ctx.procId, pid: process.pid, host: hostname(), startedAt: Date.now() };
        if (process.env[JOB_ID_VAR]) info.job = process.env[JOB_ID_VAR];
        await ctx.redis
          .multi()
          .hset(ctx.keys.drivers, ctx.procId, JSON.stringify(info))
          .zadd(ctx.keys.driverHeartbeats, Date.now(), ctx.procId)
          .exec();
        ctx.heartbeat = setInterval(() => {
          ctx.redis.nodusControl('z', ctx.keys.driverHeartbeats, Date.now(), ctx.procId).catch(() => undefined);
        }, DRIVER_HEARTBEAT_MS);
        ctx.heartbeat.unref();
        ctx.state.onStoreGone = () => void ctx.findStore();
        await ctx.findStore();
        ctx.inbox.startInbox();
        if (config.logToDriver) await ctx.inbox.subscribeLogs();
      }
      ctx.metrics = new MetricsPusher(ctx.redis, ctx.keys.prefix, `${config.role}:${ctx.procId}`).start();
    } catch (err) {
      ctx.redis.disconnect();
      ctx.state.objects.disconnect();
      throw err;
    }
    return ctx;
  }

  // What the public API, actor handles and worker processes call: each goes to the part that owns it.

  /** Submits a task; returns its ref at once. Bad arguments throw here, at the call site. */
  submit(fn: FunctionDescriptor, args: unknown[], opts: ResolvedRemoteOptions, generator = false): ObjectRef | RefStream<unknown> {
    return this.submitter.submit(fn, args, opts, generator);
  }

  /** Cancels a task this process submitted: dequeued if waiting, its worker process killed if running. */
  cancel(ref: ObjectRef, force: boolean): Promise<void> {
    return this.submitter.cancel(ref, force);
  }

  clusterNodes(maxAgeMs?: number): Promise<NodeInfo[]> {
    return this.submitter.clusterNodes(maxAgeMs);
  }

  /** Records task events and counts them in metrics: what workers call as tasks start and end. */
  get observer(): TaskObserver {
    return this.state.observer;
  }

  /** Waits until everything this process has queued so far has reached Redis. */
  /** The object store of this process's node, or null (large objects then go to Redis). */
  get store(): LocalStore | null {
    return this.state.store;
  }

  settled(): Promise<void> {
    return this.batch.settled();
  }

  refFromWire(id: string): ObjectRef {
    return this.refs.refFromWire(id);
  }

  /** put(value): stores a value and returns a ref to it (see References.put for why it is not async). */
  put<T>(value: T): Promise<ObjectRef<T>> {
    return this.refs.put(value);
  }

  /** get(ref) or get([refs]): waits for values; throws the task's error, GetTimeoutError or ObjectLostError. */
  async get(input: unknown, timeoutMs: number | undefined): Promise<unknown> {
    return this.blocked(this.refs.getValues(input, timeoutMs));
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

  /** Resolves when `numReturns` refs are ready or the timeout passes; keeps the input order in both lists. */
  wait(refs: ObjectRef[], numReturns: number, timeoutMs: number | undefined): Promise<[ObjectRef[], ObjectRef[]]> {
    return this.blocked(this.refs.waitFor(refs, numReturns, timeoutMs));
  }

  /** For tests and status: how many refs this process holds. */
  heldCount(): number {
    return this.refs.heldCount();
  }

  createActor(cls: FunctionDescriptor, args: unknown[], opts: ResolvedActorOptions, generators: string[]): unknown {
    return this.actors.createActor(cls, args, opts, generators);
  }

  submitActorCall(actorId: string, method: string, args: unknown[], generator: boolean): unknown {
    return this.actors.submitActorCall(actorId, method, args, generator);
  }

  getActor(name: string, namespace: string): Promise<unknown> {
    return this.actors.getActor(name, namespace);
  }

  /** Kills an actor's process; without a restart it is dead when this resolves. */
  killActor(actorId: string, noRestart: boolean, reason?: string): Promise<void> {
    return this.actors.killActor(actorId, noRestart, reason);
  }

  startInbox(): void {
    this.inbox.startInbox();
  }

  registerProducer(streamId: string, handlers: { credit(n: number): void; stop(): void }): void {
    this.streams.registerProducer(streamId, handlers);
  }

  unregisterProducer(streamId: string): void {
    this.streams.unregisterProducer(streamId);
  }

  get isClosed(): boolean {
    return this.state.closed;
  }

  /**
   * Frees what this process owns and holds, and closes its connections. Bounded: when Redis does not answer
   * within SHUTDOWN_REDIS_MS it says what it could not release and returns (the head frees a gone driver's objects).
   */
  async shutdown(): Promise<void> {
    if (this.state.closed) return;
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
    await step('send the last submissions', () => Promise.all([this.batch.flushing, this.refs.lastPut, this.state.observer.flush(), this.metrics?.stop()]));
    if (this.role === 'driver') {
      // Actors die with the driver that created them, unless detached.
      await step("stop this driver's actors", async () => {
        const owned = await this.redis.smembers(this.keys.ownedActors(this.procId));
        await Promise.all(owned.map((id) => this.killActor(id, true, `its driver ${this.procId} shut down`)));
      });
      // So do its placement groups (Ray removes a job's groups when it ends).
      await step("remove this driver's placement groups", () => removeOwnedGroups(this));
    }
    this.state.closed = true;
    clearInterval(this.heartbeat);
    await step(`free the objects this ${this.role} owns and holds`, async () => {
      await this.redis.nodusFreeProc(this.keys.prefix, this.procId, this.role === 'driver' ? '1' : '0');
      if (this.role === 'driver') await this.redis.multi().hdel(this.keys.drivers, this.procId).zrem(this.keys.driverHeartbeats, this.procId).exec();
    });
    for (const [id, entry] of this.state.pending) {
      entry.done.resolve();
      for (const listener of this.state.completionListeners) listener(id);
    }
    this.state.pending.clear();
    this.streams.endAll(failureBytes({ kind: 'system', task: '?', name: 'NotInitializedError', message: 'the runtime was shut down' }));
    await step('close the task queues', () => this.state.queues.close());
    this.actors.close();
    this.inbox.close();
    if (missed.length && this.role === 'driver') {
      console.warn(
        `[nodus] shutdown(): the cluster's Redis at ${redact(this.config.address)} did not answer within ${SHUTDOWN_REDIS_MS / 1000} s, so it could not ${missed.join(', ')}. ` +
          `The head does that once it sees this driver gone (${DRIVER_HEARTBEAT_MS * 10 / 1000} s without a heartbeat).`,
      );
    }
    await closeObjectConnection(this.state.objects, !missed.length);
    if (missed.length) this.redis.disconnect();
    else await this.redis.quit().catch(() => this.redis.disconnect());
    setContext(undefined);
    await this.config.onShutdown?.();
  }

  /** The cluster's Redis address this process is connected to. */
  get address(): string {
    return this.config.address;
  }
}
