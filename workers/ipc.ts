/** @module Messages between a node agent and its worker processes (Node IPC, advanced serialization). */
import type { TaskJob } from '../runtime/protocol';

export type AgentToWorker = { t: 'run'; job: TaskJob } | { t: 'exit' };

export type WorkerToAgent =
  | { t: 'ready'; pid: number }
  | { t: 'log'; stream: 'stdout' | 'stderr'; text: string }
  /** value: the stored form when small enough to inline, null when the worker stored it. */
  | { t: 'done'; id: string; value: Buffer | null; chunks: number; inner: string[] };
