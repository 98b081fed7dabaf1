/**
 * @module `npm run bench`: Ray's core microbenchmarks (python/ray/_private/ray_perf.py) on a local cluster
 * this script starts, each beside a peer measured in the same run where one exists (raw BullMQ, Moleculer,
 * memcpy, Piscina), then the curves of cost against work. Prints one Markdown table and the curves, and
 * writes both to bench-results/bench-<date>.json, and each row's median as one line of bench/history.jsonl
 * (compare two commits with `npm run bench:compare -- <commitA> <commitB>`). `--quick`: a short form (under a minute on 2 cores);
 * `--observability`: only the cost of task events and metrics (tasks async with them on and off, side by side);
 * `--no-million`: the full form without its 1M queued tasks; `--million`: 1M queued tasks even with --quick.
 * `--services`, `--serving`, `--runtime-env`, `--deploy`: that section alone.
 */
import { cpus } from 'node:os';
import { Redis } from 'ioredis';
import { get, init, shutdown } from '../runtime';
import { startLocalCluster } from '../runtime/internal/local-cluster';
import { smallValue } from './bench-tasks';
import { idleMemory, printCurves, queuedTasks, syncLatency, workerScaling, type Curves } from './bench/curves';
import { appendHistory, currentCommit, historyRows, type HistoryEntry, type HistoryRow } from './bench/history';
import { readSettings, sleep } from './bench/measure';
import { primeFanout } from './bench/peers';
import { machineLine, printTable, writeJson, type Row } from './bench/report';
import { actorRows, objectRows, taskRows } from './bench/rows';
import { placementRows } from './bench/placement';
import { printServices, servicesSection } from './bench/services';
import { printServing, servingSection } from './bench/serving';
import { printRuntimeEnv, runtimeEnvHistory, runtimeEnvSection } from './bench/runtime-env';
import { observabilityCost } from './bench/observability';
import { deploySection, printDeploy } from './bench/deploy';

/** A section measured on its own: how to print it, what goes into the JSON and into the history. */
interface Section {
  print(): void;
  json: unknown;
  history: HistoryRow[];
}

/** The heading each section prints, alone or in the full run. */
const SECTION_TITLES: Record<string, string> = {
  '--services': 'Agentic services (gateway on its own process, services in this one):',
  '--serving': 'Model serving (tiny model, model hosts on this machine):',
  '--runtime-env': 'Runtime envs (cold start of a task in a new env, and cached):',
  '--deploy': 'Serve deployments (the ingress and replicas on a local cluster; bare Fastify and NestJS in processes of their own):',
};

async function main(): Promise<void> {
  const s = readSettings(process.argv.slice(2));
  const at = currentCommit();
  const cores = cpus().length;
  console.log(machineLine(s));
  // --serving, --runtime-env, --deploy, --services: that section alone.
  const noCurves = (): Curves => ({ workers: [], queued: [], notes: [] });
  const alone: Record<string, () => Promise<Section>> = {
    '--serving': async () => {
      const serving = await servingSection(s);
      return { print: () => printServing(serving), json: { serving }, history: historyRows([], noCurves(), undefined, serving) };
    },
    '--runtime-env': async () => {
      const runtimeEnv = await runtimeEnvSection(s);
      return { print: () => printRuntimeEnv(runtimeEnv), json: { runtimeEnv }, history: runtimeEnvHistory(runtimeEnv) };
    },
    '--deploy': async () => {
      const deploy = await deploySection(s);
      return { print: () => printDeploy(deploy), json: { deploy }, history: historyRows([], noCurves(), undefined, undefined, deploy) };
    },
    '--services': async () => {
      const services = await servicesSection(s);
      return { print: () => printServices(services), json: services, history: historyRows([], noCurves(), services) };
    },
  };
  const flag = Object.keys(alone).find((f) => process.argv.includes(f));
  if (flag) {
    console.log(SECTION_TITLES[flag]);
    const section = await alone[flag]();
    section.print();
    console.log(`\nWrote ${writeJson(s, [], noCurves(), section.json)}`);
    console.log(`Appended to ${appendHistory(at, s.quick, flag.slice(2) as HistoryEntry['section'], section.history)}`);
    return;
  }
  const rows: Row[] = [];
  const curves: Curves = { workers: [], queued: [], notes: [] };
  // --observability: the cost of task events and metrics on the tasks async row, alone.
  if (process.argv.includes('--observability')) {
    console.log('Task events and metrics, on and off (tasks async):');
    rows.push(await observabilityCost(s));
    printTable(rows);
    console.log(`\nWrote ${writeJson(s, rows, curves)}`);
    console.log(`Appended to ${appendHistory(at, s.quick, 'observability', historyRows(rows, curves))}`);
    return;
  }
  // --parity: the Ray-parity rows alone (placement groups, SPREAD), on a local cluster.
  if (process.argv.includes('--parity')) {
    const cluster = await startLocalCluster({ numCpus: cores });
    try {
      await init({ address: cluster.address, logToDriver: false });
      rows.push(...(await placementRows(s)));
    } finally {
      await shutdown();
      await cluster.stop();
    }
    printTable(rows);
    console.log(`\nWrote ${writeJson(s, rows, curves)}`);
    console.log(`Appended to ${appendHistory(at, s.quick, 'parity', historyRows(rows, curves))}`);
    return;
  }

  const cluster = await startLocalCluster({ numCpus: cores });
  const redis = new Redis(cluster.address, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  try {
    await init({ address: cluster.address, logToDriver: false });
    console.log(`Local cluster: Redis, a head and one node agent with ${cores} worker processes.`);
    // Every worker has run a task, then the cluster rests a moment before its memory is read.
    await get(Array.from({ length: 100 }, () => smallValue.remote()));
    await sleep(300);
    curves.idleMemory = await idleMemory(cluster.address, redis);
    console.log('ray_perf.py workloads (peers on the same machine and Redis):');
    rows.push(...(await taskRows(s, cluster.address)));
    rows.push(...(await objectRows(s, redis)));
    rows.push(...(await actorRows(s, cluster.address, cores)));
    rows.push(...(await placementRows(s)));
    rows.push(await primeFanout(s, cores));
    console.log('Curves:');
    curves.latency = await syncLatency(s.quick ? 500 : 2000);
  } finally {
    await shutdown();
    redis.disconnect();
    await cluster.stop();
  }
  // Its own two clusters, joined one after the other: after this process has left the main one.
  console.log('Task events and metrics, on and off (tasks async):');
  rows.push(await observabilityCost(s));

  // --quick leaves out 4 worker processes (on 2 cores their cold start alone takes seconds) and takes the
  // point of the main cluster's size from the table's tasks async row (the same loop on the same kind of cluster).
  const counts = s.quick ? [1, 2] : [1, 2, 4];
  const main = rows.find((r) => r.workload.startsWith('single client tasks async'));
  const reuse = s.quick && main && counts.includes(cores);
  curves.workers = await workerScaling(s, reuse ? counts.filter((n) => n !== cores) : counts);
  if (reuse) curves.workers.push({ workers: cores, tasksPerSec: main.nodus, source: 'from the table (tasks async)' });
  curves.workers.sort((a, b) => a.workers - b.workers);
  const sizes = s.quick ? [10_000] : [10_000, 100_000];
  if (s.million) sizes.push(1_000_000);
  for (const n of sizes) curves.queued.push(await queuedTasks(n, cores));
  curves.notes.push(
    'Queued: the remote() calls run in one loop (the runtime batches them) on a fresh cluster whose node agent runs throughout, as on a live cluster ' +
      '(the runtime sizes its batches to the cluster\'s CPUs, so a cluster with no node would not be the real case); "all in Redis" is when the runtime ' +
      'reports everything submitted has reached Redis, and memory is read then: Redis used_memory (per task still queued), head VmRSS, and the driver\'s ' +
      'heap + buffers after a full GC (what it keeps per pending task).',
    s.million ? '1M queued tasks measured (leave it out with --no-million: it takes about two minutes).' : '1M queued tasks not measured (--quick or --no-million); `npm run bench` measures it, as does --million.',
  );
  if (s.quick) curves.notes.push('--quick: trials are shorter; 4 worker processes, 100k queued tasks and the submit + get of the 10k-refs task are left out; latency is over 500 calls.');

  console.log(SECTION_TITLES['--services']);
  const services = await servicesSection(s);
  console.log(SECTION_TITLES['--serving']);
  const serving = await servingSection(s);
  console.log(SECTION_TITLES['--runtime-env']);
  const runtimeEnv = await runtimeEnvSection(s);
  console.log(SECTION_TITLES['--deploy']);
  const deploy = await deploySection(s);

  printTable(rows);
  printCurves(curves);
  printServices(services);
  printServing(serving);
  printRuntimeEnv(runtimeEnv);
  printDeploy(deploy);
  console.log(`\nWrote ${writeJson(s, rows, curves, { services, serving, runtimeEnv, deploy })}`);
  console.log(`Appended to ${appendHistory(at, s.quick, 'all', [...historyRows(rows, curves, services, serving, deploy), ...runtimeEnvHistory(runtimeEnv)])}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error('benchmark failed:', err);
    process.exit(1);
  },
);
