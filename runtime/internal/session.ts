/**
 * @module Session records: which cluster processes `nodus start` / `worker join` left running on this machine, one
 * record (and one folder of logs and files) per cluster, so that two clusters on one machine never share one.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors';
import { isRunning } from './process-state';

export type ProcessRole = 'redis' | 'head' | 'agent' | 'gateway' | 'serve';

export interface SessionProcess {
  role: ProcessRole;
  pid: number;
  address: string;
  startedAt: number;
  nodeId?: string;
  /** A file the process keeps its current pid in (the head's Redis: a restart changes its pid). */
  pidFile?: string;
}

/** One cluster's record on this machine. */
export interface Session {
  /** Address of the cluster (with its password, if any: the file is readable only by its owner). */
  address: string;
  /** This cluster's folder on this machine: logs, Redis files, the generated password, TLS files. */
  dir: string;
  processes: SessionProcess[];
}

export function sessionDir(): string {
  return process.env.NODUS_SESSION_DIR || join(tmpdir(), 'nodus');
}

/** The host and port of an address, without scheme or password: the name of its record. */
export function clusterKey(address: string): string {
  try {
    const u = new URL(address);
    return `${u.hostname.replace(/[^\w.-]/g, '_')}-${u.port || '6379'}`;
  } catch {
    return address.replace(/[^\w.-]/g, '_');
  }
}

/** The folder of the cluster at `address` on this machine (made if missing). */
export function clusterDir(address: string): string {
  const dir = join(sessionDir(), `cluster-${clusterKey(address)}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function recordFile(address: string): string {
  return join(sessionDir(), `cluster-${clusterKey(address)}`, 'session.json');
}

function readRecord(file: string): Session | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Session;
  } catch {
    return undefined;
  }
}

/** True while any process of the record runs (the Redis of a head through its pid file). */
function alive(s: Session): boolean {
  return s.processes.some((p) => isRunning(currentPid(p)));
}

/** A process's pid now: from its pid file when it has one (the head's Redis after a restart), else as recorded. */
export function currentPid(p: SessionProcess): number {
  if (p.pidFile) {
    try {
      const pid = Number(readFileSync(p.pidFile, 'utf8').trim());
      if (pid > 0) return pid;
    } catch {
      /* not written yet, or removed at a clean exit */
    }
  }
  return p.pid;
}

/** Every cluster with processes started on this machine; records whose processes are all gone are removed. */
export function listSessions(): Session[] {
  let names: string[];
  try {
    names = readdirSync(sessionDir()).filter((n) => n.startsWith('cluster-'));
  } catch {
    return [];
  }
  const out: Session[] = [];
  for (const n of names) {
    const file = join(sessionDir(), n, 'session.json');
    const s = readRecord(file);
    if (!s) continue;
    if (alive(s)) out.push(s);
    else rmSync(file, { force: true });
  }
  return out;
}

/** The record of the cluster at `address`, if this machine started processes of it. */
export function findSession(address: string): Session | undefined {
  const key = clusterKey(address);
  return listSessions().find((s) => clusterKey(s.address) === key);
}

/**
 * The one cluster started on this machine, for commands given no address. Undefined when there is none;
 * a ConfigError listing them when there are several.
 */
export function readSession(): Session | undefined {
  const all = listSessions();
  if (all.length <= 1) return all[0];
  throw new ConfigError(
    `${all.length} clusters run on this machine: ${all.map((s) => redactAddress(s.address)).join(', ')}. ` +
      'Say which one with --address (or NODUS_ADDRESS, or init({ address })).',
  );
}

/** Adds processes to the record of the cluster at `address`. */
export function addToSession(address: string, procs: SessionProcess[]): Session {
  const dir = clusterDir(address);
  const file = recordFile(address);
  const prev = readRecord(file);
  const s: Session = prev && alive(prev) ? prev : { address, dir, processes: [] };
  s.processes.push(...procs);
  // Written whole and renamed: a second command never reads half a record.
  writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 2), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return s;
}

/** Removes the record of the cluster at `address` (its folder, with the logs, stays). */
export function removeSession(address: string): void {
  rmSync(recordFile(address), { force: true });
}

function redactAddress(address: string): string {
  return address.replace(/\/\/([^@/]*:)?[^@/]*@/, '//***@');
}
