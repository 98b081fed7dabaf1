/** @module The head's control plane: node registry and death detection, driver liveness, infeasible demand. */
import { hostname } from 'node:os';
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { Queues } from '../runtime/internal/queues';
import { connect, waitForRedis } from '../runtime/internal/redis';
import { Keys, PROTOCOL_VERSION, isConstrained, matchLabels, type HeadInfo, type NodeInfo, type QueueConstraint, type Resources } from '../runtime/protocol';
import { withCommands, type ObjectCommands } from '../runtime/protocol/commands';
import { isFeasible } from '../runtime/internal/policy';
import { PlacementGroups } from './placement';
import { recoverActors, recoverTasks } from './recovery';
import { releaseDriver } from '../runtime/internal/driver-end';
import { failJobsOfNode } from '../runtime/internal/job-store';
import { JobKeys } from '../runtime/protocol/jobs';
import type { Redis } from 'ioredis';
import { StateKeys, type TaskEventRetention } from '../runtime/protocol/state';
import { MetricsPusher } from '../runtime/internal/metrics';
import { taskEventRetention } from '../runtime/internal/task-events';
import { startMetricsServer } from './metrics-server';
import { trimTaskEvents } from './state-upkeep';

export interface HeadOptions {
  address: string;
  keys: Keys;
  /** A node that has not sent a heartbeat for this long is dead. @default 10000 */
  nodeTimeoutMs?: number;
  /** A driver that has not sent a heartbeat for this long is dead; its objects are freed. @default 10000 */
  driverTimeoutMs?: number;
  logger: Logger;
  /** Port of the cluster's /metrics. @default 8080, or a free one when that is taken */
  metricsPort?: number;
  /** Address /metrics listens on. @default '127.0.0.1' */
  metricsHost?: string;
  /** How long task events are kept, and how much of them. @default NODUS_TASK_EVENTS_WINDOW_MS / _MAX_BYTES, else 1 hour, 64 MiB */
  retention?: TaskEventRetention;
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
  private readonly jobKeys: JobKeys;
  private readonly placement: PlacementGroups;
  readonly nodeTimeoutMs: number;
  readonly driverTimeoutMs: number;
  private metricsServer: { url: string; close(): Promise<void> } | undefined;
  private readonly pusher: MetricsPusher;
  private readonly retention: TaskEventRetention;

  constructor(private readonly o: HeadOptions) {
    this.keys = o.keys;
    this.nodeTimeoutMs = o.nodeTimeoutMs ?? 10_000;
    this.driverTimeoutMs = o.driverTimeoutMs ?? 10_000;
    this.redis = withCommands(connect(o.address, { name: 'nodus:head' }));
    this.queues = new Queues(this.redis, this.keys.bullPrefix);
    this.pusher = new MetricsPusher(this.redis, this.keys.prefix, 'head');
    this.retention = o.retention ?? taskEventRetention();
    this.jobKeys = new JobKeys(this.keys.prefix);
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
    this.metricsServer = await startMetricsServer({ redis: this.redis, keys: this.keys, queues: this.queues, logger: this.o.logger, port: this.o.metricsPort, host: this.o.metricsHost });
    const info: HeadInfo = { pid: process.pid, host: hostname(), startedAt: Date.now(), version: PROTOCOL_VERSION, nodeTimeoutMs: this.nodeTimeoutMs, metricsUrl: this.metricsServer.url };
    await this.redis.hset(this.keys.head, { ...info, beat: Date.now() } as unknown as Record<string, string>);
    this.pusher.start();
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
    every(5000, () => trimTaskEvents(this.redis, new StateKeys(this.keys.prefix).taskEvents, this.retention));
    this.o.logger.info({ address: this.o.address, nodeTimeoutMs: this.nodeTimeoutMs, metrics: this.metricsServer.url }, 'head started');
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
      const jobs = await failJobsOfNode(this.redis, this.jobKeys, id, `died (no heartbeat for ${this.nodeTimeoutMs} ms)`);
      await this.placement.onNodeDead(id);
      // Only now: recovery steps can all be done again, so a head killed before this line leaves the node to the next head.
      await this.redis.zrem(this.keys.nodeHeartbeats, id);
      this.o.logger.warn({ node: id, tasks, actors, failedJobs: jobs }, 'work of the dead node handed to the others');
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
      // Its actors die (detached ones live on), its tasks are cancelled, its placement groups removed, its objects freed.
      const ended = await releaseDriver(this.recoveryContext(), id, `its driver ${id} died`);
      this.o.logger.warn({ driver: id, ...ended }, 'driver died without shutdown: cancelled its tasks, freed its objects');
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
    await this.metricsServer?.close();
    await this.pusher.stop();
    await this.placement.stop();
    await this.queues.close();
    await this.redis.hdel(this.keys.head, 'pid').catch(() => undefined);
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
