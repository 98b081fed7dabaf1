/**
 * @module The head's cluster-wide `/metrics` (Prometheus text over HTTP): every process's pushed snapshot added up,
 * and what only the head counts — queue depth per shape, actors by state, nodes, the object store — read from Redis
 * when Prometheus scrapes.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { Gauge, Registry } from 'prom-client';
import type { Logger } from 'pino';
import { aggregateSnapshots } from '../runtime/internal/metrics';
import type { Queues } from '../runtime/internal/queues';
import { Keys, type NodeInfo } from '../runtime/protocol';

/** @default 8080, as Ray's metrics export port; a free one when it is taken and no port was asked for. */
export const DEFAULT_METRICS_PORT = 8080;
/** The object store is counted by SCAN: at most this often, whatever the scrape interval. */
const OBJECT_SCAN_EVERY_MS = 10_000;

export interface MetricsServerOptions {
  redis: Redis;
  keys: Keys;
  queues: Queues;
  logger: Logger;
  /** Undefined: DEFAULT_METRICS_PORT, or a free port when it is taken. A port given is used or it is an error. */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

/** The head's own gauges, read from Redis at each scrape. */
function headRegistry(o: MetricsServerOptions): Registry {
  const registry = new Registry();
  const registers = [registry];
  const { redis, keys } = o;
  new Gauge({
    name: 'nodus_queue_depth',
    help: 'Jobs waiting in a queue, per resource shape (task.<shape>: tasks, actor.<shape>: actor placements; a bundle of tasks counts once).',
    labelNames: ['queue'],
    registers,
    async collect() {
      this.reset();
      for (const queue of Object.keys(await redis.hgetall(keys.shapes))) {
        const c = await o.queues.get(queue).getJobCounts('waiting', 'prioritized', 'delayed');
        this.set({ queue }, c.waiting + c.prioritized + c.delayed);
      }
    },
  });
  new Gauge({
    name: 'nodus_actors',
    help: 'Actors by state.',
    labelNames: ['state'],
    registers,
    async collect() {
      this.reset();
      const ids = await redis.smembers(keys.actors);
      const pipe = redis.pipeline();
      for (const id of ids) pipe.hget(keys.actor(id), 'state');
      const counts: Record<string, number> = { pending: 0, alive: 0, restarting: 0, dead: 0 };
      for (const [, s] of (await pipe.exec()) ?? []) if (typeof s === 'string') counts[s] = (counts[s] ?? 0) + 1;
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'nodus_nodes',
    help: 'Nodes by state.',
    labelNames: ['state'],
    registers,
    async collect() {
      const nodes = (await redis.hvals(keys.nodes)).map((s) => JSON.parse(s) as NodeInfo);
      this.set({ state: 'alive' }, nodes.filter((n) => n.state === 'alive').length);
      this.set({ state: 'dead' }, nodes.filter((n) => n.state !== 'alive').length);
    },
  });
  let store = { at: 0, objects: 0, bytes: 0 };
  let scanning: Promise<void> | undefined;
  const scanStore = async () => {
    let objects = 0;
    let bytes = 0;
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${keys.prefix}:v:*`, 'COUNT', 2000);
      cursor = next;
      if (!found.length) continue;
      const pipe = redis.pipeline();
      for (const k of found) pipe.strlen(k);
      for (const [, n] of (await pipe.exec()) ?? []) bytes += Number(n) || 0;
      // A chunked value is one object: its head key, not its chunks (v:<id>:<i>).
      objects += found.filter((k) => !k.slice(keys.prefix.length + 3).includes(':')).length;
    } while (cursor !== '0');
    store = { at: Date.now(), objects, bytes };
  };
  const storeNow = async () => {
    if (Date.now() - store.at > OBJECT_SCAN_EVERY_MS) await (scanning ??= scanStore().finally(() => (scanning = undefined)));
    return store;
  };
  new Gauge({ name: 'nodus_object_store_objects', help: 'Objects in the object store.', registers, aggregator: 'max', async collect() { this.set((await storeNow()).objects); } });
  new Gauge({ name: 'nodus_object_store_bytes', help: 'Bytes of values in the object store.', registers, aggregator: 'max', async collect() { this.set((await storeNow()).bytes); } });
  return registry;
}

/** Serves GET /metrics; `close()` stops it. */
export async function startMetricsServer(o: MetricsServerOptions): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const own = headRegistry(o);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: the cluster metrics are at GET /metrics.\n');
      return;
    }
    aggregateSnapshots(o.redis, o.keys.prefix, own).then(
      (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.text),
      (err: Error) => {
        o.logger.warn({ err: err.message }, 'could not gather the cluster metrics');
        res.writeHead(503, { 'content-type': 'text/plain' }).end(`Could not gather the cluster metrics: ${err.message}\n`);
      },
    );
  });
  const host = o.host ?? '127.0.0.1';
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
  try {
    await listen(o.port ?? DEFAULT_METRICS_PORT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || o.port !== undefined) {
      throw new Error(`the head cannot serve metrics on ${host}:${o.port}: ${(err as Error).message}. Choose another port with --metrics-port, or 0 for a free one.`, { cause: err });
    }
    // Another cluster's head here has 8080: this one takes a free port (shown in nodus status).
    await listen(0);
  }
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}/metrics`,
    port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        // A scraper's keep-alive connection would hold the close up.
        server.closeAllConnections();
      }),
  };
}
