/**
 * @module The task platform's records and Redis keys: registered tasks, run indexes, idempotency keys and large results.
 * A run is an execution (runtime/protocol/services.ts) with a few more fields; this is what the CLI, the gateway, the
 * runner actor and the workers read alike.
 */
import type { ExecStatus, ServiceKeys } from '../runtime/protocol/services';

/** Bumped whenever a task record, run field or key layout changes incompatibly. */
export const TASKS_PROTOCOL_VERSION = 1;

/** Results whose JSON is larger than this are kept beside the run instead of in its event stream. */
export const INLINE_RESULTS_BYTES = 100 * 1024;

/** A registered task as kept in Redis (and answered by `GET /api/tasks/{slug}`). */
export interface TaskRecord {
  v: number;
  slug: string;
  name: string;
  description: string;
  version: string;
  /** JSON Schema (draft 2020-12) of what a client sends: fields with defaults are optional. */
  parameters: Record<string, unknown>;
  /** JSON Schema of what a run returns. */
  results: Record<string, unknown>;
  resources: { numCpus: number; numGpus: number; resources: Record<string, number> };
  timeoutMs: number;
  retries: number;
  /** Absolute path of the module that exports it; workers import it from there. */
  module: string;
  /** The export's name in that module. */
  exportName: string;
  registeredAt: number;
}

/** Statuses of a run as the API says them; each is one execution status. */
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const RUN_STATUS: Record<ExecStatus, RunStatus> = { starting: 'queued', running: 'running', finished: 'succeeded', error: 'failed', cancelled: 'cancelled' };
export const EXEC_STATUS: Record<RunStatus, ExecStatus> = { queued: 'starting', running: 'running', succeeded: 'finished', failed: 'error', cancelled: 'cancelled' };

/** Why a run failed: a step threw, the results broke their schema, it ran too long, its worker kept dying, or another error. */
export type FailReason = 'step' | 'parameters' | 'results' | 'timeout' | 'worker' | 'error';

/** Fields a run adds to its execution record (a Redis hash, strings there). */
export interface RunFields {
  /** The task's slug: marks the execution as a run. */
  task: string;
  taskVersion: string;
  /** Attempts begun so far (a worker that died makes one more). */
  attempts: string;
  /** When the latest attempt began (ms): its timeout counts from here, not from the wait in the queue. */
  attemptAt: string;
  /** Set while no node could ever run it (say, no GPU node has joined); what it waits for. */
  waiting: string;
  reason: FailReason;
  /** Bytes of the results kept under TaskKeys.results, when they were too large for the event stream. */
  resultsBytes: string;
}

/** The data of a `step` event. `at` of the event is when it was stored; `time` when it happened in the worker. */
export interface StepEventData {
  phase: 'start' | 'end';
  /** 1, 2, ... in the order steps began within one attempt. */
  index: number;
  attempt: number;
  name: string;
  description: string;
  time: number;
  /** On `end`: how long it ran, ms. */
  durationMs?: number;
  /** On `end` of a step that threw. */
  error?: { name: string; message: string };
  /** On `end`: what it printed (capped). */
  output?: string;
}

/** The `final` event's data when the results live beside the run. */
export interface StoredResultsMarker {
  $stored: 'results';
  bytes: number;
}

/** Redis keys of the task platform, under the cluster's services prefix. */
export class TaskKeys {
  readonly prefix: string;
  constructor(keys: ServiceKeys) {
    this.prefix = `${keys.prefix}:tasks`;
  }
  /** Hash: slug → JSON TaskRecord (the latest registration). */
  get tasks(): string { return `${this.prefix}:defs`; }
  /** Hash: version → JSON TaskRecord, every version registered. */
  versions(slug: string): string { return `${this.prefix}:versions:${slug}`; }
  /** Sorted set (all scores 0, ordered by run id, which is time-ordered): every run. */
  get runs(): string { return `${this.prefix}:runs`; }
  /** The same, one task's runs. */
  taskRuns(slug: string): string { return `${this.prefix}:runs:${slug}`; }
  /** String: the run a POST with this Idempotency-Key started (and a hash of its parameters). */
  idempotency(user: string, slug: string, key: string): string { return `${this.prefix}:idem:${user}:${slug}:${key}`; }
  /** String: results too large for the event stream (JSON); expires with the run. */
  results(runId: string): string { return `${this.prefix}:results:${runId}`; }
}
