#!/usr/bin/env node
/** @module The `nodus` command line: start a head, join workers, show status, stop. A thin layer over the runtime's launcher. */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { NodusError } from '../runtime/errors';
import { findRedisServer, freePort, portInUse, redisAddress, spawnAgent, spawnGateway, spawnHead, stopProcess, type StartedProcess } from '../runtime/internal/launcher';
import { commandLine, isRunning } from '../runtime/internal/process-state';
import { addToSession, clusterDir, currentPid, findSession, listSessions, removeSession, type Session, type SessionProcess } from '../runtime/internal/session';
import { connect, redact, waitForRedis } from '../runtime/internal/redis';
import { ServiceKeys } from '../runtime/protocol/services';
import { listFlows, registerSource, unregisterSource } from '../gateway/flows/registry';
import { init, shutdown } from '../runtime';
import type { Redis } from 'ioredis';
import { makeTlsFiles } from '../runtime/internal/tls';
import { resolveNodeLabels, resolveNodeResources } from '../runtime/options';
import { clusterStatus, formatStatus } from './status';
import { addTaskCommands } from './cli-tasks';
import { addStateCommands } from './cli-state';
import { addJobCommands } from './cli-jobs';
import { addServeCommands, startIngressProcess } from './cli-serve';

const program = new Command();
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };
program.name('nodus').description('A Ray-style distributed runtime for Node.js').version(version).showHelpAfterError();

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number >= 0.');
  return n;
}

/** GPUs of this machine as nvidia-smi lists them (0 without it): a node offers them unless --num-gpus says otherwise. */
function detectGpus(): number {
  const out = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 });
  return out.status === 0 ? out.stdout.split('\n').filter((l) => /^GPU \d+/.test(l)).length : 0;
}

/** Repeatable options (--register a --register b). */
function collect(v: string, all: string[]): string[] {
  return [...all, v];
}

interface GatewayFlags {
  gatewayPort?: number;
  gatewayHost: string;
  register: string[];
  adminPassword?: string;
}

interface StartOptions extends GatewayFlags {
  port: number;
  numCpus?: number;
  numGpus?: number;
  resources?: Record<string, number>;
  memory?: number;
  labels?: Record<string, string>;
  redisUrl?: string;
  nodeTimeoutMs?: number;
  block?: boolean;
  bind: string;
  password?: string;
  persistence: boolean;
  tls?: boolean;
  gateway: boolean;
  metricsPort?: number;
  taskEventsWindow?: number;
  taskEventsMaxMb?: number;
  serve: boolean;
  servePort?: number;
  serveHost: string;
}

/**
 * Starts a gateway for the cluster at `address` (its log in the cluster's folder). The default port is 3370; when
 * that is taken and no port was asked for (a second cluster here), a free one: a named port that is taken is an error.
 */
async function startGatewayProcess(address: string, dir: string, o: GatewayFlags): Promise<StartedProcess & { url: string }> {
  let port = o.gatewayPort ?? 3370;
  if (await portInUse(port, o.gatewayHost)) {
    if (o.gatewayPort !== undefined) throw new NodusError(`Port ${port} is in use, so the gateway cannot listen there: choose another with --gateway-port ${await freePort()}, or --no-gateway.`);
    port = await freePort();
    console.log(`Port 3370 is taken (another cluster's gateway?): this gateway listens on ${port}.`);
  }
  const g = await spawnGateway({ address, attached: false, logFile: join(dir, 'gateway.log'), port, host: o.gatewayHost, register: o.register, adminPassword: o.adminPassword, sessionDir: dir });
  const url = String(g.info.url);
  console.log(`Started the gateway (pid ${g.pid}) at ${url}; log: ${join(dir, 'gateway.log')}`);
  if (g.info.generatedPassword) console.log(`The gateway's admin password (saved, readable only by you, in ${g.info.generatedPassword}):\n  ${readFileSync(String(g.info.generatedPassword), 'utf8').trim()}`);
  return { ...g, url };
}

function json(v: string): Record<string, number> {
  try {
    return JSON.parse(v) as Record<string, number>;
  } catch {
    throw new InvalidArgumentError(`must be JSON, e.g. '{"accel": 2}'.`);
  }
}

const NO_CLUSTER = 'No cluster found on this machine. Start one with `npx nodus start --head`, or pass --address redis://HOST:PORT (or set NODUS_ADDRESS).';

/** The clusters a command given no address works on: the one named, else every one started on this machine. */
function clusterAddresses(given: string | undefined): string[] {
  const address = given || process.env.NODUS_ADDRESS;
  if (address) return [address];
  const all = listSessions().map((s) => s.address);
  if (!all.length) throw new NodusError(NO_CLUSTER);
  return all;
}

/** The one cluster a command that needs one works on; several started here must be told apart with --address. */
function clusterAddress(given: string | undefined): string {
  const all = clusterAddresses(given);
  if (all.length > 1) {
    throw new NodusError(`${all.length} clusters run on this machine (${all.map(redact).join(', ')}): say which with --address.`);
  }
  return all[0];
}

/** What each process of ours looks like in its command line: a recorded pid reused by another program is left alone. */
const SIGNATURE: Record<SessionProcess['role'], RegExp> = {
  redis: /redis-server/,
  head: /head\/main\.js/,
  agent: /agent-main\.js/,
  gateway: /gateway\/main\.js/,
  serve: /ingress-main\.js/,
};

/** Stops a cluster's processes started here: the ingress, gateways and agents first (they stop their workers), then the head, then Redis. */
async function stopSession(s: Session): Promise<void> {
  const order = { serve: 0, gateway: 0, agent: 1, head: 2, redis: 3 } as const;
  const ours = (p: SessionProcess) => {
    const pid = currentPid(p);
    return isRunning(pid) && (!commandLine(pid) || SIGNATURE[p.role].test(commandLine(pid))) ? pid : 0;
  };
  // Pids first: the head stops the Redis it supervises, and a restarted Redis is found through its pid file.
  const procs = [...s.processes].sort((a, b) => order[a.role] - order[b.role]).map((p) => ({ p, pid: ours(p) }));
  for (const { p, pid } of procs) {
    if (!pid) continue;
    await stopProcess(pid);
    console.log(`Stopped ${p.role}${p.nodeId ? ` ${p.nodeId}` : ''} (pid ${pid}) of ${redact(s.address)}.`);
  }
  removeSession(s.address);
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
  .option('--num-gpus <n>', 'GPUs this node offers to tasks (default: those nvidia-smi lists)', int)
  .option('--resources <json>', `custom resources, e.g. '{"accel": 2}'`, json)
  .option('--memory <bytes>', 'memory tasks and actors may ask for with `memory` (default: the free memory of this machine)', int)
  .option('--labels <json>', `labels of this node, for labelSelector, e.g. '{"zone": "a"}'`, json)
  .option('--redis-url <url>', 'use this running Redis instead of starting one')
  .option('--bind <address>', 'address the Redis listens on; anything but loopback requires a password (one is generated if not given)', '127.0.0.1')
  .option('--password <password>', 'password of the Redis the head starts (default: none on loopback, generated otherwise)')
  .option('--tls', "the head's Redis serves TLS only (rediss://), with a certificate authority made here (openssl); clients trust it through NODUS_TLS_CA")
  .option('--no-persistence', "run the head's Redis without append-only persistence (a Redis restart then loses queued tasks and objects)")
  .option('--node-timeout-ms <ms>', 'a node silent this long is marked dead', int)
  .option('--metrics-port <port>', "port of the cluster's Prometheus /metrics on the head (default 8080, or a free one when 8080 is taken; 0: a free one)", int)
  .option('--task-events-window <seconds>', 'how long task events and task logs are kept for `nodus list tasks` and `nodus logs` (default 3600)', int)
  .option('--task-events-max-mb <n>', 'the most memory task events take in Redis; the oldest go first (default 64)', int)
  .option('--no-gateway', 'do not start the gateway (agentic services, on :3370)')
  .option('--gateway-port <port>', 'port of the gateway (default 3370, or a free one when 3370 is taken)', int)
  .option('--gateway-host <address>', 'address the gateway listens on; anything but loopback requires an admin password (given or generated)', '127.0.0.1')
  .option('--register <url>', 'register a service with the gateway (its openapi.json or /-/routes URL); repeatable', collect, [])
  .option('--admin-password <password>', "the gateway admin's password (default: 'admin' on loopback, generated otherwise)")
  .option('--no-serve', 'do not start the serve ingress (deployments, on :8000)')
  .option('--serve-port <port>', 'port of the serve ingress (default 8000, or a free one when 8000 is taken)', int)
  .option('--serve-host <address>', 'address the serve ingress listens on', '127.0.0.1')
  .option('--block', 'stay in the foreground; Ctrl-C stops everything this command started')
  .action(async (o: StartOptions) => {
    const resources = resolveNodeResources({ numCpus: o.numCpus, numGpus: o.numGpus ?? detectGpus(), resources: o.resources, memory: o.memory }, cpus().length);
    const labels = resolveNodeLabels(o.labels);
    const started: StartedProcess[] = [];
    const session: SessionProcess[] = [];
    let address = o.redisUrl;
    let redis: Parameters<typeof spawnHead>[0]['redis'];
    let gatewayUrl = '';
    let serveUrl = '';
    let dir: string;
    if (!address) {
      findRedisServer(); // the install command, before anything starts
      if (await portInUse(o.port)) {
        throw new NodusError(`Port ${o.port} is in use: is a cluster already running here? See \`npx nodus status\`, stop it with \`npx nodus stop\`, or choose another port with --port ${await freePort()}.`);
      }
      // Each cluster has a folder of its own (logs, Redis files, password, TLS): two on one machine share nothing.
      dir = clusterDir(redisAddress({ port: o.port, bind: o.bind }));
      // Whoever reaches the cluster's Redis can run code on every worker (Ray's CVE-2023-48022):
      // off loopback, a password is not optional.
      const loopback = /^(127\.|::1$|localhost$)/.test(o.bind);
      let password = o.password;
      if (!password && !loopback) {
        password = randomBytes(24).toString('base64url');
        const file = join(dir, 'redis_password');
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
      redis = { port: o.port, dir, bind: o.bind, password, persistence: o.persistence, tls };
      address = redisAddress(redis);
    } else dir = clusterDir(address);
    try {
      // The head starts the Redis (and starts it again whenever it dies); a --redis-url Redis is not its to restart.
      // The event window reaches the head (which trims) and the node agents (which keep task logs as long).
      if (o.taskEventsWindow !== undefined) process.env.NODUS_TASK_EVENTS_WINDOW_MS = String(o.taskEventsWindow * 1000);
      if (o.taskEventsMaxMb !== undefined) process.env.NODUS_TASK_EVENTS_MAX_BYTES = String(o.taskEventsMaxMb * 1024 * 1024);
      const head = await spawnHead({ address, attached: false, logFile: join(dir, 'head.log'), nodeTimeoutMs: o.nodeTimeoutMs, redis, metricsPort: o.metricsPort, metricsHost: o.bind });
      started.push(head);
      session.push({ role: 'head', pid: head.pid, address, startedAt: Date.now() });
      if (redis) {
        const pid = Number(head.info.redisPid);
        session.push({ role: 'redis', pid, address, startedAt: Date.now(), pidFile: String(head.info.redisPidFile) });
        console.log(`Started redis-server on ${o.bind}:${o.port} (pid ${pid}${o.persistence ? ', append-only persistence on' : ', no persistence'}; the head starts it again if it dies).`);
      }
      console.log(`Started the head (pid ${head.pid}); log: ${join(dir, 'head.log')}; cluster metrics: ${String(head.info.metricsUrl)}`);
      if ((resources.CPU ?? 0) > 0 || Object.keys(resources).length > 1) {
        const agent = await spawnAgent({ address, attached: false, logFile: join(dir, `agent-${Date.now()}.log`), resources, headNode: true, labels });
        started.push(agent);
        session.push({ role: 'agent', pid: agent.pid, address, startedAt: Date.now(), nodeId: agent.nodeId });
        console.log(`Started node ${agent.nodeId} with ${JSON.stringify(resources)} (pid ${agent.pid}).`);
      }
      // As Ray starts its dashboard: the gateway for agentic services comes with the head.
      if (o.gateway) {
        const gw = await startGatewayProcess(address, dir, o);
        started.push(gw);
        session.push({ role: 'gateway', pid: gw.pid, address, startedAt: Date.now() });
        gatewayUrl = gw.url;
      }
      // As Ray starts Serve's proxy on :8000: the ingress of serve deployments (and their controller).
      if (o.serve) {
        const ingress = await startIngressProcess(address, dir, { port: o.servePort, host: o.serveHost });
        started.push(ingress);
        session.push({ role: 'serve', pid: ingress.pid, address, startedAt: Date.now() });
        serveUrl = ingress.url;
      }
    } catch (err) {
      for (const p of started.reverse()) await stopProcess(p.pid, 3000);
      throw err;
    }
    addToSession(address, session);
    console.log(`
nodus cluster is up at ${redact(address)}
  Join another machine:  npx nodus worker join --address ${redact(address).replace('127.0.0.1', '<this host>')}
  Connect a driver:      await init({ address: '${redact(address)}' })   or  NODUS_ADDRESS=${redact(address)}
  See it:                npx nodus status${gatewayUrl ? `\n  Gateway:               ${gatewayUrl} (npx nodus register <service>/openapi.json)` : ''}${serveUrl ? `\n  Serve ingress:         ${serveUrl} (npx nodus serve run <module>)` : ''}
  Stop it:               npx nodus stop${listSessions().length > 1 ? ` --address ${redact(address)}` : ''}`);
    if (o.block) blockUntilStopped(started);
  });

const worker = program.command('worker').description('Node commands');
worker
  .command('join')
  .description('Join this machine to a cluster as a node: a node agent with worker processes')
  .option('--address <url>', 'Redis address of the head, e.g. redis://10.0.0.5:6379 (default: NODUS_ADDRESS, or the cluster started here)')
  .option('--num-cpus <n>', 'CPUs this node offers to tasks', int)
  .option('--num-gpus <n>', 'GPUs this node offers to tasks (default: those nvidia-smi lists)', int)
  .option('--resources <json>', `custom resources, e.g. '{"accel": 2}'`, json)
  .option('--memory <bytes>', 'memory tasks and actors may ask for with `memory` (default: the free memory of this machine)', int)
  .option('--labels <json>', `labels of this node, for labelSelector, e.g. '{"zone": "a"}'`, json)
  .option('--tls-ca <file>', 'for a rediss:// head with its own certificate authority: the CA file `nodus start --tls` made (default: NODUS_TLS_CA)')
  .option('--block', 'stay in the foreground; Ctrl-C stops this node')
  .action(async (o: { address?: string; numCpus?: number; numGpus?: number; resources?: Record<string, number>; memory?: number; labels?: Record<string, string>; block?: boolean; tlsCa?: string }) => {
    const address = clusterAddress(o.address);
    if (o.tlsCa) process.env.NODUS_TLS_CA = resolve(o.tlsCa);
    const resources = resolveNodeResources({ numCpus: o.numCpus, numGpus: o.numGpus ?? detectGpus(), resources: o.resources, memory: o.memory }, cpus().length);
    const labels = resolveNodeLabels(o.labels);
    const logFile = join(clusterDir(address), `agent-${Date.now()}.log`);
    const agent = await spawnAgent({ address, attached: false, logFile, resources, labels });
    addToSession(address, [{ role: 'agent', pid: agent.pid, address, startedAt: Date.now(), nodeId: agent.nodeId }]);
    console.log(`Node ${agent.nodeId} joined ${redact(address)} with ${JSON.stringify(resources)} (pid ${agent.pid}); log: ${logFile}`);
    if (o.block) blockUntilStopped([agent]);
  });

program
  .command('gateway')
  .description('Start a gateway (agentic services: login, flows, the proxy, outputs) for a cluster, in the background')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .option('--port <port>', 'port to listen on (default 3370)', int)
  .option('--host <address>', 'address to listen on; anything but loopback requires an admin password', '127.0.0.1')
  .option('--register <url>', 'register a service (openapi.json or /-/routes URL); repeatable', collect, [])
  .option('--admin-password <password>', "the admin's password (default: 'admin' on loopback, generated otherwise)")
  .action(async (o: { address?: string; port?: number; host: string; register: string[]; adminPassword?: string }) => {
    const address = clusterAddress(o.address);
    const gw = await startGatewayProcess(address, clusterDir(address), { gatewayPort: o.port, gatewayHost: o.host, register: o.register, adminPassword: o.adminPassword });
    addToSession(address, [{ role: 'gateway', pid: gw.pid, address, startedAt: Date.now() }]);
  });

/** Runs `fn` with a connection to the cluster's Redis and its services keys. */
async function withServices<T>(address: string, fn: (redis: Redis, keys: ServiceKeys) => Promise<T>): Promise<T> {
  const redis = connect(address, { name: 'nodus:cli' });
  redis.on('error', () => undefined);
  try {
    await waitForRedis(redis, address, 5000);
    return await fn(redis, new ServiceKeys(process.env.NODUS_NAMESPACE || undefined));
  } finally {
    redis.disconnect();
  }
}

program
  .command('register')
  .description("Register services with the cluster's gateways (koco --register): each URL is an openapi.json or a /-/routes listing")
  .argument('<urls...>', 'e.g. http://localhost:8005/openapi.json')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .action(async (urls: string[], o: { address?: string }) => {
    await withServices(clusterAddress(o.address), async (redis, keys) => {
      for (const url of urls) {
        const src = await registerSource(redis, keys, url);
        console.log(`Registered ${url}: ${src.flows.length} flow${src.flows.length === 1 ? '' : 's'}`);
        for (const f of src.flows) console.log(`  ${f.method} ${f.url}  ${f.summary}`);
      }
    });
  });

program
  .command('unregister')
  .description('Remove registered services from the gateway')
  .argument('<urls...>', 'the URLs they were registered with')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .action(async (urls: string[], o: { address?: string }) => {
    await withServices(clusterAddress(o.address), async (redis, keys) => {
      for (const url of urls) console.log((await unregisterSource(redis, keys, url)) ? `Unregistered ${url}.` : `${url} was not registered (see \`nodus flows\`).`);
    });
  });

program
  .command('flows')
  .description('List the registered entry points (flows) of the gateway')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .option('--json', 'print JSON')
  .action(async (o: { address?: string; json?: boolean }) => {
    await withServices(clusterAddress(o.address), async (redis, keys) => {
      const flows = await listFlows(redis, keys);
      if (o.json) return console.log(JSON.stringify(flows, null, 2));
      if (!flows.length) return console.log('No flows registered. Register a service with `npx nodus register http://HOST:PORT/openapi.json`.');
      for (const f of flows) console.log(`${f.method} ${f.url}  ${f.summary}${f.tags.length ? `  [${f.tags.join(', ')}]` : ''}  (from ${f.source})`);
    });
  });

/**
 * Runs `fn` as a driver of the cluster (apps deploy actors and call them), with the serving layer loaded only here:
 * it brings onnxruntime, which the other commands do not need.
 */
async function asDriver<T>(address: string | undefined, fn: (apps: typeof import('../serving/apps.js')) => Promise<T>): Promise<T> {
  await init({ address: clusterAddress(address), logToDriver: false });
  try {
    return await fn(await import('../serving/apps.js'));
  } finally {
    await (await import('../serve/cluster.js')).closeServiceLink();
    await shutdown();
    // Deployed model hosts and app actors live on in the cluster; nothing of this process needs to.
    setTimeout(() => process.exit(process.exitCode ?? 0), 100).unref();
  }
}

const app = program.command('app').description('Model-serving apps: register, invoke, list, unregister');
app
  .command('register')
  .description('Register an app (a module exporting config.tasks and serve): deploys the unit tasks it needs, showing progress')
  .argument('<source>', 'the app module, e.g. services/image_chat/app.ts')
  .option('--alias <name>', 'a name to invoke it by (default: its folder name)')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .action(async (source: string, o: { alias?: string; address?: string }) => {
    await asDriver(o.address, async ({ registerApp }) => {
      const rec = await registerApp(source, { alias: o.alias, progress: (m) => console.log(`  ${m}`) });
      console.log(`Registered ${rec.alias} (${rec.id}): ${rec.deployments.length} deployment${rec.deployments.length === 1 ? '' : 's'}${rec.streaming ? '; it streams (NDJSON)' : ''}.`);
    });
  });
app
  .command('invoke')
  .description('Invoke an app with a JSON request; a streaming app prints one JSON line per item')
  .argument('<app>', 'its id or alias')
  .argument('<json>', `the request, e.g. '{"prompt": "What is in this picture?", "imageUrl": "data:image/png;base64,..."}'`)
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .action(async (id: string, json: string, o: { address?: string }) => {
    let request: unknown;
    try {
      request = JSON.parse(json);
    } catch (err) {
      throw new NodusError(`The request is not JSON (${(err as Error).message}); quote it, e.g. '{"prompt": "hi"}'.`);
    }
    await asDriver(o.address, async ({ findApp, streamApp, invokeApp }) => {
      if ((await findApp(id)).streaming) for await (const item of streamApp(id, request)) console.log(JSON.stringify(item));
      else console.log(JSON.stringify(await invokeApp(id, request), null, 2));
    });
  });
app
  .command('list')
  .description('Apps, the unit tasks they use (deployments), their replicas and where each runs')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .option('--json', 'print JSON')
  .action(async (o: { address?: string; json?: boolean }) => {
    await asDriver(o.address, async ({ listApps }) => {
      const { apps, deployments } = await listApps();
      if (o.json) return console.log(JSON.stringify({ apps, deployments }, null, 2));
      console.log(`Apps: ${apps.length}`);
      for (const a of apps) console.log(`  ${a.alias}  ${a.id}  ${a.state}${a.streaming ? '  streaming' : ''}  ${a.source}\n    uses ${a.deployments.join(', ') || '-'}`);
      console.log(`\nDeployments: ${deployments.length}`);
      for (const d of deployments) {
        console.log(`  ${d.key}  ${d.kind} ${String(d.config.modelId)}  ${d.replicas.length} replica${d.replicas.length === 1 ? '' : 's'}  held by ${d.holders.join(', ')}`);
        for (const h of d.hosts) console.log(`    ${h.replica}  node ${h.node}  pid ${h.pid}  device ${h.device}`);
      }
    });
  });
app
  .command('unregister')
  .description('Unregister an app; deployments no other app uses are torn down')
  .argument('<app>', 'its id or alias')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)')
  .action(async (id: string, o: { address?: string }) => {
    await asDriver(o.address, async ({ unregisterApp }) => {
      const rec = await unregisterApp(id, (m) => console.log(`  ${m}`));
      console.log(`Unregistered ${rec.alias} (${rec.id}).`);
    });
  });

program
  .command('status')
  .description('Nodes (alive/dead), resources, workers, queued and running tasks, infeasible demand, Redis restarts')
  .option('--address <url>', 'Redis address of the cluster (default: NODUS_ADDRESS, or every cluster started on this machine)')
  .option('--json', 'print JSON (a list when several clusters run here)')
  .action(async (o: { address?: string; json?: boolean }) => {
    const addresses = clusterAddresses(o.address);
    const all = await Promise.all(addresses.map((a) => clusterStatus(a)));
    if (o.json) console.log(JSON.stringify(all.length === 1 ? all[0] : all, null, 2));
    else {
      if (all.length > 1) console.log(`${all.length} clusters run on this machine; --address shows one.\n`);
      console.log(all.map(formatStatus).join('\n\n'));
    }
  });

program
  .command('stop')
  .description('Stop what `nodus start` and `nodus worker join` started on this machine: every cluster, or the one at --address')
  .option('--address <url>', "stop only this cluster's processes on this machine")
  .action(async (o: { address?: string }) => {
    const sessions = o.address ? [findSession(o.address)].filter((s): s is Session => !!s) : listSessions();
    if (!sessions.length) {
      console.log(o.address ? `Nothing to stop: no nodus processes of ${redact(o.address)} were started on this machine.` : 'Nothing to stop: no nodus processes were started on this machine.');
      return;
    }
    for (const s of sessions) await stopSession(s);
  });

addTaskCommands(program);
addStateCommands(program);
addJobCommands(program);
addServeCommands(program);

program.parseAsync().catch((err: unknown) => {
  console.error(`nodus: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
