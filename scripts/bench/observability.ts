/**
 * @module What task events and metrics cost: the tasks async row (get of 1000 f.remote()) on two local clusters of the
 * same size, one with both on (the default) and one with NODUS_TASK_EVENTS=0 NODUS_METRICS=0, their trials taken in
 * pairs (on then off, then off then on, ...) so that the machine's drift hits both alike; the ratio is the pairs' median on ÷ off.
 */
import { cpus } from 'node:os';
import { get, init, shutdown } from '../../runtime';
import { startLocalCluster, type LocalCluster } from '../../runtime/internal/local-cluster';
import { smallValue } from '../bench-tasks';
import { performance } from 'node:perf_hooks';
import { fmt, fmtMeasurement, median, summarize, type Settings } from './measure';
import { clusterCpuSeconds } from './procmem';
import { withPeer, type Row } from './report';

const OFF = { NODUS_TASK_EVENTS: '0', NODUS_METRICS: '0' };

/** Runs `fn` as a driver of `cluster`, with this driver's own events and metrics switched like the cluster's. */
async function onCluster<T>(cluster: LocalCluster, off: boolean, fn: () => Promise<T>): Promise<T> {
  const saved = { NODUS_TASK_EVENTS: process.env.NODUS_TASK_EVENTS, NODUS_METRICS: process.env.NODUS_METRICS };
  if (off) Object.assign(process.env, OFF);
  try {
    await init({ address: cluster.address, logToDriver: false });
    return await fn();
  } finally {
    await shutdown();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** The tasks async row with task events and metrics on, beside the same row with them off (the peer). */
export async function observabilityCost(s: Settings): Promise<Row> {
  const cores = cpus().length;
  const on = await startLocalCluster({ numCpus: cores });
  const off = await startLocalCluster({ numCpus: cores, env: OFF });
  const trials = { on: [] as number[], off: [] as number[] };
  const cpu = { on: [] as number[], off: [] as number[] };
  try {
    const batch = () => get(Array.from({ length: 1000 }, () => smallValue.remote()));
    // One trial at a time on each, in pairs, the order switching each pair: this machine's drift hits both alike.
    const pairs = 2 * s.trials;
    for (let t = 0; t < pairs; t++) {
      for (const which of t % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        const cluster = which === 'on' ? on : off;
        const m = await onCluster(cluster, which === 'off', async () => {
          const w0 = performance.now();
          while (performance.now() - w0 < s.warmupMs) await batch();
          // CPU of every process of the cluster and of this driver, over the timed trial: a figure that other
          // work on the machine moves far less than it moves the rate.
          const c0 = clusterCpuSeconds(cluster.address);
          const t0 = performance.now();
          let tasks = 0;
          while (performance.now() - t0 < s.trialMs) {
            await batch();
            tasks += 1000;
          }
          const secs = (performance.now() - t0) / 1000;
          return { rate: tasks / secs, cpuMsPer1000: ((clusterCpuSeconds(cluster.address) - c0) * 1e6) / tasks };
        });
        trials[which].push(m.rate);
        cpu[which].push(m.cpuMsPer1000);
        console.log(`    pair ${t + 1}, ${which.padEnd(3)}: ${fmt(m.rate)} tasks/s, ${fmt(m.cpuMsPer1000)} ms of CPU per 1000 tasks`);
      }
    }
  } finally {
    await on.stop();
    await off.stop();
  }
  const row = withPeer(
    { workload: 'tasks async with task events + metrics on (peer: both off, NODUS_TASK_EVENTS=0 NODUS_METRICS=0)', nodus: summarize(trials.on, 'ops/s') },
    { name: 'events + metrics off', figure: summarize(trials.off, 'ops/s') },
  );
  // The figure is the median of the pairs' ratios: each pair ran within seconds, so it is the least noisy comparison.
  const ratio = median(trials.on.map((x, i) => x / trials.off[i]));
  const cpuRatio = median(cpu.on.map((x, i) => x / cpu.off[i]));
  console.log(
    `  on ${fmtMeasurement(row.nodus)}; off ${fmtMeasurement(row.peer!.figure)}; median of ${trials.on.length} paired on ÷ off rates ${ratio.toFixed(3)} (cost ${((1 - ratio) * 100).toFixed(1)}%); ` +
      `CPU per task on ÷ off ${cpuRatio.toFixed(3)} (${fmt(median(cpu.on))} vs ${fmt(median(cpu.off))} ms per 1000 tasks)`,
  );
  return {
    ...row,
    ratio,
    target: { text: 'cost ≤ 5% (ratio ≥ 0.95)', met: ratio >= 0.95 },
    note: `${trials.on.length} pairs of one trial each on two clusters of the same size, taken in turns; ratio: the median of the pairs' on ÷ off rate. CPU of all the cluster's processes and the driver per 1000 tasks, on ÷ off: ${cpuRatio.toFixed(3)} (${fmt(median(cpu.on))} vs ${fmt(median(cpu.off))} ms).`,
  };
}
