/**
 * @module The HTTP ingress of serve deployments (Ray Serve's proxy, on :8000): routes each request by its path prefix to
 * the least-loaded replica of that app, streams the answer back, retries idempotent requests when a replica dies, and
 * answers 503 with Retry-After when an app is at capacity. It also runs the deployments' controller.
 */
import { hostname } from 'node:os';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ActorDiedError, ConfigError, get, init, shutdown } from '../../runtime';
import { currentContext } from '../../runtime/internal/global';
import { isRunning } from '../../runtime/internal/process-state';
import { connect, waitForRedis } from '../../runtime/internal/redis';
import { DEFAULT_SERVE_PORT, DeployKeys, type ForwardedRequest, type ForwardedResponse, type IngressInfo } from '../../runtime/protocol/deploy';
import { Controller } from './controller';
import { DirectError, proxyDirect } from './direct';
import { PROBE_HEADER } from './replica';
import { OverloadedError, type AppRouter, type RoutedReplica } from './router';
import { readIngress } from './store';

/** Options of the ingress. */
export interface IngressOptions {
  /** The cluster's Redis address. */
  address: string;
  namespace?: string;
  /** @default 8000 (0 picks a free one) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

/** A running ingress. */
export interface Ingress {
  port: number;
  host: string;
  url: string;
  controller: Controller;
  /** Its connection to Redis, for the process's lifecycle to watch. */
  redis: Redis;
  /** Stops taking requests and the controller; the replicas live on for the next ingress. */
  close(): Promise<void>;
}

/** Request bodies larger than this are refused with 413. */
const BODY_LIMIT = 16 * 1024 * 1024;
/** The lease on being the cluster's ingress: renewed every LEASE_RENEW_MS, gone LEASE_MS after the ingress is. */
const LEASE_MS = 10_000;
const LEASE_RENEW_MS = 3000;
/** Tries of an idempotent request whose replica died. */
const ATTEMPTS = 3;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);
/** How long the ping that tells a dead replica from a refusing port may take. */
const PING_TIMEOUT_MS = 3000;
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return void res.destroy();
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > BODY_LIMIT) {
        reject(Object.assign(new Error(`The request body is over the ingress's limit of ${BODY_LIMIT} bytes.`), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(size ? Buffer.concat(chunks) : null));
    req.on('error', reject);
  });
}

/** Writes a replica's answer: the status and headers, what came with them, then every chunk of a stream as it comes. */
async function relay(replica: RoutedReplica, answer: ForwardedResponse, res: ServerResponse, gone: () => boolean): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of answer.headers) {
    const key = k.toLowerCase();
    const prev = headers[key];
    headers[key] = prev === undefined ? v : [prev, v].flat();
  }
  res.writeHead(answer.status, headers);
  if (answer.body.byteLength) res.write(answer.body);
  if (!answer.stream) return void res.end();
  res.flushHeaders();
  const items = replica.handle.pull.remote(answer.stream);
  for await (const ref of items) {
    const chunk = await get(ref);
    if (gone()) break;
    if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
  }
  res.end();
}

/**
 * Starts the cluster's ingress: takes the lease on being its one ingress, connects as a driver, starts the controller
 * and listens. Rejects with a ConfigError when the port is taken or another ingress runs for the cluster.
 *
 * @example
 * const ingress = await startIngress({ address: 'redis://127.0.0.1:6379', port: 8000 });
 * console.log(ingress.url); // http://127.0.0.1:8000
 */
export async function startIngress(o: IngressOptions, deps: { logger: Logger }): Promise<Ingress> {
  const { logger } = deps;
  const host = o.host ?? '127.0.0.1';
  const keys = new DeployKeys(o.namespace || undefined);
  const redis = connect(o.address, { name: 'nodus:ingress' });
  redis.on('error', () => undefined);
  await waitForRedis(redis, o.address);
  const other = await readIngress(redis, keys);
  if (other && !(other.hostname === hostname() && !isRunning(other.pid))) {
    redis.disconnect();
    throw new ConfigError(`An ingress already serves this cluster at ${other.url} (pid ${other.pid} on ${other.hostname}): use it, or stop it first (nodus stop on that machine).`);
  }
  let ownDriver = false;
  if (!currentContext()) {
    await init({ address: o.address, namespace: o.namespace, logToDriver: false });
    ownDriver = true;
  }
  const controller = new Controller(redis, keys, logger);
  const server = createServer((req, res) => void handle(req, res));
  const port = o.port ?? DEFAULT_SERVE_PORT;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'EADDRINUSE' ? new ConfigError(`Port ${port} on ${host} is in use, so the ingress cannot listen there: choose another with --serve-port, or --no-serve.`, { cause: e }) : e),
      );
      server.listen(port, host, resolve);
    });
  } catch (err) {
    if (ownDriver) await shutdown().catch(() => undefined);
    redis.disconnect();
    throw err;
  }
  const actual = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
  const info: IngressInfo = { pid: process.pid, host, port: actual, url, hostname: hostname(), startedAt: Date.now() };
  const lease = JSON.stringify(info);
  await redis.set(keys.ingress, lease, 'PX', LEASE_MS);
  const renew = setInterval(() => {
    void redis
      .eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX')", 1, keys.ingress, lease, LEASE_MS)
      .catch(() => undefined);
  }, LEASE_RENEW_MS);
  const sub = connect(o.address, { name: 'nodus:ingress:sub', blocking: true });
  sub.on('error', () => undefined);
  sub.on('message', (_channel: string, name: string) => void controller.reconcile(name));
  await sub.subscribe(keys.changed);
  await controller.start();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const path = url.split('?')[0];
    try {
      if (path === '/-/routes') return sendJson(res, 200, controller.routes());
      if (path === '/-/healthz') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('success');
      const router = controller.route(path);
      if (!router) {
        const routes = Object.keys(controller.routes());
        return sendJson(res, 404, { error: `No app is routed at ${path}; routes: ${routes.join(', ') || 'none (deploy one with nodus serve run <module>)'}; see /-/routes.` });
      }
      await forward(router, req, res);
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 413) return sendJson(res, 413, { error: (err as Error).message });
      logger.error({ err, url }, 'serve: request failed');
      sendJson(res, 500, { error: `The ingress failed on this request: ${(err as Error).message}` });
    }
  }

  async function forward(router: AppRouter, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const headers: Record<string, string | string[]> = {};
    // The probe header is the ingress's own question to a replica: a client's never reaches one.
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k) && k !== PROBE_HEADER) headers[k] = v;
    const client = req.socket.remoteAddress ?? '';
    headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${String(headers['x-forwarded-for'])}, ${client}` : client;
    const fwd: ForwardedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers, body };
    let closed = false;
    res.on('close', () => (closed = !res.writableFinished));
    const tried = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      let replica: RoutedReplica;
      try {
        replica = await router.acquire(tried);
      } catch (err) {
        if (err instanceof OverloadedError) return sendJson(res, 503, { error: err.message }, { 'retry-after': String(err.retryAfterS) });
        throw err;
      }
      let died: Error | undefined;
      // Refused by a dead replica's port: the app never saw it, so any method may go to another replica.
      let unseen = false;
      try {
        if (replica.direct !== undefined) {
          try {
            return await proxyDirect(replica.direct, fwd, res);
          } catch (err) {
            if (!(err instanceof DirectError)) throw err;
            // No answer from its port: the replica died, or (refused, and alive) its port is not reachable from here.
            const dead = await get(replica.handle.ping.remote(), { timeout: PING_TIMEOUT_MS }).then(
              () => false,
              (e: unknown) => e instanceof ActorDiedError,
            );
            if (dead) {
              unseen = !err.sent;
              throw new ActorDiedError(`its process is gone (${err.code ?? err.message})`);
            }
            if (err.sent) return sendJson(res, 502, { error: `App ${router.name} closed the connection without answering (${err.code ?? err.message}).` });
            logger.warn({ app: router.name, replica: replica.name }, 'serve: the replica does not answer on its loopback port; using actor calls to it');
            replica.direct = undefined;
          }
        }
        const answer = await get(replica.handle.handle.remote(fwd));
        if (closed) return;
        await relay(replica, answer, res, () => closed);
        return;
      } catch (err) {
        if (!(err instanceof ActorDiedError)) {
          if (res.headersSent) return void res.destroy();
          return sendJson(res, 502, { error: `App ${router.name} failed to answer: ${(err as Error).message}` });
        }
        died = err;
      } finally {
        router.release(replica);
      }
      controller.replicaDied(router.name, replica.name);
      tried.add(replica.name);
      // Not begun on the client's side and safe to run twice: another replica takes it.
      if (!res.headersSent && (unseen || IDEMPOTENT.has(fwd.method)) && attempt < ATTEMPTS) continue;
      return sendJson(res, 503, { error: `The replica of ${router.name} serving this request died (${died.message}); it is being replaced: retry.` }, { 'retry-after': '1' });
    }
  }

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      clearInterval(renew);
      controller.stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Open streams would hold the close: they end here, and their clients retry.
        setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, 1000).unref();
      });
      if ((await redis.get(keys.ingress).catch(() => null)) === lease) await redis.del(keys.ingress).catch(() => undefined);
      sub.disconnect();
      if (ownDriver) await shutdown().catch(() => undefined);
      redis.disconnect();
    })());
  logger.info({ url }, 'serve: ingress listening');
  return { port: actual, host, url, controller, redis, close };
}
