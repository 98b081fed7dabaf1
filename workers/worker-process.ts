/** @module A worker process: imports the module that defines a remote function (TypeScript too) and runs its tasks one at a time. */
import { pathToFileURL } from 'node:url';
import { NodusError, TaskError, toFailure, type SerializedFailure } from '../runtime/errors';
import { CoreContext } from '../runtime/internal/context';
import { setContext } from '../runtime/internal/global';
import { failureBytes, toStoredForm, writeChunks } from '../runtime/internal/object-store';
import { decode, encode } from '../runtime/internal/serialization';
import { isObjectRef } from '../runtime/object-ref';
import { INLINE_RESULT_BYTES, Keys, type FunctionDescriptor, type TaskJob } from '../runtime/protocol';
import { lookupRemote } from '../runtime/remote';
import type { AgentToWorker, WorkerToAgent } from './ipc';

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

async function loadFunction(fn: FunctionDescriptor): Promise<(...args: unknown[]) => unknown> {
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
        'Remote functions are found by their module: it must exist at the same path on every node.',
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
    const kind = err.code === 'WORKER_CRASHED' ? 'crash' : err.code === 'TASK_CANCELLED' ? 'cancelled' : err.code === 'OBJECT_LOST' ? 'lost' : 'system';
    return { ...toFailure(err, kind, task), kind };
  }
  return toFailure(err, 'task', task);
}

async function run(ctx: CoreContext, job: TaskJob): Promise<void> {
  ctx.ownerId = job.owner;
  ctx.current = { taskId: job.id, nodeId };
  let value: Buffer | null;
  let chunks = 0;
  let inner: string[];
  try {
    const fn = await loadFunction(job.fn);
    let args: unknown[] = job.args !== null ? decode<unknown[]>(Buffer.from(job.args, 'base64')) : ((await ctx.get(ctx.refFromWire(job.argsRef!), undefined)) as unknown[]);
    // Top-level refs arrive as their values; nested ones stay refs.
    if (args.some(isObjectRef)) args = await Promise.all(args.map((a) => (isObjectRef(a) ? ctx.get(a, undefined) : a)));
    const result = await fn(...args);
    const enc = encode(result, `return value of ${job.fn.name}`);
    inner = enc.refs;
    const form = toStoredForm(enc.bytes);
    if (form.chunks.length || form.head.length > INLINE_RESULT_BYTES) {
      // Large results go straight to the object store; the agent only reports completion.
      await writeChunks(ctx.redis, ctx.keys, job.id, form.chunks);
      await ctx.redis.set(ctx.keys.value(job.id), form.head);
      chunks = form.chunks.length;
      value = null;
    } else {
      value = form.head;
    }
  } catch (err) {
    value = failureBytes(failureOf(err, job.fn.name));
    inner = [];
  } finally {
    ctx.current = {};
  }
  send({ t: 'done', id: job.id, value, chunks, inner });
}

async function main(): Promise<void> {
  const ctx = await CoreContext.connect({
    address: process.env.NODUS_ADDRESS!,
    keys: new Keys(process.env.NODUS_NAMESPACE || undefined),
    role: 'worker',
    procId: workerId,
    logToDriver: false,
  });
  setContext(ctx);
  let queue = Promise.resolve();
  process.on('message', (m: AgentToWorker) => {
    if (m.t === 'run') queue = queue.then(() => run(ctx, m.job));
    else if (m.t === 'exit') void ctx.shutdown().finally(() => process.exit(0));
  });
  // The agent is gone (killed): nothing more to do here.
  process.on('disconnect', () => process.exit(0));
  send({ t: 'ready', pid: process.pid });
}

main().catch((err) => {
  console.error(`worker ${workerId} failed to start:`, err);
  process.exit(1);
});
