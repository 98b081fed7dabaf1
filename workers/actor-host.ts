/** @module The actors a node hosts: one process each, restarted when it dies (within maxRestarts), resources held while the actor lives. */
import type { Logger } from 'pino';
import { actorFailure, endActor } from '../runtime/internal/actor-lifecycle';
import type { CommandClient } from '../runtime/internal/object-store';
import { envFailure } from '../runtime/internal/tasks';
import type { ActorRecord, Keys, Resources, RuntimeEnvDescriptor } from '../runtime/protocol';
import type { ReadyEnv } from './env-cache';
import { mib, type MemoryMonitor } from './memory-monitor';
import { WorkerProcess, type PoolEvents, type WorkerExit } from './worker-pool';

interface Hosted {
  id: string;
  /** The node id it was placed under. */
  host: string;
  cls: string;
  owner: string;
  demand: Resources;
  /** The pool its resources came from ('' the node's, else a placement-group bundle's). */
  pool: string;
  proc: WorkerProcess | undefined;
  /** Its runtime env as set up on this node, if it has one. */
  env?: ReadyEnv;
  /** Killed by the memory monitor: the bytes it held then. */
  oom?: number;
}

export interface ActorHostOptions {
  redis: CommandClient;
  keys: Keys;
  /** The node's current id (a node declared dead joins again under a new one). */
  nodeId(): string;
  env: NodeJS.ProcessEnv;
  /** Sets up a runtime env on this node (the node's env cache). */
  prepareEnv(desc: RuntimeEnvDescriptor): Promise<ReadyEnv>;
  /** The environment of a runtime env's worker processes. */
  envVars(ready: ReadyEnv): NodeJS.ProcessEnv;
  logger: Logger;
  events: PoolEvents;
  /** Gives an actor's resources back to the node (or its bundle) when it is dead for good. */
  release(demand: Resources, pool: string): void;
  /** Watches the memory of actors that asked for some. */
  memory: MemoryMonitor;
  onProcessExit(w: WorkerProcess): void;
}

export class ActorHost {
  readonly actors = new Map<string, Hosted>();
  private closing = false;
  /** This node was declared dead: the head restarts its actors elsewhere, so their exits are not ours to handle. */
  private abandoned = false;

  constructor(private readonly o: ActorHostOptions) {}

  /** Starts an actor the node has taken (its resources already reserved). */
  async host(actorId: string, demand: Resources, pool = ''): Promise<void> {
    let rec = (await this.o.redis.hgetall(this.o.keys.actor(actorId))) as unknown as ActorRecord;
    // The record is written before the placement job, but a creator's script can be answered after its job
    // (a script Redis had not cached is sent again): wait for it a moment rather than drop the actor.
    for (let i = 0; !rec.id && i < 40; i++) {
      await new Promise((r) => setTimeout(r, 50));
      rec = (await this.o.redis.hgetall(this.o.keys.actor(actorId))) as unknown as ActorRecord;
    }
    if (!rec.id || rec.state === 'dead' || (rec.host && rec.host !== this.o.nodeId())) {
      // Killed (or its driver died) while it waited for a node; or placed twice (a head resumed a move) and hosted elsewhere.
      this.o.logger.warn({ actor: actorId, state: rec.state, host: rec.host, found: !!rec.id }, 'actor not hosted here: it is gone, dead, or hosted elsewhere');
      this.o.release(demand, pool);
      return;
    }
    const hosted: Hosted = { id: actorId, host: this.o.nodeId(), cls: rec.cls, owner: rec.owner, demand, pool, proc: undefined };
    await this.o.redis.hset(this.o.keys.actor(actorId), 'host', hosted.host);
    this.actors.set(actorId, hosted);
    if (rec.env) {
      try {
        hosted.env = await this.o.prepareEnv(JSON.parse(rec.env) as RuntimeEnvDescriptor);
      } catch (err) {
        // Not restarted: its env would fail the same way on this node; the reason reaches every call.
        const f = envFailure(rec.cls, err);
        this.actors.delete(actorId);
        await endActor(this.o.redis, this.o.keys, actorId, 'dead', actorFailure(`actor ${rec.cls} (${actorId}) is dead: ${f.message}`, f), 0);
        this.o.logger.warn({ actor: actorId, err: f.message }, 'actor not started: its runtime env could not be set up');
        this.o.release(demand, pool);
        return;
      }
      if (this.closing) {
        this.actors.delete(actorId);
        this.o.release(demand, pool);
        return;
      }
    }
    this.spawn(hosted);
    this.o.logger.info({ actor: actorId, cls: rec.cls }, 'actor placed here');
  }

  private spawn(h: Hosted): void {
    const env = h.env ? this.o.envVars(h.env) : this.o.env;
    const proc = new WorkerProcess(
      { ...env, NODUS_ACTOR_ID: h.id },
      this.o.events,
      (w) => {
        this.o.onProcessExit(w);
        void this.onExit(h, w.exit!).catch((err) => this.o.logger.error({ actor: h.id, err: String(err) }, 'actor exit handling failed'));
      },
      h.env?.dir,
    );
    // Output of an actor goes to the driver that created it, prefixed with its class.
    proc.label = { owner: h.owner, name: h.cls, actorId: h.id };
    h.proc = proc;
    h.oom = undefined;
    if (h.demand.memory) {
      this.o.memory.watch(proc.pid, h.demand.memory, (rss) => {
        if (h.proc !== proc) return;
        h.oom = rss;
        proc.kill('SIGKILL');
      });
    }
  }

  private async onExit(h: Hosted, given: WorkerExit): Promise<void> {
    if (h.proc) this.o.memory.unwatch(h.proc.pid);
    h.proc = undefined;
    const exit = h.oom === undefined ? given : { message: `was stopped (OutOfMemoryError): it used ${mib(h.oom)} of memory, more than the ${mib(h.demand.memory ?? 0)} it asked for` };
    if (this.abandoned) {
      this.actors.delete(h.id);
      this.o.release(h.demand, h.pool);
      return;
    }
    const rec = (await this.o.redis.hgetall(this.o.keys.actor(h.id))) as unknown as ActorRecord;
    if (rec.host !== h.host) {
      // The head gave it to another node (this one was declared dead): not ours to restart or end.
      this.actors.delete(h.id);
      this.o.release(h.demand, h.pool);
      return;
    }
    const restarts = Number(rec.restarts || 0);
    const maxRestarts = Number(rec.maxRestarts || 0);
    const maxTaskRetries = Number(rec.maxTaskRetries || 0);
    let cause = '';
    let mode: 'dead' | 'restart' = 'dead';
    if (rec.state === 'dead') cause = rec.cause; // its constructor threw, or it was ended elsewhere
    else if (rec.killed && rec.killed !== '0') cause = actorFailure(`actor ${rec.cls} (${h.id}) is dead: ${rec.killed}`);
    else if (this.closing) cause = actorFailure(`actor ${rec.cls} (${h.id}) died: its node ${h.host} stopped`);
    else if (restarts < maxRestarts) mode = 'restart';
    else {
      cause = actorFailure(
        `actor ${rec.cls} (${h.id}) died: its process ${exit.message}` +
          (maxRestarts ? ` after ${restarts} restart${restarts === 1 ? '' : 's'} (maxRestarts is ${maxRestarts})` : ' and maxRestarts is 0') +
          '. Raise maxRestarts to have it restarted.',
      );
    }
    await endActor(this.o.redis, this.o.keys, h.id, mode, cause, maxTaskRetries);
    if (mode === 'restart') {
      this.o.logger.warn({ actor: h.id, cls: rec.cls, restarts: restarts + 1 }, `actor process ${exit.message}; restarting`);
      this.spawn(h);
      return;
    }
    this.actors.delete(h.id);
    this.o.logger.info({ actor: h.id, cls: rec.cls }, 'actor is dead; its resources are free');
    // Objects the actor created for itself die with it.
    await this.o.redis.nodusFreeProc(this.o.keys.prefix, h.id, '1');
    this.o.release(h.demand, h.pool);
  }

  /**
   * Kills the processes of actors killed for good whose kill message this node missed (pub/sub is not
   * durable); called with each heartbeat.
   */
  async sweepKilled(): Promise<void> {
    const live = [...this.actors.values()].filter((h) => h.proc?.alive);
    if (!live.length) return;
    const pipe = this.o.redis.pipeline();
    for (const h of live) pipe.hget(this.o.keys.actor(h.id), 'killed');
    const res = (await pipe.exec()) ?? [];
    res.forEach(([, killed], i) => {
      if (killed && killed !== '0') live[i].proc?.kill('SIGKILL');
    });
  }

  /** Kills the process of an actor hosted here; false when it is not here. */
  kill(actorId: string): boolean {
    const p = this.actors.get(actorId)?.proc;
    p?.kill('SIGKILL');
    return !!p;
  }

  /** True while an actor hosted here runs in the runtime env unpacked at `dir` (it is kept in the cache then). */
  usesDir(dir: string): boolean {
    for (const h of this.actors.values()) if (h.env?.dir === dir) return true;
    return false;
  }

  get processes(): number {
    let n = 0;
    for (const h of this.actors.values()) if (h.proc) n++;
    return n;
  }

  /** The node was declared dead and joins again: stop its actor processes and leave their records to the head. */
  async abandon(): Promise<void> {
    this.abandoned = true;
    await this.stop();
  }

  /** The node is stopping: its actors die with it (a restart elsewhere is for node-death handling). */
  async stop(): Promise<void> {
    this.closing = true;
    const exits: Promise<void>[] = [];
    for (const h of this.actors.values()) {
      const p = h.proc;
      if (!p?.alive) continue;
      exits.push(new Promise((r) => p.proc.once('exit', () => setTimeout(r, 50))));
      p.kill('SIGKILL');
    }
    await Promise.all(exits);
  }
}
