/** @module What the head does when a node dies: its tasks run again elsewhere, its actors restart elsewhere. */
import { randomBytes } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import { actorFailure, endActor } from '../runtime/internal/actor-lifecycle';
import { cancelledFailure, type SerializedFailure } from '../runtime/errors';
import { failureBytes, settleCall } from '../runtime/internal/object-store';
import type { JobContext } from '../runtime/internal/owned-tasks';
import { PROTOCOL_VERSION, actorQueueName, replacementQueue, shapeKey, type ActorJob, type ActorRecord, type Placement, type Resources, type RuntimeEnvDescriptor, type TaskJob } from '../runtime/protocol';

export interface RecoveryContext extends JobContext {
  logger: Logger;
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
        if (data.more?.length) {
          // The tasks up to the recorded progress are done; the next one was running.
          const progress = await ctx.redis.get(ctx.keys.bundleProgress(name, job.id));
          await settleBundle(ctx, name, job, token, progress === null ? 0 : Number(progress) + 1, false, `its node ${nodeId} died`);
        } else if (job.attemptsMade + (data.retried ?? 0) < data.maxRetries) {
          await job.moveToFailed(new Error(`node ${nodeId} died`), token, false);
        } else {
          const bytes = failureBytes(crashFailure(data, `The node running ${data.fn.name} (${nodeId}) died (no heartbeat for ${ctx.nodeTimeoutMs} ms)`));
          await settleCall(ctx.redis, ctx.keys, data.id, data.caller, bytes, ctx.keys.jobLock(name, job.id), token);
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

export type { JobContext } from '../runtime/internal/owned-tasks';

/** WorkerCrashedError for a task whose runner died once too often. */
export function crashFailure(data: TaskJob, what: string): SerializedFailure {
  return {
    kind: 'crash',
    task: data.fn.name,
    name: 'WorkerCrashedError',
    message:
      `${what}, and maxRetries (${data.maxRetries}) allows no more runs. Look at the task's output for the cause (out of memory? process.exit()?), ` +
      'or raise maxRetries with .options({ maxRetries: n }).',
  };
}

/**
 * A bundle job whose runner (a worker process, or its whole node) died while it ran task `index`: the
 * tasks before it are done. That task runs again in a job of its own if its maxRetries allows (or ends
 * as cancelled, or with WorkerCrashedError); the bundle's later tasks go back to the queue as jobs of
 * their own, but for those cancelled meanwhile; then the bundle job is completed.
 */
export async function settleBundle(ctx: JobContext, queue: string, job: Job<TaskJob>, token: string, index: number, cancelled: boolean, why: string): Promise<void> {
  const tasks = [job.data, ...(job.data.more ?? [])];
  const lock = ctx.keys.jobLock(queue, job.id!);
  const marks = index < tasks.length ? await ctx.redis.mget(...tasks.slice(index).map((t) => ctx.keys.cancelMark(t.id))) : [];
  const again: TaskJob[] = [];
  const finish = async (t: TaskJob, failure: SerializedFailure) => {
    await settleCall(ctx.redis, ctx.keys, t.id, t.caller, failureBytes(failure), lock, token);
  };
  for (let i = index; i < tasks.length; i++) {
    const t = tasks[i];
    const used = (t.retried ?? 0) + (i === index ? 1 : 0);
    if (marks[i - index] || (i === index && cancelled)) await finish(t, cancelledFailure(t.fn.name));
    else if (used <= t.maxRetries) again.push({ ...t, more: undefined, retried: used });
    else await finish(t, crashFailure(t, `The worker running ${t.fn.name} died (${why}) ${used} time${used > 1 ? 's' : ''}`));
  }
  if (again.length) {
    const suffix = randomBytes(3).toString('hex');
    await ctx
      .queue(queue)
      .addBulk(again.map((t) => ({ name: t.fn.name, data: t, opts: { jobId: `${t.id}-${suffix}`, attempts: Math.max(1, t.maxRetries - (t.retried ?? 0) + 1), removeOnComplete: true, removeOnFail: true } })));
    await ctx.redis.publish(ctx.keys.wakeChannel, queue);
  }
  await ctx.redis.del(ctx.keys.bundleProgress(queue, job.id!));
  await job.moveToCompleted(null, token, false);
}

/** Actors the dead node hosted: restarted on another node within maxRestarts, else dead. */
export async function recoverActors(ctx: RecoveryContext, nodeId: string): Promise<number> {
  let n = 0;
  for (const id of await ctx.redis.smembers(ctx.keys.actors)) {
    const rec = (await ctx.redis.hgetall(ctx.keys.actor(id))) as unknown as ActorRecord;
    // movingFrom: a move that a head began and did not finish (it was killed): take it up again.
    const resumed = rec.movingFrom === nodeId;
    if ((rec.host !== nodeId && !resumed) || rec.state === 'dead') continue;
    n++;
    const restarts = Number(rec.restarts || 0) - (resumed ? 1 : 0);
    if (rec.killed && rec.killed !== '0') {
      await endActor(ctx.redis, ctx.keys, id, 'dead', actorFailure(`actor ${rec.cls} (${id}) is dead: ${rec.killed}`), 0);
    } else if (restarts < Number(rec.maxRestarts || 0)) {
      // Each step can be done again: the intent is written first, so a head killed halfway through
      // leaves it for the next one (which finds it by movingFrom).
      const moveJob = resumed && rec.moveJob ? rec.moveJob : `${id}.${restarts + 1}`;
      await ctx.redis.hset(ctx.keys.actor(id), 'movingFrom', nodeId, 'moveJob', moveJob, 'host', '', 'node', '');
      if (!resumed) await endActor(ctx.redis, ctx.keys, id, 'restart', '', Number(rec.maxTaskRetries || 0));
      // Placed again like a new actor: any node that has room (and fits its placement) takes it; an actor with
      // a runtime env through that env's queue (the node that takes it sets the env up).
      const queue = await replacementQueueOf(ctx, rec);
      const data: ActorJob = { v: PROTOCOL_VERSION, actorId: id };
      await ctx.queue(queue).add(rec.cls, data, { jobId: moveJob, removeOnComplete: true, removeOnFail: true });
      await ctx.redis.hdel(ctx.keys.actor(id), 'movingFrom', 'moveJob');
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


/** The queue an actor goes back to: its shape's, or the one its placement names (registered, should no driver have used it yet). */
async function replacementQueueOf(ctx: RecoveryContext, rec: ActorRecord): Promise<string> {
  const env = rec.env ? (JSON.parse(rec.env) as RuntimeEnvDescriptor).key : undefined;
  const base = actorQueueName(shapeKey(JSON.parse(rec.demand) as Resources), env);
  if (!rec.placement) return base;
  const { queue, constraint } = replacementQueue(base, JSON.parse(rec.placement) as Placement);
  if (constraint) await ctx.redis.hset(ctx.keys.placements, queue, JSON.stringify(constraint));
  await ctx.redis.hset(ctx.keys.shapes, queue, rec.demand);
  return queue;
}
