/**
 * @module The one owner of a long-running process's life (head, node agent, gateway, model hosts): readiness, SIGTERM
 * and SIGINT, the parent going away, and Redis — its loss logged once per change of state, and given up on at last.
 */
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redact } from './redis';

/** A stop that has not finished by then is cut short: every process exits within 5 s of SIGTERM. */
const STOP_DEADLINE_MS = 4000;
/** The most one stop step may take (see exit()). */
const STEP_MS = 2500;
/** Default time without Redis after which a process gives up on its cluster (NODUS_REDIS_GIVE_UP_MS). */
export const DEFAULT_REDIS_GIVE_UP_MS = 10 * 60 * 1000;

export interface LifecycleOptions {
  /** What the process is, for its log lines ('head', 'node agent', 'gateway'). */
  name: string;
  logger: Logger;
  /** The cluster's Redis address, for messages (its password is never logged). */
  address: string;
  /** Exit when the process that started it goes (init()'s local cluster, tests). */
  attached: boolean;
  /**
   * Exit after this long without a connection to Redis; 0 never gives up. @default NODUS_REDIS_GIVE_UP_MS, else 10 minutes
   */
  redisGiveUpMs?: number;
}

/** How long a process waits without Redis before it gives up, from NODUS_REDIS_GIVE_UP_MS. */
export function redisGiveUpMs(): number {
  const v = process.env.NODUS_REDIS_GIVE_UP_MS;
  if (v === undefined || v === '') return DEFAULT_REDIS_GIVE_UP_MS;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`NODUS_REDIS_GIVE_UP_MS must be a number of milliseconds >= 0 (0: never give up), got '${v}'.`);
  return n;
}

/**
 * Owns a process's life. Create it first, hand it the Redis connections to watch, register the graceful stop,
 * then call ready(). Every way out — a signal, the parent's end, Redis gone too long — runs the stop once and
 * exits within STOP_DEADLINE_MS whatever state Redis is in.
 *
 * @example
 * const life = new Lifecycle({ name: 'head', logger, address, attached });
 * life.watch(head.redis);
 * life.onStop(() => head.stop());
 * life.ready(await head.start());
 */
export class Lifecycle {
  private stops: (() => Promise<void>)[] = [];
  private stopping: Promise<never> | undefined;
  private readonly watched = new Map<Redis, boolean>();
  private downSince: number | undefined;
  private downReason = '';
  private attempts = 0;
  private readonly giveUpMs: number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly o: LifecycleOptions) {
    this.giveUpMs = o.redisGiveUpMs ?? redisGiveUpMs();
    const onSignal = (signal: NodeJS.Signals) => {
      // A second signal while stopping: the user means it.
      if (this.stopping) process.exit(1);
      void this.exit(0, `${signal} received`);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    this.timer = setInterval(() => this.checkGiveUp(), 1000);
    this.timer.unref();
  }

  /** Runs before exit, in reverse order of registration (what started last stops first). */
  onStop(stop: () => Promise<void>): void {
    this.stops.unshift(stop);
  }

  /**
   * Watches a connection: its loss and return are logged once each (with how many reconnect attempts it took),
   * not once per attempt, and a process without Redis for longer than the give-up time exits.
   */
  watch(redis: Redis): void {
    this.watched.set(redis, redis.status === 'ready');
    redis.on('error', (err: Error) => {
      if (this.downSince !== undefined) this.downReason ||= err.message;
      else this.downReason = err.message;
    });
    redis.on('reconnecting', () => {
      if (this.downSince !== undefined) this.attempts++;
    });
    redis.on('close', () => this.setState(redis, false));
    redis.on('ready', () => this.setState(redis, true));
  }

  /** Whether every watched connection is up. */
  get connected(): boolean {
    return this.downSince === undefined;
  }

  private setState(redis: Redis, up: boolean): void {
    if (this.stopping) return;
    this.watched.set(redis, up);
    const allUp = [...this.watched.values()].every(Boolean);
    if (!up && this.downSince === undefined) {
      this.downSince = Date.now();
      this.attempts = 0;
      this.o.logger.warn(
        { redis: redact(this.o.address), reason: this.downReason || 'connection closed' },
        `lost the connection to Redis; reconnecting${this.giveUpMs ? ` (giving up after ${fmtMs(this.giveUpMs)} without it)` : ''}`,
      );
    } else if (allUp && this.downSince !== undefined) {
      this.o.logger.warn({ redis: redact(this.o.address), attempts: this.attempts, downMs: Date.now() - this.downSince }, 'reconnected to Redis');
      this.downSince = undefined;
      this.downReason = '';
    }
  }

  private checkGiveUp(): void {
    if (this.downSince === undefined || !this.giveUpMs || this.stopping) return;
    const down = Date.now() - this.downSince;
    if (down < this.giveUpMs) return;
    this.o.logger.error(
      { redis: redact(this.o.address), attempts: this.attempts, reason: this.downReason },
      `no connection to Redis for ${fmtMs(down)}: its cluster is gone; the ${this.o.name} exits (NODUS_REDIS_GIVE_UP_MS sets how long to wait)`,
    );
    void this.exit(1, 'Redis gone');
  }

  /** Tells the launcher the process is up; an attached process stops when its parent goes away. */
  ready(info: Record<string, unknown>): void {
    process.send?.({ ready: info });
    if (this.o.attached) process.on('disconnect', () => void this.exit(0, 'its parent process ended'));
  }

  /** Stops once (bounded by the deadline) and exits with `code`. */
  exit(code: number, why: string): Promise<never> {
    this.stopping ??= (async () => {
      clearInterval(this.timer);
      this.o.logger.info({ why }, `${this.o.name} stopping`);
      const deadline = setTimeout(() => {
        this.o.logger.warn(`${this.o.name} could not stop cleanly within ${STOP_DEADLINE_MS} ms (Redis unreachable?); exiting anyway`);
        process.exit(code);
      }, STOP_DEADLINE_MS);
      const end = Date.now() + STOP_DEADLINE_MS;
      for (const stop of this.stops) {
        // Each step gets its share, so that a step stuck on Redis leaves time for the ones after it (stopping Redis itself, say).
        const budget = Math.max(200, Math.min(STEP_MS, end - Date.now() - 500));
        let t: NodeJS.Timeout | undefined;
        const cut = new Promise<void>((r) => (t = setTimeout(() => r(this.o.logger.warn(`a stop step of the ${this.o.name} took over ${budget} ms; going on`)), budget)));
        await Promise.race([stop().catch((err) => this.o.logger.warn({ err: String(err) }, 'unclean stop')), cut]);
        clearTimeout(t);
      }
      clearTimeout(deadline);
      process.exit(code);
    })();
    return this.stopping;
  }
}

function fmtMs(ms: number): string {
  return ms >= 60_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 100) / 10} s`;
}

/** Arguments every cluster entry process takes (--address, --attached, --namespace) and its own. */
export function entryArgs(extra: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>) {
  return parseArgs({
    options: { address: { type: 'string' }, attached: { type: 'boolean' }, namespace: { type: 'string' }, ...extra },
    strict: true,
  }).values as Record<string, string | boolean | string[] | undefined>;
}
