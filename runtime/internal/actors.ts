/** @module A driver's (or task's) side of actors: creating one, calling its methods in order, finding one by name, killing one. */
import { ActorHandleBase, makeHandle } from '../actor';
import { ConfigError, NotInitializedError } from '../errors';
import { isObjectRef } from '../object-ref';
import type { ResolvedActorOptions } from '../options';
import { PROTOCOL_VERSION, actorQueueName, shapeKey, type ActorCall, type ActorJob, type ActorRecord, type FunctionDescriptor } from '../protocol';
import { actorFailure, diedFailure, endActor, killActor } from './actor-lifecycle';
import { ActorChannels } from './actor-channels';
import type { Batch } from './batch';
import type { Inbox } from './inbox';
import type { Strategies } from './strategies';
import { failureBytes, newId } from './object-store';
import { cancelOwnedTasks } from './owned-tasks';
import type { References } from './references';
import { envModulePath, type PreparedEnv, type RuntimeEnvs } from './runtime-env';
import { encode } from './serialization';
import type { StreamTable } from './streams';
import { deferred, envFailure, settleWith, sleep, systemFailure, type PendingTask, type ProcessState, type QueuedJob } from './tasks';

/** Calls to one actor wait here while an earlier one waits for its arguments, to keep their order. */
interface ActorLine {
  blocked: boolean;
  waiting: { call: ActorCall; deps: string[]; name: string }[];
}

export class Actors {
  private readonly actorLines = new Map<string, ActorLine>();
  private readonly channels: ActorChannels;

  constructor(
    private readonly state: ProcessState,
    private readonly batch: Batch,
    private readonly refs: References,
    private readonly streams: StreamTable,
    private readonly inbox: Inbox,
    private readonly envs: RuntimeEnvs,
    private readonly strategies: Strategies,
  ) {
    this.channels = new ActorChannels(state, (id, bytes) => this.inbox.onCompletion(id, bytes));
  }

  /** Closes the direct channels to actors (at shutdown). */
  close(): void {
    this.channels.close();
  }

  /** Creates an actor: its record and name at once (in this tick's batch), its placement once its arguments are ready. */
  createActor(cls: FunctionDescriptor, args: unknown[], opts: ResolvedActorOptions, generators: string[]): unknown {
    if (this.state.closed) throw new NotInitializedError('the runtime was shut down: call init() again before creating actors.');
    const enc = encode(args, `argument of ${cls.name}.remote()`);
    const actorId = newId();
    const keepAlive: unknown[] = [...args];
    const deps = args.filter(isObjectRef).map((r) => r.id);
    const packed = this.refs.packArgs(enc, keepAlive, deps);
    // Its runtime env: ready now, or once its working dir is shipped (the placement waits for it).
    const env = this.envs.resolve(opts.runtimeEnv);
    const root = env instanceof Promise ? this.envs.rootOf(opts.runtimeEnv) : env?.root;
    const record: ActorRecord = {
      id: actorId,
      cls: cls.name,
      module: envModulePath(cls.module, root),
      key: cls.key,
      args: packed.args ?? '',
      argsRef: packed.argsRef ?? '',
      owner: this.state.ownerId,
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
      env: env && !(env instanceof Promise) ? JSON.stringify(env.desc) : '',
      placement: opts.placement ? JSON.stringify(opts.placement) : '',
      pg: opts.placement?.kind === 'bundle' ? opts.placement.pg : '',
      retryExceptions: opts.retryExceptions ? JSON.stringify(opts.retryExceptions) : '',
    };
    const taken = actorFailure(
      `cannot create actor ${cls.name}: the name '${opts.name}' is taken in namespace '${opts.namespace}'. ` +
        `Use getActor('${opts.name}', { namespace: '${opts.namespace}' }) to reach the existing one, or choose another name.`,
    );
    const fields = Object.entries(record).flat();
    this.batch.actorCreates.push({
      args: [this.state.keys.prefix, actorId, opts.name ? `${opts.namespace}/${opts.name}` : '', taken, record.detached, this.state.ownerId, ...fields],
    });
    const shape = shapeKey(opts.demand);
    const entry: PendingTask = { done: deferred(), name: cls.name, shape, args: keepAlive, enqueued: false, cancelled: false };
    const data: ActorJob = { v: PROTOCOL_VERSION, actorId };
    const queued: QueuedJob = { queue: actorQueueName(shape), demand: opts.demand, name: cls.name, id: actorId, data, attempts: 1 };
    // An actor's creation holds no pending entry: its "completion" is the actor going alive.
    const place = (ready: PreparedEnv | undefined) => {
      if (ready) queued.queue = actorQueueName(shape, ready.desc.key);
      // A placement constrains the env's queue (or the plain one).
      this.strategies.place(queued, opts.placement);
      if (!deps.length) this.batch.enqueue(entry, queued);
      else void this.refs.enqueueWhenReady(entry, queued, deps);
      this.batch.scheduleFlush();
    };
    if (!(env instanceof Promise)) place(env);
    else void this.placeWhenShipped(actorId, cls.name, env, place);
    this.batch.scheduleFlush();
    return makeHandle(new ActorHandleBase(actorId, cls.name, generators));
  }

  /** An actor whose working dir is being shipped: its record gets the env, then it is placed; if shipping fails it is dead. */
  private async placeWhenShipped(actorId: string, cls: string, env: Promise<PreparedEnv>, place: (ready: PreparedEnv) => void): Promise<void> {
    try {
      const ready = await env;
      // After its record is written (this tick's batch), so that the env is not overwritten.
      await this.batch.settled();
      await this.state.redis.hset(this.state.keys.actor(actorId), 'env', JSON.stringify(ready.desc));
      place(ready);
    } catch (err) {
      if (this.state.closed) return;
      const f = envFailure(cls, err);
      await this.batch.settled().catch(() => undefined);
      await endActor(this.state.redis, this.state.keys, actorId, 'dead', actorFailure(`actor ${cls} (${actorId}) is dead: its runtime env could not be made: ${f.message}`, f), 0).catch(() => undefined);
    }
  }

  /** Calls a method: calls from this process to one actor reach its mailbox in the order they were made. */
  submitActorCall(actorId: string, method: string, args: unknown[], generator: boolean): unknown {
    if (this.state.closed) throw new NotInitializedError('the runtime was shut down: call init() again before calling actors.');
    const name = method;
    const enc = encode(args, `argument of ${method}.remote()`);
    const id = newId();
    const entry: PendingTask = { done: deferred(), name, shape: '', args, enqueued: true, cancelled: false };
    this.state.pending.set(id, entry);
    let result: unknown;
    if (generator) result = this.streams.open(id);
    else result = this.refs.makeRef(id, true);
    this.inbox.startInbox();
    const deps = args.filter(isObjectRef).map((r) => r.id);
    const packed = this.refs.packArgs(enc, entry.args, deps);
    const call: ActorCall = [id, method, packed.bytes, packed.argsRef, this.state.procId, this.state.ownerId, generator, 0];
    let line = this.actorLines.get(actorId);
    // A sync-style call (nothing else of this process under way at that actor) goes over the direct
    // channel when there is one (actor-channels.ts); the actor creates its result object then.
    const direct = !generator && !deps.length && !line && packed.argsRef === null && this.channels.trySend(actorId, id, encode(call).bytes);
    this.channels.track(actorId, id);
    if (direct) return result;
    if (!generator) this.batch.creates.push(id);
    if (!deps.length && !line?.blocked) {
      this.queueCall(actorId, call);
    } else {
      if (!line) this.actorLines.set(actorId, (line = { blocked: false, waiting: [] }));
      line.waiting.push({ call, deps, name });
      if (!line.blocked) void this.drainLine(actorId, line);
    }
    this.batch.scheduleFlush();
    return result;
  }

  private queueCall(actorId: string, call: ActorCall): void {
    const list = this.batch.actorCalls.get(actorId);
    if (list) list.push(call);
    else this.batch.actorCalls.set(actorId, [call]);
    this.batch.scheduleFlush();
  }

  private async drainLine(actorId: string, line: ActorLine): Promise<void> {
    line.blocked = true;
    try {
      while (line.waiting.length) {
        const next = line.waiting[0];
        let failure: Buffer | null = null;
        for (const dep of next.deps) {
          failure = await this.refs.dependencyFailure(dep).catch((err) => failureBytes(systemFailure(next.name, err)));
          if (failure) break;
        }
        line.waiting.shift();
        if (failure) await settleWith(this.state, next.call[0], failure);
        else this.queueCall(actorId, next.call);
      }
    } finally {
      line.blocked = false;
      this.actorLines.delete(actorId);
    }
  }

  /** Pushes calls to a mailbox; if the actor is dead they fail at once with its cause. */
  async pushCalls(actorId: string, calls: ActorCall[]): Promise<void> {
    const [state, cause] = await this.state.redis.nodusActorCall(this.state.keys.prefix, actorId, ...calls.map((c) => encode(c).bytes));
    if (state !== 'dead') return;
    const failure = failureBytes(diedFailure(actorId, cause));
    await Promise.all(calls.map((c) => settleWith(this.state, c[0], failure)));
  }

  async getActor(name: string, namespace: string): Promise<unknown> {
    // An actor this process just created must be findable by its name.
    await this.batch.settled();
    const id = await this.state.redis.hget(this.state.keys.actorNames(namespace), name);
    const rec = id ? ((await this.state.redis.hgetall(this.state.keys.actor(id))) as unknown as ActorRecord) : undefined;
    if (!id || !rec?.id || rec.state === 'dead') {
      const names = (await this.state.redis.hkeys(this.state.keys.actorNames(namespace))).sort();
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
    await this.batch.settled();
    await killActor(this.state.redis, this.state.keys, actorId, noRestart, reason);
    if (!noRestart) return;
    for (let i = 0; i < 400 && (await this.state.redis.hget(this.state.keys.actor(actorId), 'state')) !== 'dead'; i++) await sleep(25);
    // The tasks it started die with it (Ray's owner fate-sharing): nobody is left to take their results.
    await cancelOwnedTasks({ redis: this.state.redis, keys: this.state.keys, queue: (q) => this.state.queues.get(q) }, actorId);
  }
}

