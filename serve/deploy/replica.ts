/**
 * @module A replica of a deployed app: an actor that loads the app's module (a ServeAPI, an express app, a Fastify
 * instance, a Node `(req, res)` handler or http.Server), serves it on a loopback port inside its own process, and
 * answers the requests the ingress forwards to it — whole, or as a stream the ingress pulls (Server-Sent Events).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import express from 'express';
import { getRuntimeContext, remote } from '../../runtime';
import type { ForwardedRequest, ForwardedResponse } from '../../runtime/protocol/deploy';

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** What a replica is started with. */
export interface ReplicaSpec {
  app: string;
  /** Its actor name, which it answers a probe of its loopback port with. */
  name?: string;
  /** The app's module: absolute, or relative to the runtime env's working dir the replica runs in. */
  module: string;
  export?: string;
  routePrefix: string;
  /** The folder the deploy was run from: this replica's current directory, when it runs in no working dir and the folder exists here. */
  cwd?: string;
}

/** Where a ready replica runs: its node and process, and the loopback port its app is served on. */
export interface ReplicaInfo {
  node: string;
  pid: number;
  hostname: string;
  port: number;
}

/** A request carrying this header is answered by the replica itself with its name (see Replica.ready). */
export const PROBE_HEADER = 'x-nodus-replica-probe';

/** A response still being written answers with what came so far after this long, and streams the rest. */
const STREAM_AFTER_MS = 50;
/** ...or once this much is buffered. */
const STREAM_AFTER_BYTES = 1024 * 1024;
/** A stream nobody pulls (its ingress went away) is dropped after this long. */
const UNPULLED_MS = 30_000;
/** Hop-by-hop headers (RFC 9110 7.6.1): never forwarded. */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);
const EXPORTS = ['app', 'default', 'handler', 'server'];

/** Where the app's module is here: a relative path is inside the runtime env's working dir, as this node unpacked it. */
function modulePath(module: string): string {
  if (isAbsolute(module)) return module;
  const dir = process.env.NODUS_ENV_DIR;
  if (!dir) throw new Error(`The app's module ${module} is relative to a runtime env's working dir, but this replica runs in none: deploy it again with nodus serve run/deploy.`);
  return join(dir, module);
}

/** The request listener of whatever the module exports. */
async function listenerOf(spec: ReplicaSpec): Promise<Listener> {
  const mod = (await import(pathToFileURL(modulePath(spec.module)).href)) as Record<string, unknown>;
  // A CommonJS module imported as ESM puts its exports under default as well.
  const cjs = (mod.default ?? {}) as Record<string, unknown>;
  const names = spec.export ? [spec.export] : EXPORTS;
  const name = names.find((n) => mod[n] !== undefined || (typeof cjs === 'object' && cjs[n] !== undefined));
  const value = name === undefined ? undefined : (mod[name] ?? cjs[name]);
  const where = `${spec.module}${spec.export ? `:${spec.export}` : ''}`;
  if (value === undefined) {
    throw new TypeError(`${where} exports no ${names.join(', ')}: export the app (e.g. \`export const app = new ServeAPI()\`) or name the export with module:name.`);
  }
  const v = value as Record<string, unknown>;
  // ServeAPI: its express app, mounted below so that it learns its route prefix (req.baseUrl).
  if (v && typeof v === 'object' && typeof v.express === 'function') return v.express as unknown as Listener;
  // Fastify: its router, once its plugins are loaded.
  if (v && typeof v.routing === 'function' && typeof v.ready === 'function') {
    await (v.ready as () => Promise<unknown>)();
    return (req, res) => (v.routing as Listener)(req, res);
  }
  // An http.Server: its request listener.
  if (v && typeof v.listeners === 'function' && typeof v.listen === 'function') {
    const [listener] = (v as unknown as Server).listeners('request') as Listener[];
    if (listener) return listener;
  }
  if (typeof value === 'function') return value as Listener;
  if (v && typeof v.handler === 'function') return v.handler as unknown as Listener;
  throw new TypeError(`${where} is neither a ServeAPI, an express or Fastify app, an http.Server nor a (req, res) function: export one of those.`);
}

/** Chunks of a response still being written, waiting for the ingress to pull them. */
class PendingStream {
  chunks: Buffer[] = [];
  ended = false;
  error: Error | undefined;
  private wake: (() => void) | undefined;
  constructor(readonly res: IncomingMessage) {}
  push(c: Buffer): void {
    this.chunks.push(c);
    this.notify();
  }
  end(err?: Error): void {
    this.ended = true;
    this.error = err;
    this.notify();
  }
  notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
  next(): Promise<void> {
    return new Promise((r) => (this.wake = r));
  }
}

/**
 * One replica: the app served on a loopback port in this actor's process. The ingress calls `handle` with each request;
 * a response that is still being written comes back with `stream` set, and `pull(stream)` yields the rest as it comes.
 */
export class Replica {
  private readonly started: Promise<number>;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  private readonly streams = new Map<string, PendingStream>();
  /** Streams whose pull has begun. */
  private readonly pulled = new Set<string>();

  constructor(readonly spec: ReplicaSpec) {
    // The actor has this process to itself: relative paths in the app resolve as when it runs standalone there.
    if (spec.cwd && !process.env.NODUS_ENV_DIR && existsSync(spec.cwd)) process.chdir(spec.cwd);
    this.started = this.start();
    // The error is ready()'s to report; unobserved here it would end the process.
    this.started.catch(() => undefined);
  }

  private async start(): Promise<number> {
    const listener = await listenerOf(this.spec);
    const outer = express();
    outer.disable('x-powered-by');
    outer.disable('etag');
    // The ingress on this machine asks which replica listens here before it sends requests to the port directly.
    outer.use((req, res, next) => (req.headers[PROBE_HEADER] === undefined ? next() : void res.json({ replica: this.spec.name ?? '', pid: process.pid })));
    // Mounted under the prefix: express strips it from req.url and sets req.baseUrl, as Ray Serve's root_path does.
    if (this.spec.routePrefix === '/') outer.use(listener);
    else outer.use(this.spec.routePrefix, listener);
    outer.use((req, res) => void res.status(404).json({ error: `No route ${req.method} ${req.path} in app ${this.spec.app} (route prefix ${this.spec.routePrefix}).` }));
    const server = createServer(outer);
    await new Promise<void>((res, rej) => server.once('error', rej).listen(0, '127.0.0.1', () => res()));
    return (server.address() as AddressInfo).port;
  }

  /** Resolves once the app is loaded and served (rejects with why it could not be), telling where this replica runs. */
  async ready(): Promise<ReplicaInfo> {
    const port = await this.started;
    return { node: getRuntimeContext().nodeId ?? '', pid: process.pid, hostname: hostname(), port };
  }

  /** Answers while the process lives and its app is loaded: the controller's health check. */
  async ping(): Promise<number> {
    await this.started;
    return this.streams.size;
  }

  /** Serves one request: the whole response, or its start with `stream` to pull the rest from. */
  async handle(req: ForwardedRequest): Promise<ForwardedResponse> {
    const port = await this.started;
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k.toLowerCase()) && k.toLowerCase() !== 'content-length') headers[k] = v;
    const body = req.body ? Buffer.from(req.body.buffer, req.body.byteOffset, req.body.byteLength) : undefined;
    if (body) headers['content-length'] = String(body.length);
    return new Promise<ForwardedResponse>((resolve, reject) => {
      const out = request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers, agent: this.agent }, (res) => {
        const status = res.statusCode ?? 502;
        const pairs: [string, string][] = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) if (!HOP.has(res.rawHeaders[i].toLowerCase())) pairs.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
        const head: Buffer[] = [];
        let size = 0;
        let stream: PendingStream | undefined;
        let timer: NodeJS.Timeout | undefined;
        const toStream = () => {
          if (stream || res.complete) return;
          clearTimeout(timer);
          const id = randomBytes(8).toString('hex');
          stream = new PendingStream(res);
          this.streams.set(id, stream);
          // Pulled by the ingress at once; if it never comes (it died), the handler is not left writing forever.
          setTimeout(() => {
            if (!this.pulled.has(id) && this.streams.get(id) === stream) this.drop(id);
          }, UNPULLED_MS).unref();
          resolve({ status, headers: pairs, body: Buffer.concat(head), stream: id });
        };
        res.on('data', (c: Buffer) => {
          if (stream) return stream.push(c);
          head.push(c);
          size += c.length;
          if (size >= STREAM_AFTER_BYTES) toStream();
        });
        res.on('end', () => {
          clearTimeout(timer);
          if (stream) stream.end();
          else resolve({ status, headers: pairs, body: Buffer.concat(head) });
        });
        res.on('error', (err) => (stream ? stream.end(err) : reject(err)));
        res.on('close', () => stream?.end(res.complete ? undefined : new Error('the app closed the response before it ended')));
        if (/^text\/event-stream/i.test(String(res.headers['content-type'] ?? ''))) toStream();
        else timer = setTimeout(toStream, STREAM_AFTER_MS);
      });
      out.on('error', reject);
      out.end(body);
    });
  }

  /** The rest of a streamed response, chunk by chunk as the app writes it; leaving early ends the app's response. */
  async *pull(id: string): AsyncGenerator<Buffer> {
    const s = this.streams.get(id);
    if (!s) throw new Error(`No stream ${id} on this replica (it ended, or was dropped after ${UNPULLED_MS / 1000} s unpulled).`);
    this.pulled.add(id);
    try {
      for (;;) {
        if (s.chunks.length) {
          const chunk = Buffer.concat(s.chunks);
          s.chunks = [];
          yield chunk;
          continue;
        }
        if (s.ended) {
          if (s.error) throw s.error;
          return;
        }
        await s.next();
      }
    } finally {
      this.drop(id);
    }
  }

  private drop(id: string): void {
    const s = this.streams.get(id);
    this.streams.delete(id);
    this.pulled.delete(id);
    if (s && !s.ended) s.res.destroy();
  }
}

/**
 * The replica actor class; its options (resources, concurrency, name) are set per deployment by the controller. Never
 * restarted by the runtime: the controller replaces a dead replica with a new one, out of routing until it is ready.
 */
export const ReplicaActor = remote(Replica, { maxRestarts: 0, maxTaskRetries: 0 });
