/** @module The per-tick batch: what this process sends to Redis next (results to create, jobs, actor calls, reference ops, notes), gathered so that a loop of calls goes out in one round. */
import type { ActorCall } from '../protocol';
import { storeError } from './object-store';
import type { ActorCreate, PendingTask, ProcessState, QueuedJob } from './tasks';

/** One tick's worth of commands, taken out of the batch as a whole when it is sent. */
export interface BatchContents {
  creates: string[];
  jobs: QueuedJob[];
  refOps: string[];
  actorCreates: ActorCreate[];
  actorCalls: Map<string, ActorCall[]>;
  notes: [string, Buffer][];
}

export class Batch implements BatchContents {
  creates: string[] = [];
  jobs: QueuedJob[] = [];
  refOps: string[] = [];
  actorCreates: ActorCreate[] = [];
  actorCalls = new Map<string, ActorCall[]>();
  notes: [string, Buffer][] = [];
  /** The sends so far, one after another: settled() and shutdown wait on it. */
  flushing: Promise<void> = Promise.resolve();
  private flushScheduled = false;

  /** `send` turns one tick's contents into Redis commands (the submitter's flush). */
  constructor(
    private readonly state: ProcessState,
    private readonly send: (contents: BatchContents) => Promise<void>,
  ) {}

  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate, not a microtask: a loop of .remote() calls lands in one batch.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing = this.flushing.then(() => this.send(this.take())).catch((err) => {
        // The calls of the batch have failed with the reason already; this says it once for the process.
        if (!this.state.closed) console.error(`[nodus] could not submit to Redis: ${(storeError(err, 0) as Error).message}`);
      });
    });
  }

  /** Queues a task's (or an actor's placement) job, unless it was cancelled while it waited for its arguments. */
  enqueue(entry: PendingTask, queued: QueuedJob): void {
    if (entry.cancelled) return;
    entry.enqueued = true;
    this.jobs.push(queued);
    this.scheduleFlush();
  }

  /** Waits until everything this process has queued so far has reached Redis. */
  async settled(): Promise<void> {
    if (this.flushScheduled) await new Promise((r) => setImmediate(r));
    await this.flushing;
  }

  /** Empties the batch; what is queued from here on goes out with the next send. */
  private take(): BatchContents {
    const out: BatchContents = { creates: this.creates, jobs: this.jobs, refOps: this.refOps, actorCreates: this.actorCreates, actorCalls: this.actorCalls, notes: this.notes };
    this.creates = [];
    this.jobs = [];
    this.refOps = [];
    this.actorCreates = [];
    this.actorCalls = new Map();
    this.notes = [];
    return out;
  }
}
