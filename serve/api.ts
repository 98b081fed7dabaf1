/** @module ServeAPI: an agentic service's HTTP side (kodosumi's), on express: entry points with forms, openapi.json for the gateway. */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { ConfigError } from '../runtime';
import {
  OPENAPI_EXTENSION,
  SERVICES_PROTOCOL_VERSION,
  USER_HEADER,
  verifyUser,
  type EntryExtension,
  type EntryMeta,
  type FormElement,
  type UserClaim,
} from '../runtime/protocol/services';
import { clusterSecret } from './cluster';
import { InputsError } from './errors';
import { Model as makeModel, isModel, type Model } from './forms';
import { inputsJsonSchema, parseInputs, zodErrors } from './inputs';

/** Options of a ServeAPI. */
export interface ServeAPIOptions {
  /** Title of the service in openapi.json. @default 'nodus service' */
  title?: string;
  /** Version of the service in openapi.json. @default '1.0.0' */
  version?: string;
  /** Description in openapi.json. */
  description?: string;
  /** Largest request body accepted, in bytes; a larger one gets 413. @default 1048576 (1 MiB) */
  bodyLimit?: number;
  /**
   * Where the secret that signs the gateway's user header comes from.
   * @default the cluster's (clusterSecret(): connects to the cluster on the first request that carries the header)
   */
  userSecret?: () => Promise<string | undefined> | string | undefined;
}

type ResolvedServeAPIOptions = Required<Omit<ServeAPIOptions, 'description'>> & { description?: string };

const OPTION_KEYS = ['title', 'version', 'description', 'bodyLimit', 'userSecret'];

function resolveServeAPIOptions(options: ServeAPIOptions): ResolvedServeAPIOptions {
  const unknown = Object.keys(options).filter((k) => !OPTION_KEYS.includes(k));
  if (unknown.length) throw new ConfigError(`new ServeAPI() has no option ${unknown.join(', ')}; its options are ${OPTION_KEYS.join(', ')}.`);
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  if (!Number.isInteger(bodyLimit) || bodyLimit <= 0) throw new ConfigError(`bodyLimit is a number of bytes above 0, like 1048576; got ${String(bodyLimit)}.`);
  if (options.userSecret !== undefined && typeof options.userSecret !== 'function') {
    throw new ConfigError('userSecret is a function returning the secret, like new ServeAPI({ userSecret: async () => secret }).');
  }
  return {
    title: options.title ?? 'nodus service',
    version: options.version ?? '1.0.0',
    description: options.description,
    bodyLimit,
    userSecret: options.userSecret ?? clusterSecret,
  };
}

/** What `app.enter` takes besides the handler: where the entry point is, its form, and its meta data (kodosumi's). */
export interface EnterOptions<M extends Model<unknown> | readonly FormElement[] = Model> {
  /** Path of the entry point; the service serves it at `/-` + path (`'/'` → `/-/`). */
  path: string;
  /** The form: a Model (F.Model(...), F.fromZod(schema)) or its elements. */
  model: M;
  summary: string;
  description?: string;
  tags?: string[];
  version?: string;
  author?: string;
  organization?: string;
  deprecated?: boolean;
}

/** What an entry point's handler gets besides the inputs. */
export interface EnterRequest {
  /** The user the gateway vouches for (its signed header); undefined when called directly or the signature does not hold. */
  user: UserClaim | undefined;
  headers: IncomingHttpHeaders;
  entry: { path: string; route: string; meta: EntryMeta };
  /** `http://host:port` of this service as the client reached it, with its route prefix when it is deployed under one. */
  baseUrl: string;
  /** The express request. */
  raw: Request;
}

/** The inputs a handler gets: the schema's type for a model made with F.fromZod, any object otherwise. */
// `any` values, as kodosumi's `inputs: dict`: a form's inputs are untyped, and `inputs.tasks > 500` must compile.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type InputsOf<M> = M extends Model<infer T> ? T : Record<string, any>;

/**
 * An entry point's handler. Its return value is sent as JSON (an object with a numeric `statusCode` and a
 * `body` sends those); an InputsError sends the form's messages; anything else thrown is a 500.
 */
export type EnterHandler<I = InputsOf<Model>> = (request: EnterRequest, inputs: I) => unknown;

/** Options of listen. */
export interface ListenOptions {
  /** @default 8005 (0 picks a free one) */
  port?: number;
  /** Address to listen on; '0.0.0.0' for a gateway on another machine. @default '127.0.0.1' */
  host?: string;
}

/** A listening ServeAPI. */
export interface ServeServer {
  port: number;
  host: string;
  /** `http://host:port` */
  url: string;
  /** Stops accepting connections and resolves once open requests are answered. */
  close(): Promise<void>;
}

/** The parts of the OpenAPI document ServeAPI writes. */
export interface OpenAPIDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  paths: Record<string, { get: Record<string, unknown>; post: Record<string, unknown> }>;
}

interface Entry {
  path: string;
  route: string;
  meta: EntryMeta;
  model: Model<unknown>;
  handler: EnterHandler<Record<string, unknown>>;
}

type BodyResult = { body: Record<string, unknown> } | { status: number; error: string };

/** A path of literal segments: entry paths become express routes and openapi keys, so no route syntax. */
const PATH = /^\/[A-Za-z0-9._~\-/]*$/;

function errorId(): string {
  return randomBytes(6).toString('hex');
}

/**
 * An agentic service's HTTP API (kodosumi's ServeAPI): entry points declared with {@link ServeAPI.enter}
 * serve their form at `GET /-{path}` and take it at `POST /-{path}`; `GET /openapi.json` describes them for
 * the gateway (`nodus gateway --register http://host:port/openapi.json`).
 *
 * @example
 * export const app = new ServeAPI();
 * app.enter({ path: '/', model: F.Model(F.InputText({ name: 'tasks' }), F.Submit('Submit')), summary: 'My Service' },
 *   async (request, inputs) => Launch(request, 'services/my_service/calc:execute', { tasks: Number(inputs.tasks) }));
 * if (require.main === module) app.listen({ port: 8005 });
 */
export class ServeAPI {
  /** The express application: add middleware or routes to it. */
  readonly express: express.Express;
  /** A Node request listener, to mount the service in another server: `http.createServer(app.handler)`. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  private readonly options: ResolvedServeAPIOptions;
  private readonly entries = new Map<string, Entry>();
  private readonly entryRouter = express.Router();
  private readonly userRouter = express.Router();

  constructor(options: ServeAPIOptions = {}) {
    this.options = resolveServeAPIOptions(options);
    const app = express();
    app.disable('x-powered-by');
    app.get('/openapi.json', (_req, res) => void res.json(this.openapi()));
    // Routers made now keep their place before the error handlers whatever is added to them later.
    app.use(this.entryRouter, this.userRouter);
    app.use((req, res) => {
      const routes = [...this.entries.keys()].join(', ') || 'none yet';
      res.status(404).json({ error: `No route ${req.method} ${req.path} on this service; its entry points: ${routes}; its description: /openapi.json.` });
    });
    app.use((err: unknown, req: Request, res: Response, next: NextFunction) => this.fail(err, req, res, next));
    this.express = app;
    this.handler = app;
  }

  /**
   * Declares an entry point (kodosumi's `@app.enter`): `GET /-{path}` returns `{ meta, elements }`; `POST /-{path}`
   * checks the posted inputs against the model and calls `handler(request, inputs)` with them, or answers
   * `{ errors }` without calling it. A body is read as JSON when it parses as JSON, whatever its Content-Type,
   * else as form-urlencoded; multipart bodies (file uploads) are not accepted yet.
   *
   * @example
   * app.enter({ path: '/', model: myModel, summary: 'My Service', tags: ['Test'], version: '1.0.0' },
   *   async (request, inputs) => {
   *     if (Number(inputs.tasks) > 500) throw new InputsError({ tasks: 'Maximum number of concurrent tasks is 500' });
   *     return Launch(request, 'services/my_service/calc:execute', { tasks: Number(inputs.tasks) });
   *   });
   */
  enter<M extends Model<unknown> | readonly FormElement[]>(options: EnterOptions<M>, handler: EnterHandler<InputsOf<M>>): this {
    const { path, model, summary } = options ?? ({} as EnterOptions<M>);
    if (typeof path !== 'string' || !PATH.test(path)) {
      throw new ConfigError(`app.enter needs a path of plain segments starting with '/', like '/' or '/my-service'; got ${JSON.stringify(path)}.`);
    }
    if (typeof summary !== 'string' || !summary) throw new ConfigError(`app.enter({ path: '${path}' }) needs a summary: the entry point's name in the gateway.`);
    if (typeof handler !== 'function') throw new ConfigError(`app.enter({ path: '${path}' }, handler): the handler is a function (request, inputs) => result.`);
    const route = path === '/' ? '/-/' : `/-${path}`;
    if (this.entries.has(route)) throw new ConfigError(`Two entry points have the path '${path}'; give each its own.`);
    let form: Model<unknown>;
    if (isModel(model)) form = model;
    else if (Array.isArray(model)) form = makeModel(...(model as FormElement[]));
    else throw new ConfigError(`app.enter({ path: '${path}' }) needs a model: F.Model(...elements), F.fromZod(schema) or an array of elements.`);
    const meta: EntryMeta = {
      summary,
      description: options.description ?? '',
      tags: options.tags ?? [],
      version: options.version ?? '',
      author: options.author ?? '',
      organization: options.organization ?? '',
      ...(options.deprecated === undefined ? {} : { deprecated: options.deprecated }),
    };
    const entry: Entry = { path, route, meta, model: form, handler: handler as EnterHandler<Record<string, unknown>> };
    this.entries.set(route, entry);
    this.entryRouter.get(route, (_req, res) => void res.json({ meta, elements: form.elements }));
    this.entryRouter.post(route, express.raw({ type: () => true, limit: this.options.bodyLimit }), (req, res) => this.enterPost(entry, req, res));
    return this;
  }

  /**
   * A plain GET route, outside the entry points (express's `app.get`).
   *
   * @example
   * app.get('/health', (_req, res) => res.json({ ok: true }));
   */
  get(path: string, ...handlers: RequestHandler[]): this {
    this.userRouter.get(path, ...handlers);
    return this;
  }

  /**
   * A plain POST route, outside the entry points (express's `app.post`).
   *
   * @example
   * app.post('/feedback', express.json(), (req, res) => res.json({ thanks: true }));
   */
  post(path: string, ...handlers: RequestHandler[]): this {
    this.userRouter.post(path, ...handlers);
    return this;
  }

  /**
   * Listens on `host:port` and logs where; SIGTERM and SIGINT close the server and exit the process (within 5 s).
   *
   * @example
   * if (require.main === module) app.listen({ port: 8005 });
   */
  async listen(options: ListenOptions = {}): Promise<ServeServer> {
    const { port = 8005, host = '127.0.0.1' } = options;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`listen({ port }) takes a port from 0 to 65535; got ${String(port)}.`);
    const server = createServer(this.handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'EADDRINUSE'
            ? new ConfigError(`Port ${port} on ${host} is in use: stop what holds it, or pass another port to app.listen({ port }).`, { cause: e })
            : e,
        ),
      );
      server.listen(port, host, resolve);
    });
    const actual = (server.address() as AddressInfo).port;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= new Promise<void>((resolve) => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        server.close(() => resolve());
        server.closeIdleConnections();
      }));
    const onSignal = (signal: NodeJS.Signals) => {
      console.log(`ServeAPI: ${signal}, closing ${url}`);
      // Requests still open after 5 s (a slow handler, a client that never reads) must not hold the exit.
      setTimeout(() => process.exit(0), 5000).unref();
      void close().then(() => process.exit(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    console.log(`ServeAPI listening on ${url} (openapi: ${url}/openapi.json)`);
    return { port: actual, host, url, close };
  }

  /**
   * The OpenAPI 3.1 document of the service (`GET /openapi.json`): each entry point's POST carries
   * `x-nodus` ({@link EntryExtension}), which is how the gateway finds entry points.
   *
   * @example
   * app.openapi().paths['/-/'].post['x-nodus'].meta.summary; // 'My Service'
   */
  openapi(): OpenAPIDocument {
    const paths: OpenAPIDocument['paths'] = {};
    for (const { route, meta, model } of this.entries.values()) {
      const op = {
        summary: meta.summary,
        description: meta.description,
        tags: meta.tags,
        ...(meta.deprecated ? { deprecated: true } : {}),
      };
      const name = route.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_|_$/g, '') || 'root';
      const schema = model.schema ? withoutDialect(z.toJSONSchema(model.schema, { io: 'input', unrepresentable: 'any' })) : inputsJsonSchema(model.elements);
      const json = (s: Record<string, unknown>) => ({ 'application/json': { schema: s } });
      const extension: EntryExtension = { entry: true, v: SERVICES_PROTOCOL_VERSION, meta, elements: model.elements };
      paths[route] = {
        get: { ...op, operationId: `${name}_form`, responses: { 200: { description: 'The form: `{ meta, elements }`.' } } },
        post: {
          ...op,
          operationId: `${name}_enter`,
          requestBody: { required: true, content: { ...json(schema), 'application/x-www-form-urlencoded': { schema } } },
          responses: {
            200: { description: "The handler's result, or `{ errors: { field: [messages] } }` when the inputs did not pass." },
            500: { description: '`{ error, errorId }`; the service log has the details under errorId.' },
          },
          [OPENAPI_EXTENSION]: extension,
        },
      };
    }
    const { title, version, description } = this.options;
    return { openapi: '3.1.0', info: { title, version, ...(description ? { description } : {}) }, paths };
  }

  /** POST of an entry point: read the body, check the inputs, call the handler, answer. */
  private async enterPost(entry: Entry, req: Request, res: Response): Promise<void> {
    const read = readBody(req);
    if ('error' in read) {
      res.status(read.status).json({ error: read.error });
      return;
    }
    const { inputs, errors } = parseInputs(entry.model.elements, read.body, entry.model.schema);
    if (Object.keys(errors).length) {
      res.status(200).json({ errors });
      return;
    }
    try {
      const request: EnterRequest = {
        user: await this.user(req),
        headers: req.headers,
        entry: { path: entry.path, route: entry.route, meta: entry.meta },
        // req.baseUrl: the route prefix when the app is mounted under one (a serve deployment behind the ingress).
        baseUrl: `${req.protocol}://${req.get('host') ?? `${req.socket.localAddress}:${req.socket.localPort}`}${req.baseUrl}`,
        raw: req,
      };
      const result = await entry.handler(request, inputs);
      if (isResponseLike(result)) res.status(result.statusCode).json(result.body ?? null);
      else res.status(200).json(result === undefined ? null : result);
    } catch (e) {
      if (e instanceof InputsError) res.status(200).json(e.toJSON());
      else if (e instanceof z.ZodError) res.status(200).json({ errors: zodErrors(e) });
      else this.fail(e, req, res);
    }
  }

  /** The user the gateway's signed header names; only a signature made with the cluster's secret counts. */
  private async user(req: Request): Promise<UserClaim | undefined> {
    const header = req.get(USER_HEADER);
    if (!header) return undefined;
    try {
      const secret = await this.options.userSecret();
      return secret ? verifyUser(secret, header) : undefined;
    } catch {
      // No cluster to ask (the service runs on its own): nobody is vouched for.
      return undefined;
    }
  }

  /** Errors: body-parser's (413, 415, 400...) say what went wrong; any other is a 500 whose details stay in the log. */
  private fail(err: unknown, req: Request, res: Response, next?: NextFunction): void {
    if (res.headersSent) {
      next?.(err);
      return;
    }
    const e = err as { type?: string; status?: number; expose?: boolean; message?: string; stack?: string };
    if (e?.type === 'entity.too.large') {
      res.status(413).json({
        error: `The request body is larger than this service's limit of ${this.options.bodyLimit} bytes: send smaller inputs, or raise it with new ServeAPI({ bodyLimit }).`,
      });
      return;
    }
    if (e?.expose && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ error: e.message });
      return;
    }
    const id = errorId();
    console.error(`ServeAPI: ${req.method} ${req.originalUrl} failed, errorId ${id}:\n${e?.stack ?? String(err)}`);
    res.status(500).json({ error: 'Internal error', errorId: id });
  }
}

function isResponseLike(v: unknown): v is { statusCode: number; body: unknown } {
  return typeof v === 'object' && v !== null && typeof (v as { statusCode?: unknown }).statusCode === 'number' && 'body' in v;
}

function withoutDialect(schema: Record<string, unknown>): Record<string, unknown> {
  // OpenAPI 3.1's dialect is the document's; a $schema inside a requestBody is noise to most readers.
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

/**
 * The inputs of a POST body: JSON when it parses as a JSON object, whatever the Content-Type (kodosumi's
 * `curl -d '{"tasks": 100}'` sends form-urlencoded), else form-urlencoded (a repeated key gives an array).
 */
function readBody(req: Request): BodyResult {
  const raw: unknown = req.body;
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : '';
  if (!text.trim()) return { body: {} };
  const isJson = !!req.is(['json', '+json']);
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return { body: value as Record<string, unknown> };
    if (isJson) return { status: 400, error: 'The body must be a JSON object of inputs, like {"tasks": 100}.' };
  } catch (e) {
    if (isJson) return { status: 400, error: `The body is not valid JSON (${(e as Error).message}); send an object of inputs, like {"tasks": 100}.` };
  }
  if (req.is('multipart')) {
    return { status: 415, error: 'multipart/form-data is not accepted yet: send the inputs as JSON or application/x-www-form-urlencoded.' };
  }
  if (req.get('content-type') && !req.is('urlencoded')) {
    return { status: 415, error: `Content-Type ${req.get('content-type')} is not accepted: send the inputs as JSON or application/x-www-form-urlencoded.` };
  }
  const body: Record<string, unknown> = {};
  const params = new URLSearchParams(text);
  for (const key of new Set(params.keys())) {
    if (key === '__proto__') continue;
    const all = params.getAll(key);
    body[key] = all.length > 1 ? all : all[0];
  }
  return { body };
}
