/** @module `npm start`: a local two-node cluster counts primes with remote tasks, with a progress bar, then shows how the work split. */
import { cpus } from 'node:os';
import { SingleBar, Presets } from 'cli-progress';
import { get, init, shutdown, wait } from '../runtime';
import { startLocalCluster } from '../runtime/internal/local-cluster';
import { countPrimes } from '../services/demo/primes';

const LIMIT = Number(process.env.DEMO_LIMIT ?? 12_000_000);
const CHUNKS = 96;

async function main(): Promise<void> {
  const perNode = Math.max(1, cpus().length);
  console.log(`Starting a local cluster: Redis, a head and 2 node agents with ${perNode} CPUs each...`);
  const cluster = await startLocalCluster({ nodes: 2, numCpus: perNode });
  await init({ address: cluster.address, logToDriver: true });
  console.log(`Cluster up at ${cluster.address} with nodes ${cluster.nodeIds.join(', ')}.`);
  console.log(`Counting the primes below ${LIMIT.toLocaleString()} in ${CHUNKS} remote tasks...\n`);
  const t0 = Date.now();
  const step = Math.ceil(LIMIT / CHUNKS);
  let pending: ReturnType<typeof countPrimes.remote>[] = [];
  for (let lo = 0; lo < LIMIT; lo += step) pending.push(countPrimes.remote(lo, Math.min(lo + step, LIMIT)));
  const bar = new SingleBar({ format: '  {bar} {percentage}% | {value}/{total} tasks | {duration_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 250 }, Presets.shades_classic);
  bar.start(pending.length, 0);
  const results: Awaited<ReturnType<typeof countPrimes.remote>>[] = [];
  while (pending.length) {
    const [ready, rest] = await wait(pending, { numReturns: 1 });
    results.push(...(await get(ready)));
    pending = rest;
    bar.increment(ready.length);
  }
  bar.stop();
  const seconds = (Date.now() - t0) / 1000;
  const total = results.reduce((a, r) => a + r.count, 0);
  console.log(`\nThere are ${total.toLocaleString()} primes below ${LIMIT.toLocaleString()} (found in ${seconds.toFixed(2)} s).\n`);
  console.log('How the work split across nodes:');
  const byNode = new Map<string, { tasks: number; numbers: number; pids: Set<number> }>();
  for (const r of results) {
    const n = byNode.get(r.node) ?? { tasks: 0, numbers: 0, pids: new Set<number>() };
    n.tasks++;
    n.numbers += r.hi - r.lo;
    n.pids.add(r.pid);
    byNode.set(r.node, n);
  }
  for (const [node, n] of [...byNode].sort()) {
    console.log(`  ${node}: ${String(n.tasks).padStart(3)} tasks (${((100 * n.tasks) / results.length).toFixed(0)}%), ${n.numbers.toLocaleString()} numbers, on worker pids ${[...n.pids].join(', ')}`);
  }
  await shutdown();
  await cluster.stop();
}

main().catch(async (err) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
