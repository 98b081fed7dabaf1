/**
 * @module How cost grows with work: tasks/s against worker processes, submit and drain time and memory
 * against queued tasks, sync task latency percentiles, and the resident memory of an idle local cluster.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { get, init, shutdown, wait } from '../../runtime';
import { currentContext } from '../../runtime/internal/global';
import { startLocalCluster } from '../../runtime/internal/local-cluster';
import { smallValue } from '../bench-tasks';
import { collector, fmt, percentile, timeit, type Measurement, type Settings } from './measure';
import { MiB, clusterPids, redisUsedMemory, rssBytes } from './procmem';

export interface WorkerPoint {
  workers: number;
  tasksPerSec: Measurement;
  /** Where the figure comes from when it was not measured on a cluster of its own. */
  source?: string;
}

export interface QueuedPoint {
  tasks: number;
  /** The remote() loop alone. */
  loopS: number;
  /** From the first remote() until every task is in Redis. */
  submitS: number;
  /** Tasks that had already run when the last one reached Redis (the node agent runs meanwhile). */
  doneAtSubmit: number;
  /** Reading memory and counting finished tasks once all were in Redis (a full GC in the driver); the workers run on meanwhile. */
  readS: number;
  /** From the first remote() until get() of every result returned (readS included). */
  totalS: number;
  /** totalS − submitS: draining what was still queued once submission ended. */
  drainS: number;
  tasksPerSec: number;
  redisUsedBytes: number;
  redisUsedDeltaBytes: number;
  redisRssBytes?: number;
  headRssBytes?: number;
  headRssDeltaBytes?: number;
  /** The driver's heap and buffers after a full GC, less the same before submitting: what it keeps per pending task. */
  driverRetainedDeltaBytes: number;
  /** Redis used_memory growth ÷ tasks still queued at that point. */
  redisBytesPerTask: number;
  driverBytesPerTask: number;
}

export interface Latency {
  calls: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
}

export interface IdleMemory {
  redisRssBytes?: number;
  redisUsedBytes: number;
  headRssBytes?: number;
  agentRssBytes?: number;
  workerRssBytes: number[];
  totalRssBytes: number;
}

export interface Curves {
  workers: WorkerPoint[];
  queued: QueuedPoint[];
  latency?: Latency;
  idleMemory?: IdleMemory;
  notes: string[];
}

/** tasks/s (get of 1000 f.remote()) on fresh local clusters of 1, 2 and 4 worker processes, one after another. */
export async function workerScaling(s: Settings, counts: number[]): Promise<WorkerPoint[]> {
  const points: WorkerPoint[] = [];
  for (const workers of counts) {
    const cluster = await startLocalCluster({ numCpus: workers });
    try {
      await init({ address: cluster.address, logToDriver: false });
      const tasksPerSec = await timeit(s, `tasks async with ${workers} worker process${workers > 1 ? 'es' : ''}`, () => get(Array.from({ length: 1000 }, () => smallValue.remote())), 1000);
      points.push({ workers, tasksPerSec });
    } finally {
      await shutdown();
      await cluster.stop();
    }
  }
  return points;
}

/** The runtime's "everything submitted so far has reached Redis" (CoreContext.settled()), whatever its queue layout. */
function settled(): Promise<void> {
  const ctx = currentContext() as unknown as { settled?: () => Promise<void> } | undefined;
  if (!ctx?.settled) throw new Error('the runtime context has no settled(); update scripts/bench/curves.ts to the runtime.');
  return ctx.settled();
}

/**
 * Submits `tasks` no-op tasks on a fresh local cluster and measures the time until all are in Redis, the
 * memory then, and the time until get() of all results returns. The node agent runs throughout: the
 * runtime sizes what it submits to the cluster's CPUs, so a cluster without a node would not be the real
 * case; on 2 cores submission outpaces the drain, so most of the tasks are still queued when memory is read.
 */
export async function queuedTasks(tasks: number, cores: number): Promise<QueuedPoint> {
  const cluster = await startLocalCluster({ numCpus: cores });
  const redis = new Redis(cluster.address, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  try {
    await init({ address: cluster.address, logToDriver: false });
    // Workers up and warm, as on a cluster that has been running.
    await get(Array.from({ length: 100 }, () => smallValue.remote()));
    const pids = clusterPids(cluster.address);
    const gc = collector();
    const retained = () => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.external;
    };
    const redisBase = await redisUsedMemory(redis);
    const headBase = pids.head ? rssBytes(pids.head) : undefined;
    const driverBase = retained();
    const t0 = performance.now();
    let refs: ReturnType<typeof smallValue.remote>[] | undefined = [];
    for (let i = 0; i < tasks; i++) refs.push(smallValue.remote());
    const loopS = (performance.now() - t0) / 1000;
    await settled();
    const submitS = (performance.now() - t0) / 1000;
    const r0 = performance.now();
    const redisUsed = await redisUsedMemory(redis);
    const headRss = pids.head ? rssBytes(pids.head) : undefined;
    const redisRss = pids.redis ? rssBytes(pids.redis) : undefined;
    const driverRetained = retained();
    const [ready] = await wait(refs, { numReturns: refs.length, timeout: 0 });
    const doneAtSubmit = ready.length;
    const readS = (performance.now() - r0) / 1000;
    await get(refs);
    const totalS = (performance.now() - t0) / 1000;
    refs = undefined;
    const queued = Math.max(1, tasks - doneAtSubmit);
    const point: QueuedPoint = {
      tasks,
      loopS,
      submitS,
      doneAtSubmit,
      readS,
      totalS,
      drainS: totalS - submitS,
      tasksPerSec: tasks / totalS,
      redisUsedBytes: redisUsed,
      redisUsedDeltaBytes: redisUsed - redisBase,
      redisRssBytes: redisRss,
      headRssBytes: headRss,
      headRssDeltaBytes: headRss !== undefined && headBase !== undefined ? headRss - headBase : undefined,
      driverRetainedDeltaBytes: driverRetained - driverBase,
      redisBytesPerTask: (redisUsed - redisBase) / queued,
      driverBytesPerTask: (driverRetained - driverBase) / tasks,
    };
    console.log(
      `  ${tasks.toLocaleString('en-US')} tasks: all in Redis after ${submitS.toFixed(2)} s (loop ${point.loopS.toFixed(2)} s; ${doneAtSubmit.toLocaleString('en-US')} already run), ` +
        `all done after ${totalS.toFixed(2)} s (${readS.toFixed(2)} s of it reading memory); Redis +${fmt(point.redisUsedDeltaBytes / MiB)} MiB (${fmt(point.redisBytesPerTask)} B/queued task), driver ${fmt(point.driverBytesPerTask)} B/task`,
    );
    return point;
  } finally {
    await shutdown();
    redis.disconnect();
    await cluster.stop();
  }
}

/** p50 and p99 of `calls` sequential get(f.remote()) on the running cluster. */
export async function syncLatency(calls: number): Promise<Latency> {
  for (let i = 0; i < 50; i++) await get(smallValue.remote());
  const ms: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await get(smallValue.remote());
    ms.push(performance.now() - start);
  }
  const lat = { calls, p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), meanMs: ms.reduce((a, b) => a + b, 0) / calls, maxMs: Math.max(...ms) };
  console.log(`  sync task latency over ${calls} calls: p50 ${lat.p50Ms.toFixed(2)} ms, p99 ${lat.p99Ms.toFixed(2)} ms, max ${lat.maxMs.toFixed(1)} ms`);
  return lat;
}

/** Resident memory of each process of the local cluster, read from /proc; call it while the cluster is idle. */
export async function idleMemory(address: string, redis: Redis): Promise<IdleMemory> {
  const pids = clusterPids(address);
  const rss = (pid: number | undefined) => (pid === undefined ? undefined : rssBytes(pid));
  const workerRssBytes = pids.workers.map((p) => rss(p) ?? 0);
  const mem: IdleMemory = {
    redisRssBytes: rss(pids.redis),
    redisUsedBytes: await redisUsedMemory(redis),
    headRssBytes: rss(pids.head),
    agentRssBytes: rss(pids.agents[0]),
    workerRssBytes,
    totalRssBytes: [rss(pids.redis), rss(pids.head), ...pids.agents.map(rss), ...workerRssBytes].reduce<number>((a, b) => a + (b ?? 0), 0),
  };
  console.log(`  idle local cluster: ${fmt(mem.totalRssBytes / MiB)} MiB resident in all (${pids.workers.length} workers)`);
  return mem;
}

const mib = (b: number | undefined) => (b === undefined ? '?' : fmt(b / MiB));

export function printCurves(c: Curves): void {
  console.log('\n## Curves\n');
  if (c.workers.length) {
    console.log('tasks/s (get of 1000 f.remote()) against worker processes:\n\n| workers | tasks/s (median, min–max) |\n|---|---|');
    for (const p of c.workers) console.log(`| ${p.workers} | ${fmt(p.tasksPerSec.median)} (${fmt(p.tasksPerSec.min)}–${fmt(p.tasksPerSec.max)})${p.source ? `, ${p.source}` : ''} |`);
  }
  if (c.queued.length) {
    console.log('\nQueued tasks (node agent running throughout; memory read when the last task reached Redis). Ray 2.22 queues 1M tasks on one node in 184 s.\n');
    console.log('| tasks | all in Redis (s) | already run then | all done (s) | tasks/s | Redis used (MiB) | Redis B/queued task | head RSS (MiB) | head Δ (MiB) | driver heap B/task |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const q of c.queued) {
      console.log(
        `| ${q.tasks.toLocaleString('en-US')} | ${q.submitS.toFixed(2)} | ${q.doneAtSubmit.toLocaleString('en-US')} | ${q.totalS.toFixed(2)} | ` +
          `${fmt(q.tasksPerSec)} | ${mib(q.redisUsedBytes)} | ${fmt(q.redisBytesPerTask)} | ${mib(q.headRssBytes)} | ${mib(q.headRssDeltaBytes)} | ${fmt(q.driverBytesPerTask)} |`,
      );
    }
  }
  if (c.latency) console.log(`\nSync task latency, ${c.latency.calls} sequential get(f.remote()): p50 ${c.latency.p50Ms.toFixed(2)} ms, p99 ${c.latency.p99Ms.toFixed(2)} ms (mean ${c.latency.meanMs.toFixed(2)}, max ${c.latency.maxMs.toFixed(1)}).`);
  const m = c.idleMemory;
  if (m) {
    console.log('\nResident memory of an idle local cluster (VmRSS from /proc, MiB):\n\n| Redis | head | node agent | workers | total |\n|---|---|---|---|---|');
    console.log(`| ${mib(m.redisRssBytes)} (used_memory ${mib(m.redisUsedBytes)}) | ${mib(m.headRssBytes)} | ${mib(m.agentRssBytes)} | ${m.workerRssBytes.map(mib).join(' + ')} | ${mib(m.totalRssBytes)} |`);
  }
  if (c.notes.length) console.log(`\n${c.notes.map((n) => `- ${n}`).join('\n')}`);
}
