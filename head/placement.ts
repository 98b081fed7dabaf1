/** @module The head's placement: placement groups reserved on nodes (two-phase, all or none), placed again when a node dies, released when removed; and node-affinity queues of dead nodes (hard: fail, soft: run elsewhere). */
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { SerializedFailure } from '../runtime/errors';
import { actorFailure, endActor } from '../runtime/internal/actor-lifecycle';
import { coalescing } from '../runtime/internal/coalesce';
import { failureBytes, settleCall } from '../runtime/internal/object-store';
import { cancelGroupTasks } from '../runtime/internal/placement-groups';
import { planBundles } from '../runtime/internal/placement-plan';
import { take } from '../runtime/internal/policy';
import { connect } from '../runtime/internal/redis';
import { unschedulable } from '../runtime/internal/strategies';
import type { ObjectCommands } from '../runtime/protocol/commands';
import {
  bundleKey,
  isConstrained,
  type ActorJob,
  type BundleEntry,
  type ControlMessage,
  type Keys,
  type NodeInfo,
  type PlacementGroupRecord,
  type QueueConstraint,
  type Resources,
  type TaskJob,
} from '../runtime/protocol';

export interface PlacementContext {
  address: string;
  redis: Redis & ObjectCommands;
  keys: Keys;
  logger: Logger;
  queue(name: string): Queue;
}

/** A node that has not answered a reservation in this long is taken to have said no. */
const PREPARE_TIMEOUT_MS = 5000;

/**
 * The head's side of placement groups. A group is reserved in two phases: the head picks nodes from their
 * last heartbeat and asks each to hold its bundles (Keys.nodeBundles); each node sets them aside if they
 * are free and answers; with every answer yes the head commits (the nodes open the bundles' queues), with
 * any no it asks them all to let go and tries again. So a group holds all its bundles or none.
 */
export class PlacementGroups {
  private sub: Redis | undefined;

  constructor(private readonly o: PlacementContext) {}

  /** Listens for groups made or removed and reservations answered, so placement reacts at once. */
  async start(): Promise<Redis> {
    this.sub = connect(this.o.address, { blocking: true, name: 'nodus:head-placement' });
    this.sub.on('error', () => undefined);
    this.sub.on('message', () => this.kick());
    await this.sub.subscribe(this.o.keys.placementChannel);
    return this.sub;
  }

  /** Runs a pass now (one at a time; a kick during a pass runs another after it). */
  readonly kick = coalescing(
    () => this.pass(),
    (err) => this.o.logger.warn({ err: String(err) }, 'placement pass failed'),
  );

  private async pass(): Promise<void> {
    const { redis, keys } = this.o;
    const [raw, removed, nodesRaw] = await Promise.all([redis.hgetall(keys.placementGroups), redis.smembers(keys.removedPlacementGroups), redis.hvals(keys.nodes)]);
    const nodes = nodesRaw.map((s) => JSON.parse(s) as NodeInfo).filter((n) => n.state === 'alive');
    for (const id of removed) await this.release(id, raw[id] ? (JSON.parse(raw[id]) as PlacementGroupRecord) : undefined);
    const groups = Object.values(raw)
      .map((s) => JSON.parse(s) as PlacementGroupRecord)
      .filter((g) => !removed.includes(g.id) && g.state !== 'CREATED')
      .sort((a, b) => a.createdAt - b.createdAt);
    // What this pass reserves is taken off the nodes' heartbeat figures, so two groups are not given the same room.
    const view = nodes.map((n) => ({ id: n.id, free: { ...n.free } }));
    for (const g of groups) await this.advance(g, nodes, view);
  }

  /** Moves one group on: answers in → commit or roll back; none under way → plan and ask the nodes. */
  private async advance(g: PlacementGroupRecord, alive: NodeInfo[], view: { id: string; free: Resources }[]): Promise<void> {
    const { redis, keys } = this.o;
    if (g.prepared) {
      const replies = await redis.hgetall(keys.bundleReplies(g.id));
      const asked = g.prepared.map((n, i) => [n, i] as const).filter(([n]) => n);
      const yes = asked.every(([n, i]) => replies[i] === `ok:${n}`);
      const no = asked.some(([n, i]) => replies[i] === `no:${n}` || !alive.some((a) => a.id === n)) || Date.now() - (g.preparedAt ?? 0) > PREPARE_TIMEOUT_MS;
      if (yes) {
        for (const [n, i] of asked) g.nodes[i] = n;
        await this.setBundles(g, asked, true);
        delete g.prepared;
        delete g.preparedAt;
        delete g.infeasible;
        g.state = 'CREATED';
        await redis.multi().hset(keys.placementGroups, g.id, JSON.stringify(g)).del(keys.bundleReplies(g.id)).hdel(keys.infeasible, `pg:${g.id}`).exec();
        this.o.logger.info({ pg: g.id, name: g.name, nodes: g.nodes }, 'placement group reserved');
      } else if (no) {
        await this.unsetBundles(g.id, asked);
        delete g.prepared;
        delete g.preparedAt;
        await redis.multi().hset(keys.placementGroups, g.id, JSON.stringify(g)).del(keys.bundleReplies(g.id)).exec();
        // Tried again on the next pass (a node's answer, or the heartbeat-paced check).
      }
      return;
    }
    const fixed = g.nodes.map((n) => (n && alive.some((a) => a.id === n) ? n : ''));
    const plan = planBundles(g.bundles, g.strategy, fixed, view);
    if (!plan) {
      // Never placeable with the nodes alive now (not even idle): reported as infeasible demand, as a task would be.
      const never = !planBundles(g.bundles, g.strategy, fixed, alive.map((n) => ({ id: n.id, free: n.total })));
      const why = never ? `no ${g.strategy === 'STRICT_SPREAD' ? `${g.bundles.length} alive nodes can each` : 'alive nodes can'} hold its bundles (${g.strategy})` : undefined;
      if (why !== g.infeasible) {
        g.infeasible = why;
        if (!why) delete g.infeasible;
        await redis.hset(keys.placementGroups, g.id, JSON.stringify(g));
      }
      if (why) {
        const prev = await redis.hget(keys.infeasible, `pg:${g.id}`);
        const since = prev ? (JSON.parse(prev) as { since: number }).since : Date.now();
        const demand: Resources = {};
        for (const b of g.bundles) for (const [k, v] of Object.entries(b)) demand[k] = (demand[k] ?? 0) + v;
        await redis.hset(keys.infeasible, `pg:${g.id}`, JSON.stringify({ demand, waiting: g.bundles.length, task: `placement group ${g.name || g.id} (${g.strategy}, ${g.bundles.length} bundles: ${why})`, since }));
      } else await redis.hdel(keys.infeasible, `pg:${g.id}`);
      return;
    }
    const asked = plan.map((n, i) => [fixed[i] ? '' : n, i] as const).filter(([n]) => n);
    for (const [n, i] of asked) {
      const v = view.find((x) => x.id === n)!;
      v.free = take(v.free, g.bundles[i]);
    }
    g.prepared = plan.map((n, i) => (fixed[i] ? '' : n));
    g.preparedAt = Date.now();
    g.nodes = fixed;
    await redis.multi().del(keys.bundleReplies(g.id)).hset(keys.placementGroups, g.id, JSON.stringify(g)).exec();
    await this.setBundles(g, asked, false);
  }

  /** Asks nodes to hold (or, committed, to open) bundles of a group, and tells them. */
  private async setBundles(g: PlacementGroupRecord, which: readonly (readonly [string, number])[], committed: boolean): Promise<void> {
    const pipe = this.o.redis.pipeline();
    for (const [n, i] of which) pipe.hset(this.o.keys.nodeBundles(n), bundleKey(g.id, i), JSON.stringify({ demand: g.bundles[i], committed } satisfies BundleEntry));
    for (const n of new Set(which.map(([n]) => n))) pipe.publish(this.o.keys.controlChannel, JSON.stringify({ type: 'bundles', node: n } satisfies ControlMessage));
    await pipe.exec();
  }

  private async unsetBundles(pg: string, which: readonly (readonly [string, number])[]): Promise<void> {
    const pipe = this.o.redis.pipeline();
    for (const [n, i] of which) pipe.hdel(this.o.keys.nodeBundles(n), bundleKey(pg, i));
    for (const n of new Set(which.map(([n]) => n))) pipe.publish(this.o.keys.controlChannel, JSON.stringify({ type: 'bundles', node: n } satisfies ControlMessage));
    await pipe.exec();
  }

  /** A removed group: its bundles are let go, its queues forgotten, its record dropped. */
  private async release(id: string, g: PlacementGroupRecord | undefined): Promise<void> {
    const { redis, keys } = this.o;
    if (g) {
      const held = [...g.nodes.map((n, i) => [n, i] as const), ...(g.prepared ?? []).map((n, i) => [n, i] as const)].filter(([n]) => n);
      await this.unsetBundles(id, held);
    }
    // Tasks queued in it after its remover looked end now (its nodes stop the running ones as they let go).
    const queues = await cancelGroupTasks(this.o, id, false);
    const multi = redis.multi().hdel(keys.placementGroups, id).del(keys.bundleReplies(id)).hdel(keys.infeasible, `pg:${id}`).srem(keys.removedPlacementGroups, id);
    if (queues.length) multi.hdel(keys.shapes, ...queues).hdel(keys.placements, ...queues);
    await multi.exec();
    this.o.logger.info({ pg: id }, 'placement group removed');
  }

  /** A node died: the bundles it held are reserved again elsewhere (the group is RESCHEDULING meanwhile). */
  async onNodeDead(nodeId: string): Promise<number> {
    const { redis, keys } = this.o;
    let n = 0;
    for (const raw of await redis.hvals(keys.placementGroups)) {
      const g = JSON.parse(raw) as PlacementGroupRecord;
      if (!g.nodes.includes(nodeId) && !g.prepared?.includes(nodeId)) continue;
      g.nodes = g.nodes.map((x) => (x === nodeId ? '' : x));
      if (g.state === 'CREATED') g.state = 'RESCHEDULING';
      await redis.hset(keys.placementGroups, g.id, JSON.stringify(g));
      n++;
    }
    await redis.del(keys.nodeBundles(nodeId));
    if (n) this.kick();
    return n;
  }

  /**
   * Jobs waiting for a node that is dead: a soft affinity's go to the queue they fall back to, a hard
   * one's fail with TaskUnschedulableError (an actor's: the actor is dead).
   */
  async sweepDeadNodeQueues(): Promise<void> {
    const { redis, keys } = this.o;
    const [placements, nodesRaw] = await Promise.all([redis.hgetall(keys.placements), redis.hgetall(keys.nodes)]);
    for (const [queue, raw] of Object.entries(placements)) {
      if (!isConstrained(queue)) continue;
      const c = JSON.parse(raw) as QueueConstraint;
      if (!c.node) continue;
      const node = nodesRaw[c.node] ? (JSON.parse(nodesRaw[c.node]) as NodeInfo) : undefined;
      if (node?.state === 'alive') continue;
      const q = this.o.queue(queue);
      const jobs = (await q.getJobs(['waiting', 'prioritized', 'delayed'])) as Job<TaskJob | ActorJob>[];
      if (!jobs.length) continue;
      if (c.soft && c.fallback) {
        const target = this.o.queue(c.fallback);
        for (const job of jobs) {
          if (!(await q.remove(job.id!).catch(() => 0))) continue;
          await target.add(job.name, job.data, { jobId: job.id, attempts: job.opts.attempts, removeOnComplete: true, removeOnFail: true });
        }
        await redis.publish(keys.wakeChannel, c.fallback);
        this.o.logger.warn({ queue, to: c.fallback, jobs: jobs.length }, 'soft node affinity: its node is gone, running elsewhere');
        continue;
      }
      for (const job of jobs) {
        if (!(await q.remove(job.id!).catch(() => 0))) continue;
        const why = node ? 'is dead' : 'is not in the cluster';
        if ('actorId' in job.data) {
          const f = unschedulable({ name: job.name, queue }, c.node, why);
          await endActor(redis, keys, job.data.actorId, 'dead', actorFailure(`actor ${job.name} (${job.data.actorId}) is dead: ${f.message}`, f), 0);
        } else {
          for (const t of [job.data, ...(job.data.more ?? [])]) await settleCall(redis, keys, t.id, t.caller, failureBytes(unschedulable({ name: t.fn.name, queue }, c.node, why) as SerializedFailure));
        }
      }
      this.o.logger.warn({ queue, jobs: jobs.length }, 'hard node affinity to a dead node: failed its jobs');
    }
  }

  async stop(): Promise<void> {
    this.sub?.disconnect();
  }
}
