/** @module A driver's side of placement groups: writing a group for the head to reserve, waiting for it, and removing it with what runs in it. */
import type { Job } from 'bullmq';
import { GetTimeoutError, NodusError } from '../errors';
import type { NodeInfo, PlacementGroupRecord, PlacementStrategy, Resources, TaskJob, ControlMessage } from '../protocol';
import { killActor } from './actor-lifecycle';
import { failureBytes, settleCall, type CommandClient } from './object-store';
import { planBundles } from './placement-plan';
import type { JobContext } from './owned-tasks';
import { Queues } from './queues';
import type { Keys } from '../protocol';
import { sleep } from './tasks';

/** What these operations need of the process's runtime. */
export interface GroupContext {
  redis: CommandClient;
  keys: Keys;
  ownerId: string;
  clusterNodes(maxAgeMs?: number): Promise<NodeInfo[]>;
  /** Everything this process queued so far has reached Redis. */
  settled(): Promise<void>;
}

/** Writes a new group's record and wakes the head; warns when the alive nodes could never hold it (it stays pending). */
export async function createGroup(ctx: GroupContext, rec: PlacementGroupRecord): Promise<void> {
  await ctx.redis.hset(ctx.keys.placementGroups, rec.id, JSON.stringify(rec));
  await ctx.redis.publish(ctx.keys.placementChannel, rec.id);
  const nodes = (await ctx.clusterNodes().catch(() => [] as NodeInfo[])).filter((n) => n.state === 'alive');
  if (planBundles(rec.bundles, rec.strategy, [], nodes.map((n) => ({ id: n.id, free: n.total })))) return;
  console.warn(
    `[nodus] warning: placement group ${rec.name || rec.id} (${rec.strategy}, bundles ${rec.bundles.map((b) => JSON.stringify(b)).join(', ')}) cannot be placed on the ` +
      `${nodes.length} alive node${nodes.length === 1 ? '' : 's'} (${nodes.map((n) => JSON.stringify(n.total)).join(', ') || 'none'}). ` +
      `It stays pending (nodus status lists it as infeasible) until nodes that fit join: npx nodus worker join --address <head> ...`,
  );
}

/** Waits until every bundle is reserved. */
export async function waitReady(ctx: GroupContext, id: string, timeoutMs: number | undefined): Promise<void> {
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  await ctx.settled();
  // Short polls: a reservation is a few round trips (head → node → head), so it is usually there within milliseconds.
  for (let delay = 1; ; delay = Math.min(delay * 2, 10)) {
    const raw = await ctx.redis.hget(ctx.keys.placementGroups, id);
    const rec = raw ? (JSON.parse(raw) as PlacementGroupRecord) : undefined;
    if (rec?.state === 'CREATED') return;
    if (!rec) throw new NodusError(`placement group ${id} was removed (removePlacementGroup, or its driver ended) before it was ready.`);
    if (Date.now() >= deadline) {
      throw new GetTimeoutError(
        `placement group ${rec.name || id} (${rec.strategy}) was not ready after ${timeoutMs} ms: ` +
          (rec.infeasible ? `it cannot be placed: ${rec.infeasible}. Add nodes that fit (nodus worker join).` : 'its bundles wait for free resources; call ready() again, or remove it.'),
      );
    }
    await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
  }
}

/**
 * Removes a group: the actors in it are killed for good, its queued tasks end as cancelled, its running
 * ones are stopped (TaskCancelledError), and the head releases its bundles. Resolves once the head has
 * dropped the group (within a few seconds when no head runs).
 */
export async function removeGroup(ctx: GroupContext, id: string): Promise<void> {
  const { redis, keys } = ctx;
  await ctx.settled();
  // What runs in it first: the head forgets the group's queues when it releases the bundles.
  const reason = `its placement group ${id} was removed`;
  for (const actorId of await redis.smembers(keys.actors)) {
    if ((await redis.hget(keys.actor(actorId), 'pg')) === id) await killActor(redis, keys, actorId, true, reason);
  }
  const queues = new Queues(redis, keys.bullPrefix);
  try {
    await cancelGroupTasks({ redis, keys, queue: (name) => queues.get(name) }, id, true);
  } finally {
    await queues.close();
  }
  await redis.sadd(keys.removedPlacementGroups, id);
  await redis.publish(keys.placementChannel, id);
  for (let i = 0; i < 1000 && (await redis.sismember(keys.removedPlacementGroups, id)); i++) await sleep(Math.min(1 + i, 5));
}

/**
 * Ends the tasks queued in a group's bundles as cancelled and, with `running`, stops those that run
 * (their nodes report them cancelled). The head calls it too as it releases a group, for what was queued
 * after its remover looked. Returns the names of the group's queues.
 */
export async function cancelGroupTasks(ctx: JobContext, id: string, running: boolean): Promise<string[]> {
  const { redis, keys } = ctx;
  const names = Object.keys(await redis.hgetall(keys.shapes)).filter((q) => q.includes(`@${id}-`));
  for (const name of names.filter((q) => q.startsWith('task.'))) {
    const q = ctx.queue(name);
    for (const job of (await q.getJobs(['waiting', 'prioritized', 'delayed'])) as Job<TaskJob>[]) {
      if (!job?.data || !(await q.remove(job.id!).catch(() => 0))) continue;
      for (const t of [job.data, ...(job.data.more ?? [])]) {
        const failure = failureBytes({ kind: 'cancelled', task: t.fn.name, name: 'TaskCancelledError', message: `task ${t.fn.name} was cancelled: its placement group ${id} was removed` });
        await settleCall(redis, keys, t.id, t.caller, failure);
      }
    }
    if (!running) continue;
    for (const job of (await q.getJobs(['active'])) as Job<TaskJob>[]) {
      if (!job?.data) continue;
      for (const t of [job.data, ...(job.data.more ?? [])]) await redis.set(keys.cancelMark(t.id), '1', 'EX', 3600);
      await redis.publish(keys.controlChannel, JSON.stringify({ type: 'cancel', id: job.data.id, force: true } satisfies ControlMessage));
    }
  }
  return names;
}

/** The record of a new group. */
export function newGroupRecord(id: string, bundles: Resources[], strategy: PlacementStrategy, name: string, owner: string): PlacementGroupRecord {
  return { id, name, strategy, bundles, nodes: bundles.map(() => ''), state: 'PENDING', owner, createdAt: Date.now() };
}

/** The groups a driver made: removed at its shutdown (the head removes those of a driver that died). */
export async function removeOwnedGroups(ctx: GroupContext): Promise<void> {
  const mine = (await ctx.redis.hvals(ctx.keys.placementGroups)).map((s) => JSON.parse(s) as PlacementGroupRecord).filter((g) => g.owner === ctx.ownerId);
  for (const g of mine) await removeGroup(ctx, g.id);
}
