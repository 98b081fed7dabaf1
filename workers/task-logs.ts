/**
 * @module What tasks and actors print, kept in Redis for `nodus logs --task/--actor` after the driver that saw it is
 * gone: lines are gathered per tick and written in one pipeline, each list capped at LOG_LINES and expiring with the
 * task event window.
 */
import type { Redis } from 'ioredis';
import { LOG_LINES, StateKeys } from '../runtime/protocol/state';
import { taskEventRetention, taskEventsEnabled } from '../runtime/internal/task-events';

export class TaskLogStore {
  private readonly keys: StateKeys;
  private pending = new Map<string, string[]>();
  private timer: NodeJS.Immediate | undefined;
  private readonly enabled = taskEventsEnabled();

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly ttlMs = taskEventRetention().windowMs,
  ) {
    this.keys = new StateKeys(prefix);
  }

  task(id: string, stream: 'stdout' | 'stderr', text: string): void {
    this.add(this.keys.taskLog(id), stream, text);
  }

  actor(id: string, stream: 'stdout' | 'stderr', text: string): void {
    this.add(this.keys.actorLog(id), stream, text);
  }

  private add(key: string, stream: 'stdout' | 'stderr', text: string): void {
    if (!this.enabled) return;
    // One entry per line, stderr marked, so that a reader can tell them apart and page through them.
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    if (!lines.length) return;
    const list = this.pending.get(key) ?? [];
    for (const l of lines) list.push(stream === 'stderr' ? `E${l}` : `O${l}`);
    this.pending.set(key, list);
    this.timer ??= setImmediate(() => void this.flush());
  }

  /** Writes the gathered lines now. */
  async flush(): Promise<void> {
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
    if (!this.pending.size) return;
    const batch = this.pending;
    this.pending = new Map();
    const pipe = this.redis.pipeline();
    for (const [key, lines] of batch) pipe.rpush(key, ...lines).ltrim(key, -LOG_LINES, -1).pexpire(key, this.ttlMs);
    await pipe.exec().catch(() => undefined);
  }
}
