/**
 * @module The peers nodus is compared with in the same run, on the same machine and Redis: raw BullMQ
 * add+process, Moleculer 0.14 request/response over its Redis transporter, this machine's memcpy, and
 * Piscina worker threads on a CPU-bound fan-out.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { ServiceBroker } from 'moleculer';
import { Piscina } from 'piscina';
import { get } from '../../runtime';
import { countPrimes } from '../../services/demo/primes';
import { summarize, timeRuns, timeit, type Measurement, type Settings } from './measure';
import type { Row } from './report';

/** The floor our dispatch sits on: BullMQ addBulk of 1000 no-op jobs, processed by a worker, on the same Redis. */
export async function rawBullmq(s: Settings, address: string): Promise<Measurement> {
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
  try {
    return await timeit(
      s,
      'peer: raw BullMQ add+process (batches of 1000)',
      async () => {
        target = done + 1000;
        const finished = new Promise<void>((r) => (wake = r));
        await queue.addBulk(jobs);
        await finished;
      },
      1000,
    );
  } finally {
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
    connection.disconnect();
    workerConnection.disconnect();
  }
}

/**
 * Moleculer's request/response, the peer of a sync actor call: a client broker here calls an action of a
 * broker in another process, through Moleculer's Redis transporter on the cluster's Redis.
 */
export async function moleculerSync(s: Settings, address: string): Promise<Measurement> {
  const server = fork(join(__dirname, 'moleculer-server.js'), [address], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  // skipProcessEventRegistration: the broker must not install its own SIGINT/exit handlers in the benchmark's process.
  const client = new ServiceBroker({ nodeID: `bench-client-${process.pid}`, transporter: address, logger: false, skipProcessEventRegistration: true });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('message', () => resolve());
      server.once('exit', (code) => reject(new Error(`the Moleculer bench server exited at start (code ${code})`)));
    });
    server.removeAllListeners('exit');
    await client.start();
    await client.waitForServices('bench', 10_000);
    return await timeit(s, 'peer: Moleculer request/response over Redis (sync)', () => client.call('bench.smallValue'));
  } finally {
    await client.stop().catch(() => undefined);
    if (server.connected) server.disconnect();
    const exited = new Promise((r) => (server.exitCode !== null || server.signalCode !== null ? r(null) : server.once('exit', r)));
    const timer = setTimeout(() => server.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * This machine's memory bandwidth for a copy of `bytes`: Buffer.prototype.copy (memmove) between two
 * buffers of that size, warmed once (page faults) and then timed; GB/s of 1e9 bytes.
 */
export function memcpy(s: Settings, src: Uint8Array, label: string): Measurement {
  const bytes = src.byteLength;
  const from = Buffer.from(src.buffer, src.byteOffset, bytes);
  const to = Buffer.allocUnsafe(bytes);
  from.copy(to);
  const rates: number[] = [];
  for (let t = 0; t < Math.max(5, s.trials); t++) {
    const start = performance.now();
    from.copy(to);
    rates.push(bytes / 1e9 / ((performance.now() - start) / 1000));
  }
  const m = summarize(rates, 'GB/s');
  console.log(`  peer: ${label}: ${m.median.toFixed(2)} GB/s (${m.min.toFixed(2)}–${m.max.toFixed(2)})`);
  return m;
}

/**
 * The same CPU-bound fan-out on nodus and on Piscina: the primes below `limit` counted in `chunks` equal
 * ranges, by the demo's countPrimes task on the local cluster and by Piscina's threads. Figures are seconds per run.
 */
export async function primeFanout(s: Settings, workers: number): Promise<Row> {
  const limit = s.quick ? 4_000_000 : 20_000_000;
  const chunks = 64;
  const step = Math.ceil(limit / chunks);
  const ranges = Array.from({ length: chunks }, (_, i) => ({ lo: i * step, hi: Math.min(limit, (i + 1) * step) }));
  let nodusCount = 0;
  let piscinaCount = 0;
  const nodus = await timeRuns(s, `nodus: primes below ${limit.toLocaleString('en-US')} in ${chunks} tasks`, async () => {
    const parts = await get(ranges.map((r) => countPrimes.remote(r.lo, r.hi)));
    nodusCount = parts.reduce((a, p) => a + p.count, 0);
  });
  const pool = new Piscina({ filename: join(__dirname, 'piscina-worker.js'), minThreads: workers, maxThreads: workers, idleTimeout: 60_000 });
  try {
    const peer = await timeRuns(s, `peer: Piscina (${workers} threads), same ranges`, async () => {
      const parts: number[] = await Promise.all(ranges.map((r) => pool.run(r, { name: 'countPrimes' })));
      piscinaCount = parts.reduce((a, n) => a + n, 0);
    });
    if (nodusCount !== piscinaCount) throw new Error(`prime counts differ: nodus ${nodusCount}, Piscina ${piscinaCount}`);
    return {
      workload: `CPU-bound fan-out: count primes below ${limit.toLocaleString('en-US')} in ${chunks} chunks, ${workers} workers (seconds, lower is better)`,
      nodus,
      peer: { name: `Piscina ${workers} threads`, figure: peer },
      ratio: nodus.median / peer.median,
      note: `${nodusCount.toLocaleString('en-US')} primes; ratio is nodus time ÷ Piscina time (1.00 = as fast as worker threads).`,
    };
  } finally {
    await pool.destroy();
  }
}
