/** @module Starts cluster processes: redis-server, the head and node agents. Used by the CLI, init() and the tests. */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { ClusterError } from '../errors';
import type { Resources } from '../protocol';
import { connect, waitForRedis } from './redis';
import type { TlsFiles } from './tls';

/** The exact command that installs Redis, for error messages. */
export const REDIS_INSTALL_HINT =
  'sudo apt-get install -y redis-server   (Debian/Ubuntu; as root without sudo)   or   brew install redis   (macOS)';

/** Folder of the compiled package (dist/): worker, head and agent entry points are run from there. */
export function distRoot(): string {
  // runtime/internal -> package root. From the TypeScript sources (tests) the compiled copy is in <root>/dist.
  const here = resolve(__dirname, '..', '..');
  return __filename.endsWith('.ts') ? join(here, 'dist') : here;
}

export function entryPoint(name: 'head' | 'agent' | 'worker' | 'cli' | 'gateway' | 'serve'): string {
  const rel = {
    head: 'head/main.js',
    agent: 'workers/agent-main.js',
    worker: 'workers/worker-process.js',
    cli: 'scripts/cli.js',
    gateway: 'gateway/main.js',
    serve: 'serve/deploy/ingress-main.js',
  }[name];
  return join(distRoot(), rel);
}

/** Finds redis-server on PATH (and the usual sbin folders), or throws naming the install command. */
export function findRedisServer(): string {
  const given = process.env.NODUS_REDIS_SERVER;
  if (given) {
    try {
      accessSync(given, constants.X_OK);
      return given;
    } catch {
      throw new ClusterError(`NODUS_REDIS_SERVER is ${given}, which is not an executable redis-server. Install Redis with:\n  ${REDIS_INSTALL_HINT}\nor unset NODUS_REDIS_SERVER.`);
    }
  }
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin', '/opt/homebrew/bin'];
  for (const d of dirs) {
    const p = join(d, 'redis-server');
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* keep looking */
    }
  }
  throw new ClusterError(`redis-server is not installed, and a nodus head needs it. Install it with:\n  ${REDIS_INSTALL_HINT}\nor point at a running Redis with --redis-url.`);
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

/** True if something accepts connections on host:port. */
export function portInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once('error', () => res(true));
    srv.listen(port, host, () => srv.close(() => res(false)));
  });
}

export interface RedisServerOptions {
  port: number;
  bind?: string;
  /** Working folder (dump files, logs). */
  dir: string;
  /** Leave it running after this process exits (`nodus start`). */
  detached: boolean;
  password?: string;
  /** Append-only file, fsync'd every second: queued tasks and objects survive a Redis restart. @default false */
  persistence?: boolean;
  /** Serve TLS only (rediss://) with these files; clients then need the CA (NODUS_TLS_CA). */
  tls?: TlsFiles;
  /** Redis writes its pid here (a supervised Redis's pid changes with each restart). */
  pidFile?: string;
}

export interface StartedProcess {
  process: ChildProcess;
  pid: number;
}

/** The address clients of this machine reach a redis-server started with these options at. */
export function redisAddress(o: Pick<RedisServerOptions, 'bind' | 'port' | 'password' | 'tls'>): string {
  const first = (o.bind ?? '127.0.0.1').split(' ')[0];
  const host = first === '0.0.0.0' || first === '::' ? '127.0.0.1' : first;
  return `${o.tls ? 'rediss' : 'redis'}://${o.password ? `:${encodeURIComponent(o.password)}@` : ''}${host}:${o.port}`;
}

/** Starts redis-server and waits until it answers. */
export async function startRedisServer(o: RedisServerOptions): Promise<StartedProcess & { address: string }> {
  const bin = findRedisServer();
  mkdirSync(o.dir, { recursive: true });
  const bind = o.bind ?? '127.0.0.1';
  const args = ['--port', String(o.tls ? 0 : o.port), '--bind', ...bind.split(' '), '--dir', o.dir, '--save', '', '--loglevel', 'warning'];
  // TLS only: no plain port. Clients authenticate with the password; the CA proves the server to them.
  if (o.tls) args.push('--tls-port', String(o.port), '--tls-cert-file', o.tls.cert, '--tls-key-file', o.tls.key, '--tls-ca-cert-file', o.tls.ca, '--tls-auth-clients', 'no');
  args.push('--appendonly', o.persistence ? 'yes' : 'no', '--appendfsync', 'everysec', '--appendfilename', `nodus-${o.port}.aof`, '--appenddirname', `appendonly-${o.port}`);
  if (o.password) args.push('--requirepass', o.password);
  if (o.pidFile) args.push('--pidfile', o.pidFile);
  const log = openSync(join(o.dir, `redis-${o.port}.log`), 'a');
  const child = spawn(bin, args, { detached: o.detached, stdio: ['ignore', log, log] });
  const address = redisAddress(o);
  const exited = new Promise<never>((_, rej) => child.once('exit', (code) => rej(new ClusterError(`redis-server exited at start (code ${code}); see ${join(o.dir, `redis-${o.port}.log`)}.`))));
  const probe = connect(address, { name: 'nodus:probe', ca: o.tls?.ca });
  probe.on('error', () => undefined);
  try {
    await Promise.race([waitForRedis(probe, address, 10_000), exited]);
  } finally {
    probe.disconnect();
  }
  child.removeAllListeners('exit');
  if (o.detached) child.unref();
  return { process: child, pid: child.pid!, address };
}

export interface NodeProcessOptions {
  address: string;
  /** Exit when this process exits (init's local cluster, tests); otherwise run on in the background. */
  attached: boolean;
  /** Where its log goes; stderr of this process when not given. */
  logFile?: string;
  namespace?: string;
  env?: NodeJS.ProcessEnv;
  /** Runs the process through a wrapper command, e.g. ['ip', 'netns', 'exec', 'ns1'] to put it in a network namespace. */
  wrap?: string[];
}

export interface HeadProcessOptions extends NodeProcessOptions {
  nodeTimeoutMs?: number;
  driverTimeoutMs?: number;
  /** The head starts this redis-server itself, supervises it (started again when it dies) and stops it when it exits. */
  redis?: Omit<RedisServerOptions, 'detached' | 'pidFile'>;
  /** Port of the cluster's /metrics (0: a free one). @default 8080, or a free one when it is taken */
  metricsPort?: number;
  /** Address /metrics listens on. @default '127.0.0.1' */
  metricsHost?: string;
}

export interface AgentProcessOptions extends NodeProcessOptions {
  resources: Resources;
  headNode?: boolean;
  /** Node labels, matched by labelSelector. */
  labels?: Record<string, string>;
}

/**
 * A cluster process's environment: this one's, without the runtime env and job it may run in (a job's driver that
 * starts the ingress, say). The process serves the whole cluster and outlives the job.
 */
function clusterProcessEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of ['NODUS_RUNTIME_ENV', 'NODUS_ENV_DIR', 'NODUS_JOB_ID']) delete out[k];
  return out;
}

/** Forks a cluster process and waits for its `ready` message. */
async function forkReady(script: string, args: string[], o: NodeProcessOptions, timeoutMs = 30_000): Promise<StartedProcess & { info: Record<string, unknown> }> {
  if (o.logFile) mkdirSync(dirname(o.logFile), { recursive: true });
  const out = o.logFile ? openSync(o.logFile, 'a') : 'inherit';
  const child = fork(script, [...args, '--address', o.address, ...(o.attached ? ['--attached'] : []), ...(o.namespace ? ['--namespace', o.namespace] : [])], {
    ...(o.wrap ? { execPath: o.wrap[0], execArgv: [...o.wrap.slice(1), process.execPath] } : {}),
    detached: !o.attached,
    stdio: ['ignore', out, out, 'ipc'],
    env: { ...clusterProcessEnv(process.env), ...o.env },
  });
  const info = await new Promise<Record<string, unknown>>((res, rej) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new ClusterError(`${script} did not start within ${timeoutMs} ms${o.logFile ? `; see ${o.logFile}` : ''}.`));
    }, timeoutMs);
    child.once('message', (m: { ready?: Record<string, unknown> }) => {
      clearTimeout(timer);
      res(m.ready ?? {});
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // Its last words (why it failed to start) are the last line of its log.
      let why = '';
      try {
        why = o.logFile ? (readFileSync(o.logFile, 'utf8').trim().split('\n').pop() ?? '') : '';
      } catch {
        // The log's folder is already gone (its owner cleaned up): the exit code says enough.
      }
      rej(new ClusterError(`${script} exited at start (${signal ?? `code ${code}`})${why ? `: ${why}` : '.'}${o.logFile ? ` (log: ${o.logFile})` : ''}`));
    });
  });
  child.removeAllListeners('exit');
  if (!o.attached) {
    child.disconnect();
    child.unref();
  }
  return { process: child, pid: child.pid!, info };
}

export function spawnHead(o: HeadProcessOptions): Promise<StartedProcess & { info: Record<string, unknown> }> {
  const args: string[] = [];
  if (o.nodeTimeoutMs) args.push('--node-timeout-ms', String(o.nodeTimeoutMs));
  if (o.driverTimeoutMs) args.push('--driver-timeout-ms', String(o.driverTimeoutMs));
  if (o.redis) args.push('--redis', JSON.stringify(o.redis));
  if (o.metricsPort !== undefined) args.push('--metrics-port', String(o.metricsPort));
  if (o.metricsHost) args.push('--metrics-host', o.metricsHost);
  return forkReady(entryPoint('head'), args, o);
}

export interface GatewayProcessOptions extends NodeProcessOptions {
  /** @default 3370 */
  port?: number;
  /** @default 127.0.0.1 */
  host?: string;
  /** Service URLs (openapi.json or /-/routes) registered at start. */
  register?: string[];
  /** The admin's password (passed in the environment, out of `ps`). */
  adminPassword?: string;
  /** Where a generated admin password is saved. */
  sessionDir?: string;
}

/** Starts the gateway (HTTP on port 3370 by default) and waits until it listens; `info.url` is where. */
export function spawnGateway(o: GatewayProcessOptions): Promise<StartedProcess & { info: Record<string, unknown> }> {
  const args: string[] = [];
  if (o.port !== undefined) args.push('--port', String(o.port));
  if (o.host) args.push('--host', o.host);
  for (const url of o.register ?? []) args.push('--register', url);
  if (o.sessionDir) args.push('--session-dir', o.sessionDir);
  return forkReady(entryPoint('gateway'), args, { ...o, env: { ...o.env, ...(o.adminPassword ? { NODUS_ADMIN_PASSWORD: o.adminPassword } : {}) } });
}

export interface IngressProcessOptions extends NodeProcessOptions {
  /** @default 8000 */
  port?: number;
  /** @default 127.0.0.1 */
  host?: string;
}

/** Starts the serve ingress (HTTP on port 8000 by default, and the deployments' controller); `info.url` is where. */
export function spawnIngress(o: IngressProcessOptions): Promise<StartedProcess & { info: Record<string, unknown> }> {
  const args: string[] = [];
  if (o.port !== undefined) args.push('--port', String(o.port));
  if (o.host) args.push('--host', o.host);
  return forkReady(entryPoint('serve'), args, o);
}

export async function spawnAgent(o: AgentProcessOptions): Promise<StartedProcess & { nodeId: string }> {
  const args = ['--resources', JSON.stringify(o.resources)];
  if (o.headNode) args.push('--head-node');
  if (o.labels && Object.keys(o.labels).length) args.push('--labels', JSON.stringify(o.labels));
  const started = await forkReady(entryPoint('agent'), args, o);
  return { ...started, nodeId: String(started.info.nodeId) };
}

export { isRunning, stopProcess } from './process-state';
