/** @module Finds a local cluster's processes in /proc and reads their resident memory, and Redis's own memory figure. */
import { readFileSync, readdirSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Resident set size of a process in bytes (VmRSS of /proc/PID/status), or undefined if it is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string;
}

function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the parenthesised name: state, then ppid.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      out.push({ pid: Number(name), ppid, cmdline });
    } catch {
      /* exited while we looked */
    }
  }
  return out;
}

/** The processes of the local cluster on this Redis address that this process started. */
export interface ClusterPids {
  redis?: number;
  head?: number;
  agents: number[];
  workers: number[];
}

export function clusterPids(address: string): ClusterPids {
  const port = new URL(address).port;
  const all = processes();
  const mine = all.filter((p) => p.ppid === process.pid);
  // redis-server rewrites its title to "redis-server 127.0.0.1:PORT".
  const redis = mine.find((p) => p.cmdline.includes('redis-server') && (p.cmdline.includes(`:${port}`) || p.cmdline.includes(`--port ${port}`)))?.pid;
  const ofCluster = mine.filter((p) => p.cmdline.includes(`--address ${address}`));
  const head = ofCluster.find((p) => p.cmdline.includes('head/main.js'))?.pid;
  const agents = ofCluster.filter((p) => p.cmdline.includes('agent-main.js')).map((p) => p.pid);
  const workers = all.filter((p) => agents.includes(p.ppid) && p.cmdline.includes('worker-process.js')).map((p) => p.pid);
  return { redis, head, agents, workers };
}

/** Redis INFO memory: used_memory (what Redis allocated for data and buffers) in bytes. */
export async function redisUsedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
}

export const MiB = 2 ** 20;

/**
 * CPU seconds (user + system) used so far by the processes of the local cluster on `address` that this process
 * started — its head (with the Redis it runs), node agents and their workers — and by this process.
 */
export function clusterCpuSeconds(address: string): number {
  const all = processes();
  const roots = all.filter((p) => p.ppid === process.pid && p.cmdline.includes(`--address ${address}`)).map((p) => p.pid);
  const seen = new Set<number>(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) if (!seen.has(p.pid) && seen.has(p.ppid)) grew = !!seen.add(p.pid);
  }
  let ticks = 0;
  for (const pid of seen) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; in clock ticks (100 a second).
      ticks += Number(rest[11]) + Number(rest[12]);
    } catch {
      /* exited while we looked */
    }
  }
  const own = process.cpuUsage();
  return ticks / 100 + (own.user + own.system) / 1e6;
}
