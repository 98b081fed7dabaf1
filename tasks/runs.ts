/**
 * @module Runs: start one (an execution whose runner actor submits the task), read one as the API shows it (status,
 * parameters, steps, results), list them, and follow one's events as they come. Shared by the gateway and the CLI.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ActorDiedError, ConfigError, get } from '../runtime';
import { RUNNER_NAMESPACE, isFinal, type ExecEvent, type ExecRecord, type ExecStatus, type ServiceKeys } from '../runtime/protocol/services';
import { createExecution, readAllEvents, readEvents, readExecution, retentionMs, setStatus, toJSONText } from '../serve/store';
import { failRun } from './end';
import { EXEC_STATUS, RUN_STATUS, TaskKeys, type FailReason, type RunFields, type RunStatus, type StepEventData, type StoredResultsMarker, type TaskRecord } from './protocol';
import { TaskRunnerActor } from './runner';

/** A run id: time-ordered (newest sorts last, as text too), unique; the id of its execution as well. */
function newRunId(): string {
  return `${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
}

/** The same Idempotency-Key sent again with other parameters: the gateway answers 409. */
export class IdempotencyConflictError extends ConfigError {}

/** Options of {@link startRun}. */
export interface StartRunOptions {
  task: TaskRecord;
  /** Parameters already checked (validateParameters). */
  parameters: Record<string, unknown>;
  /** Who runs it: the gateway's user, or the CLI's. */
  owner: string;
  /** A retried request with the same key (same user and task) gets the run the first one started. */
  idempotencyKey?: string;
}

/**
 * Starts a run: records it as an execution (queued), then starts its runner actor, which submits the task. Resolves at
 * once with the run id; `replayed` is true when an earlier request with the same idempotency key started it.
 *
 * @example
 * const { runId } = await startRun(redis, keys, { task, parameters: validateParameters(task, { name: 'Ada' }), owner: 'admin' });
 */
export async function startRun(redis: Redis, keys: ServiceKeys, o: StartRunOptions): Promise<{ runId: string; replayed: boolean }> {
  const tk = new TaskKeys(keys);
  const runId = newRunId();
  if (o.idempotencyKey !== undefined) {
    const fingerprint = createHash('sha256').update(toJSONText(o.parameters)).digest('hex').slice(0, 16);
    const key = tk.idempotency(o.owner, o.task.slug, o.idempotencyKey);
    // First writer wins: of two concurrent requests with one key, both get the run of the one that set it.
    if (!(await redis.set(key, `${runId} ${fingerprint}`, 'PX', retentionMs(), 'NX'))) {
      const [earlier, print] = ((await redis.get(key)) ?? '').split(' ');
      if (print !== fingerprint) throw new IdempotencyConflictError(`The Idempotency-Key '${o.idempotencyKey}' was used for a run of ${o.task.slug} with other parameters (run ${earlier}); use a new key for a new run.`);
      return { runId: earlier, replayed: true };
    }
  }
  const { task } = o;
  await createExecution(redis, keys, {
    fid: runId,
    owner: o.owner,
    flow: `task:${task.slug}`,
    summary: task.name,
    entry: `${task.module}:${task.exportName}`,
    inputs: o.parameters,
    service: 'nodus/tasks',
  });
  const fields: Partial<RunFields> = { task: task.slug, taskVersion: task.version, attempts: '0' };
  await redis.multi().hset(keys.exec(runId), fields).zadd(tk.runs, 0, runId).zadd(tk.taskRuns(task.slug), 0, runId).exec();
  const runner = TaskRunnerActor.options({ name: runId, namespace: RUNNER_NAMESPACE, lifetime: 'detached' }).remote();
  const spec = { runId, slug: task.slug, version: task.version, module: task.module, exportName: task.exportName, parameters: o.parameters, resources: task.resources, timeoutMs: task.timeoutMs, retries: task.retries };
  // Whoever started it watches it while this process lives, for the runner's death only (this process shutting down
  // is not the run's end); the gateway's sweep covers the rest.
  get(runner.run.remote(spec)).catch(async (err: unknown) => {
    if (!(err instanceof ActorDiedError)) return;
    if (await redis.hget(keys.exec(runId), 'cancelRequested').catch(() => null)) return void (await setStatus(redis, keys, runId, 'cancelled', { message: 'cancelled' }).catch(() => undefined));
    const message = `the runner of this run died: ${err.message}`;
    await failRun(redis, keys, runId, 'error', message, { name: err.name, message }).catch(() => undefined);
  });
  return { runId, replayed: false };
}

/** A step as a run shows it. Times are ms since the epoch. */
export interface StepView {
  index: number;
  /** Which attempt of the run it belongs to (a worker that died makes another). */
  attempt: number;
  name: string;
  description: string;
  start: number;
  end: number | null;
  durationMs: number | null;
  /** `Name: message` of what it threw, or why it never ended. */
  error: string | null;
  /** What it printed. */
  output: string;
}

/** A run as `GET /api/runs/{id}` answers it. */
export interface RunView {
  runId: string;
  task: string;
  taskName: string;
  version: string;
  status: RunStatus;
  /** Why it failed: step, parameters, results, timeout, worker, error. */
  reason: FailReason | null;
  error: string | null;
  /** What a queued run waits for, when no node could run it yet. */
  waiting: string | null;
  owner: string;
  parameters: unknown;
  steps: StepView[];
  /** Checked against the task's results schema; null until it succeeded. */
  results: unknown;
  attempts: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

/** A row of `GET /api/runs`. */
export type RunSummary = Omit<RunView, 'parameters' | 'steps' | 'results'>;

type RunRecord = ExecRecord & Partial<RunFields>;

const num = (v: string | undefined) => (v ? Number(v) : null);

function summary(rec: RunRecord): RunSummary {
  return {
    runId: rec.fid,
    task: rec.task ?? '',
    taskName: rec.summary ?? '',
    version: rec.taskVersion ?? '',
    status: RUN_STATUS[rec.status] ?? 'queued',
    reason: rec.status === 'error' ? (rec.reason ?? 'error') : null,
    error: rec.error || null,
    waiting: rec.status === 'starting' ? rec.waiting || null : null,
    owner: rec.owner,
    attempts: Number(rec.attempts ?? 0),
    createdAt: Number(rec.createdAt),
    startedAt: num(rec.startedAt),
    endedAt: num(rec.endedAt),
  };
}

/** Steps from a run's `step` events; a step of an earlier attempt that never ended lost its worker. */
function stepsOf(events: ExecEvent[], attempts: number): StepView[] {
  const steps = new Map<string, StepView>();
  for (const e of events) {
    if (e.kind !== 'step') continue;
    const d = e.data as StepEventData;
    const id = `${d.attempt}:${d.index}`;
    if (d.phase === 'start') steps.set(id, { index: d.index, attempt: d.attempt, name: d.name, description: d.description, start: d.time, end: null, durationMs: null, error: null, output: '' });
    const s = steps.get(id);
    if (d.phase === 'end' && s) Object.assign(s, { end: d.time, durationMs: d.durationMs ?? d.time - s.start, error: d.error ? `${d.error.name}: ${d.error.message}` : null, output: d.output ?? '' });
  }
  const all = [...steps.values()];
  for (const s of all) if (s.end === null && s.attempt < attempts) s.error = 'the worker process running it died';
  return all;
}

/**
 * Reads a run, or undefined when there is no such run (never was, expired, or an execution that is not a run).
 *
 * @example
 * const run = await readRun(redis, keys, runId);   // { status: 'succeeded', steps: [...], results: {...}, ... }
 */
export async function readRun(redis: Redis, keys: ServiceKeys, runId: string): Promise<RunView | undefined> {
  const rec = (await readExecution(redis, keys, runId)) as RunRecord | undefined;
  if (!rec?.task) return undefined;
  const events = await readAllEvents(redis, keys, runId);
  let results: unknown = null;
  if (rec.status === 'finished') {
    let final: unknown;
    for (const e of events) if (e.kind === 'final') final = e.data;
    const stored = final && typeof final === 'object' && (final as StoredResultsMarker).$stored === 'results';
    results = stored ? JSON.parse((await redis.get(new TaskKeys(keys).results(runId))) ?? 'null') : (final ?? null);
  }
  let parameters: unknown;
  try {
    parameters = JSON.parse(rec.inputs);
  } catch {
    parameters = rec.inputs;
  }
  const base = summary(rec);
  return { ...base, parameters, steps: stepsOf(events, base.attempts), results };
}

/** Options of {@link listRuns}. */
export interface ListRunsOptions {
  /** Whose runs: only theirs, unless admin. */
  user: string;
  admin: boolean;
  task?: string;
  status?: RunStatus[];
  /** @default 20 */
  limit?: number;
  /** The `nextCursor` of the page before. */
  cursor?: string;
}

/** At most this many runs are looked at per page; a sparse filter answers a cursor to go on with. */
const SCAN_MAX = 2000;
const SCAN_PAGE = 200;
const ROW_FIELDS = ['fid', 'status', 'owner', 'summary', 'createdAt', 'startedAt', 'endedAt', 'error', 'task', 'taskVersion', 'attempts', 'reason', 'waiting'] as const;

/**
 * Runs newest first, filtered, one page at a time. Entries of runs that expired are dropped from the index as they are met.
 *
 * @example
 * const { runs, nextCursor } = await listRuns(redis, keys, { user: 'ada', admin: false, task: 'hello-world', status: ['failed'] });
 */
export async function listRuns(redis: Redis, keys: ServiceKeys, o: ListRunsOptions): Promise<{ runs: RunSummary[]; nextCursor: string | null }> {
  const tk = new TaskKeys(keys);
  const index = o.task ? tk.taskRuns(o.task) : tk.runs;
  const limit = o.limit ?? 20;
  const statuses = new Set<ExecStatus>((o.status ?? []).map((s) => EXEC_STATUS[s]));
  const runs: RunSummary[] = [];
  let after = o.cursor;
  for (let scanned = 0; scanned < SCAN_MAX; ) {
    const ids = await redis.zrange(index, after ? `(${after}` : '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, SCAN_PAGE);
    if (!ids.length) return { runs, nextCursor: null };
    const pipe = redis.pipeline();
    for (const id of ids) pipe.hmget(keys.exec(id), ...ROW_FIELDS);
    const rows = (await pipe.exec()) ?? [];
    const gone: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      scanned++;
      after = ids[i];
      const values = rows[i][1] as (string | null)[];
      if (!values[0]) {
        gone.push(ids[i]);
        continue;
      }
      const rec = Object.fromEntries(ROW_FIELDS.map((f, k) => [f, values[k] ?? undefined])) as unknown as RunRecord;
      if ((!o.admin && rec.owner !== o.user) || (statuses.size && !statuses.has(rec.status))) continue;
      runs.push(summary(rec));
      if (runs.length === limit) {
        if (gone.length) await redis.zrem(index, ...gone);
        return { runs, nextCursor: i + 1 < ids.length || ids.length === SCAN_PAGE ? after : null };
      }
    }
    if (gone.length) await redis.zrem(index, ...gone);
    if (ids.length < SCAN_PAGE) return { runs, nextCursor: null };
  }
  return { runs, nextCursor: after ?? null };
}

/**
 * Calls `onEvent` with each of a run's events, from the first, as they are stored, until its final status. Uses a
 * connection of its own (it blocks).
 *
 * @example
 * const status = await followRun(redis, keys, runId, (e) => console.log(e.kind, e.data));
 */
export async function followRun(redis: Redis, keys: ServiceKeys, runId: string, onEvent: (e: ExecEvent) => void): Promise<ExecStatus> {
  const reader = redis.duplicate();
  reader.on('error', () => undefined);
  try {
    let after = '0';
    for (;;) {
      for (const e of await readEvents(reader, keys, runId, after)) {
        after = e.id;
        onEvent(e);
        const status = e.kind === 'status' ? (e.data as { status?: ExecStatus }).status : undefined;
        if (isFinal(status)) return status!;
      }
      // Blocks until an event comes (or 2 s, to notice a run that expired meanwhile).
      await reader.xread('COUNT', 1, 'BLOCK', 2000, 'STREAMS', keys.events(runId), after);
      if (!(await reader.exists(keys.exec(runId)))) throw new ConfigError(`Run ${runId} is gone (expired, or never existed).`);
    }
  } finally {
    reader.disconnect();
  }
}
