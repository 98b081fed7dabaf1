/**
 * @module Jobs in Redis: create one, read and list them, move one to a new status, ask for its stop, append to and read
 * its log. Shared by the node agent that runs a job's driver, the head (a node's death), nodus/jobs and the gateway.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { EVENT_FIELDS, parseEvent, type ExecEvent } from '../protocol/services';
import {
  JOB_LOG_CHUNK,
  JOB_LOG_MAX_ENTRIES,
  JOB_RETENTION_MS,
  JOBS_PROTOCOL_VERSION,
  isFinalJobStatus,
  toJobInfo,
  type JobInfo,
  type JobKeys,
  type JobMessage,
  type JobRecord,
  type JobStatus,
  type JobStatusEvent,
} from '../protocol/jobs';
import type { Resources, RuntimeEnvDescriptor } from '../protocol';
import type { CommandClient } from './object-store';

/** A job id: time-ordered (newest sorts last, as text too) and unique. */
function newJobId(): string {
  return `job-${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

/** What a new job is made of (checked by the caller). */
export interface NewJob {
  entrypoint: string;
  /** The runtime env, its working dir already shipped (RuntimeEnvs.resolve); none: the driver runs in an empty folder. */
  runtimeEnv: RuntimeEnvDescriptor | undefined;
  /** The working dir as the submitter named it, for people. */
  workingDir?: string;
  demand: Resources;
  owner: string;
}

/** Records a job as pending, where node agents find it, and tells them. */
export async function createJob(redis: Redis, keys: JobKeys, o: NewJob): Promise<JobInfo> {
  const id = newJobId();
  const now = Date.now();
  const rec: Partial<JobRecord> = {
    id,
    v: String(JOBS_PROTOCOL_VERSION),
    entrypoint: o.entrypoint,
    runtimeEnv: o.runtimeEnv ? JSON.stringify(o.runtimeEnv) : '',
    workingDir: o.workingDir ?? '',
    demand: JSON.stringify(o.demand),
    status: 'pending',
    owner: o.owner,
    createdAt: String(now),
  };
  const event: JobStatusEvent = { status: 'pending' };
  await redis
    .multi()
    .hset(keys.job(id), rec)
    .xadd(keys.logs(id), 'MAXLEN', '~', JOB_LOG_MAX_ENTRIES, '*', EVENT_FIELDS.kind, 'status', EVENT_FIELDS.data, JSON.stringify(event), EVENT_FIELDS.at, now)
    .zadd(keys.all, now, id)
    .sadd(keys.active, id)
    .zadd(keys.pending, now, id)
    .exec();
  await publish(redis, keys, { type: 'submitted', id });
  return toJobInfo(rec as Record<string, string>)!;
}

export function publish(redis: Redis, keys: JobKeys, msg: JobMessage): Promise<number> {
  return redis.publish(keys.channel, JSON.stringify(msg));
}

/** The job, or undefined when there is none (or it expired). */
export async function readJob(redis: Redis, keys: JobKeys, id: string): Promise<JobInfo | undefined> {
  return toJobInfo(await redis.hgetall(keys.job(id)));
}

/** Options of {@link listJobRecords}. */
export interface ListJobsQuery {
  /** Only jobs with one of these statuses. @default all */
  status?: JobStatus[];
  /** Only jobs of this owner. @default all */
  owner?: string;
  /** At most this many. @default 100 */
  limit?: number;
}

/** Jobs, newest first. Ids whose record has expired are dropped from the index on the way. */
export async function listJobRecords(redis: Redis, keys: JobKeys, q: ListJobsQuery = {}): Promise<JobInfo[]> {
  const limit = q.limit ?? 100;
  const out: JobInfo[] = [];
  const page = 200;
  for (let start = 0; out.length < limit; start += page) {
    const ids = await redis.zrevrange(keys.all, start, start + page - 1);
    if (!ids.length) break;
    const pipe = redis.pipeline();
    for (const id of ids) pipe.hgetall(keys.job(id));
    const recs = ((await pipe.exec()) ?? []).map(([, r]) => r as Record<string, string>);
    const gone: string[] = [];
    recs.forEach((r, i) => {
      const job = toJobInfo(r ?? {});
      if (!job) return void gone.push(ids[i]);
      if ((q.status?.length && !q.status.includes(job.status)) || (q.owner !== undefined && job.owner !== q.owner)) return;
      if (out.length < limit) out.push(job);
    });
    if (gone.length) {
      await redis.zrem(keys.all, ...gone);
      start -= gone.length;
    }
    if (ids.length < page) break;
  }
  return out;
}

/** Options of {@link setJobStatus}. */
export interface StatusChange {
  exitCode?: number;
  message?: string;
  /** The node that takes the job (when it starts). */
  node?: string;
  pid?: number;
  /** Only while the job's node is this one (the head failing the jobs of a dead node). */
  onlyNode?: string;
}

/**
 * Moves a job to `status` unless it has ended already (the first end wins: a stop, the driver's exit, its node's
 * death), with a `status` entry in its log. Resolves to the status it had before ('' when there is no such job).
 */
export async function setJobStatus(redis: CommandClient, keys: JobKeys, id: string, status: JobStatus, c: StatusChange = {}): Promise<string> {
  const now = Date.now();
  const final = isFinalJobStatus(status);
  const fields: string[] = [];
  const set = (k: keyof JobRecord, v: string | number | undefined) => v !== undefined && fields.push(k, String(v));
  set('exitCode', c.exitCode);
  set('message', c.message ?? (final || status === 'running' ? '' : undefined));
  set('node', c.node);
  set('pid', c.pid);
  if (status === 'running') set('startedAt', now);
  if (final) set('endedAt', now);
  const event: JobStatusEvent = { status, ...(c.exitCode !== undefined ? { exitCode: c.exitCode } : {}), ...(c.message ? { message: c.message } : {}), ...(c.node ? { node: c.node } : {}) };
  return redis.nodusJobStatus(keys.prefix, id, status, c.onlyNode ?? '', final ? '1' : '0', JSON.stringify(event), now, JOB_RETENTION_MS, JOB_LOG_MAX_ENTRIES, ...fields);
}

/**
 * Asks for a job's stop. A pending job is stopped here (unless a node takes it at this moment: then that node stops
 * it); a running one's node is told, and stops its driver. Resolves to the job as it is then; undefined if none.
 */
export async function requestJobStop(redis: CommandClient, keys: JobKeys, id: string): Promise<JobInfo | undefined> {
  const job = await readJob(redis, keys, id);
  if (!job || isFinalJobStatus(job.status)) return job;
  await redis.hset(keys.job(id), 'stopRequested', Date.now());
  // Whoever takes the job out of the pending set owns it: a node (then it starts it, sees the request and stops it), or this.
  if (await redis.zrem(keys.pending, id)) await setJobStatus(redis, keys, id, 'stopped', { message: 'stopped before it started' });
  else await publish(redis, keys, { type: 'stop', id });
  return readJob(redis, keys, id);
}

/** Appends what a driver printed to its job's log, cut into entries of at most JOB_LOG_CHUNK bytes. */
export async function appendJobOutput(redis: Redis, keys: JobKeys, id: string, chunks: { stream: 'stdout' | 'stderr'; text: string }[]): Promise<void> {
  if (!chunks.length) return;
  const pipe = redis.pipeline();
  const now = Date.now();
  for (const { stream, text } of chunks) {
    for (const part of splitUtf8(text, JOB_LOG_CHUNK)) {
      pipe.xadd(keys.logs(id), 'MAXLEN', '~', JOB_LOG_MAX_ENTRIES, '*', EVENT_FIELDS.kind, stream, EVENT_FIELDS.data, JSON.stringify(part), EVENT_FIELDS.at, now);
    }
  }
  await pipe.exec();
}

/** Cuts text into parts of at most `max` UTF-8 bytes, never inside a character. */
function splitUtf8(text: string, max: number): string[] {
  if (Buffer.byteLength(text) <= max) return [text];
  const parts: string[] = [];
  let cur = '';
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) {
      parts.push(cur);
      cur = '';
      bytes = 0;
    }
    cur += ch;
    bytes += n;
  }
  if (cur) parts.push(cur);
  return parts;
}

/** Log entries after `afterId` ('0': from the start), at most `count`. */
export async function readJobLog(redis: Redis, keys: JobKeys, id: string, afterId = '0', count = 1000): Promise<ExecEvent[]> {
  const start = afterId && afterId !== '0' && afterId !== '0-0' ? `(${afterId}` : '-';
  const entries = (await redis.xrange(keys.logs(id), start, '+', 'COUNT', count)) as [string, string[]][];
  return entries.map(([eid, fields]) => parseEvent(eid, fields));
}

/** True for the log entry that ends a job's log: its final status. */
export function isFinalLogEntry(e: ExecEvent): boolean {
  return e.kind === 'status' && isFinalJobStatus((e.data as JobStatusEvent | null)?.status);
}

/**
 * A job's log from after `afterId`, as it is written, until its final status (included). `blocking` must be a
 * connection of its own (XREAD BLOCK holds it). Ends early when `signal` aborts, or when the job is gone.
 */
export async function* followJobLog(redis: Redis, blocking: Redis, keys: JobKeys, id: string, afterId = '0', signal?: AbortSignal): AsyncGenerator<ExecEvent> {
  let after = afterId;
  for (;;) {
    // The past first (XRANGE pages), then live entries.
    for (;;) {
      const page = await readJobLog(redis, keys, id, after, 1000);
      for (const e of page) {
        after = e.id;
        yield e;
        if (isFinalLogEntry(e)) return;
      }
      if (page.length < 1000) break;
    }
    if (signal?.aborted) return;
    const reply = (await blocking.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', keys.logs(id), after === '0' ? '0-0' : after)) as [string, [string, string[]][]][] | null;
    if (reply) {
      for (const [eid, fields] of reply[0][1]) {
        const e = parseEvent(eid, fields);
        after = eid;
        yield e;
        if (isFinalLogEntry(e)) return;
      }
    } else {
      // Gone, or ended with its final entry at or before `after` (both are written in one step): nothing more comes.
      const status = await redis.hget(keys.job(id), 'status');
      if (status === null || isFinalJobStatus(status)) return;
    }
  }
}

/** Fails the jobs a dead node was running (or had taken), naming the node. Resolves to their ids. */
export async function failJobsOfNode(redis: CommandClient, keys: JobKeys, nodeId: string, why: string): Promise<string[]> {
  const failed: string[] = [];
  for (const id of await redis.smembers(keys.active)) {
    const node = await redis.hget(keys.job(id), 'node');
    if (node !== nodeId) continue;
    const before = await setJobStatus(redis, keys, id, 'failed', { message: `its node ${nodeId} ${why} while the job ran`, onlyNode: nodeId });
    if (before && !isFinalJobStatus(before)) failed.push(id);
  }
  return failed;
}
