/** @module Messages between a node agent and its worker processes (Node IPC, advanced serialization). */
import type { JobJson } from 'bullmq';

/**
 * A lease: the worker runs `job` (which the agent took from `queue` with `token`) and then, while the
 * queue has more, the next ones, fetched as it completes each one (BullMQ's fetch-next), holding the
 * resources the agent set aside for the lease. Ray's leased workers run tasks of one shape back to back
 * the same way.
 */
export interface Lease {
  queue: string;
  job: JobJson;
  token: string;
  /** When the queue runs dry, wait a moment for its next job instead of ending (workers/linger.ts); one lease per queue and node. */
  linger?: boolean;
}

export type AgentToWorker =
  | { t: 'lease'; lease: Lease }
  /** End the lease after the task that runs now: the node lent its CPU while it waited and is over its total. */
  | { t: 'yield' }
  | { t: 'exit' };

export type WorkerToAgent =
  | { t: 'ready'; pid: number }
  | { t: 'log'; stream: 'stdout' | 'stderr'; text: string }
  /** The worker began a task: task `index` of job `job` (the first of the lease the agent knows of). */
  | { t: 'start'; id: string; job: string; index: number; owner: string; name: string }
  /** The task started or stopped waiting in get()/wait(): its CPU can run other work meanwhile. */
  | { t: 'blocked'; blocked: boolean }
  /** The lease's queue ran dry: the worker waits a moment for its next job itself (workers/linger.ts). */
  | { t: 'idle' }
  /** The lease is over: the queue was empty, or the worker could not go on (reason). */
  | { t: 'done'; reason?: string };
