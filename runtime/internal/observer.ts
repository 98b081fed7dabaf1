/**
 * @module The one call the hot paths make per task event (submission, a worker starting or ending a task, an agent
 * retrying one): it records the event for the state API and counts it in the process's metrics. Either may be off
 * (NODUS_TASK_EVENTS=0, NODUS_METRICS=0); then its part costs a branch.
 */
import type { Redis } from 'ioredis';
import { EventKind, escapeField } from '../protocol/state';
import { processTaskMetrics, type TaskMetrics } from './metrics';
import { TaskEventRecorder } from './task-events';

export class TaskObserver {
  private readonly events: TaskEventRecorder | undefined;
  private readonly metrics: TaskMetrics | undefined;

  constructor(redis: Redis, prefix: string) {
    const events = new TaskEventRecorder(redis, prefix);
    this.events = events.enabled ? events : undefined;
    this.metrics = processTaskMetrics();
  }

  // Each event is one line of text (see TaskEvent): a template string is the cheapest way to keep it.

  submitted(id: string, name: string, owner: string, shape: string): void {
    this.events?.record(`${id}\t${EventKind.Submitted}\t${Date.now()}\t${name}\t${owner}\t${shape}`);
    this.metrics?.submitted(name);
  }

  /** A worker began the task; `queuedAt` is when its job reached the queue (scheduling latency). */
  running(id: string, name: string, node: string, worker: string, attempt: number, queuedAt: number): void {
    const now = Date.now();
    this.events?.record(`${id}\t${EventKind.Running}\t${now}\t${node}\t${worker}\t${process.pid}\t${attempt}\t${name}`);
    this.metrics?.started(name, now - queuedAt);
  }

  /** The task ended where it ran: returned, or failed with `error`. */
  ended(id: string, name: string, node: string, worker: string, error?: { name: string; message: string }): void {
    if (!error) this.events?.record(`${id}\t${EventKind.Finished}\t${Date.now()}\t${node}\t${worker}`);
    else this.events?.record(`${id}\t${EventKind.Failed}\t${Date.now()}\t${node}\t${worker}\t${escapeField(error.name)}\t${escapeField(error.message)}`);
    this.metrics?.ended(name, !!error);
  }

  /** The task's worker died and the task was queued again. */
  retried(id: string, node: string, worker: string, reason: string): void {
    this.events?.record(`${id}\t${EventKind.Retried}\t${Date.now()}\t${node}\t${worker}\t${escapeField(reason)}`);
  }

  /** The task failed without ending where it ran: its worker died past maxRetries, or was killed to cancel it (told by the node agent). */
  failedOnNode(id: string, name: string, node: string, worker: string, error: { name: string; message: string }): void {
    this.events?.record(`${id}\t${EventKind.Failed}\t${Date.now()}\t${node}\t${worker}\t${escapeField(error.name)}\t${escapeField(error.message)}`);
    this.metrics?.failed(name);
  }

  /** Sends the buffered events now (a process's end). */
  async flush(): Promise<void> {
    await this.events?.flush();
  }
}
