/** @module `npm run bench:compare -- <commitA> <commitB> [--mode quick|full]`: how each benchmark row moved between two commits, from bench/history.jsonl. */
import { execFileSync } from 'node:child_process';
import { HISTORY_FILE, readHistory, type HistoryEntry, type HistoryRow } from './bench/history';
import { fmt } from './bench/measure';

const USAGE = 'usage: npm run bench:compare -- <commitA> <commitB> [--mode quick|full]   (commits: a hash, a prefix of one, or a ref such as HEAD~1)';

/** A ref or hash as the full hash git knows it by; a prefix git cannot resolve (a commit since dropped) is matched as given. */
function resolve(commit: string): string {
  try {
    return execFileSync('git', ['rev-parse', '--verify', '--quiet', `${commit}^{commit}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return commit.toLowerCase();
  }
}

interface Side {
  label: string;
  entries: HistoryEntry[];
  /** Each workload's figure from the latest of the commit's runs that measured it (a --services run adds to a full one). */
  rows: Map<string, HistoryRow>;
}

function side(label: string, commit: string, history: HistoryEntry[], mode: string | undefined): Side {
  const full = resolve(commit);
  const entries = history.filter((e) => e.commit.startsWith(full) && (!mode || e.mode === mode));
  if (!entries.length) {
    const known = [...new Map(history.map((e) => [e.commit, e])).values()].slice(-10);
    throw new Error(
      `no run of ${commit}${mode ? ` in ${mode} mode` : ''} in ${HISTORY_FILE}. ` +
        (known.length ? `Commits it has (latest last): ${known.map((e) => `${e.commit.slice(0, 9)} (${e.date.slice(0, 10)}, ${e.mode})`).join(', ')}.` : 'It has no runs yet.') +
        ' Run `npm run bench` (or `npm run bench -- --quick`) on that commit to add one.',
    );
  }
  const rows = new Map<string, HistoryRow>();
  for (const e of [...entries].reverse()) for (const r of e.rows) if (!rows.has(r.workload)) rows.set(r.workload, r);
  return { label, entries, rows };
}

function describe(s: Side): string {
  const runs = s.entries.map((e) => `${e.date.slice(0, 16).replace('T', ' ')} ${e.mode}${e.section === 'all' ? '' : ` --${e.section}`}${e.dirty ? ' (uncommitted changes)' : ''}`);
  const m = s.entries[s.entries.length - 1].machine;
  return `${s.label}: ${s.entries[0].commit.slice(0, 9)}, ${runs.length === 1 ? '1 run' : `${runs.length} runs`} (${runs.join('; ')}), ${m.cores} cores (${m.model}), Node ${m.node}`;
}

function main(): void {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--mode');
  const mode = at >= 0 ? argv[at + 1] : undefined;
  const commits = at >= 0 ? argv.filter((_, i) => i !== at && i !== at + 1) : argv;
  if (commits.length !== 2 || (at >= 0 && mode !== 'quick' && mode !== 'full')) throw new Error(USAGE);
  const history = readHistory();
  const a = side('A', commits[0], history, mode);
  const b = side('B', commits[1], history, mode);
  console.log(describe(a));
  console.log(describe(b));
  const modes = (s: Side) => new Set(s.entries.map((e) => e.mode));
  if ([...modes(a), ...modes(b)].some((m) => !modes(a).has(m) || !modes(b).has(m))) {
    console.log('Note: the two sides mix quick and full runs (quick trials are shorter); --mode quick or --mode full compares like with like.');
  }
  if (a.entries[a.entries.length - 1].machine.model !== b.entries[b.entries.length - 1].machine.model) console.log('Note: the two sides ran on different machines.');
  console.log('\n| workload | A median | B median | B ÷ A |\n|---|---|---|---|');
  const names = [...a.rows.keys(), ...[...b.rows.keys()].filter((w) => !a.rows.has(w))];
  for (const w of names) {
    const ra = a.rows.get(w);
    const rb = b.rows.get(w);
    const ratio = ra && rb && ra.unit === rb.unit && ra.median !== 0 ? (rb.median / ra.median).toFixed(2) : '—';
    console.log(`| ${w} | ${ra ? `${fmt(ra.median)} ${ra.unit}` : '—'} | ${rb ? `${fmt(rb.median)} ${rb.unit}` : '—'} | ${ratio} |`);
  }
  // The direction of "better" depends on the unit; the table only says how far each row moved.
  console.log('\nB ÷ A above 1 is faster for rates (…/s) but slower or larger for times (s, ms) and sizes (B).');
}

try {
  main();
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
