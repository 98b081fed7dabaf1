/** @module What the benchmark prints and writes: one Markdown table of workloads, the curves, and the same as JSON. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fmt, fmtMeasurement, type Measurement, type Settings } from './measure';
import type { Curves } from './curves';

/** One line of the table. */
export interface Row {
  workload: string;
  nodus: Measurement;
  /** The same workload on a peer, measured in this run on this machine. */
  peer?: { name: string; figure: Measurement };
  /** nodus median ÷ peer median (for times, lower is better; see `note`). */
  ratio?: number;
  /** Ray 2.22's published figure (ray_perf.py on 64 vCPUs), in the row's unit. */
  ray?: number;
  /** The target for this machine, and whether this run met it. */
  target?: { text: string; met: boolean };
  note?: string;
}

/** Fills in ratio and target of a row from its figures. */
export function withPeer(row: Row, peer: { name: string; figure: Measurement }): Row {
  return { ...row, peer, ratio: row.nodus.median / peer.figure.median };
}

export function machine() {
  return { cores: cpus().length, model: cpus()[0]?.model ?? '?', memoryBytes: totalmem(), node: process.version };
}

export function machineLine(s: Settings): string {
  const m = machine();
  return `nodus benchmark${s.quick ? ' (--quick)' : ''}: ${m.cores} cores (${m.model}), ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB memory, Node ${m.node}`;
}

export function printTable(rows: Row[]): void {
  console.log('\n| workload | nodus (median, min–max) | peer (same run) | ratio | Ray 2.22 | target met? |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    const peer = r.peer ? `${r.peer.name}: ${fmtMeasurement(r.peer.figure)}` : '—';
    const ratio = r.ratio === undefined ? '—' : r.ratio.toFixed(2);
    const ray = r.ray === undefined ? '—' : `${fmt(r.ray)} ${r.nodus.unit}`;
    const target = r.target ? `${r.target.met ? 'yes' : 'no'} (${r.target.text})` : '—';
    console.log(`| ${r.workload} | ${fmtMeasurement(r.nodus)} | ${peer} | ${ratio} | ${ray} | ${target} |`);
  }
  const notes = rows.filter((r) => r.note);
  if (notes.length) {
    console.log('\nNotes:');
    for (const r of notes) console.log(`- ${r.workload}: ${r.note}`);
  }
}

/** Writes bench-results/bench-<date>.json and returns its path. */
export function writeJson(s: Settings, rows: Row[], curves: Curves, services?: unknown): string {
  const dir = join(process.cwd(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(dir, `bench-${date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ date, quick: s.quick, million: s.million, settings: s, machine: machine(), rows, curves, services }, null, 2));
  return file;
}
