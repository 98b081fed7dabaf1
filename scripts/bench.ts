/**
 * @module `npm run bench`: Ray's core microbenchmarks (python/ray/_private/ray_perf.py) on a local
 * cluster, beside raw BullMQ add+process on the same Redis. Each workload is warmed up, then timed in
 * several trials of fixed length, as Ray's timeit() does; we report the median and the spread.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { get, init, kill, put, shutdown } from '../runtime';
import { startLocalCluster } from '../runtime/internal/local-cluster';
import { Actor, ConcurrentActor, actorClient, smallValue } from './bench-tasks';

const quick = process.argv.includes('--quick');
const WARMUP_MS = quick ? 500 : 3000;
const TRIAL_MS = quick ? 700 : 2000;
const TRIALS = quick ? 3 : 5;

interface Row {
  workload: string;
  unit: string;
  median: number;
  min: number;
  max: number;
  trials: number[];
  ray?: number;
}

/** Ray's timeit(): warm up, then count calls of fn in trials of TRIAL_MS; `multiplier` ops per call. */
async function timeit(workload: string, fn: () => Promise<unknown>, multiplier = 1, unit = 'ops/s', ray?: number): Promise<Row> {
  const w0 = performance.now();
  let warm = 0;
  while (performance.now() - w0 < WARMUP_MS) {
    await fn();
    warm++;
  }
  const trials: number[] = [];
  for (let t = 0; t < TRIALS; t++) {
    const start = performance.now();
    let count = 0;
    while (performance.now() - start < TRIAL_MS) {
      await fn();
      count++;
    }
    trials.push((multiplier * count * 1000) / (performance.now() - start));
  }
  const sorted = [...trials].sort((a, b) => a - b);
  const row = { workload, unit, median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted[sorted.length - 1], trials, ray };
  console.log(`  ${workload}: ${fmt(row.median)} ${unit} (${fmt(row.min)}–${fmt(row.max)}; warm-up ${warm} calls)`);
  return row;
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

/** The floor our dispatch sits on: BullMQ addBulk of 1000 no-op jobs, processed by a worker, on the same Redis. */
async function rawBullmq(address: string): Promise<Row> {
  const connection = new Redis(address, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(address, { maxRetriesPerRequest: null });
  for (const c of [connection, workerConnection]) c.on('error', () => undefined);
  const queue = new Queue('bench-raw', { connection, prefix: 'bench' });
  let done = 0;
  let target = 0;
  let wake: (() => void) | undefined;
  const worker = new Worker(
    'bench-raw',
    async () => {
      if (++done >= target) wake?.();
      return null;
    },
    { connection: workerConnection, prefix: 'bench', concurrency: 64, removeOnComplete: { count: 0 } },
  );
  const jobs = Array.from({ length: 1000 }, () => ({ name: 'noop', data: {}, opts: { removeOnComplete: true } }));
  const row = await timeit(
    'raw BullMQ add+process (batches of 1000)',
    async () => {
      target = done + 1000;
      const finished = new Promise<void>((r) => (wake = r));
      await queue.addBulk(jobs);
      await finished;
    },
    1000,
  );
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  workerConnection.disconnect();
  return row;
}

async function main(): Promise<void> {
  const cores = cpus().length;
  console.log(`nodus benchmark${quick ? ' (quick)' : ''} on ${cores} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory, Node ${process.version}`);
  const cluster = await startLocalCluster({ numCpus: cores });
  await init({ address: cluster.address, logToDriver: false });
  const rows: Row[] = [];
  try {
    console.log('Ray ray_perf.py core loops:');
    rows.push(await timeit('single client tasks sync', () => get(smallValue.remote()), 1, 'ops/s', 971));
    rows.push(await timeit('single client tasks async', () => get(Array.from({ length: 1000 }, () => smallValue.remote())), 1000, 'ops/s', 8194));
    rows.push(await timeit('single client tasks and get batch', () => get(Array.from({ length: 1000 }, () => smallValue.remote())), 1, 'batches/s', 8.1));
    const zero = await put(0);
    rows.push(await timeit('single client get calls', () => get(zero), 1, 'ops/s', 10270));
    rows.push(await timeit('single client put calls', () => put(0), 1, 'ops/s', 5196));
    const a = Actor.remote();
    await get(a.smallValue.remote());
    rows.push(await timeit('1:1 actor calls sync', () => get(a.smallValue.remote()), 1, 'ops/s', 2097));
    rows.push(await timeit('1:1 actor calls async', () => get(Array.from({ length: 1000 }, () => a.smallValue.remote())), 1000, 'ops/s', 9063));
    const c = ConcurrentActor.remote();
    await get(c.asyncSmallValue.remote());
    rows.push(await timeit('1:1 actor calls concurrent', () => get(Array.from({ length: 1000 }, () => c.asyncSmallValue.remote())), 1000, 'ops/s', 5480));
    const actors = Array.from({ length: cores }, () => Actor.remote());
    await get(actors.map((x) => x.smallValue.remote()));
    rows.push(await timeit('n:n actor calls async', () => get(actors.map((x) => actorClient.remote(x, 1000))), 1000 * cores, 'ops/s', 27688));
    rows.push(
      await timeit(
        'generator items streamed from one actor',
        async () => {
          for await (const ref of a.items.remote(1000)) void ref;
        },
        1000,
        'items/s',
      ),
    );
    await Promise.all([a, c, ...actors].map((x) => kill(x)));
    console.log('Peers on the same Redis:');
    rows.push(await rawBullmq(cluster.address));
  } finally {
    await shutdown();
    await cluster.stop();
  }
  const raw = rows.find((r) => r.workload.startsWith('raw BullMQ'))!.median;
  const asyncTasks = rows.find((r) => r.workload === 'single client tasks async')!.median;
  console.log('\n| workload | nodus (median) | spread | Ray 2.22 (64 vCPU) |\n|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.workload} | ${fmt(r.median)} ${r.unit} | ${fmt(r.min)}–${fmt(r.max)} | ${r.ray ? fmt(r.ray) : '—'} |`);
  console.log(`\ntasks async ÷ raw BullMQ add+process: ${(asyncTasks / raw).toFixed(2)}`);
  const dir = join(process.cwd(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), quick, machine: { cores, model: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version }, rows }, null, 2));
  console.log(`Wrote ${file}`);
}

main().catch((err) => {
  console.error('benchmark failed:', err);
  process.exit(1);
});
