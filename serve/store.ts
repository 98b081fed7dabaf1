/**
 * @module Executions in Redis: the record, the event stream and the indexes, written by Launch and the runner and read by
 * the gateway. Status changes only move forward (starting → running → an end) and are atomic with their event.
 */
import type { Redis } from 'ioredis';
import {
  DEFAULT_RETENTION_MS,
  EVENT_FIELDS,
  SERVICES_PROTOCOL_VERSION,
  isFinal,
  parseEvent,
  type EventKind,
  type ExecEvent,
  type ExecRecord,
  type ExecStatus,
  type ServiceKeys,
} from '../runtime/protocol/services';

/** What Launch knows of a new execution. */
export interface NewExecution {
  fid: string;
  owner: string;
  flow: string;
  summary: string;
  entry: string;
  inputs: unknown;
  service: string;
}

/** An event to append: its kind and any JSON-able data. */
export interface EventInput {
  kind: EventKind;
  data: unknown;
}

/**
 * Moves an execution's status forward and appends the status event, in one step: a status never goes back,
 * and the first end (finished, error, cancelled) wins. Events given in ARGV[7..] (kind, data pairs) are appended
 * before the status event, only if the move happens (a final result lands with its status, or not at all).
 * An ended execution and its events expire after the retention time.
 */
const SET_STATUS = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
if cur == 'finished' or cur == 'error' or cur == 'cancelled' then return 0 end
local new = ARGV[1]
if new == cur or new == 'starting' then return 0 end
local final = new == 'finished' or new == 'error' or new == 'cancelled'
for i = 7, #ARGV, 2 do
  redis.call('XADD', KEYS[2], '*', '${EVENT_FIELDS.kind}', ARGV[i], '${EVENT_FIELDS.data}', ARGV[i + 1], '${EVENT_FIELDS.at}', ARGV[2])
end
redis.call('HSET', KEYS[1], 'status', new)
if new == 'running' then redis.call('HSET', KEYS[1], 'startedAt', ARGV[2]) end
if final then
  redis.call('HSET', KEYS[1], 'endedAt', ARGV[2])
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[4]) end
  redis.call('ZREM', KEYS[3], ARGV[3])
end
redis.call('XADD', KEYS[2], '*', '${EVENT_FIELDS.kind}', 'status', '${EVENT_FIELDS.data}', ARGV[6], '${EVENT_FIELDS.at}', ARGV[2])
if final then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return 1
`;

type StoreClient = Redis & { nodusExecStatus(...args: (string | number)[]): Promise<number> };

function withStore(redis: Redis): StoreClient {
  const r = redis as StoreClient;
  if (typeof r.nodusExecStatus !== 'function') r.defineCommand('nodusExecStatus', { numberOfKeys: 3, lua: SET_STATUS });
  return r;
}

/** Retention of ended executions: NODUS_EXEC_RETENTION_MS, else 7 days. */
export function retentionMs(): number {
  const v = Number(process.env.NODUS_EXEC_RETENTION_MS);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_RETENTION_MS;
}

/** JSON text of any value a task may return (msgpack-able): Map → object, Set → array, bigint → string, typed arrays → arrays. */
export function toJSONText(value: unknown): string {
  return (
    JSON.stringify(value, function (this: unknown, _key, v: unknown) {
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), x]));
      if (v instanceof Set) return [...v];
      if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number>);
      if (v === undefined) return null;
      return v;
    }) ?? 'null'
  );
}

/** Creates the record, indexes it for its owner, and appends the `starting` status and the inputs. */
export async function createExecution(redis: Redis, keys: ServiceKeys, e: NewExecution): Promise<void> {
  const now = Date.now();
  const rec: Omit<ExecRecord, 'startedAt' | 'endedAt' | 'error' | 'cancelRequested'> = {
    fid: e.fid,
    v: String(SERVICES_PROTOCOL_VERSION),
    owner: e.owner,
    status: 'starting',
    flow: e.flow,
    summary: e.summary,
    entry: e.entry,
    inputs: toJSONText(e.inputs),
    createdAt: String(now),
    service: e.service,
  };
  const ev = (kind: EventKind, data: string) => [EVENT_FIELDS.kind, kind, EVENT_FIELDS.data, data, EVENT_FIELDS.at, String(now)];
  await redis
    .multi()
    .hset(keys.exec(e.fid), rec as unknown as Record<string, string>)
    .xadd(keys.events(e.fid), '*', ...ev('status', JSON.stringify({ status: 'starting' })))
    .xadd(keys.events(e.fid), '*', ...ev('inputs', rec.inputs))
    .zadd(keys.userExecs(e.owner), now, e.fid)
    .zadd(keys.allExecs, now, e.fid)
    .zadd(keys.activeExecs, now, e.fid)
    .exec();
}

/** Appends events in order (one pipeline); resolves to their ids. Events of an ended execution are still kept. */
export async function appendEvents(redis: Redis, keys: ServiceKeys, fid: string, events: EventInput[]): Promise<string[]> {
  if (!events.length) return [];
  const at = String(Date.now());
  const pipe = redis.pipeline();
  for (const e of events) pipe.xadd(keys.events(fid), '*', EVENT_FIELDS.kind, e.kind, EVENT_FIELDS.data, toJSONText(e.data), EVENT_FIELDS.at, at);
  const res = (await pipe.exec()) ?? [];
  return res.map(([err, id]) => {
    if (err) throw err;
    return String(id);
  });
}

/**
 * Moves the status forward (see SET_STATUS); `before` events are appended first, atomically with it.
 * Resolves to false when the execution had ended already (or is unknown): the first end wins.
 */
export async function setStatus(
  redis: Redis,
  keys: ServiceKeys,
  fid: string,
  status: Exclude<ExecStatus, 'starting'>,
  o: { message?: string; before?: EventInput[] } = {},
): Promise<boolean> {
  const data = JSON.stringify(o.message ? { status, message: o.message } : { status });
  const extra = (o.before ?? []).flatMap((e) => [e.kind, toJSONText(e.data)]);
  const moved = await withStore(redis).nodusExecStatus(
    keys.exec(fid),
    keys.events(fid),
    keys.activeExecs,
    status,
    Date.now(),
    fid,
    o.message ?? '',
    retentionMs(),
    data,
    ...extra,
  );
  return moved === 1;
}

/** The execution's record, or undefined when it does not exist (never did, or expired). */
export async function readExecution(redis: Redis, keys: ServiceKeys, fid: string): Promise<ExecRecord | undefined> {
  const rec = (await redis.hgetall(keys.exec(fid))) as unknown as ExecRecord;
  return rec.fid ? rec : undefined;
}

/** Events after `afterId` (exclusive; '0' or undefined: from the start), at most `count`. */
export async function readEvents(redis: Redis, keys: ServiceKeys, fid: string, afterId?: string, count = 1000): Promise<ExecEvent[]> {
  const start = afterId && afterId !== '0' && afterId !== '0-0' ? `(${afterId}` : '-';
  const entries = (await redis.xrange(keys.events(fid), start, '+', 'COUNT', count)) as [string, string[]][];
  return entries.map(([id, fields]) => parseEvent(id, fields));
}

/** Every event of an execution, in order. */
export async function readAllEvents(redis: Redis, keys: ServiceKeys, fid: string): Promise<ExecEvent[]> {
  const all: ExecEvent[] = [];
  for (let after: string | undefined; ; ) {
    const part = await readEvents(redis, keys, fid, after, 5000);
    all.push(...part);
    if (part.length < 5000) return all;
    after = part[part.length - 1].id;
  }
}

/** Asks for a cancel: marks the record and tells the runner (which aborts tracer.signal). False when it has ended. */
export async function requestCancel(redis: Redis, keys: ServiceKeys, fid: string): Promise<boolean> {
  const status = await redis.hget(keys.exec(fid), 'status');
  if (!status || isFinal(status)) return false;
  await redis.hset(keys.exec(fid), 'cancelRequested', String(Date.now()));
  await redis.publish(keys.cancelChannel, fid);
  return true;
}

/** Drops index entries of executions older than the retention time (their records and events expire by themselves). */
export async function pruneIndexes(redis: Redis, keys: ServiceKeys, users: string[], olderThanMs = retentionMs()): Promise<void> {
  const cutoff = Date.now() - olderThanMs;
  const pipe = redis.pipeline().zremrangebyscore(keys.allExecs, '-inf', cutoff);
  for (const u of users) pipe.zremrangebyscore(keys.userExecs(u), '-inf', cutoff);
  await pipe.exec();
}
