/** @module bench/history.jsonl: one line per `npm run bench` run (commit, quick or full, machine, each row's median), so that runs can be compared across commits. */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Curves } from './curves';
import { machine, type Row } from './report';
import type { ServicesFigures } from './services';
import type { ServingFigures } from './serving';
import type { DeployFigures } from './deploy';

/** Committed with the code it measured, so the history travels with the repository. */
export const HISTORY_FILE = join('bench', 'history.jsonl');

/** One figure of a run: the table's rows, and the curves and sections reduced to a median (or a single figure) each. */
export interface HistoryRow {
  workload: string;
  median: number;
  unit: string;
}

/** One line of bench/history.jsonl. */
export interface HistoryEntry {
  date: string;
  /** `git rev-parse HEAD` when the run started, or 'unknown' outside a git checkout. */
  commit: string;
  /** Uncommitted changes to tracked files (the history file aside): the commit alone does not say what ran. */
  dirty: boolean;
  mode: 'quick' | 'full';
  /** What the run measured: everything, or only one section (--services, --serving, --runtime-env, --deploy, --observability, --parity). */
  section: 'all' | 'services' | 'serving' | 'runtime-env' | 'deploy' | 'observability' | 'parity';
  machine: ReturnType<typeof machine>;
  rows: HistoryRow[];
}

/** The figures of a run as history rows, each named as the printed tables name it. */
export function historyRows(rows: Row[], curves: Curves, services?: ServicesFigures, serving?: ServingFigures, deploy?: DeployFigures): HistoryRow[] {
  const out: HistoryRow[] = rows.map((r) => ({ workload: r.workload, median: r.nodus.median, unit: r.nodus.unit }));
  const add = (workload: string, median: number | undefined, unit: string) => {
    if (median !== undefined && Number.isFinite(median)) out.push({ workload, median, unit });
  };
  for (const p of curves.workers) add(`curve: tasks/s with ${p.workers} worker processes`, p.tasksPerSec.median, p.tasksPerSec.unit);
  for (const q of curves.queued) {
    add(`curve: ${q.tasks.toLocaleString('en-US')} queued tasks, all in Redis`, q.submitS, 's');
    add(`curve: ${q.tasks.toLocaleString('en-US')} queued tasks, all done`, q.totalS, 's');
    add(`curve: ${q.tasks.toLocaleString('en-US')} queued tasks, Redis bytes per task`, q.redisBytesPerTask, 'B');
  }
  add('curve: sync task latency p50', curves.latency?.p50Ms, 'ms');
  add('curve: sync task latency p99', curves.latency?.p99Ms, 'ms');
  add('curve: idle local cluster resident memory', curves.idleMemory?.totalRssBytes, 'B');
  if (services) {
    add('services: launch → running p50', services.launch.p50, 'ms');
    add('services: launch → running p99', services.launch.p99, 'ms');
    add('services: event latency p50', services.eventLatency.p50, 'ms');
    add('services: event latency p99', services.eventLatency.p99, 'ms');
    add('services: events delivered to SSE clients', services.aggregate.deliveredPerSec, 'events/s');
    add('services: gateway memory per SSE stream', services.gatewayBytesPerStream, 'B');
  }
  if (serving) {
    add('serving: encoder, 32 concurrent', serving.encoder.concurrentPerSec, 'images/s');
    add('serving: encoder, one at a time', serving.encoder.sequentialPerSec, 'images/s');
    add('serving: LLM through the host', serving.llm.hostPerSec, 'tokens/s');
    add('serving: LLM, bare loop', serving.llm.barePerSec, 'tokens/s');
    add('serving: time to first token p50', serving.ttft.p50, 'ms');
    add('serving: time to first token p99', serving.ttft.p99, 'ms');
    add('serving: encoder fission, separate hosts', serving.fission.separatePerSec, 'chats/s');
    add('serving: encoder fission, one process', serving.fission.monolithPerSec, 'chats/s');
  }
  for (const p of deploy?.points ?? []) {
    add(`deploy: ${p.target}, requests/s`, p.requestsPerSec, 'requests/s');
    add(`deploy: ${p.target}, p50`, p.p50Ms, 'ms');
    add(`deploy: ${p.target}, p99`, p.p99Ms, 'ms');
  }
  return out;
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** The commit being measured, read when the run starts: a commit made while a long run goes on must not take its figures. */
export function currentCommit(): { commit: string; dirty: boolean } {
  const commit = git(['rev-parse', 'HEAD']) ?? 'unknown';
  const status = git(['status', '--porcelain', '--untracked-files=no', '--', '.', `:(exclude)${HISTORY_FILE}`]);
  return { commit, dirty: !!status };
}

/** Appends one run to bench/history.jsonl (in the directory npm runs scripts from, the repository root) and returns its path. */
export function appendHistory(at: { commit: string; dirty: boolean }, quick: boolean, section: HistoryEntry['section'], rows: HistoryRow[]): string {
  const file = join(process.cwd(), HISTORY_FILE);
  mkdirSync(dirname(file), { recursive: true });
  const entry: HistoryEntry = { date: new Date().toISOString(), commit: at.commit, dirty: at.dirty, mode: quick ? 'quick' : 'full', section, machine: machine(), rows };
  appendFileSync(file, JSON.stringify(entry) + '\n');
  return file;
}

/** Every run recorded so far, oldest first; a line that does not parse (a hand edit gone wrong) is skipped with a warning. */
export function readHistory(file = join(process.cwd(), HISTORY_FILE)): HistoryEntry[] {
  if (!existsSync(file)) return [];
  const out: HistoryEntry[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      try {
        out.push(JSON.parse(line) as HistoryEntry);
      } catch {
        console.warn(`${file}:${i + 1}: not a JSON line, skipped`);
      }
    });
  return out;
}
