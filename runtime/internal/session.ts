/** @module The session file: which cluster processes `nodus start` / `worker join` left running on this machine. */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SessionProcess {
  role: 'redis' | 'head' | 'agent';
  pid: number;
  address: string;
  startedAt: number;
  nodeId?: string;
}

export interface Session {
  /** Address of the cluster this machine belongs to. */
  address: string;
  processes: SessionProcess[];
}

export function sessionDir(): string {
  return process.env.NODUS_SESSION_DIR || join(tmpdir(), 'nodus');
}

function sessionFile(): string {
  return join(sessionDir(), 'session.json');
}

export function readSession(): Session | undefined {
  try {
    return JSON.parse(readFileSync(sessionFile(), 'utf8')) as Session;
  } catch {
    return undefined;
  }
}

export function addToSession(address: string, procs: SessionProcess[]): void {
  mkdirSync(sessionDir(), { recursive: true });
  const s = readSession();
  const session: Session = s && s.address === address ? s : { address, processes: [] };
  session.processes.push(...procs);
  writeFileSync(sessionFile(), JSON.stringify(session, null, 2), { mode: 0o600 });
}

export function clearSession(): void {
  rmSync(sessionFile(), { force: true });
}
