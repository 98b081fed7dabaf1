/** @module What the parts of a process's runtime share: its connection and names, and the tasks it has submitted and not yet seen finish. */
import { RuntimeEnvError, toFailure, type SerializedFailure } from '../errors';
import type { ActorJob, Keys, Placement, Resources, TaskJob } from '../protocol';
import type { LocalStore } from './local-store';
import { settleCall, type CommandClient } from './object-store';
import type { TaskObserver } from './observer';
import type { ObjectClient } from './object-connection';
import type { Queues } from './queues';

/**
 * One object per process, shared by reference by every part of its runtime: a worker changes `ownerId`
 * per task and shutdown sets `closed`, and each part must see that at once.
 */
export interface ProcessState {
  readonly redis: CommandClient;
  /** The object connection: put() writes and get() reads (see object-connection.ts). */
  readonly objects: ObjectClient;
  readonly keys: Keys;
  /** This process's id: inbox, held references, and (for a driver) owner of its objects. */
  readonly procId: string;
  readonly role: 'driver' | 'worker';
  /** The cluster's Redis address, for the extra connections (inbox, logs) a part opens. */
  readonly address: string;
  readonly queues: Queues;
  /** Records task events and counts them in metrics (the state API's source). */
  readonly observer: TaskObserver;
  /** Root driver that owns what this process creates; a worker sets it per task. */
  ownerId: string;
  closed: boolean;
  /** Tasks and actor calls this process submitted, until it sees them finish. */
  readonly pending: Map<string, PendingTask>;
  /** wait() calls under way, told of each task this process sees finish. */
  readonly completionListeners: Set<(id: string) => void>;
  /** The object store of this process's node (large objects go there), or null: Redis holds them. */
  store: LocalStore | null;
  /** Called when this process's node store turned out to be gone: a driver looks for another. */
  onStoreGone?: () => void;
}

export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

export interface PendingTask {
  done: Deferred;
  name: string;
  shape: string;
  /** Its queue when that is not the shape's plain one (a runtime env's). */
  queue?: string;
  /** Keeps argument refs alive (and so held) until the task has finished with them. */
  args: unknown[];
  enqueued: boolean;
  cancelled: boolean;
  /** Queued in a bundle with other tasks: cancel cannot take its job off the queue. */
  bundled?: boolean;
  /** Times it ran again after a lost argument was rebuilt. */
  rebuilds?: number;
  /** With numReturns > 1: the ids of its other returns, settled with its failure if it fails. */
  returns?: string[];
  /** One of another task's returns: that task's id (cancel() goes there). */
  of?: string;
}

export interface QueuedJob {
  /** BullMQ queue name (task.<shape> or actor.<shape>). */
  queue: string;
  demand: Resources;
  name: string;
  id: string;
  data: TaskJob | ActorJob;
  attempts: number;
  /** Where it may run, if the options said (routed to a constrained queue by Strategies). */
  placement?: Placement;
}

export interface ActorCreate {
  args: string[];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ends a task without running it (a failed dependency, a cancel before dispatch). */
export async function settleWith(state: ProcessState, id: string, bytes: Buffer, caller = state.procId): Promise<void> {
  await settleCall(state.redis, state.keys, id, caller, bytes);
}

export function systemFailure(task: string, err: unknown): SerializedFailure {
  const e = err instanceof Error ? err : new Error(String(err));
  return { kind: 'system', task, name: e.name, message: e.message, stack: e.stack };
}

/** Why a task or actor could not get its runtime env: the env's error as it is, anything else as a system failure. */
export function envFailure(task: string, err: unknown): SerializedFailure {
  if (err instanceof RuntimeEnvError) return { ...toFailure(err, 'env', task), kind: 'env' };
  return systemFailure(task, err);
}
