/**
 * @module Prometheus metrics of one process (prom-client): the process's registry, which the built-in metrics and the
 * user's (nodus/metrics) share, the built-in task metrics, and the pusher that puts the registry's snapshot in Redis
 * every few seconds for the head to add up into the cluster's /metrics.
 */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Redis } from 'ioredis';
import { METRICS_STALE_INTERVALS, StateKeys, type MetricsSnapshot } from '../protocol/state';

/** @default every 2 s (NODUS_METRICS_INTERVAL_MS) */
export const DEFAULT_METRICS_INTERVAL_MS = 2000;

/** Whether this process keeps and pushes metrics: on unless NODUS_METRICS is 0, false or off. */
export function metricsEnabled(): boolean {
  return !/^(0|false|off|no)$/i.test(process.env.NODUS_METRICS ?? '');
}

/** How often a process pushes its snapshot, from NODUS_METRICS_INTERVAL_MS. */
export function metricsIntervalMs(): number {
  const v = process.env.NODUS_METRICS_INTERVAL_MS;
  if (v === undefined || v === '') return DEFAULT_METRICS_INTERVAL_MS;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 100) throw new Error(`NODUS_METRICS_INTERVAL_MS must be a number of milliseconds >= 100, got '${v}'.`);
  return n;
}

const REGISTRY = Symbol.for('nodus.metrics.registry');
type Holder = { [REGISTRY]?: Registry };

/**
 * The registry of this process: the built-in metrics and every user metric made in it. On globalThis, as the runtime
 * context is: a worker runs our compiled code and the user's module may load its own copy of nodus/metrics.
 */
export function processRegistry(): Registry {
  return ((globalThis as Holder)[REGISTRY] ??= new Registry());
}

/** One function's counts in this process; the metrics read them when a snapshot is taken. */
interface FunctionCounts {
  submitted: number;
  running: number;
  finished: number;
  failed: number;
}

/** The task metrics every process that submits or runs tasks keeps. */
export interface TaskMetrics {
  submitted(fn: string): void;
  started(fn: string, queuedForMs: number): void;
  ended(fn: string, failed: boolean): void;
  /** A task failed without ending where it ran (its worker died past maxRetries): counted by the node agent. */
  failed(fn: string): void;
}

let taskMetrics: TaskMetrics | undefined;

/**
 * This process's task metrics (made on first use), or undefined when metrics are off. The hot path only bumps plain
 * numbers per function; prom-client's counters are set from them when a snapshot is taken (collect), so a task pays
 * no label hashing. Scheduling latency is observed as it happens (a histogram has no cheaper form).
 */
export function processTaskMetrics(): TaskMetrics | undefined {
  if (!metricsEnabled()) return undefined;
  if (taskMetrics) return taskMetrics;
  const registers = [processRegistry()];
  const counts = new Map<string, FunctionCounts>();
  const of = (fn: string): FunctionCounts => {
    let c = counts.get(fn);
    if (!c) counts.set(fn, (c = { submitted: 0, running: 0, finished: 0, failed: 0 }));
    return c;
  };
  const fromCounts = (field: keyof FunctionCounts) =>
    function (this: Counter<'function'> | Gauge<'function'>) {
      this.reset();
      for (const [fn, c] of counts) if (c[field] || field === 'running') (this as Counter<'function'>).inc({ function: fn }, c[field]);
    };
  new Counter({ name: 'nodus_tasks_submitted_total', help: 'Tasks submitted, by function.', labelNames: ['function'], registers, collect: fromCounts('submitted') });
  new Gauge({ name: 'nodus_tasks_running', help: 'Tasks running now, by function.', labelNames: ['function'], registers, collect: fromCounts('running') });
  new Counter({ name: 'nodus_tasks_finished_total', help: 'Tasks that returned, by function.', labelNames: ['function'], registers, collect: fromCounts('finished') });
  new Counter({ name: 'nodus_tasks_failed_total', help: 'Tasks that failed (threw, crashed past maxRetries, cancelled), by function.', labelNames: ['function'], registers, collect: fromCounts('failed') });
  const latency = new Histogram({
    name: 'nodus_scheduling_latency_seconds',
    help: 'Time from a task reaching its queue to a worker starting it.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  taskMetrics = {
    submitted: (fn) => void of(fn).submitted++,
    started: (fn, queuedForMs) => {
      of(fn).running++;
      latency.observe(Math.max(0, queuedForMs) / 1000);
    },
    ended: (fn, isFailure) => {
      const c = of(fn);
      c.running--;
      if (isFailure) c.failed++;
      else c.finished++;
    },
    failed: (fn) => void of(fn).failed++,
  };
  return taskMetrics;
}

/**
 * Pushes this process's registry to Redis every interval (one HSET, off the hot path), and times that round trip as
 * the process's Redis round-trip time. The head adds the snapshots up (see aggregateSnapshots).
 */
export class MetricsPusher {
  private timer: NodeJS.Timeout | undefined;
  private readonly key: string;
  private readonly rtt: Histogram | undefined;
  private busy = false;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly proc: string,
    private readonly intervalMs = metricsIntervalMs(),
  ) {
    this.key = new StateKeys(prefix).metrics;
    const registers = [processRegistry()];
    this.rtt =
      (processRegistry().getSingleMetric('nodus_redis_round_trip_seconds') as Histogram | undefined) ??
      new Histogram({ name: 'nodus_redis_round_trip_seconds', help: "Round-trip time of a small write to the cluster's Redis, as each process sees it.", buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1], registers });
  }

  /** Starts pushing (not at all when metrics are off). */
  start(): this {
    if (!metricsEnabled() || this.timer) return this;
    this.timer = setInterval(() => void this.push(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  /** Sends the snapshot now. */
  async push(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const snapshot: MetricsSnapshot & { every: number } = { proc: this.proc, at: Date.now(), every: this.intervalMs, metrics: await processRegistry().getMetricsAsJSON() };
      const t0 = process.hrtime.bigint();
      await this.redis.hset(this.key, this.proc, JSON.stringify(snapshot));
      this.rtt?.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    } catch {
      // Redis away for a moment: the next push tries again.
    } finally {
      this.busy = false;
    }
  }

  /** Stops pushing and takes this process's snapshot out (a process that ended adds nothing any more). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.hdel(this.key, this.proc).catch(() => undefined);
  }
}

/**
 * The cluster's metrics as Prometheus text: every process's fresh snapshot and `own` (the head's registry) added up
 * by prom-client's aggregation (counters and histograms summed; each metric's `aggregator` otherwise). Snapshots of
 * processes that stopped pushing (METRICS_STALE_INTERVALS intervals) are dropped from Redis.
 */
export async function aggregateSnapshots(redis: Redis, prefix: string, own: Registry): Promise<{ text: string; contentType: string; processes: number }> {
  const key = new StateKeys(prefix).metrics;
  const all = await redis.hgetall(key);
  const now = Date.now();
  type Snapshot = Parameters<typeof AggregatorRegistry.aggregate>[0][number];
  const fresh: Snapshot[] = [(await own.getMetricsAsJSON()) as unknown as Snapshot];
  const stale: string[] = [];
  for (const [proc, raw] of Object.entries(all)) {
    try {
      const s = JSON.parse(raw) as MetricsSnapshot & { every?: number };
      if (now - s.at > METRICS_STALE_INTERVALS * (s.every ?? DEFAULT_METRICS_INTERVAL_MS)) stale.push(proc);
      else fresh.push(s.metrics as Snapshot);
    } catch {
      stale.push(proc);
    }
  }
  if (stale.length) await redis.hdel(key, ...stale).catch(() => undefined);
  const merged = AggregatorRegistry.aggregate(fresh);
  return { text: await merged.metrics(), contentType: merged.contentType, processes: fresh.length };
}
