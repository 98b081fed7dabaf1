/**
 * @module The benchmark's runtime-env section: cold start of a task in a runtime env it is the first to use (the working
 * dir packed, stored, fetched and unpacked, a worker process started in it), with and without an `npm ci` of its
 * lockfile, against the same env cached on the node (a new worker over the unpacked dir) and a warm worker.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { get, init, shutdown } from '../../runtime';
import { startLocalCluster } from '../../runtime/internal/local-cluster';
import type { RemoteFunction } from '../../runtime/remote';
import { nodusRoot } from '../../workers/env-cache';
import type { HistoryRow } from './history';
import { fmt, median, type Settings } from './measure';

export interface ColdStart {
  what: string;
  /** Milliseconds from .remote() to the result, one per trial. */
  ms: number[];
}

export interface RuntimeEnvFigures {
  rows: ColdStart[];
  notes: string[];
}

type Probe = RemoteFunction<() => number>;

/**
 * A working dir of its own (a new package): a module with a remote function, and with `deps` a package.json whose
 * lockfile installs one local package (its description differs per folder, so each is a new lockfile for `npm ci`).
 */
function workingDir(root: string, i: number, deps: boolean): { dir: string; probe: Probe } {
  const dir = join(root, `wd-${i}`);
  mkdirSync(join(dir, 'vendor', 'tiny-dep'), { recursive: true });
  writeFileSync(join(dir, 'vendor', 'tiny-dep', 'package.json'), JSON.stringify({ name: 'tiny-dep', version: '1.0.0', main: 'index.js' }));
  writeFileSync(join(dir, 'vendor', 'tiny-dep', 'index.js'), 'exports.ok = 1;\n');
  const body = deps ? "require('tiny-dep').ok + process.pid" : 'process.pid';
  writeFileSync(join(dir, 'probe.js'), `const { remote } = require('nodus');\nexports.probe = remote(function probe() { return ${body}; });\n// ${i}\n`);
  if (deps) {
    const pkg = { name: `bench-env-${i}`, version: '1.0.0', private: true, description: `bench working dir ${i}`, dependencies: { 'tiny-dep': 'file:vendor/tiny-dep' } };
    const lock = {
      name: pkg.name,
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: { '': { name: pkg.name, version: '1.0.0', dependencies: pkg.dependencies }, 'node_modules/tiny-dep': { resolved: 'vendor/tiny-dep', link: true }, 'vendor/tiny-dep': { version: '1.0.0' } },
    };
    writeFileSync(join(dir, 'package.json'), JSON.stringify(pkg, null, 2));
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock, null, 2));
  }
  // So that this driver can load the module too (node_modules is never shipped).
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(nodusRoot(), join(dir, 'node_modules', 'nodus'), 'dir');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { probe } = require(join(dir, 'probe.js')) as { probe: Probe };
  return { dir, probe };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export async function runtimeEnvSection(s: Settings): Promise<RuntimeEnvFigures> {
  const trials = s.quick ? 3 : 5;
  const root = mkdtempSync(join(tmpdir(), 'nodus-bench-env-'));
  const cluster = await startLocalCluster({ numCpus: cpus().length });
  const rows: ColdStart[] = [
    { what: 'first use, no dependencies (pack, store, fetch, unpack, new worker)', ms: [] },
    { what: 'first use with a lockfile (the same + npm ci of one local package)', ms: [] },
    { what: 'cached on the node (new variables over the unpacked dir: new worker)', ms: [] },
    { what: 'same env again (warm worker)', ms: [] },
    { what: 'no runtime env (warm worker of the node)', ms: [] },
  ];
  try {
    await init({ address: cluster.address, logToDriver: false });
    for (let i = 0; i < trials; i++) {
      const plain = workingDir(root, i, false);
      const fresh = plain.probe.options({ runtimeEnv: { workingDir: plain.dir } });
      rows[0].ms.push(await timed(() => get(fresh.remote())));
      const withDeps = workingDir(root, 1000 + i, true);
      rows[1].ms.push(await timed(() => get(withDeps.probe.options({ runtimeEnv: { workingDir: withDeps.dir } }).remote())));
      rows[2].ms.push(await timed(() => get(plain.probe.options({ runtimeEnv: { workingDir: plain.dir, env: { TRIAL: String(i) } } }).remote())));
      rows[3].ms.push(await timed(() => get(fresh.remote())));
      rows[4].ms.push(await timed(() => get(plain.probe.remote())));
    }
  } finally {
    await shutdown();
    await cluster.stop();
    rmSync(root, { recursive: true, force: true });
  }
  return {
    rows,
    notes: [
      `${trials} trials, each in runtime envs no task used before, on a local cluster of one node; the time is .remote() to the result in the driver.`,
      'A new worker process (Node with the TypeScript loader) is most of a first use; npm ci here installs a local package (no registry).',
    ],
  };
}

export function printRuntimeEnv(f: RuntimeEnvFigures): void {
  console.log('\nRuntime envs (cold start of a task):');
  console.log('| case | median | min–max |');
  console.log('|---|---|---|');
  for (const r of f.rows) console.log(`| ${r.what} | ${fmt(median(r.ms))} ms | ${fmt(Math.min(...r.ms))}–${fmt(Math.max(...r.ms))} ms |`);
  for (const n of f.notes) console.log(`- ${n}`);
}

export function runtimeEnvHistory(f: RuntimeEnvFigures): HistoryRow[] {
  return f.rows.map((r) => ({ workload: `runtime env: ${r.what}`, median: median(r.ms), unit: 'ms' }));
}
