/** @module Multiple returns (numReturns): a task's other return objects, each with its own ref and lifetime, and their end when the task fails. */
import type { ObjectRef } from '../object-ref';
import type { Batch } from './batch';
import type { References } from './references';
import { deferred, settleWith, type PendingTask, type ProcessState } from './tasks';

/**
 * A task with numReturns n returns n objects: the first is the task's own result (its id is the task's),
 * the others are `<task id>.<i>`. Each is created here with one reference held by this process, so each
 * is freed on its own when its ref is dropped; the worker stores them before it completes the task.
 */
export function openReturns(state: ProcessState, refs: References, batch: Batch, entry: PendingTask, id: string, n: number, first: ObjectRef): ObjectRef[] {
  const out: ObjectRef[] = [first];
  entry.returns = [];
  for (let i = 1; i < n; i++) {
    const rid = `${id}.${i}`;
    entry.returns.push(rid);
    state.pending.set(rid, { done: deferred(), name: entry.name, shape: entry.shape, args: [], enqueued: true, cancelled: false, of: id });
    out.push(refs.makeRef(rid, true));
    batch.creates.push(rid);
  }
  return out;
}

/**
 * The task failed (or was cancelled, or its worker died once too often): its other returns end with the
 * same failure, here at once and in the store for anyone who borrowed them. On success the worker has
 * stored them already and their own completions came first.
 */
export function failReturns(state: ProcessState, entry: PendingTask, failure: Buffer, complete: (id: string, inline: Buffer) => void): void {
  for (const rid of entry.returns ?? []) {
    if (!state.pending.has(rid)) continue;
    complete(rid, failure);
    void settleWith(state, rid, failure).catch(() => undefined);
  }
}
