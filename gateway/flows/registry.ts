/**
 * @module Registered services and their entry points (flows): fetch a service's openapi.json (or a /-/routes listing of
 * several), keep what was found in Redis, list and search it. Plain functions over a Redis connection, no Nest, so that the
 * CLI (`nodus register URL`) calls them as the gateway does.
 */
import type { Redis } from 'ioredis';
import { ConfigError, NodusError } from '../../runtime/errors';
import { OPENAPI_EXTENSION, flowUid, type EntryExtension, type Flow, type RegisteredSource, type ServiceKeys } from '../../runtime/protocol/services';

/** A service (or a URL being registered) did not answer, or not with what a service serves. The gateway answers 502. */
export class ServiceUnreachableError extends NodusError {
  override readonly code = 'SERVICE_UNREACHABLE';
  override readonly retryable = true;
}

/** How long a service may take to serve its openapi.json. */
const FETCH_TIMEOUT_MS = 10_000;

const HOW_TO = 'Register a service by its openapi.json (e.g. http://localhost:8005/openapi.json) or a /-/routes listing.';

function checkUrl(url: unknown): string {
  if (typeof url !== 'string' || !/^https?:\/\/[^/]/.test(url)) throw new ConfigError(`${JSON.stringify(url)} is not an http(s) URL. ${HOW_TO}`);
  try {
    return new URL(url).href;
  } catch {
    throw new ConfigError(`${JSON.stringify(url)} is not a valid URL. ${HOW_TO}`);
  }
}

async function fetchJson(url: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new ServiceUnreachableError(`Cannot reach ${url} (${why}). Is the service running there?`);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new ServiceUnreachableError(`${url} answered ${res.status} ${res.statusText}. ${HOW_TO}`);
  }
  try {
    return await res.json();
  } catch {
    throw new ServiceUnreachableError(`${url} did not answer JSON. ${HOW_TO}`);
  }
}

/** The service's base URL: its openapi.json's URL without that name (a route prefix stays). */
function baseOf(openapiUrl: string): string {
  const u = new URL(openapiUrl);
  return `${u.origin}${u.pathname.replace(/\/openapi\.json$/, '').replace(/\/$/, '')}`;
}

type OpenApiDoc = { openapi?: string; info?: { version?: string }; paths?: Record<string, Record<string, Record<string, unknown> | undefined> | undefined> };

function isOpenApi(doc: unknown): doc is OpenApiDoc {
  return typeof doc === 'object' && doc !== null && !Array.isArray(doc) && ('openapi' in doc || 'paths' in doc);
}

/** Every POST operation marked `x-nodus` (an entry point) of one service's document. */
export function flowsFromOpenApi(doc: OpenApiDoc, base: string, source: string): Flow[] {
  const u = new URL(base);
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  const prefix = u.pathname.replace(/\/$/, '');
  const flows: Flow[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const op = item?.post;
    const ext = op?.[OPENAPI_EXTENSION] as Partial<EntryExtension> | undefined;
    if (!op || !ext || typeof ext !== 'object') continue;
    const meta = ext.meta ?? ({} as Partial<EntryExtension['meta']>);
    const str = (v: unknown, dflt = '') => (typeof v === 'string' ? v : dflt);
    flows.push({
      uid: flowUid(base, path),
      method: 'POST',
      path,
      url: `/-/${u.hostname}/${port}${prefix}${path}`,
      source,
      base,
      summary: str(meta.summary, str(op.summary, path)),
      description: str(meta.description, str(op.description)),
      tags: Array.isArray(meta.tags) ? meta.tags.map(String) : Array.isArray(op.tags) ? op.tags.map(String) : [],
      version: str(meta.version, str(doc.info?.version)),
      author: str(meta.author),
      organization: str(meta.organization),
      ...(meta.deprecated || op.deprecated ? { deprecated: true } : {}),
    });
  }
  return flows;
}

/**
 * The openapi.json URLs a /-/routes listing names: Ray Serve's object of route prefix → app name, or a list of
 * openapi.json or base URLs (relative ones against the listing's origin).
 */
function listedServices(listing: unknown, url: string): string[] {
  const origin = new URL(url).origin;
  const openapiOf = (base: string) => (/\/openapi\.json$/.test(new URL(base).pathname) ? base : `${base.replace(/\/$/, '')}/openapi.json`);
  if (Array.isArray(listing) && listing.every((x) => typeof x === 'string')) return listing.map((x: string) => openapiOf(new URL(x, origin).href));
  if (typeof listing === 'object' && listing !== null && Object.values(listing).every((v) => typeof v === 'string')) {
    return Object.keys(listing).map((prefix) => openapiOf(`${origin}${prefix.startsWith('/') ? '' : '/'}${prefix}`));
  }
  throw new ServiceUnreachableError(`${url} is neither an openapi.json nor a /-/routes listing. ${HOW_TO}`);
}

/** Fetches a source and finds its flows. Throws when nothing could be read; `error` lists services of a listing that failed. */
async function fetchSource(url: string): Promise<{ flows: Flow[]; error?: string }> {
  const doc = await fetchJson(url);
  if (isOpenApi(doc)) {
    const flows = flowsFromOpenApi(doc, baseOf(url), url);
    if (!flows.length) throw new ConfigError(`${url} lists no entry points (POST operations marked ${OPENAPI_EXTENSION}). Is it a nodus service (ServeAPI)?`);
    return { flows };
  }
  const results = await Promise.allSettled(
    listedServices(doc, url).map(async (spec) => {
      const d = await fetchJson(spec);
      if (!isOpenApi(d)) throw new ServiceUnreachableError(`${spec} is not an openapi.json.`);
      return flowsFromOpenApi(d, baseOf(spec), url);
    }),
  );
  const flows = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
  if (!flows.length && errors.length) throw new ServiceUnreachableError(`No service listed at ${url} answered: ${errors.join(' ')}`);
  return errors.length ? { flows, error: errors.join(' ') } : { flows };
}

async function readSource(redis: Redis, keys: ServiceKeys, url: string): Promise<RegisteredSource | undefined> {
  const json = await redis.hget(keys.flows, url);
  return json ? (JSON.parse(json) as RegisteredSource) : undefined;
}

/**
 * Registers a service (its openapi.json) or every service of a /-/routes listing, and keeps the flows found in Redis so
 * that they survive a gateway restart. Registering again refreshes. Throws ServiceUnreachableError (nothing stored) when
 * the URL does not answer, ConfigError when it is no URL or lists no entry points.
 *
 * @example
 * const source = await registerSource(redis, new ServiceKeys(), 'http://localhost:8005/openapi.json');
 */
export async function registerSource(redis: Redis, keys: ServiceKeys, url: string): Promise<RegisteredSource> {
  const href = checkUrl(url);
  const found = await fetchSource(href);
  const now = Date.now();
  const source: RegisteredSource = { url: href, registeredAt: (await readSource(redis, keys, href))?.registeredAt ?? now, refreshedAt: now, ...found };
  await redis.hset(keys.flows, href, JSON.stringify(source));
  return source;
}

/**
 * Fetches a source again and never throws for an unreachable one: its last flows are kept, with `error` saying why the
 * refresh failed. A URL not registered yet is stored that way too (with no flows), to be refreshed later.
 */
export async function refreshSource(redis: Redis, keys: ServiceKeys, url: string): Promise<RegisteredSource> {
  try {
    return await registerSource(redis, keys, url);
  } catch (err) {
    if (!(err instanceof NodusError)) throw err;
    const href = checkUrl(url);
    const prev = await readSource(redis, keys, href);
    const now = Date.now();
    const source: RegisteredSource = { url: href, registeredAt: prev?.registeredAt ?? now, refreshedAt: now, flows: prev?.flows ?? [], error: err.message };
    await redis.hset(keys.flows, href, JSON.stringify(source));
    return source;
  }
}

/** Removes a registered source; false when it was not registered. */
export async function unregisterSource(redis: Redis, keys: ServiceKeys, url: string): Promise<boolean> {
  const href = checkUrl(url);
  return (await redis.hdel(keys.flows, href)) > 0;
}

/** Every registered source, as last refreshed. */
export async function listSources(redis: Redis, keys: ServiceKeys): Promise<RegisteredSource[]> {
  return Object.values(await redis.hgetall(keys.flows)).map((json) => JSON.parse(json) as RegisteredSource);
}

/** Refreshes every registered source (see refreshSource). */
export async function refreshSources(redis: Redis, keys: ServiceKeys): Promise<RegisteredSource[]> {
  const sources = await listSources(redis, keys);
  return Promise.all(sources.map((s) => refreshSource(redis, keys, s.url)));
}

/** What listFlows searches for. */
export interface FlowQuery {
  /** Words that must all appear (any case) in the summary, description, tags, author, organization or path. */
  q?: string;
  /** A tag the flow must carry (any case). */
  tag?: string;
}

/** The registered entry points, by summary; one per uid when a service was registered through two URLs. */
export async function listFlows(redis: Redis, keys: ServiceKeys, query: FlowQuery = {}): Promise<Flow[]> {
  const byUid = new Map<string, Flow>();
  for (const s of await listSources(redis, keys)) for (const f of s.flows) byUid.set(f.uid, f);
  const words = (query.q ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const tag = query.tag?.toLowerCase();
  return [...byUid.values()]
    .filter((f) => !tag || f.tags.some((t) => t.toLowerCase() === tag))
    .filter((f) => {
      const text = [f.summary, f.description, f.author, f.organization, f.url, ...f.tags].join(' ').toLowerCase();
      return words.every((w) => text.includes(w));
    })
    .sort((a, b) => a.summary.localeCompare(b.summary) || a.url.localeCompare(b.url));
}

/** The base URL (`http://host:port`) of a registered service at host:port, or undefined: the proxy goes nowhere else. */
export async function registeredOrigin(redis: Redis, keys: ServiceKeys, host: string, port: string): Promise<string | undefined> {
  // This machine is this machine however it is named: a service registered as localhost answers /-/127.0.0.1/... too.
  const loopback = (h: string) => ['localhost', '127.0.0.1', '::1', '[::1]'].includes(h);
  const same = (a: string, b: string) => a === b || (loopback(a) && loopback(b));
  for (const s of await listSources(redis, keys)) {
    for (const f of s.flows) {
      const u = new URL(f.base);
      if (same(u.hostname, host) && (u.port || (u.protocol === 'https:' ? '443' : '80')) === port) return u.origin;
    }
  }
  return undefined;
}
