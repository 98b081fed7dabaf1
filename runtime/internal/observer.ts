/**
 * @module The one call the hot paths make per task event (submission, a worker starting or ending a task, an agent
 * retrying one): it records the event for the state API and counts it in the process's metrics. Either may be off
 * (NODUS_TASK_EVENTS=0, NODUS_METRICS=0); then its part costs a branch.
 */
import type { Redis } from 'ioredis';
import { EventKind } from '../protocol/state';
import { processTaskMetrics, type TaskMetrics } from './metrics';
import { TaskEventRecorder } from './task-events';

export class TaskObserver {
  private readonly events: TaskEventRecorder;
  private readonly metrics: TaskMetrics | undefined;

  constructor(redis: Redis, prefix: string) {
    this.events = new TaskEventRecorder(redis, prefix);
    this.metrics = processTaskMetrics();
  }

  submitted(id: string, name: string, owner: string, shape: string): void {
    this.events.record(id, EventKind.Submitted, [name, owner, shape]);
    this.metrics?.submitted(name);
  }

  /** A worker began the task; `queuedAt` is when its job reached the queue (scheduling latency). */
  running(id: string, name: string, node: string, worker: string, attempt: number, queuedAt: number): void {
    this.events.record(id, EventKind.Running, [node, worker, process.pid, attempt, name]);
    this.metrics?.started(name, Date.now() - queuedAt);
  }

  /** The task ended where it ran: returned, or failed with `error`. */
  ended(id: string, name: string, node: string, worker: string, error?: { name: string; message: string }): void {
    if (error) this.events.record(id, EventKind.Failed, [node, worker, error.name, error.message]);
    else this.events.record(id, EventKind.Finished, [node, worker]);
    this.metrics?.ended(name, !!error);
  }

  /** The task's worker died and the task was queued again. */
  retried(id: string, node: string, worker: string, reason: string): void {
    this.events.record(id, EventKind.Retried, [node, worker, reason]);
  }

  /** The task failed without ending where it ran: its worker died past maxRetries, or was killed to cancel it (told by the node agent). */
  failedOnNode(id: string, name: string, node: string, worker: string, error: { name: string; message: string }): void {
    this.events.record(id, EventKind.Failed, [node, worker, error.name, error.message]);
    this.metrics?.failed(name);
  }

  /** Sends the buffered events now (a process's end). */
  flush(): Promise<void> {
    return this.events.flush();
  }
}
