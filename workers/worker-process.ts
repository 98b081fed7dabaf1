/** @module A worker process: imports the module that defines a remote function (TypeScript too) and runs its tasks one at a time. */
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NodusError, ObjectStoreFullError, TaskError, cancelledFailure, toFailure, type SerializedFailure } from '../runtime/errors';
import { actorFailure, adoptOrphans } from '../runtime/internal/actor-lifecycle';
import { CoreContext } from '../runtime/internal/context';
import { setContext } from '../runtime/internal/global';
import { failureBytes, settleCall, storeError, toStoredForm, writeChunks } from '../runtime/internal/object-store';
import { connect } from '../runtime/internal/redis';
import { withCommands, type ObjectCommands } from '../runtime/protocol/commands';
import { isAsyncIterator, produce } from '../runtime/internal/streams';
import { decode, encode } from '../runtime/internal/serialization';
import { encodeForStore } from '../runtime/internal/framing';
import { isObjectRef } from '../runtime/object-ref';
import { INLINE_RESULT_BYTES, Keys, Note, isEnvRelative, type ActorCall, type ActorRecord, type FunctionDescriptor, type TaskJob } from '../runtime/protocol';
import { inheritedEnv } from '../runtime/internal/runtime-env';
import { lookupRemote } from '../runtime/remote';
import type { AgentToWorker, Lease, WorkerToAgent } from './ipc';
import { retryLine, shouldRetry } from './retries';
import { ActorChannelServer, type Reply } from './actor-channel';
import { Linger } from './linger';
import { TaskQueue, checkJob } from './task-queue';

const workerId = process.env.NODUS_WORKER_ID!;
const nodeId = process.env.NODUS_NODE_ID!;
const send = (m: WorkerToAgent) => process.send?.(m);

// What a task prints goes to its driver through the agent, on the same channel as its result, so it arrives first.
for (const [stream, name] of [
  [process.stdout, 'stdout'],
  [process.stderr, 'stderr'],
] as const) {
  stream.write = ((chunk: string | Uint8Array, enc?: unknown, cb?: unknown) => {
    const callback = typeof enc === 'function' ? enc : cb;
    send({ t: 'log', stream: name, text: typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8') });
    if (typeof callback === 'function') process.nextTick(callback as () => void);
    return true;
  }) as typeof stream.write;
}
// A stray rejection in user code is reported, not fatal: a worker serves many tasks.
process.on('unhandledRejection', (err) => console.error('unhandled rejection in a task:', err));

const modules = new Map<string, Promise<unknown>>();

/** The runtime env this process runs in (its agent set it up): its working dir is where relative module paths point. */
const envDir = process.env.NODUS_ENV_DIR ? realpathSync(process.env.NODUS_ENV_DIR) : undefined;

async function loadFunction(given: FunctionDescriptor): Promise<(...args: unknown[]) => unknown> {
  let fn = given;
  if (isEnvRelative(given.module)) {
    if (!envDir) throw new NodusError(`${given.name} is defined in ${given.module}, relative to a runtime env's working dir, but this worker (node ${nodeId}) runs in none: was the job written to the queue by hand?`);
    fn = { ...given, module: join(envDir, given.module) };
  }
  let loading = modules.get(fn.module);
  if (!loading) {
    loading = import(pathToFileURL(fn.module).href);
    modules.set(fn.module, loading);
  }
  try {
    await loading;
  } catch (err) {
    modules.delete(fn.module);
    throw new NodusError(
      `Worker on node ${nodeId} could not import ${fn.module}, which defines ${fn.name}: ${(err as Error).message}. ` +
        (isEnvRelative(given.module)
          ? "It was shipped in the task's runtime env: does it import a package that is not in its package.json (or not shipped)?"
          : 'Remote functions are found by their module: it must exist at the same path on every node, or be inside a runtimeEnv workingDir that ships it.'),
      { cause: err },
    );
  }
  const found = lookupRemote(fn);
  if (!found) {
    throw new NodusError(`${fn.module} has no remote function '${fn.key}'. Define it with remote() at the top level of that module, and export it.`);
  }
  return found;
}

/** The failure a task ends with; an argument's failure is passed on as it is. */
function failureOf(err: unknown, task: string): SerializedFailure {
  if (err instanceof TaskError) return toFailure(err.cause, 'task', err.taskName);
  if (err instanceof NodusError) {
    const kinds: Record<string, SerializedFailure['kind']> = {
      WORKER_CRASHED: 'crash', TASK_CANCELLED: 'cancelled', OBJECT_LOST: 'lost', OBJECT_STORE_FULL: 'full', OUT_OF_MEMORY: 'oom', TASK_UNSCHEDULABLE: 'unschedulable',
    };
    const kind = kinds[err.code] ?? 'system';
    return { ...toFailure(err, kind, task), kind };
  }
  return toFailure(err, 'task', task);
}

/** Encodes a result: inline when small, else written to the object store by this process. */
async function packResult(ctx: CoreContext, id: string, result: unknown, name: string): Promise<{ value: Buffer | null; chunks: number; inner: string[] }> {
  const store = ctx.store;
  const packed = encodeForStore(result, `return value of ${name}`, store?.minBytes ?? null);
  const refs = 'framed' in packed ? packed.framed.refs : packed.encoded.refs;
  // The refs inside must exist before the report (on another connection) holds them.
  if (refs.length) await ctx.settled();
  if ('framed' in packed) {
    // A large result goes to this node's object store; Redis gets the record of where it is.
    const framed = packed.framed;
    const record = await store!.write(id, framed.pieces, framed.size);
    try {
      await ctx.redis.set(ctx.keys.value(id), record);
    } catch (err) {
      await store!.discard(id, record);
      throw storeError(err, framed.size);
    }
    return { value: null, chunks: 0, inner: refs };
  }
  const enc = packed.encoded;
  const form = toStoredForm(enc.bytes);
  if (!form.chunks.length && form.head.length <= INLINE_RESULT_BYTES) return { value: form.head, chunks: 0, inner: enc.refs };
  try {
    await writeChunks(ctx.redis, ctx.keys, id, form.chunks);
    await ctx.redis.set(ctx.keys.value(id), form.head);
  } catch (err) {
    await ctx.redis.del(ctx.keys.value(id), ...form.chunks.map((_, i) => ctx.keys.chunk(id, i))).catch(() => undefined);
    throw storeError(err, enc.bytes.length);
  }
  return { value: null, chunks: form.chunks.length, inner: enc.refs };
}

/** Decodes arguments (inline or stored) and resolves top-level refs to their values; nested ones stay refs. */
async function loadArgs(ctx: CoreContext, inline: Buffer | null, argsRef: string | null): Promise<unknown[]> {
  let args: unknown[];
  try {
    args = inline ? decode<unknown[]>(inline) : ((await ctx.get(ctx.refFromWire(argsRef!), undefined)) as unknown[]);
  } catch (err) {
    if (err instanceof NodusError) throw err;
    throw new NodusError(`the arguments could not be decoded (${(err as Error).message}); was this job made by another version of nodus, or written to the queue by hand?`, { cause: err });
  }
  if (!Array.isArray(args)) throw new NodusError('the arguments are not a list; was this job written to the queue by hand?');
  return args.some(isObjectRef) ? Promise.all(args.map((a) => (isObjectRef(a) ? ctx.get(a, undefined) : a))) : args;
}

/** An encoded outcome: the value inline (or null when this process stored it), its chunks, the refs inside. */
interface Outcome {
  value: Buffer | null;
  chunks: number;
  inner: string[];
  /** With numReturns > 1: the other returns, each its own object (`<task id>.<i>`), reported before the task. */
  extras?: { id: string; out: Outcome }[];
  /** The task failed: why (for its task events). */
  failure?: SerializedFailure;
}

/**
 * Runs one task and encodes its outcome: the value (inline or stored by this process) or the failure.
 * A function that throws runs again while retryExceptions names the error and maxRetries has runs left
 * (`used`: retries spent on this task before, its worker's deaths).
 */
async function runTask(ctx: CoreContext, job: TaskJob, used = 0): Promise<Outcome> {
  ctx.ownerId = job.owner;
  ctx.current = { taskId: job.id, nodeId };
  try {
    const fn = await loadFunction(job.fn);
    const args = await loadArgs(ctx, job.args !== null ? Buffer.from(job.args, 'base64') : null, job.argsRef);
    ctx.onBlocked = reportBlocked;
    let result: unknown;
    let streamed = false;
    for (let retry = 1; ; retry++) {
      try {
        result = fn(...args);
        if ((streamed = isAsyncIterator(result))) {
          // A generator task streams its items to the caller; its own result is the item count.
          result = await produce(ctx, result, { streamId: job.id, consumer: job.caller, owner: job.owner, name: job.fn.name });
        }
        result = await result;
        break;
      } catch (err) {
        const left = job.maxRetries - used - (retry - 1);
        // A generator's items already went out: it is not run again.
        if (left <= 0 || streamed || !shouldRetry(err, job.retryExceptions)) throw err;
        console.error(retryLine(job.fn.name, err, used + retry, job.maxRetries));
      }
    }
    const n = job.numReturns ?? 1;
    if (n === 1) return await packResult(ctx, job.id, result, job.fn.name);
    if (!Array.isArray(result) || result.length !== n) {
      throw new NodusError(`${job.fn.name} has numReturns ${n}, so it must return a list of ${n} values; it returned ${Array.isArray(result) ? `a list of ${result.length}` : typeof result}.`);
    }
    const extras: Outcome['extras'] = [];
    for (let i = 1; i < n; i++) extras.push({ id: `${job.id}.${i}`, out: await packResult(ctx, `${job.id}.${i}`, result[i], `${job.fn.name} (return ${i})`) });
    return { ...(await packResult(ctx, job.id, result[0], job.fn.name)), extras };
  } catch (err) {
    const failure = failureOf(err, job.fn.name);
    return { value: failureBytes(failure), chunks: 0, inner: [], failure };
  } finally {
    ctx.current = {};
    ctx.onBlocked = undefined;
  }
}

const taskQueues = new Map<string, TaskQueue>();
const linger = new Linger(process.env.NODUS_ADDRESS!, `nodus:worker-linger:${workerId}`);
/** The agent asked this process to exit: no lingering for more work. */
let exiting = false;
/** The agent asked this lease to end after the task that runs now (see the 'yield' message). */
let yieldLease = false;
/** Tells the agent when a task's function waits in get()/wait(), so that its CPU runs other work meanwhile. */
const reportBlocked = (blocked: boolean) => send({ t: 'blocked', blocked });

/**
 * The connection a worker reports on and completes jobs with. Not auto-pipelined: ioredis holds back an
 * auto-pipeline until the one before it has been answered, while here each report must be on its way
 * before the next task runs (a task that kills its process must not take the reports before it along),
 * and a job's last report must reach Redis before the job's completion, which releases its lock.
 */
let jobConnection: (ObjectCommands & Redis) | undefined;
function reporter(): ObjectCommands & Redis {
  if (!jobConnection) {
    jobConnection = withCommands(connect(process.env.NODUS_ADDRESS!, { blocking: true, name: `nodus:worker-jobs:${workerId}` }));
    jobConnection.on('error', () => undefined);
  }
  return jobConnection;
}

/**
 * A lease from the agent: run its job, then the queue's next ones, each fetched in the same script that
 * completes the one before, until the queue is empty. The agent hears of each task as it starts (to
 * cancel it, or to retry it if this process dies) and of the lease's end.
 */
async function runLease(ctx: CoreContext, lease: Lease): Promise<void> {
  let q = taskQueues.get(lease.queue);
  if (!q) taskQueues.set(lease.queue, (q = new TaskQueue(lease.queue, reporter(), ctx.keys.bullPrefix)));
  const { token } = lease;
  let job: Job<TaskJob> | undefined = q.adopt(lease.job, token);
  yieldLease = false;
  let reason: string | undefined;
  try {
    for (let firstJob = true; job; firstJob = false) {
      const data = job.data;
      const problem = checkJob(data);
      let reports: Promise<number>[] = [];
      if (problem) {
        console.error(`malformed job ${job.id} in ${lease.queue}: ${problem}`);
        if (data && typeof data.id === 'string' && typeof data.caller === 'string') {
          const value = failureBytes({ kind: 'system', task: String(data.fn?.name ?? '?'), name: 'MalformedJob', message: problem });
          reports.push(settleCall(reporter(), ctx.keys, data.id, data.caller, value));
        }
      } else reports = await runJob(ctx, lease.queue, job, token, firstJob);
      // Told before the completion goes out, so that the agent hears it before the caller's next job can
      // arrive (it is sent once the caller has the result): the agent then leaves that job to this lease
      // rather than racing it with a new one. The next task's 'start' ends it when the queue is not dry.
      const mayLinger = !!lease.linger && !yieldLease;
      if (mayLinger) send({ t: 'idle' });
      // Sent together: one round trip completes the last task and the job, and takes the next job.
      const [done, next]: [number[], Job<TaskJob> | undefined] = await Promise.all([Promise.all(reports), q.finish(job, token, !yieldLease)]);
      if (done.includes(-1)) reason = 'a result was dropped: this node lost the job (it was declared dead and the task given to another node)';
      // The queue ran dry: keep the lease a moment for the next job (see linger.ts).
      const wait: boolean = !next && mayLinger && !reason && !yieldLease;
      job = next ?? (wait ? await linger.next(q, token, () => yieldLease || exiting) : undefined);
    }
  } catch (err) {
    reason = `could not finish job ${job?.id}: ${(err as Error).message}`;
  }
  send({ t: 'done', reason });
}

/**
 * Runs a job's task, or a bundle's tasks in order, and sends each one's report as the next one starts.
 * Each report completes the task only while this lease holds the job's lock, and records how far a
 * bundle got, so that after a crash only the tasks not done run again.
 */
async function runJob(ctx: CoreContext, queue: string, job: Job<TaskJob>, token: string, firstJob: boolean): Promise<Promise<number>[]> {
  const tasks = [job.data, ...(job.data.more ?? [])];
  const lock = ctx.keys.jobLock(queue, job.id!);
  const progress = tasks.length > 1 ? ctx.keys.bundleProgress(queue, job.id!) : '';
  // Tasks cancelled while their bundle waited are not run (a cancel cannot take them off the queue).
  const cancelled = tasks.length > 1 ? await ctx.redis.mget(...tasks.map((t) => ctx.keys.cancelMark(t.id))) : [];
  const reports: Promise<number>[] = [];
  for (const [i, t] of tasks.entries()) {
    // The agent knows of the lease's first task already.
    if (!(firstJob && i === 0)) send({ t: 'start', id: t.id, job: job.id!, index: i, owner: t.owner, name: t.fn.name });
    ctx.observer.running(t.id, t.fn.name, nodeId, workerId, job.attemptsMade + (t.retried ?? 0) + 1, job.timestamp);
    const out: Outcome = cancelled[i]
      ? { value: failureBytes(cancelledFailure(t.fn.name)), chunks: 0, inner: [], failure: cancelledFailure(t.fn.name) }
      : await runTask(ctx, t, (t.retried ?? 0) + (i === 0 ? job.attemptsMade : 0));
    ctx.observer.ended(t.id, t.fn.name, nodeId, workerId, out.failure);
    // The other returns first: stored (and their owner told) before the task's own completion ends the job.
    for (const x of out.extras ?? []) {
      const n = encode([Note.Done, x.id, x.out.value]).bytes;
      const r = reporter().nodusComplete(ctx.keys.prefix, x.id, ctx.keys.inbox(t.caller), x.out.value ?? '', n, x.out.chunks, lock, token, '', 0, ...x.out.inner);
      reports.push(r.catch((err) => settleFull(ctx, err, x.out.value, x.id, t.caller, t.fn.name)));
    }
    const note = encode([Note.Done, t.id, out.value]).bytes;
    const report = reporter().nodusComplete(ctx.keys.prefix, t.id, ctx.keys.inbox(t.caller), out.value ?? '', note, out.chunks, lock, token, progress, i, ...out.inner);
    reports.push(report.catch((err) => settleFull(ctx, err, out.value, t.id, t.caller, t.fn.name)));
  }
  if (progress) void reporter().del(progress).catch(() => undefined);
  return reports;
}

/**
 * An actor process: constructs the instance, then runs the calls in its mailbox — one at a time, or up
 * to maxConcurrency at once — moving each to the running list as it starts, so a restart knows which
 * calls were under way.
 */
async function runActor(ctx: CoreContext, actorId: string): Promise<void> {
  const key = ctx.keys.actor(actorId);
  const rec = (await ctx.redis.hgetall(key)) as unknown as ActorRecord;
  // What the actor creates outside a call's result lives as long as the actor.
  ctx.ownerId = actorId;
  let instance: Record<string, unknown>;
  try {
    const cls = (await loadFunction({ module: rec.module, key: rec.key, name: rec.cls })) as unknown as new (...a: unknown[]) => Record<string, unknown>;
    instance = new cls(...(await loadArgs(ctx, rec.args ? Buffer.from(rec.args, 'base64') : null, rec.argsRef || null)));
  } catch (err) {
    const f = failureOf(err, rec.cls);
    const cause = actorFailure(`actor ${rec.cls} (${actorId}) is dead: its constructor threw ${f.name}: ${f.message}`, f);
    await ctx.redis.hset(key, 'state', 'dead', 'cause', cause);
    process.exit(0);
  }
  await ctx.redis.hset(key, 'state', 'alive', 'node', nodeId, 'pid', String(process.pid), 'proc', workerId);
  const mbox = ctx.keys.mailbox(actorId);
  const runList = ctx.keys.running(actorId);
  const limit = Math.max(1, Number(rec.maxConcurrency) || 1);
  const retryOn = { on: rec.retryExceptions ? (JSON.parse(rec.retryExceptions) as true | string[]) : undefined, max: Number(rec.maxTaskRetries || 0) };
  const blocking = connect(process.env.NODUS_ADDRESS!, { blocking: true, name: `nodus:actor:${actorId}` });
  // Not auto-pipelined: a "started" mark is written to the socket before the method runs, so it reaches
  // Redis even if the process dies in the method; a call taken just as the process died has no mark.
  // Marks and reports go out on this connection at once, in order (see reporter()).
  const marks = withCommands(connect(process.env.NODUS_ADDRESS!, { blocking: true, name: `nodus:actor-marks:${actorId}` }));
  for (const c of [blocking, marks]) c.on('error', () => undefined);
  const startedKey = ctx.keys.started(actorId);
  let running = 0;
  let wake: (() => void) | undefined;
  // Running-list entries seen while this process was idle (so not its own): settled if still there next time.
  let suspects = new Set<string>();
  const sweepOrphans = async (seen: Set<string>): Promise<Set<string>> => {
    const list = await ctx.redis.lrangeBuffer(runList, 0, -1).catch(() => [] as Buffer[]);
    const orphans = list.filter((b) => seen.has(b.toString('base64')));
    if (orphans.length) {
      const n = await adoptOrphans(marks, ctx.keys, actorId, orphans, Number(rec.maxTaskRetries || 0)).catch(() => 0);
      if (n) console.error(`actor ${rec.cls} (${actorId}): settled ${n} call(s) an earlier process of it had taken and not finished`);
    }
    return new Set(list.filter((b) => !orphans.includes(b)).map((b) => b.toString('base64')));
  };
  // One call at a time (maxConcurrency 1): calls taken from the mailbox and calls that came over the
  // direct channel wait here in the order they were taken, and one runner works through them.
  const queued: { raw: Buffer; reply?: Reply }[] = [];
  let serving = false;
  let nudge: (() => void) | undefined;
  const submit = (raw: Buffer, reply?: Reply) => {
    queued.push({ raw, reply });
    nudge?.();
    if (serving) return;
    serving = true;
    running++;
    void runInOrder().finally(() => {
      serving = false;
      running--;
      wake?.();
    });
  };
  if (limit === 1) await openChannel();
  for (;;) {
    if (running >= limit) {
      await new Promise<void>((r) => (wake = r));
      continue;
    }
    // Idle: block until a call comes. Busy below the limit: look briefly, so new calls still start.
    const raw = await blocking.blmoveBuffer(mbox, runList, 'LEFT', 'RIGHT', running ? 0.05 : 2).catch(() => null);
    if (!raw) {
      if (!running) suspects = await sweepOrphans(suspects);
      continue;
    }
    if (limit === 1) submit(raw);
    else {
      running++;
      void runOne(raw).finally(() => {
        running--;
        wake?.();
      });
    }
  }

  /**
   * Takes calls over a direct channel (workers/actor-channel.ts) and says where in the actor's record.
   * Each call is made durable before it runs: actor-take puts it in the running list with its result
   * object, on the connection its started mark and report follow, so a restart or the orphan sweep
   * handles it like a call from the mailbox. Without a channel (no address to listen on), callers use
   * the mailbox only.
   */
  async function openChannel(): Promise<void> {
    const host = (ctx.redis as unknown as { stream?: { localAddress?: string } }).stream?.localAddress;
    if (!host) return;
    const server = new ActorChannelServer((raw, reply) => {
      let call: ActorCall;
      try {
        call = decode<ActorCall>(raw);
      } catch {
        return;
      }
      // Its started mark is set by actor-take too: begin() leaves it out for a call with a reply.
      void marks.nodusActorTake(ctx.keys.prefix, actorId, raw, call[0], call[5], call[4]).catch(() => undefined);
      submit(raw, reply);
    });
    try {
      await ctx.redis.hset(key, 'chan', await server.listen(host));
    } catch (err) {
      server.close();
      console.error(`actor ${rec.cls} (${actorId}): no direct channel (${(err as Error).message}); callers use its mailbox`);
    }
  }

  /** Marks a call as begun (before it runs: a restart then knows it may have had effects) and runs it. */
  function begin(call: Buffer, fetch: number, reply?: Reply): Promise<Reported> {
    if (!reply) void marks.hset(startedKey, decode<ActorCall>(call)[0], '1').catch(() => undefined);
    return handleCall(ctx, marks, actorId, rec.cls, instance, call, fetch, retryOn, reply);
  }

  async function runOne(call: Buffer): Promise<void> {
    await (await begin(call, 0)).taken;
  }

  /**
   * One call at a time, in the order taken, without waiting for Redis between calls: a call's report goes
   * out as the next call starts, and while few calls are at hand a report also takes up to FETCH more.
   */
  async function runInOrder(): Promise<void> {
    let fetching: Promise<void> | undefined;
    for (;;) {
      const next = queued.shift();
      if (!next) {
        if (!fetching) return;
        // The calls a report takes, or a direct call, whichever comes first: a direct call must not
        // wait for the report of the call before it.
        await Promise.race([fetching, new Promise<void>((r) => (nudge = r))]);
        nudge = undefined;
        continue;
      }
      const fetch = !fetching && queued.length < FETCH / 4 ? FETCH : 0;
      const { taken } = await begin(next.raw, fetch, next.reply);
      if (fetch) {
        fetching = taken
          .then((calls) => void queued.push(...calls.map((raw) => ({ raw }))))
          .catch((err) => console.error(`actor ${actorId}: could not report a call:`, err))
          .finally(() => (fetching = undefined));
      } else void taken.catch((err) => console.error(`actor ${actorId}: could not report a call:`, err));
    }
  }
}

/** Calls an actor process takes at a time when they queue up. */
const FETCH = 16;

/** A call's report, on its way: it resolves to the calls it took from the mailbox. */
interface Reported {
  taken: Promise<Buffer[]>;
}

/** Runs one call, then sends its report (which, with `fetch`, also takes up to that many next calls); does not wait for Redis. */
async function handleCall(
  ctx: CoreContext,
  reports: ObjectCommands,
  actorId: string,
  cls: string,
  instance: Record<string, unknown>,
  raw: Buffer,
  fetch: number,
  retry: { on: true | string[] | undefined; max: number },
  reply?: Reply,
): Promise<Reported> {
  const [id, method, argsBytes, argsRef, caller, owner, generator, tries] = decode<ActorCall>(raw);
  const name = `${cls}.${method}`;
  let out: { value: Buffer | null; chunks: number; inner: string[] };
  ctx.current = { taskId: id, nodeId };
  try {
    const fn = instance[method];
    if (typeof fn !== 'function') throw new NodusError(`actor ${cls} has no method '${method}'.`);
    const args = await loadArgs(ctx, argsBytes ? Buffer.from(argsBytes) : null, argsRef);
    let result: unknown;
    // A method that throws runs again while retryExceptions names the error and maxTaskRetries allows.
    for (let n = 1; ; n++) {
      try {
        result = fn.apply(instance, args);
        if (generator) {
          if (!isAsyncIterator(result)) throw new NodusError(`${name} was called as a generator but returned no async iterator.`);
          result = await produce(ctx, result, { streamId: id, consumer: caller, owner, name });
        }
        result = await result;
        break;
      } catch (err) {
        if (generator || err instanceof NodusError || tries + n > retry.max || !shouldRetry(err, retry.on)) throw err;
        console.error(retryLine(name, err, tries + n, retry.max));
      }
    }
    out = await packResult(ctx, id, result, name);
  } catch (err) {
    out = { value: failureBytes(failureOf(err, name)), chunks: 0, inner: [] };
  }
  const note = encode([Note.Done, id, out.value]).bytes;
  const report = (value: Buffer | '', note: Buffer, chunks: number, inner: string[], reserved: boolean) =>
    (reserved ? reports.nodusActorDoneReservedBuffer : reports.nodusActorDoneBuffer).call(reports, ctx.keys.prefix, actorId, raw, id, ctx.keys.inbox(caller), value, note, chunks, fetch, workerId, ...inner);
  const taken = report(out.value ?? '', note, out.chunks, out.inner, false).catch((err) => {
    // Redis out of memory refused the result: the call ends with ObjectStoreFullError (see settleFull).
    const bytes = fullFailure(err, out.value, name);
    return report(bytes, encode([Note.Done, id, bytes]).bytes, 0, [], true);
  });
  // A call that came over the direct channel gets its result back the same way, as its report leaves
  // for Redis (which keeps the durable record, and tells the caller's inbox too: a copy it ignores). A
  // stored (large) result is read from Redis once that report has landed, so it goes by the inbox only.
  if (reply && out.value) reply(encode([id, out.value]).bytes);
  return { taken };
}

/**
 * A task's report that Redis refused for lack of memory: the task ends with ObjectStoreFullError, on a
 * write that gets through (settleCall), so its caller is told rather than left waiting. Without the job
 * lock: by then this lease has completed the job, which released it.
 */
function settleFull(ctx: CoreContext, err: unknown, value: Buffer | null, id: string, caller: string, task: string): Promise<number> {
  return settleCall(reporter(), ctx.keys, id, caller, fullFailure(err, value, task));
}

/** The ObjectStoreFullError failure of a report that Redis refused for lack of memory; other errors are thrown again. */
function fullFailure(err: unknown, value: Buffer | null, task: string): Buffer {
  const full = storeError(err, value?.length ?? 0);
  if (!(full instanceof ObjectStoreFullError)) throw err;
  return failureBytes(failureOf(full, task));
}

/** What this process's tasks submit inherits its runtime env (as in Ray), working dir included. */
async function main(): Promise<void> {
  const ctx = await CoreContext.connect({
    address: process.env.NODUS_ADDRESS!,
    keys: new Keys(process.env.NODUS_NAMESPACE || undefined),
    role: 'worker',
    procId: workerId,
    logToDriver: false,
    inheritedEnv: inheritedEnv(),
  });
  setContext(ctx);
  const actorId = process.env.NODUS_ACTOR_ID;
  if (actorId) {
    process.on('disconnect', () => process.exit(0));
    send({ t: 'ready', pid: process.pid });
    await runActor(ctx, actorId);
    return;
  }
  let queue = Promise.resolve();
  process.on('message', (m: AgentToWorker) => {
    if (m.t === 'lease') queue = queue.then(() => runLease(ctx, m.lease));
    else if (m.t === 'yield') yieldLease = true;
    else if (m.t === 'exit') {
      exiting = true;
      linger.close();
      void ctx.shutdown().finally(() => process.exit(0));
    }
  });
  // The agent is gone (killed): nothing more to do here.
  process.on('disconnect', () => process.exit(0));
  send({ t: 'ready', pid: process.pid });
}

main().catch((err) => {
  console.error(`worker ${workerId} failed to start:`, err);
  process.exit(1);
});
