/** @module Cancelling every task a process owns: its results die with it (a driver that died, an actor killed for good). */
import type { Job, Queue } from 'bullmq';
import type { ControlMessage, Keys, TaskJob } from '../protocol';
import type { CommandClient } from './object-store';

export interface JobContext {
  redis: CommandClient;
  keys: Keys;
  queue(name: string): Queue;
}

/**
 * The tasks `ownerId` submitted (directly or from its tasks) are of no use to anyone once it is gone, as in
 * Ray, where tasks share their owner's fate. Queued ones are removed; running ones are cancelled on their nodes.
 */
export async function cancelOwnedTasks(ctx: JobContext, ownerId: string): Promise<{ removed: number; cancelled: number }> {
  const queues = Object.keys(await ctx.redis.hgetall(ctx.keys.shapes)).filter((q) => q.startsWith('task.'));
  let removed = 0;
  let cancelled = 0;
  for (const name of queues) {
    const q = ctx.queue(name);
    for (const job of (await q.getJobs(['waiting', 'prioritized', 'delayed'])) as Job<TaskJob>[]) {
      if (job?.data?.owner === ownerId && (await q.remove(job.id!).catch(() => 0))) removed++;
    }
    for (const job of (await q.getJobs(['active'])) as Job<TaskJob>[]) {
      if (job?.data?.owner !== ownerId) continue;
      // The key is what counts (nodes check it for the tasks they run); the message makes it quick.
      for (const t of [job.data, ...(job.data.more ?? [])]) await ctx.redis.set(ctx.keys.cancelMark(t.id), '1', 'EX', 3600);
      await ctx.redis.publish(ctx.keys.controlChannel, JSON.stringify({ type: 'cancel', id: job.data.id, force: true } satisfies ControlMessage));
      cancelled++;
    }
  }
  return { removed, cancelled };
}
