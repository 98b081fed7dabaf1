/** @module The actors a node hosts: one process each, restarted when it dies (within maxRestarts), resources held while the actor lives. */
import type { Logger } from 'pino';
import { actorFailure, endActor } from '../runtime/internal/context';
import type { CommandClient } from '../runtime/internal/object-store';
import type { ActorRecord, Keys, Resources } from '../runtime/protocol';
import { WorkerProcess, type PoolEvents, type WorkerExit } from './worker-pool';

interface Hosted {
  id: string;
  cls: string;
  owner: string;
  demand: Resources;
  proc: WorkerProcess | undefined;
}

export interface ActorHostOptions {
  redis: CommandClient;
  keys: Keys;
  nodeId: string;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  events: PoolEvents;
  /** Gives an actor's resources back to the node when it is dead for good. */
  release(demand: Resources): void;
  onProcessExit(w: WorkerProcess): void;
}

export class ActorHost {
  readonly actors = new Map<string, Hosted>();
  private closing = false;

  constructor(private readonly o: ActorHostOptions) {}

  /** Starts an actor the node has taken (its resources already reserved). */
  async host(actorId: string, demand: Resources): Promise<void> {
    const rec = (await this.o.redis.hgetall(this.o.keys.actor(actorId))) as unknown as ActorRecord;
    if (!rec.id || rec.state === 'dead') {
      // Killed (or its driver died) while it waited for a node.
      this.o.release(demand);
      return;
    }
    const hosted: Hosted = { id: actorId, cls: rec.cls, owner: rec.owner, demand, proc: undefined };
    this.actors.set(actorId, hosted);
    this.spawn(hosted);
    this.o.logger.info({ actor: actorId, cls: rec.cls }, 'actor placed here');
  }

  private spawn(h: Hosted): void {
    const proc = new WorkerProcess({ ...this.o.env, NODUS_ACTOR_ID: h.id }, this.o.events, (w) => {
      this.o.onProcessExit(w);
      void this.onExit(h, w.exit!).catch((err) => this.o.logger.error({ actor: h.id, err: String(err) }, 'actor exit handling failed'));
    });
    // Output of an actor goes to the driver that created it, prefixed with its class.
    proc.label = { owner: h.owner, name: h.cls };
    h.proc = proc;
  }

  private async onExit(h: Hosted, exit: WorkerExit): Promise<void> {
    h.proc = undefined;
    const rec = (await this.o.redis.hgetall(this.o.keys.actor(h.id))) as unknown as ActorRecord;
    const restarts = Number(rec.restarts || 0);
    const maxRestarts = Number(rec.maxRestarts || 0);
    const maxTaskRetries = Number(rec.maxTaskRetries || 0);
    let cause = '';
    let mode: 'dead' | 'restart' = 'dead';
    if (rec.state === 'dead') cause = rec.cause; // its constructor threw, or it was ended elsewhere
    else if (rec.killed && rec.killed !== '0') cause = actorFailure(`actor ${rec.cls} (${h.id}) is dead: ${rec.killed}`);
    else if (this.closing) cause = actorFailure(`actor ${rec.cls} (${h.id}) died: its node ${this.o.nodeId} stopped`);
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
    // Objects the actor created for itself die with it.
    await this.o.redis.nodusFreeProc(this.o.keys.prefix, h.id, '1');
    this.o.release(h.demand);
  }

  kill(actorId: string): void {
    this.actors.get(actorId)?.proc?.kill('SIGKILL');
  }

  get processes(): number {
    let n = 0;
    for (const h of this.actors.values()) if (h.proc) n++;
    return n;
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
