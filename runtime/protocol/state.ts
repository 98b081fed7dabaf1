/** @module The state API's wire contract: task events, stored task and actor logs, metrics snapshots and placement groups — their keys and shapes. */
import { DEFAULT_PREFIX, type Resources } from './index';
import type { PlacementGroupState as RecordedGroupState } from './placement';

/** Bumped when an event's layout changes incompatibly; readers skip batches of other versions. */
export const STATE_VERSION = 1;

/** Names of the state API's keys, under the cluster's prefix. */
export class StateKeys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {}
  /**
   * Stream of task event batches: each entry is one process's events of a moment (fields `v`, `e`: the event lines,
   * see {@link TaskEvent}). Written with XADD only; the head trims it to the configured window and size.
   */
  get taskEvents(): string { return `${this.prefix}:state:events`; }
  /** List: the last lines a task printed (kept as long as task events). */
  taskLog(taskId: string): string { return `${this.prefix}:state:log:task:${taskId}`; }
  /** List: the last lines an actor's processes printed. */
  actorLog(actorId: string): string { return `${this.prefix}:state:log:actor:${actorId}`; }
  /** Hash: process id → its metrics snapshot (JSON {@link MetricsSnapshot}), pushed every few seconds. */
  get metrics(): string { return `${this.prefix}:state:metrics`; }
}

/** What happened to a task: a task's events in time order make its history. */
export const enum EventKind {
  /** A driver or task called `.remote()`. */
  Submitted = 0,
  /** A worker process began it. */
  Running = 1,
  /** It returned. */
  Finished = 2,
  /** It threw, or its worker died more often than maxRetries allows, or it was cancelled. */
  Failed = 3,
  /** Its worker process died and it was queued again. */
  Retried = 4,
}

/**
 * One task event as a reader sees it: [taskId, kind, at (ms), detail], the detail by kind —
 * Submitted: [name, owner, shape]; Running: [node, worker, pid, attempt, name]; Finished: [node, worker];
 * Failed: [node, worker, errorName, message]; Retried: [node, worker, reason].
 * On the wire each is one line of tab-separated fields (`id\tkind\tat\tdetail...`; a batch's lines joined by
 * newlines): tens of thousands go by a second, and joining text costs a process far less than encoding arrays.
 * Text that may hold tabs or newlines (error messages) is escaped with {@link escapeField}.
 */
export type TaskEvent = [string, EventKind, number, string[]];

/** Escapes a field for an event line: backslash, tab and newline. */
export function escapeField(text: string): string {
  return /[\\\t\n\r]/.test(text) ? text.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r')) : text;
}

/** The text of an escaped field. */
export function unescapeField(text: string): string {
  return text.includes('\\') ? text.replace(/\\(.)/g, (_m, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c)) : text;
}

/** Parses a batch of event lines; malformed lines are skipped. */
export function parseEvents(batch: string): TaskEvent[] {
  const out: TaskEvent[] = [];
  for (const line of batch.split('\n')) {
    const f = line.split('\t');
    if (f.length < 3) continue;
    out.push([f[0], Number(f[1]) as EventKind, Number(f[2]), f.slice(3).map(unescapeField)]);
  }
  return out;
}

/** Lines kept per task or actor log; older lines are dropped. */
export const LOG_LINES = 1000;

/** A task event window and size: events older than `windowMs` go, and the oldest go while the stream is over `maxBytes`. */
export interface TaskEventRetention {
  windowMs: number;
  maxBytes: number;
}

/** @default 1 hour, 64 MiB: a recent failure can be looked at well after it happened, and Redis keeps little. */
export const DEFAULT_RETENTION: TaskEventRetention = { windowMs: 60 * 60 * 1000, maxBytes: 64 * 1024 * 1024 };

/** One process's metrics as it pushed them: prom-client's getMetricsAsJSON(), and when. */
export interface MetricsSnapshot {
  /** The process: `head`, `agent:<node>`, `worker:<id>`, `driver:<id>`, `gateway:<pid>`. */
  proc: string;
  at: number;
  metrics: unknown[];
}

/** Snapshots older than this many push intervals are left out of the cluster's /metrics (their process is gone). */
export const METRICS_STALE_INTERVALS = 3;

/** A placement group's state as the state API shows it: the manager's, and INFEASIBLE for a pending one that no alive nodes can hold. */
export type PlacementGroupState = RecordedGroupState | 'INFEASIBLE';

/** A placement group as the state API shows it (folded from the manager's record, Keys.placementGroups). */
export interface PlacementGroupInfo {
  id: string;
  name: string;
  strategy: 'PACK' | 'SPREAD' | 'STRICT_PACK' | 'STRICT_SPREAD';
  state: PlacementGroupState;
  /** Each bundle's resources and the node that holds it ('' while not placed). */
  bundles: { resources: Resources; node: string }[];
  createdAt: number;
  /** Why it is pending or infeasible, when it is. */
  reason?: string;
}
