/** @module A leased worker's linger: when its queue runs dry it keeps the lease a few milliseconds, waiting for the next job with one blocking pop. */
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { connect } from '../runtime/internal/redis';
import type { TaskJob } from '../runtime/protocol';
import type { TaskQueue } from './task-queue';

/**
 * How long an idle leased worker waits for its queue's next job before it gives the lease back. A loop of
 * `get(f.remote())` submits the next task a fraction of a millisecond after the last one's result arrives:
 * the worker that ran it takes it straight from Redis (woken by BullMQ's marker, one blocking pop, then
 * the fetch) instead of the seven hops of a new lease (driver → Redis → PUBLISH → agent → fetch → IPC →
 * worker). The cost: a lease's resources stay taken this much longer after its last task, so work of
 * another shape that needs them waits at most this long. Ray keeps idle leased workers the same way.
 */
export const LINGER_MS = 25;

/** Removes a queue's marker while its wait list is empty (KEYS: wait list, marker). */
const CLEAR_STALE_MARKER = "if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], '0') end return 0";

/**
 * Waits on one queue's BullMQ marker (BullMQ adds it with each job it queues, and again each time a job is
 * taken, so one waiter after another is woken while jobs remain) on a connection of its own, and fetches
 * the job with the lease's token as fetch-next does. The agent hears of the task as of any other of the
 * lease ('start'), so cancel, lock renewal and a retry after this process dies work as before.
 */
export class Linger {
  private conn: Redis | undefined;

  constructor(
    private readonly address: string,
    private readonly name: string,
  ) {}

  /** The queue's next job, taken within LINGER_MS; undefined when none came or `stop()` turned true. */
  async next(q: TaskQueue, token: string, stop: () => boolean): Promise<Job<TaskJob> | undefined> {
    const deadline = Date.now() + LINGER_MS;
    const conn = (this.conn ??= this.open());
    for (let left = LINGER_MS; left > 0 && !stop(); left = deadline - Date.now()) {
      // BullMQ left a marker when it gave this worker its last job (to wake other workers): cleared here
      // when nothing waits, in the same write as the pop, so the pop sleeps until the next job is queued
      // instead of waking at once to find nothing. A job queued after the clear sets the marker again.
      // One write for both, so Redis wakes once for them.
      const res = await conn
        .pipeline()
        .eval(CLEAR_STALE_MARKER, 2, q.keys.wait, q.keys.marker)
        // Redis takes the timeout in seconds with millisecond precision; a marker there returns at once.
        .bzpopmin(q.keys.marker, Math.max(0.001, left / 1000))
        .exec()
        .catch(() => null);
      const woken = res?.[1]?.[1];
      if (stop()) return undefined;
      if (!woken) continue;
      const job = (await q.getNextJob(token, { block: false })) as Job<TaskJob> | undefined;
      if (job) return job;
    }
    return undefined;
  }

  close(): void {
    this.conn?.disconnect();
  }

  private open(): Redis {
    const conn = connect(this.address, { blocking: true, name: this.name });
    conn.on('error', () => undefined);
    return conn;
  }
}
