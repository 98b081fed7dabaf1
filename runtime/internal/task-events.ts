/**
 * @module Task events as a process records them: one call per event puts a small tuple in a buffer, and the buffer goes
 * to Redis as one stream entry every FLUSH_MS (or sooner when it is full), so recording costs the hot path no round trip.
 */
import type { Redis } from 'ioredis';
import { DEFAULT_RETENTION, STATE_VERSION, StateKeys, type TaskEventRetention } from '../protocol/state';

/** How often a process sends its events: a failure is visible to the state API about this long after it happened. */
const FLUSH_MS = 250;
/** A buffer this full goes at once, so a burst of tasks does not make one huge entry. */
const FLUSH_EVENTS = 5000;

/** Whether this process records task events: on unless NODUS_TASK_EVENTS is 0, false or off (as for the benchmark's side-by-side run). */
export function taskEventsEnabled(): boolean {
  return !/^(0|false|off|no)$/i.test(process.env.NODUS_TASK_EVENTS ?? '');
}

/**
 * How long task events (and what tasks print) are kept: NODUS_TASK_EVENTS_WINDOW_MS and NODUS_TASK_EVENTS_MAX_BYTES
 * (`nodus start --head --task-events-window <s> --task-events-max-mb <n>` sets both for the processes it starts).
 */
export function taskEventRetention(env: NodeJS.ProcessEnv = process.env): TaskEventRetention {
  const read = (name: string, dflt: number, min: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number >= ${min}, got '${v}'.`);
    return n;
  };
  return { windowMs: read('NODUS_TASK_EVENTS_WINDOW_MS', DEFAULT_RETENTION.windowMs, 1000), maxBytes: read('NODUS_TASK_EVENTS_MAX_BYTES', DEFAULT_RETENTION.maxBytes, 1024 * 1024) };
}

/**
 * A process's recorder. `record` never waits and never throws; events that cannot be sent (Redis gone) are dropped
 * after being tried once, as metrics are: the state API is for looking, not for correctness.
 */
export class TaskEventRecorder {
  private buffer: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly key: string;
  readonly enabled: boolean;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    enabled = taskEventsEnabled(),
  ) {
    this.key = new StateKeys(prefix).taskEvents;
    this.enabled = enabled;
  }

  /** Records one event: its line as TaskEvent describes it (`id\tkind\tat\t...`), made by the caller. */
  record(line: string): void {
    this.buffer.push(line);
    if (this.buffer.length >= FLUSH_EVENTS) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Sends what is buffered now (also at a process's end). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.buffer.length) return;
    const events = this.buffer;
    this.buffer = [];
    await this.redis.xadd(this.key, '*', 'v', STATE_VERSION, 'e', events.join('\n')).catch(() => undefined);
  }
}
