/** @module The head's control plane: node registry and death detection, driver liveness, infeasible demand. */
import { hostname } from 'node:os';
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { killActor } from '../runtime/internal/actor-lifecycle';
import { Queues } from '../runtime/internal/queues';
import { connect, waitForRedis } from '../runtime/internal/redis';
import { Keys, PROTOCOL_VERSION, isConstrained, matchLabels, type HeadInfo, type NodeInfo, type QueueConstraint, type Resources } from '../runtime/protocol';
import { withCommands, type ObjectCommands } from '../runtime/protocol/commands';
import { isFeasible } from '../runtime/internal/policy';
import { PlacementGroups } from './placement';
import { recoverActors, recoverTasks } from './recovery';
import { cancelOwnedTasks } from '../runtime/internal/owned-tasks';
import type { Redis } from 'ioredis';

export interface HeadOptions {
  address: string;
  keys: Keys;
  /** A node that has not sent a heartbeat for this long is dead. @default 10000 */
  nodeTimeoutMs?: number;
  /** A driver that has not sent a heartbeat for this long is dead; its objects are freed. @default 10000 */
  driverTimeoutMs?: number;
  logger: Logger;
}

/**
 * All of the head's state is in Redis, so a restarted head carries on where the
 * last one stopped; node agents and drivers never wait on it to run tasks.
 */
export class Head {
  private readonly redis: Redis & ObjectCommands;
  private readonly keys: Keys;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly queues: Queues;
  private readonly placement: PlacementGroups;
  readonly nodeTimeoutMs: number;
  readonly driverTimeoutMs: number;

  constructor(private readonly o: HeadOptions) {
    this.keys = o.keys;
    this.nodeTimeoutMs = o.nodeTimeoutMs ?? 10_000;
    this.driverTimeoutMs = o.driverTimeoutMs ?? 10_000;
    this.redis = withCommands(connect(o.address, { name: 'nodus:head' }));
    this.queues = new Queues(this.redis, this.keys.bullPrefix);
    this.placement = new PlacementGroups({ address: o.address, redis: this.redis, keys: this.keys, logger: o.logger, queue: (q) => this.queue(q) });
  }

  /** Its connections to Redis, for the process's lifecycle to watch. */
  get connections(): Redis[] {
    return [this.redis];
  }

  /** The head started its Redis again: say so where `nodus status` looks. */
  async recordRedisRestart(r: { count: number; at: number; why: string }): Promise<void> {
    await this.redis.hset(this.keys.head, { redisRestarts: r.count, redisLastRestart: r.at, redisLastExit: r.why });
  }

  async start(): Promise<HeadInfo> {
    await waitForRedis(this.redis, this.o.address);
    const info: HeadInfo = { pid: process.pid, host: hostname(), startedAt: Date.now(), version: PROTOCOL_VERSION, nodeTimeoutMs: this.nodeTimeoutMs };
    await this.redis.hset(this.keys.head, { ...info, beat: Date.now() } as unknown as Record<string, string>);
    const every = (ms: number, fn: () => Promise<void>) => {
      let busy = false;
      const t = setInterval(() => {
        if (busy) return;
        busy = true;
        fn()
          .catch((err) => this.o.logger.warn({ err: String(err) }, 'head check failed'))
          .finally(() => (busy = false));
      }, ms);
      this.timers.push(t);
    };
    every(Math.max(100, Math.min(1000, this.nodeTimeoutMs / 4)), () => this.checkNodes());
    every(Math.max(100, Math.min(1000, this.driverTimeoutMs / 4)), () => this.checkDrivers());
    every(1000, () => this.checkInfeasible());
    // Placement groups move on at once on their messages; this pass catches what a missed message left.
    await this.placement.start();
    every(1000, async () => {
      this.placement.kick();
      await this.placement.sweepDeadNodeQueues();
    });
    every(1000, () => this.redis.nodusControl('h', this.keys.head, 'beat', Date.now()).then(() => undefined));
    this.o.logger.info({ address: this.o.address, nodeTimeoutMs: this.nodeTimeoutMs }, 'head started');
    return info;
  }

  /** Marks nodes whose heartbeats stopped as dead; their resources leave the cluster totals. */
  async checkNodes(): Promise<void> {
    const cutoff = Date.now() - this.nodeTimeoutMs;
    const stale = await this.redis.zrangebyscore(this.keys.nodeHeartbeats, '-inf', cutoff);
    for (const id of stale) {
      const raw = await this.redis.hget(this.keys.nodes, id);
      if (!raw) {
        await this.redis.zrem(this.keys.nodeHeartbeats, id);
        continue;
      }
      const node = JSON.parse(raw) as NodeInfo;
      // A dead node still listed here is one whose recovery a head began and did not finish (it was killed).
      if (node.state !== 'dead') {
        const dead: NodeInfo = { ...node, state: 'dead', diedAt: Date.now(), deathReason: `no heartbeat for ${this.nodeTimeoutMs} ms`, running: 0, free: {} };
        await this.redis.hset(this.keys.nodes, id, JSON.stringify(dead));
        this.o.logger.warn({ node: id, host: node.host }, 'node missed its heartbeats: marked dead');
      }
      const ctx = this.recoveryContext();
      const tasks = await recoverTasks(ctx, id);
      const actors = await recoverActors(ctx, id);
      await this.placement.onNodeDead(id);
      // Only now: recovery steps can all be done again, so a head killed before this line leaves the node to the next head.
      await this.redis.zrem(this.keys.nodeHeartbeats, id);
      this.o.logger.warn({ node: id, tasks, actors }, 'work of the dead node handed to the others');
    }
  }

  /** A driver that died without shutdown(): free every object it owns or holds. */
  async checkDrivers(): Promise<void> {
    const stale = await this.redis.zrangebyscore(this.keys.driverHeartbeats, '-inf', Date.now() - this.driverTimeoutMs);
    if (!stale.length) return;
    // A driver whose event loop is busy misses heartbeats but keeps its connection: only a driver whose
    // connection is gone too is dead (the kernel closes a dead process's sockets, so Redis drops them).
    const clients = String(await this.redis.client('LIST'));
    for (const id of stale) {
      if (clients.includes(` name=nodus:driver:${id} `)) continue;
      // Its actors die with it, unless detached.
      for (const actorId of await this.redis.smembers(this.keys.ownedActors(id))) {
        await killActor(this.redis, this.keys, actorId, true, `its driver ${id} died`);
        await cancelOwnedTasks(this.recoveryContext(), actorId);
      }
      const tasks = await cancelOwnedTasks(this.recoveryContext(), id);
      await this.placement.removeOwnedBy(id);
      const freed = await this.redis.nodusFreeProc(this.keys.prefix, id, '1');
      await this.redis.multi().zrem(this.keys.driverHeartbeats, id).hdel(this.keys.drivers, id).exec();
      this.o.logger.warn({ driver: id, freed, ...tasks }, 'driver died without shutdown: cancelled its tasks, freed its objects');
    }
  }

  /** Records shapes with queued tasks that no alive node could ever run, for `nodus status`. */
  async checkInfeasible(): Promise<void> {
    const shapes = await this.redis.hgetall(this.keys.shapes);
    const nodes = (await this.redis.hvals(this.keys.nodes)).map((s) => JSON.parse(s) as NodeInfo);
    const placements = await this.redis.hgetall(this.keys.placements);
    for (const [queue, raw] of Object.entries(shapes)) {
      let eligible = nodes;
      if (isConstrained(queue)) {
        // A node's or a bundle's queue waits on that node or bundle (see PlacementGroups); a labels queue on the nodes that match.
        const c = placements[queue] ? (JSON.parse(placements[queue]) as QueueConstraint) : undefined;
        if (!c?.labels || c.node || c.pg !== undefined) {
          await this.redis.hdel(this.keys.infeasible, queue);
          continue;
        }
        eligible = nodes.filter((n) => matchLabels(c.labels, n.labels));
      }
      const shape = queue;
      const demand = JSON.parse(raw) as Resources;
      const waiting = await this.queue(queue).getWaitingCount();
      if (waiting > 0 && !isFeasible(demand, eligible)) {
        const prev = await this.redis.hget(this.keys.infeasible, shape);
        const since = prev ? (JSON.parse(prev) as { since: number }).since : Date.now();
        await this.redis.hset(this.keys.infeasible, shape, JSON.stringify({ demand, waiting, since }));
      } else {
        await this.redis.hdel(this.keys.infeasible, shape);
      }
    }
  }

  private recoveryContext() {
    return { redis: this.redis, keys: this.keys, logger: this.o.logger, queue: (q: string) => this.queue(q), nodeTimeoutMs: this.nodeTimeoutMs };
  }

  private queue(shape: string): Queue {
    return this.queues.get(shape);
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.placement.stop();
    await this.queues.close();
    await this.redis.hdel(this.keys.head, 'pid').catch(() => undefined);
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
