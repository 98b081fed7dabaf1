/** @module What the head does when a node dies: its tasks run again elsewhere, its actors restart elsewhere. */
import { Queue, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { actorFailure, endActor } from '../runtime/internal/context';
import { failureBytes, type CommandClient } from '../runtime/internal/object-store';
import { encode } from '../runtime/internal/serialization';
import { Note, PROTOCOL_VERSION, actorQueueName, shapeKey, type ActorJob, type ActorRecord, type Keys, type Resources, type TaskJob } from '../runtime/protocol';

export interface RecoveryContext {
  redis: CommandClient;
  keys: Keys;
  logger: Logger;
  queue(name: string): Queue;
  nodeTimeoutMs: number;
}

/**
 * Tasks the dead node was running: each goes back to its queue (counted against maxRetries), or
 * fails with WorkerCrashedError when none are left. A node holds a job by its BullMQ lock, whose
 * token starts with the node's id; taking the lock's token here also keeps the dead node, should it
 * come back, from completing the job a second time.
 */
export async function recoverTasks(ctx: RecoveryContext, nodeId: string): Promise<number> {
  const queues = Object.keys(await ctx.redis.hgetall(ctx.keys.shapes)).filter((q) => q.startsWith('task.'));
  let moved = 0;
  for (const name of queues) {
    const q = ctx.queue(name);
    const active = (await q.getJobs(['active'])) as Job<TaskJob>[];
    for (const job of active) {
      if (!job?.id) continue;
      const token = await ctx.redis.get(ctx.keys.jobLock(name, job.id));
      if (!token?.startsWith(`${nodeId}:`)) continue;
      const data = job.data;
      try {
        if (job.attemptsMade < data.maxRetries) {
          await job.moveToFailed(new Error(`node ${nodeId} died`), token, false);
        } else {
          const bytes = failureBytes({
            kind: 'crash',
            task: data.fn.name,
            name: 'WorkerCrashedError',
            message: `The node running ${data.fn.name} (${nodeId}) died (no heartbeat for ${ctx.nodeTimeoutMs} ms), and maxRetries (${data.maxRetries}) allows no more runs.`,
          });
          await ctx.redis.nodusComplete(ctx.keys.prefix, data.id, ctx.keys.inbox(data.caller), bytes, encode([Note.Done, data.id, bytes]).bytes, 0, ctx.keys.jobLock(name, job.id), token);
          await job.moveToCompleted(null, token, false);
        }
        moved++;
      } catch (err) {
        ctx.logger.warn({ job: job.id, err: String(err) }, 'could not recover a task of a dead node');
      }
    }
  }
  return moved;
}

/** Actors the dead node hosted: restarted on another node within maxRestarts, else dead. */
export async function recoverActors(ctx: RecoveryContext, nodeId: string): Promise<number> {
  let n = 0;
  for (const id of await ctx.redis.smembers(ctx.keys.actors)) {
    const rec = (await ctx.redis.hgetall(ctx.keys.actor(id))) as unknown as ActorRecord;
    if (rec.host !== nodeId || rec.state === 'dead') continue;
    n++;
    const restarts = Number(rec.restarts || 0);
    if (rec.killed && rec.killed !== '0') {
      await endActor(ctx.redis, ctx.keys, id, 'dead', actorFailure(`actor ${rec.cls} (${id}) is dead: ${rec.killed}`), 0);
    } else if (restarts < Number(rec.maxRestarts || 0)) {
      await endActor(ctx.redis, ctx.keys, id, 'restart', '', Number(rec.maxTaskRetries || 0));
      await ctx.redis.hset(ctx.keys.actor(id), 'host', '', 'node', '');
      // Placed again like a new actor: any node that has room takes it.
      const queue = actorQueueName(shapeKey(JSON.parse(rec.demand) as Resources));
      const data: ActorJob = { v: PROTOCOL_VERSION, actorId: id };
      await ctx.queue(queue).add(rec.cls, data, { jobId: `${id}.${restarts + 1}`, removeOnComplete: true, removeOnFail: true });
      await ctx.redis.publish(ctx.keys.wakeChannel, queue);
      ctx.logger.warn({ actor: id, cls: rec.cls, from: nodeId }, 'actor of a dead node: restarting elsewhere');
    } else {
      await endActor(
        ctx.redis,
        ctx.keys,
        id,
        'dead',
        actorFailure(`actor ${rec.cls} (${id}) died with its node ${nodeId}` + (Number(rec.maxRestarts) ? ` after ${restarts} restarts (maxRestarts is ${rec.maxRestarts})` : ' and maxRestarts is 0') + '.'),
        0,
      );
    }
  }
  return n;
}

/**
 * A driver died: the tasks it submitted (directly or from its tasks) are of no use to anyone, since
 * their results die with it. Queued ones are removed; running ones are cancelled on their nodes.
 */
export async function cancelDriverTasks(ctx: RecoveryContext, driverId: string): Promise<{ removed: number; cancelled: number }> {
  const queues = Object.keys(await ctx.redis.hgetall(ctx.keys.shapes)).filter((q) => q.startsWith('task.'));
  let removed = 0;
  let cancelled = 0;
  for (const name of queues) {
    const q = ctx.queue(name);
    for (const job of (await q.getJobs(['waiting', 'prioritized', 'delayed'])) as Job<TaskJob>[]) {
      if (job?.data?.owner === driverId && (await q.remove(job.id!).catch(() => 0))) removed++;
    }
    for (const job of (await q.getJobs(['active'])) as Job<TaskJob>[]) {
      if (job?.data?.owner !== driverId) continue;
      // The key is what counts (nodes check it for the tasks they run); the message makes it quick.
      await ctx.redis.set(`${ctx.keys.cancelled}:${job.data.id}`, '1', 'EX', 3600);
      await ctx.redis.publish(ctx.keys.controlChannel, JSON.stringify({ type: 'cancel', id: job.data.id, force: true }));
      cancelled++;
    }
  }
  return { removed, cancelled };
}
