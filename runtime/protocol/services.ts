/**
 * @module The wire contract of agentic services: executions, their events, registered flows, form elements and
 * the signed user header. One definition read by nodus/serve (Launch, the runner, the tracer), the gateway and the CLI.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { DEFAULT_PREFIX } from './index';

/** Bumped whenever an execution record, event or key layout changes incompatibly. */
export const SERVICES_PROTOCOL_VERSION = 1;

/** Execution statuses: starting → running → finished | error | cancelled. */
export type ExecStatus = 'starting' | 'running' | 'finished' | 'error' | 'cancelled';
export const FINAL_STATUSES: readonly ExecStatus[] = ['finished', 'error', 'cancelled'];
export function isFinal(status: string | undefined): boolean {
  return FINAL_STATUSES.includes(status as ExecStatus);
}

/** Namespace of the detached runner actors; each is named by its execution's fid. */
export const RUNNER_NAMESPACE = 'nodus-exec';

/** Executions and their events are kept this long after they end, then deleted. @default 7 days */
export const DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000;

/**
 * Kinds of execution events. `status` carries `{ status, message? }`; `inputs` the inputs; `markdown`, `html`,
 * `text`, `debug`, `warning`, `stdout`, `stderr` a string; `result` and `final` any JSON value (msgpack-able values
 * are converted for JSON: Map → object, Set → array, bigint → string, typed arrays → arrays, Date → ISO string);
 * `action` `{ label, value?, url? }`; `progress` `{ done, total, label? }`; `error` `{ name, message, stack? }`
 * (the stack is shown to the execution's owner only); `step` a task step's start or end (nodus/tasks: StepEventData
 * in tasks/protocol.ts).
 */
export type EventKind =
  | 'status'
  | 'inputs'
  | 'markdown'
  | 'html'
  | 'text'
  | 'result'
  | 'debug'
  | 'warning'
  | 'action'
  | 'progress'
  | 'stdout'
  | 'stderr'
  | 'error'
  | 'final'
  | 'step';

/** What /outputs/main/{fid} returns. */
export const MAIN_KINDS: readonly EventKind[] = ['markdown', 'html', 'text', 'result', 'final'];
/** What /outputs/stdio/{fid} returns. */
export const STDIO_KINDS: readonly EventKind[] = ['stdout', 'stderr'];

/** One event as readers see it: `id` is its Redis stream id (SSE `id:`), `at` ms since the epoch. */
export interface ExecEvent {
  id: string;
  kind: EventKind;
  data: unknown;
  at: number;
}

/** Field names of a stream entry: kind, JSON data, time. */
export const EVENT_FIELDS = { kind: 'k', data: 'd', at: 't' } as const;

/** Turns a stream entry's flat field list (XRANGE/XREAD reply) into an event. */
export function parseEvent(id: string, fields: string[]): ExecEvent {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  let data: unknown;
  try {
    data = f[EVENT_FIELDS.data] === undefined ? null : JSON.parse(f[EVENT_FIELDS.data]);
  } catch {
    data = f[EVENT_FIELDS.data];
  }
  return { id, kind: f[EVENT_FIELDS.kind] as EventKind, data, at: Number(f[EVENT_FIELDS.at] ?? 0) };
}

/** An execution's record: a Redis hash, all strings there. */
export interface ExecRecord {
  fid: string;
  v: string;
  /** The user the gateway authenticated (signed header); 'anonymous' when the service was called directly. */
  owner: string;
  status: ExecStatus;
  /** uid of the flow (entry point) it was launched from, when known. */
  flow: string;
  /** The entry's summary, for timelines. */
  summary: string;
  /** The entrypoint, `module:export` (module an absolute path). */
  entry: string;
  /** JSON of the inputs. */
  inputs: string;
  createdAt: string;
  startedAt: string;
  endedAt: string;
  /** Why it ended with status error (a message, never a stack). */
  error: string;
  /** Set (to the time asked) when a cancel was asked for. */
  cancelRequested: string;
  /** Base URL of the service that launched it. */
  service: string;
}

/** Names of every Redis key and channel of services, under the cluster's prefix. */
export class ServiceKeys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {}
  /** Hash: the execution record. */
  exec(fid: string): string { return `${this.prefix}:exec:${fid}`; }
  /** Stream: the execution's events, in order; the entry id is the event id. */
  events(fid: string): string { return `${this.prefix}:exec:${fid}:ev`; }
  /** Sorted set of a user's fids by creation time. */
  userExecs(user: string): string { return `${this.prefix}:execs:user:${user}`; }
  /** Sorted set of every fid by creation time (admins' timeline, retention sweep). */
  get allExecs(): string { return `${this.prefix}:execs:all`; }
  /** Sorted set of fids not yet ended, by creation time (the gateway's liveness sweep). */
  get activeExecs(): string { return `${this.prefix}:execs:active`; }
  /** Pub/sub: a fid is published when its cancel is asked for (the runner aborts its signal). */
  get cancelChannel(): string { return `${this.prefix}:exec-cancel`; }
  /** Hash: registered service source URL → JSON RegisteredSource. */
  get flows(): string { return `${this.prefix}:gw:flows`; }
  /** Hash: user name → JSON GatewayUser. */
  get users(): string { return `${this.prefix}:gw:users`; }
  /** String: the cluster's random secret that signs session tokens and the user header. */
  get secret(): string { return `${this.prefix}:gw:secret`; }
  /** Hash: API key (its sha256, hex) → user name. */
  get apiKeys(): string { return `${this.prefix}:gw:apikeys`; }
  /** Counter of failed logins from one client address (expires). */
  loginFailures(client: string): string { return `${this.prefix}:gw:loginfail:${client}`; }
  /** Hash: the running gateways (id → JSON { pid, host, port, startedAt }), for status and stop. */
  get gateways(): string { return `${this.prefix}:gw:instances`; }
}

/** A user of the gateway. Passwords are kept as scrypt hashes only. */
export interface GatewayUser {
  name: string;
  /** `scrypt$<salt hex>$<hash hex>` */
  password: string;
  admin: boolean;
  createdAt: number;
}

// ---------------------------------------------------------------- the signed user header

/** Header the gateway sets on every proxied request: who the user is, signed with the cluster's secret. */
export const USER_HEADER = 'x-nodus-user';
/** A signed user claim is good for this long (it covers one proxied request). */
export const USER_HEADER_TTL_MS = 5 * 60 * 1000;

export interface UserClaim {
  user: string;
  admin: boolean;
  /** Issued at, ms. */
  iat: number;
}

/**
 * `base64url(JSON value).signature`, signed with the cluster's secret for one purpose (the purpose is part of what is
 * signed, so a token made for one use is worthless for another). The gateway's session tokens and the user header.
 */
export function signJson(secret: string, purpose: string, value: unknown): string {
  const payload = Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${payload}.${hmac(secret, purpose, payload)}`;
}

/** The value of a token made by signJson for `purpose`, or undefined when it is missing, forged or not JSON. */
export function openJson(secret: string, purpose: string, token: string | undefined): unknown {
  if (!token || typeof token !== 'string') return undefined;
  const dot = token.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const payload = token.slice(0, dot);
  const given = Buffer.from(token.slice(dot + 1));
  const expected = Buffer.from(hmac(secret, purpose, payload));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

function hmac(secret: string, purpose: string, payload: string): string {
  return createHmac('sha256', secret).update(`${purpose}:${payload}`).digest('base64url');
}

/** `base64url(JSON claim).signature` — the value of USER_HEADER. */
export function signUser(secret: string, claim: UserClaim): string {
  return signJson(secret, 'user', claim);
}

/** The claim of a USER_HEADER value, or undefined when it is missing, forged or stale. A service never trusts anything else. */
export function verifyUser(secret: string, header: string | undefined, now = Date.now(), ttlMs = USER_HEADER_TTL_MS): UserClaim | undefined {
  const claim = openJson(secret, 'user', header) as UserClaim | undefined;
  if (!claim || typeof claim.user !== 'string' || typeof claim.iat !== 'number' || Math.abs(now - claim.iat) > ttlMs) return undefined;
  return { user: claim.user, admin: !!claim.admin, iat: claim.iat };
}

// ---------------------------------------------------------------- flows (entry points) and forms

/** Marks an entry point in a service's openapi.json: `paths[path].post['x-nodus']`. */
export const OPENAPI_EXTENSION = 'x-nodus';

/** Meta data of an entry point (kodosumi's `@app.enter` arguments). */
export interface EntryMeta {
  summary: string;
  description: string;
  tags: string[];
  version: string;
  author: string;
  organization: string;
  deprecated?: boolean;
}

/** What `x-nodus` holds for one entry point. */
export interface EntryExtension {
  entry: true;
  v: number;
  meta: EntryMeta;
  elements: FormElement[];
}

/**
 * An entry point as the gateway lists it (`GET /flow`). `url` is the gateway path that proxies to it:
 * `/-/{host}/{port}{path}`.
 */
export interface Flow extends EntryMeta {
  uid: string;
  method: 'GET' | 'POST';
  /** The path on the service (e.g. `/-/`). */
  path: string;
  /** The gateway path, `/-/{host}/{port}{path}`. */
  url: string;
  /** The URL it was registered from (openapi.json or /-/routes). */
  source: string;
  /** Base URL of the service (`http://host:port`). */
  base: string;
}

/** A flow's uid: short, and the same wherever it is computed (the gateway lists it, Launch records it). */
export function flowUid(base: string, path: string): string {
  return createHash('sha256').update(`${base.replace(/\/+$/, '')}${path}`).digest('hex').slice(0, 12);
}

/** A registered source as kept in Redis: the URL, when, and the flows found there at the last refresh. */
export interface RegisteredSource {
  url: string;
  registeredAt: number;
  refreshedAt: number;
  flows: Flow[];
  /** Why the last refresh failed, if it did. */
  error?: string;
}

/**
 * Form elements as JSON (what `GET` of an entry point returns in `elements`). kodosumi's forms: each input
 * has a `name`; `value` is its default. Text of markdown/html elements is the author's and must be rendered
 * sanitized; every label and value escaped.
 */
export type FormElement =
  | { type: 'markdown'; text: string }
  | { type: 'html'; text: string }
  | { type: 'break' }
  | { type: 'hr' }
  | { type: 'errors'; text?: string }
  | ({ type: 'text' | 'password' | 'textarea' } & InputBase & { value?: string; placeholder?: string; maxLength?: number; minLength?: number; pattern?: string; rows?: number })
  | ({ type: 'number' } & InputBase & { value?: number; placeholder?: string; min?: number; max?: number; step?: number })
  | ({ type: 'date' | 'time' | 'datetime' } & InputBase & { value?: string; min?: string; max?: string })
  | ({ type: 'checkbox' } & InputBase & { value?: boolean; option?: string })
  | ({ type: 'select' } & InputBase & { value?: string | string[]; options: SelectOption[]; multiple?: boolean })
  | ({ type: 'files' } & InputBase & { multiple?: boolean; directory?: boolean; accept?: string })
  | { type: 'submit'; text: string }
  | { type: 'cancel'; text: string }
  | { type: 'action'; name: string; text: string; value: string };

export interface InputBase {
  name: string;
  label?: string;
  required?: boolean;
  disabled?: boolean;
  readonly?: boolean;
}

export interface SelectOption {
  name: string;
  label: string;
  value?: boolean;
}

/** What a service answers to a form POST that did not pass: per-field messages, `_global_` for the form. */
export interface InputsErrorBody {
  errors: Record<string, string[]>;
}

/** What a service answers to a form POST that launched an execution. */
export interface LaunchBody {
  fid: string;
  /** Gateway paths to follow it (relative). */
  status: string;
  stream: string;
  main: string;
}
