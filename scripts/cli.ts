#!/usr/bin/env node
/** @module The `nodus` command line: start a head, join workers, show status, stop. A thin layer over the runtime's launcher. */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { NodusError } from '../runtime/errors';
import { freePort, portInUse, spawnAgent, spawnHead, startRedisServer, stopProcess, type StartedProcess } from '../runtime/internal/launcher';
import { addToSession, clearSession, readSession, sessionDir } from '../runtime/internal/session';
import { redact } from '../runtime/internal/redis';
import { makeTlsFiles } from '../runtime/internal/tls';
import { resolveNodeResources } from '../runtime/options';
import { clusterStatus, formatStatus } from './status';

const program = new Command();
program.name('nodus').description('A Ray-style distributed runtime for Node.js').showHelpAfterError();

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number >= 0.');
  return n;
}

function json(v: string): Record<string, number> {
  try {
    return JSON.parse(v) as Record<string, number>;
  } catch {
    throw new InvalidArgumentError(`must be JSON, e.g. '{"accel": 2}'.`);
  }
}

function clusterAddress(given: string | undefined): string {
  const address = given || process.env.NODUS_ADDRESS || readSession()?.address;
  if (!address) throw new NodusError('No cluster found on this machine. Start one with `npx nodus start --head`, or pass --address redis://HOST:PORT (or set NODUS_ADDRESS).');
  return address;
}

/** In --block mode the processes are ours: stop them all on Ctrl-C, and when one of them dies. */
function blockUntilStopped(procs: StartedProcess[]): void {
  const stop = async () => {
    for (const p of [...procs].reverse()) await stopProcess(p.pid);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  for (const p of procs) p.process.once('exit', () => void stop());
  console.log('Running in the foreground; Ctrl-C stops this node.');
}

program
  .command('start')
  .description('Start the head of a cluster (Redis, the control plane and a node agent) on this machine')
  .requiredOption('--head', 'start a head node (the only kind `start` makes; workers use `nodus worker join`)')
  .option('--port <port>', 'port of the Redis the head starts', int, 6379)
  .option('--num-cpus <n>', "CPUs this node offers to tasks (0: the head runs no tasks)", int)
  .option('--num-gpus <n>', 'GPUs this node offers to tasks', int)
  .option('--resources <json>', `custom resources, e.g. '{"accel": 2}'`, json)
  .option('--redis-url <url>', 'use this running Redis instead of starting one')
  .option('--bind <address>', 'address the Redis listens on; anything but loopback requires a password (one is generated if not given)', '127.0.0.1')
  .option('--password <password>', 'password of the Redis the head starts (default: none on loopback, generated otherwise)')
  .option('--tls', "the head's Redis serves TLS only (rediss://), with a certificate authority made here (openssl); clients trust it through NODUS_TLS_CA")
  .option('--no-persistence', "run the head's Redis without append-only persistence (a Redis restart then loses queued tasks and objects)")
  .option('--node-timeout-ms <ms>', 'a node silent this long is marked dead', int)
  .option('--block', 'stay in the foreground; Ctrl-C stops everything this command started')
  .action(async (o: { port: number; numCpus?: number; numGpus?: number; resources?: Record<string, number>; redisUrl?: string; nodeTimeoutMs?: number; block?: boolean; bind: string; password?: string; persistence: boolean; tls?: boolean }) => {
    const resources = resolveNodeResources({ numCpus: o.numCpus, numGpus: o.numGpus, resources: o.resources }, cpus().length);
    const dir = sessionDir();
    const started: StartedProcess[] = [];
    const session: Parameters<typeof addToSession>[1] = [];
    let address = o.redisUrl;
    try {
      if (!address) {
        if (await portInUse(o.port)) {
          throw new NodusError(`Port ${o.port} is in use: is a cluster already running here? See \`npx nodus status\`, stop it with \`npx nodus stop\`, or choose another port with --port ${await freePort()}.`);
        }
        // Whoever reaches the cluster's Redis can run code on every worker (Ray's CVE-2023-48022):
        // off loopback, a password is not optional.
        const loopback = /^(127\.|::1$|localhost$)/.test(o.bind);
        let password = o.password;
        if (!password && !loopback) {
          password = randomBytes(24).toString('base64url');
          const file = join(dir, 'redis_password');
          mkdirSync(dir, { recursive: true });
          writeFileSync(file, `${password}\n`, { mode: 0o600 });
          console.log(`Redis listens on ${o.bind}, so it has a password (saved, readable only by you, in ${file}):\n  ${password}`);
        }
        let tls: ReturnType<typeof makeTlsFiles> | undefined;
        if (o.tls) {
          tls = makeTlsFiles(join(dir, 'tls'));
          // The head, agents and their workers started from here trust it too.
          process.env.NODUS_TLS_CA = tls.ca;
          console.log(`Redis serves TLS only; clients trust its certificate authority, ${tls.ca}: copy it to other machines and set NODUS_TLS_CA=<that file> (or worker join --tls-ca <file>).`);
        }
        const redis = await startRedisServer({ port: o.port, dir, detached: !o.block, bind: o.bind, password, persistence: o.persistence, tls });
        address = redis.address;
        started.push(redis);
        session.push({ role: 'redis', pid: redis.pid, address, startedAt: Date.now() });
        console.log(`Started redis-server on ${o.bind}:${o.port} (pid ${redis.pid}${o.persistence ? ', append-only persistence on' : ', no persistence'}).`);
      }
      const head = await spawnHead({ address, attached: false, logFile: join(dir, 'head.log'), nodeTimeoutMs: o.nodeTimeoutMs });
      started.push(head);
      session.push({ role: 'head', pid: head.pid, address, startedAt: Date.now() });
      console.log(`Started the head (pid ${head.pid}); log: ${join(dir, 'head.log')}`);
      if ((resources.CPU ?? 0) > 0 || Object.keys(resources).length > 1) {
        const agent = await spawnAgent({ address, attached: false, logFile: join(dir, `agent-${Date.now()}.log`), resources, headNode: true });
        started.push(agent);
        session.push({ role: 'agent', pid: agent.pid, address, startedAt: Date.now(), nodeId: agent.nodeId });
        console.log(`Started node ${agent.nodeId} with ${JSON.stringify(resources)} (pid ${agent.pid}).`);
      }
    } catch (err) {
      for (const p of started.reverse()) await stopProcess(p.pid, 2000);
      throw err;
    }
    addToSession(address, session);
    console.log(`
nodus cluster is up at ${redact(address)}
  Join another machine:  npx nodus worker join --address ${redact(address).replace('127.0.0.1', '<this host>')}
  Connect a driver:      await init({ address: '${redact(address)}' })   or  NODUS_ADDRESS=${redact(address)}
  See it:                npx nodus status
  Stop it:               npx nodus stop`);
    if (o.block) blockUntilStopped(started);
  });

const worker = program.command('worker').description('Node commands');
worker
  .command('join')
  .description('Join this machine to a cluster as a node: a node agent with worker processes')
  .option('--address <url>', 'Redis address of the head, e.g. redis://10.0.0.5:6379 (default: NODUS_ADDRESS, or the cluster started here)')
  .option('--num-cpus <n>', 'CPUs this node offers to tasks', int)
  .option('--num-gpus <n>', 'GPUs this node offers to tasks', int)
  .option('--resources <json>', `custom resources, e.g. '{"accel": 2}'`, json)
  .option('--tls-ca <file>', 'for a rediss:// head with its own certificate authority: the CA file `nodus start --tls` made (default: NODUS_TLS_CA)')
  .option('--block', 'stay in the foreground; Ctrl-C stops this node')
  .action(async (o: { address?: string; numCpus?: number; numGpus?: number; resources?: Record<string, number>; block?: boolean; tlsCa?: string }) => {
    const address = clusterAddress(o.address);
    if (o.tlsCa) process.env.NODUS_TLS_CA = resolve(o.tlsCa);
    const resources = resolveNodeResources({ numCpus: o.numCpus, numGpus: o.numGpus, resources: o.resources }, cpus().length);
    const logFile = join(sessionDir(), `agent-${Date.now()}.log`);
    const agent = await spawnAgent({ address, attached: false, logFile, resources });
    addToSession(address, [{ role: 'agent', pid: agent.pid, address, startedAt: Date.now(), nodeId: agent.nodeId }]);
    console.log(`Node ${agent.nodeId} joined ${redact(address)} with ${JSON.stringify(resources)} (pid ${agent.pid}); log: ${logFile}`);
    if (o.block) blockUntilStopped([agent]);
  });

program
  .command('status')
  .description('Nodes (alive/dead), resources, workers, queued and running tasks, infeasible demand')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .option('--json', 'print JSON')
  .action(async (o: { address?: string; json?: boolean }) => {
    const status = await clusterStatus(clusterAddress(o.address));
    console.log(o.json ? JSON.stringify(status, null, 2) : formatStatus(status));
  });

program
  .command('stop')
  .description('Stop what `nodus start` and `nodus worker join` started on this machine')
  .action(async () => {
    const session = readSession();
    if (!session?.processes.length) {
      console.log('Nothing to stop: no nodus processes were started on this machine.');
      return;
    }
    // Agents first (they stop their workers), then the head, then Redis.
    const order = { agent: 0, head: 1, redis: 2 } as const;
    const procs = [...session.processes].sort((a, b) => order[a.role] - order[b.role]);
    for (const p of procs) {
      await stopProcess(p.pid);
      console.log(`Stopped ${p.role}${p.nodeId ? ` ${p.nodeId}` : ''} (pid ${p.pid}).`);
    }
    clearSession();
  });

program.parseAsync().catch((err: unknown) => {
  console.error(`nodus: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
