/**
 * @module The head's Redis: started by the head, and started again — same port, folder, password, TLS and
 * append-only file — whenever it dies (kill -9, the OOM killer), with back-off when it keeps dying.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { startRedisServer, type RedisServerOptions } from '../runtime/internal/launcher';
import { stopProcess } from '../runtime/internal/process-state';

/** What the head records about its Redis's restarts (shown by `nodus status`). */
export interface RedisRestart {
  count: number;
  at: number;
  /** How the last one ended: "killed by SIGKILL", "exited with code 1". */
  why: string;
}

/** Deaths within this window count towards the back-off; a Redis that ran longer starts again at once. */
const STABLE_MS = 30_000;
const MAX_BACKOFF_MS = 30_000;

export class RedisSupervisor {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restarts = 0;
  private recentDeaths = 0;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: Omit<RedisServerOptions, 'detached'>,
    private readonly logger: Logger,
    /** Called once Redis answers again after a restart. */
    private readonly onRestarted: (r: RedisRestart) => void,
  ) {}

  get pidFile(): string {
    return join(this.o.dir, `redis-${this.o.port}.pid`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts Redis and waits until it answers; resolves to its address. */
  async start(): Promise<string> {
    const started = await this.spawn();
    return started;
  }

  private async spawn(): Promise<string> {
    // Its own process group: a signal to the head's group (Ctrl-C of `start --block`) is the head's to handle.
    const r = await startRedisServer({ ...this.o, detached: true, pidFile: this.pidFile });
    this.child = r.process;
    this.startedAt = Date.now();
    r.process.once('exit', (code, signal) => this.onExit(code, signal));
    return r.address;
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.child = undefined;
    if (this.stopping) return;
    const why = signal ? `killed by ${signal}` : `exited with code ${code}`;
    const ranMs = Date.now() - this.startedAt;
    this.recentDeaths = ranMs > STABLE_MS ? 1 : this.recentDeaths + 1;
    // At once the first time; then 1, 2, 4 ... 30 s while it keeps dying soon after each start.
    const delay = this.recentDeaths <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.recentDeaths - 2));
    this.logger.error({ port: this.o.port, why, ranMs, ...(code ? { lastLog: this.lastLogLine() } : {}), restartInMs: delay }, `the head's redis-server ${why}; starting it again`);
    this.timer = setTimeout(() => void this.restart(why), delay);
  }

  private async restart(why: string): Promise<void> {
    if (this.stopping) return;
    try {
      await this.spawn();
      this.restarts++;
      this.logger.warn({ port: this.o.port, restarts: this.restarts }, 'redis-server is back (append-only file reloaded); clients reconnect by themselves');
      this.onRestarted({ count: this.restarts, at: Date.now(), why });
    } catch (err) {
      // The start itself failed (port taken, folder gone): count it as another quick death and try again later.
      this.logger.error({ err: String(err) }, 'could not start redis-server again');
      this.startedAt = Date.now();
      this.onExit(1, null);
    }
  }

  private lastLogLine(): string {
    try {
      return readFileSync(join(this.o.dir, `redis-${this.o.port}.log`), 'utf8').trim().split('\n').pop() ?? '';
    } catch {
      return '';
    }
  }

  /** Stops Redis (SIGTERM: it writes its append-only file and exits) and stops watching it. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    if (this.child?.pid) await stopProcess(this.child.pid, graceMs);
  }
}
