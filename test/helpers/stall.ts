/** @module submitAndStall(): submits a task, then freezes this process's event loop until the task has completed in the cluster, to force an interleaving that a busy machine makes by chance. */
import { Worker } from 'node:worker_threads';
import type { ObjectRef } from '../../runtime';
import type { CoreContext } from '../../runtime/internal/context';
import { currentContext } from '../../runtime/internal/global';
import { Keys } from '../../runtime/protocol';

/** How long the stall lasts at most, whatever happens in the cluster. */
const STALL_LIMIT_MS = 20_000;

// A thread of its own, with its own Redis connection, watches BullMQ's event stream of the queue for the
// job's completion while the main thread is blocked in Atomics.wait.
const WATCHER = `
const { workerData } = require('node:worker_threads');
const { Redis } = require('ioredis');
const { address, events, jobId, flag, limitMs } = workerData;
const done = new Int32Array(flag);
const redis = new Redis(address, { maxRetriesPerRequest: null });
redis.on('error', () => undefined);
(async () => {
  const deadline = Date.now() + limitMs;
  let seen = false;
  while (!seen && Date.now() < deadline) {
    const entries = await redis.xrevrange(events, '+', '-', 'COUNT', 200).catch(() => []);
    seen = entries.some(([, f]) => f[1] === 'completed' && f[3] === jobId);
    if (!seen) await new Promise((r) => setTimeout(r, 5));
  }
  Atomics.store(done, 0, seen ? 1 : 2);
  Atomics.notify(done, 0);
  redis.disconnect();
})();
`;

/**
 * Submits a task with `submit` once nothing this process sent before is still in flight, so that its job
 * goes to Redis in the next round of `setImmediate` callbacks; in that round, right after, blocks this
 * process until the job has completed in `queue` (at most STALL_LIMIT_MS). Meanwhile this process sends
 * nothing more: whatever it left for later (an auto-pipelined command, say) reaches Redis only after the
 * task has run. Resolves once the stall is over, with the task's ref and whether it completed during it.
 */
export async function submitAndStall<T>(address: string, queue: string, submit: () => ObjectRef<T>): Promise<{ ref: ObjectRef<T>; completed: boolean }> {
  await (currentContext() as CoreContext).settled();
  const ref = submit();
  const flag = new SharedArrayBuffer(4);
  const events = `${new Keys().bullPrefix}:${queue}:events`;
  const watcher = new Worker(WATCHER, { eval: true, workerData: { address, events, jobId: ref.id, flag, limitMs: STALL_LIMIT_MS } });
  return new Promise((resolve) => {
    setImmediate(() => {
      const done = new Int32Array(flag);
      Atomics.wait(done, 0, 0, STALL_LIMIT_MS + 5_000);
      void watcher.terminate().finally(() => resolve({ ref, completed: Atomics.load(done, 0) === 1 }));
    });
  });
}
