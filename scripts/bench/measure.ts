/** @module The benchmark's clock: Ray's timeit() (warm-up, then timed trials), medians, percentiles and the settings of a run. */
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How long a run measures; `--quick` shortens everything so that the whole run stays under a minute. */
export interface Settings {
  quick: boolean;
  /** Queue 1M tasks too: in the full form unless `--no-million`; with `--quick` only if `--million`. */
  million: boolean;
  warmupMs: number;
  trialMs: number;
  trials: number;
}

export function readSettings(argv: string[]): Settings {
  const quick = argv.includes('--quick');
  // Ray's timeit() warms up for 1 s and then times 4 trials of 2 s; the full form is a little longer.
  const million = argv.includes('--million') || (!quick && !argv.includes('--no-million'));
  return { quick, million, warmupMs: quick ? 200 : 1000, trialMs: quick ? 300 : 2000, trials: quick ? 3 : 5 };
}

/** A figure measured in several trials: median and spread (min–max) over them. */
export interface Measurement {
  unit: string;
  median: number;
  min: number;
  max: number;
  trials: number[];
}

export function summarize(trials: number[], unit: string): Measurement {
  const sorted = [...trials].sort((a, b) => a - b);
  return { unit, median: median(sorted), min: sorted[0], max: sorted[sorted.length - 1], trials };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile, p in [0, 100]. */
export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);
}

export function fmtMeasurement(m: Measurement): string {
  return `${fmt(m.median)} ${m.unit} (${fmt(m.min)}–${fmt(m.max)})`;
}

/**
 * Ray's timeit(): call fn for warmupMs, then count calls in `trials` trials of trialMs each;
 * each call counts as `multiplier` operations. A call longer than a trial makes a trial of one call.
 */
export async function timeit(s: Settings, label: string, fn: () => Promise<unknown>, multiplier = 1, unit = 'ops/s'): Promise<Measurement> {
  const w0 = performance.now();
  let warm = 0;
  while (performance.now() - w0 < s.warmupMs) {
    await fn();
    warm++;
  }
  const trials: number[] = [];
  for (let t = 0; t < s.trials; t++) {
    const start = performance.now();
    let count = 0;
    while (performance.now() - start < s.trialMs) {
      await fn();
      count++;
    }
    trials.push((multiplier * count * 1000) / (performance.now() - start));
  }
  const m = summarize(trials, unit);
  console.log(`  ${label}: ${fmtMeasurement(m)}; warm-up ${warm} calls`);
  return m;
}

/** Times `runs` runs of fn after one warm-up run; the figure is seconds per run (lower is better). */
export async function timeRuns(s: Settings, label: string, fn: () => Promise<unknown>): Promise<Measurement> {
  await fn();
  const secs: number[] = [];
  for (let t = 0; t < s.trials; t++) {
    const start = performance.now();
    await fn();
    secs.push((performance.now() - start) / 1000);
  }
  const m = summarize(secs, 's');
  console.log(`  ${label}: ${fmtMeasurement(m)}`);
  return m;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** global.gc; exposed at run time when node was started without --expose-gc (`npm run bench` passes it). */
export function collector(): () => void {
  const g = globalThis as { gc?: () => void };
  if (g.gc) return g.gc;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
