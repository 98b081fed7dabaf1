/**
 * @module The benchmark's deploy section: requests/s and p50/p99 latency through the serve ingress for a trivial handler
 * deployed with 1, 2 and 4 replicas (reached on their loopback ports, and by actor calls), against the same handler on bare Fastify and on bare NestJS (each one process), all
 * driven by the same keep-alive load generator in this process, in one run.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { freePort, spawnIngress, stopProcess } from '../../runtime/internal/launcher';
import { startLocalCluster } from '../../runtime/internal/local-cluster';
import { DeployKeys } from '../../runtime/protocol/deploy';
import { resolveDeployment } from '../../serve/deploy/config';
import { listApps, submitApps } from '../../serve/deploy/store';
import { fmt, median, percentile, sleep, type Settings } from './measure';

/** One target's figures. */
export interface DeployPoint {
  target: string;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface DeployFigures {
  clients: number;
  points: DeployPoint[];
  notes: string[];
}

/** Concurrent keep-alive clients of the load generator. */
const CLIENTS = 32;

/** `clients` keep-alive clients sending GET `url` back to back for `ms`; latencies of the requests that finished in it. */
async function drive(url: string, ms: number, clients = CLIENTS): Promise<{ latencies: number[]; errors: number; seconds: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const u = new URL(url);
  const latencies: number[] = [];
  let errors = 0;
  const one = () =>
    new Promise<number>((resolve) => {
      const t0 = performance.now();
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - t0 : -1));
      });
      req.on('error', () => resolve(-1));
      req.end();
    });
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const t = await one();
        if (t < 0) errors++;
        else latencies.push(t);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return { latencies, errors, seconds };
}

async function measure(target: string, url: string, s: Settings): Promise<DeployPoint> {
  await drive(url, s.warmupMs);
  const { latencies, errors, seconds } = await drive(url, s.trialMs * s.trials);
  const point = { target, requestsPerSec: latencies.length / seconds, p50Ms: median(latencies), p99Ms: percentile(latencies, 99), errors };
  console.log(`  ${target}: ${fmt(point.requestsPerSec)} requests/s, p50 ${fmt(point.p50Ms)} ms, p99 ${fmt(point.p99Ms)} ms${errors ? `, ${errors} errors` : ''}`);
  return point;
}

/** A bare peer in its own process, listening; resolves to its URL. */
async function startPeer(kind: 'fastify' | 'nest'): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(join(__dirname, 'deploy-peers.js'), [kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`the ${kind} peer exited with code ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}/` };
}

export async function deploySection(s: Settings): Promise<DeployFigures> {
  const notes: string[] = [];
  const points: DeployPoint[] = [];
  for (const kind of ['fastify', 'nest'] as const) {
    const peer = await startPeer(kind);
    try {
      points.push(await measure(kind === 'fastify' ? 'bare Fastify, one process' : 'bare NestJS (express), one process', peer.url, s));
    } finally {
      peer.child.kill('SIGTERM');
    }
  }
  const cluster = await startLocalCluster({ numCpus: cpus().length });
  const dir = mkdtempSync(join(tmpdir(), 'nodus-bench-deploy-'));
  const redis = new Redis(cluster.address, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  const port = await freePort();
  const keys = new DeployKeys();
  try {
    // Replicas on the ingress's machine get its requests on their loopback port; elsewhere (NODUS_SERVE_DIRECT=0 here), by actor calls.
    for (const how of ['direct', 'actor calls'] as const) {
      const env = { NODUS_SERVE_DIRECT: how === 'direct' ? '1' : '0' };
      const ingress = await spawnIngress({ address: cluster.address, attached: true, logFile: join(dir, 'serve.log'), port, env });
      try {
        for (const replicas of [1, 2, 4]) {
          const [rec] = await submitApps(redis, keys, [resolveDeployment({ import: join(__dirname, 'deploy-handler.js'), name: 'ok', replicas, maxOngoingRequests: 64 }, process.cwd())]);
          for (;;) {
            const a = (await listApps(redis, keys)).find((x) => x.name === 'ok');
            if (a?.state?.generation === rec.generation && a.state.status === 'running' && a.state.replicas.every((r) => r.generation === rec.generation && r.state === 'running')) break;
            if (a?.state?.status === 'failed') throw new Error(`the benchmark's app failed to deploy: ${a.state.message}`);
            await sleep(100);
          }
          points.push(await measure(`ingress, ${replicas} replica${replicas === 1 ? '' : 's'}, ${how}`, `http://127.0.0.1:${port}/ok`, s));
        }
      } finally {
        await stopProcess(ingress.pid, 3000);
      }
    }
  } finally {
    redis.disconnect();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  notes.push(
    `${CLIENTS} keep-alive clients in the benchmark's process send GET back to back for ${fmt((s.trialMs * s.trials) / 1000)} s after a ${fmt(s.warmupMs / 1000)} s warm-up; ` +
      '"direct": the ingress proxies to the replica\'s loopback port (a replica on its machine); "actor calls": each request is an actor call ' +
      '(Redis mailbox, the replica serves it on loopback, the answer back through Redis), the way to a replica on another machine. ' +
      `This machine has ${cpus().length} cores shared by the load generator, the ingress, Redis, the agent and the replicas.`,
  );
  return { clients: CLIENTS, points, notes };
}

/** The section as printed at the end of a run. */
export function printDeploy(f: DeployFigures): void {
  const fastify = f.points.find((p) => p.target.startsWith('bare Fastify'));
  const nest = f.points.find((p) => p.target.startsWith('bare NestJS'));
  console.log('\nServe deployments: a trivial handler through the ingress against bare servers (same load generator, one run):');
  console.log('| target | requests/s | p50 | p99 | ÷ Fastify | ÷ NestJS |');
  console.log('|---|---|---|---|---|---|');
  for (const p of f.points) {
    const ratio = (peer?: DeployPoint) => (peer ? (p.requestsPerSec / peer.requestsPerSec).toFixed(2) : '—');
    console.log(`| ${p.target} | ${fmt(p.requestsPerSec)} | ${fmt(p.p50Ms)} ms | ${fmt(p.p99Ms)} ms | ${ratio(fastify)} | ${ratio(nest)} |${p.errors ? ` ${p.errors} errors` : ''}`);
  }
  for (const n of f.notes) console.log(`- ${n}`);
}
