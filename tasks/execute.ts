/**
 * @module The worker's side of a run: a remote task that imports the task's module, runs the task with its steps
 * recorded, checks the results against their schema and ends the run in Redis itself, so that a finished run is
 * recorded even when nobody watches it any more.
 */
import { pathToFileURL } from 'node:url';
import type { Redis } from 'ioredis';
import { remote } from '../runtime';
import { ConfigError } from '../runtime/errors';
import { isFinal, type ExecStatus, type ServiceKeys } from '../runtime/protocol/services';
import { serviceLink } from '../serve/cluster';
import { retentionMs, setStatus, toJSONText } from '../serve/store';
import { EventWriter } from '../serve/tracer';
import { isTask, runScopes, type RunScope, type Task } from './define';
import { failRun } from './end';
import { describeFieldErrors, fieldErrors } from './registry';
import { INLINE_RESULTS_BYTES, TaskKeys, type FailReason, type StepEventData, type StoredResultsMarker } from './protocol';

/** What a run's remote task is given: which run, which task (module and export) and the checked parameters. */
export interface RunJob {
  runId: string;
  slug: string;
  version: string;
  module: string;
  exportName: string;
  parameters: unknown;
}

/** A step keeps at most this much of what it printed (the stdout/stderr events keep all of it). */
const STEP_OUTPUT_MAX = 64 * 1024;

/** The task exported as `exportName` by `module`; a ConfigError saying what to do when it is gone. */
async function loadTask(job: RunJob): Promise<Task> {
  const mod = (await import(pathToFileURL(job.module).href)) as Record<string, unknown>;
  const found = mod[job.exportName] ?? (mod.default as Record<string, unknown> | undefined)?.[job.exportName];
  if (!isTask(found) || found.slug !== job.slug) {
    throw new ConfigError(`${job.module} no longer exports the task ${job.slug} as ${job.exportName}; register it again (nodus tasks register ${job.module}).`);
  }
  return found;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err) ?? String(err));
}

/** Tees what this process writes to stdout/stderr into `sink`, as well as where it went before. */
function captureOutput(sink: (stream: 'stdout' | 'stderr', text: string) => void): () => void {
  const saved = { stdout: process.stdout.write, stderr: process.stderr.write };
  for (const name of ['stdout', 'stderr'] as const) {
    const original = saved[name];
    process[name].write = function (this: NodeJS.WriteStream, chunk: string | Uint8Array, ...rest: unknown[]) {
      sink(name, typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof process.stdout.write;
  }
  return () => {
    process.stdout.write = saved.stdout;
    process.stderr.write = saved.stderr;
  };
}

/** One attempt of a run in this worker. */
class Attempt {
  private readonly writer: EventWriter;
  private readonly execKey: string;
  private steps = 0;
  /** Errors thrown by steps, so that the run's failure names the step it came from. */
  private readonly stepOf = new Map<unknown, string>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: ServiceKeys,
    private readonly job: RunJob,
    readonly attempt: number,
  ) {
    this.writer = new EventWriter(redis, keys, job.runId);
    this.execKey = keys.exec(job.runId);
  }

  private event(kind: 'step' | 'stdout' | 'stderr' | 'warning', data: unknown): void {
    // Events go out in order, batched per tick; the end of the run waits for them (flush) before its status.
    this.writer.write({ kind, data }).catch(() => undefined);
  }

  readonly scope: RunScope = {
    begin: (meta) => {
      const index = ++this.steps;
      const t0 = Date.now();
      const base = { index, attempt: this.attempt, name: meta.name, description: meta.description };
      this.event('step', { ...base, phase: 'start', time: t0 } satisfies StepEventData);
      let output = '';
      return {
        output: (text) => {
          if (output.length < STEP_OUTPUT_MAX) output += text.slice(0, STEP_OUTPUT_MAX - output.length);
        },
        end: (error) => {
          const t1 = Date.now();
          const data: StepEventData = { ...base, phase: 'end', time: t1, durationMs: t1 - t0, ...(output ? { output } : {}) };
          if (error !== undefined) {
            const e = asError(error);
            data.error = { name: e.name, message: e.message };
            if (!this.stepOf.has(error)) this.stepOf.set(error, meta.name);
          }
          this.event('step', data);
        },
      };
    },
  };

  /** Captures output, runs the task, ends the run. */
  async run(): Promise<ExecStatus> {
    const restore = captureOutput((stream, text) => {
      this.event(stream, text);
      runScopes().getStore()?.current?.output(text);
    });
    try {
      return await this.runTask();
    } finally {
      restore();
      await this.writer.flush().catch(() => undefined);
    }
  }

  private async runTask(): Promise<ExecStatus> {
    let task: Task;
    try {
      task = await loadTask(this.job);
    } catch (err) {
      return this.fail('error', `Could not load the task: ${asError(err).message}`);
    }
    if (task.version !== this.job.version) {
      this.event('warning', `The module now holds version ${task.version} of ${task.name}, not the registered ${this.job.version}; it runs as it is now. Register it again to record the new version.`);
    }
    // The gateway checked the parameters against the registered JSON Schema; the task's own schema may say more.
    const parsed = task.parameters.safeParse(this.job.parameters);
    if (!parsed.success) return this.fail('parameters', `The parameters do not match the task's schema: ${describeFieldErrors(fieldErrors(parsed.error.issues))}.`);
    let value: unknown;
    try {
      value = await runScopes().run(this.scope, () => task.fn(parsed.data));
    } catch (err) {
      const e = asError(err);
      const step = this.stepOf.get(err);
      const error = { name: e.name, message: e.message, stack: e.stack, ...(step ? { step } : {}) };
      if (step) return this.fail('step', `Step "${step}" failed: ${e.name}: ${e.message}`, error);
      return this.fail('error', `The task failed: ${e.name}: ${e.message}`, error);
    }
    const checked = task.results.safeParse(value);
    if (!checked.success) return this.fail('results', `The results do not match the results schema: ${describeFieldErrors(fieldErrors(checked.error.issues))}.`);
    const text = toJSONText(checked.data);
    const bytes = Buffer.byteLength(text);
    let final: unknown = checked.data;
    if (bytes > INLINE_RESULTS_BYTES) {
      // Large results stay out of the event stream (every reader replays it); they expire with the run.
      await this.redis.multi().set(new TaskKeys(this.keys).results(this.job.runId), text, 'PX', retentionMs()).hset(this.execKey, 'resultsBytes', bytes).exec();
      final = { $stored: 'results', bytes } satisfies StoredResultsMarker;
    }
    await this.writer.flush();
    await setStatus(this.redis, this.keys, this.job.runId, 'finished', { before: [{ kind: 'final', data: final }] });
    return 'finished';
  }

  private async fail(reason: FailReason, message: string, error: Record<string, unknown> = { name: 'RunFailed', message }): Promise<ExecStatus> {
    await this.writer.flush().catch(() => undefined);
    // The stack reaches the run's owner only (the gateway strips it for anyone else).
    await failRun(this.redis, this.keys, this.job.runId, reason, message, error);
    return 'error';
  }
}

/**
 * Runs one attempt of a run. The runner submits it with the task's resources and retries; a worker that dies makes the
 * runtime run it again, which shows as attempt 2 with its steps from the start.
 */
export const executeRun = remote(async function executeRun(job: RunJob): Promise<{ status: ExecStatus | 'gone' }> {
  const { redis, keys } = await serviceLink();
  const execKey = keys.exec(job.runId);
  const status = await redis.hget(execKey, 'status');
  // Cancelled (or timed out) while it waited in the queue, or expired: nothing to do.
  if (!status || isFinal(status)) return { status: (status as ExecStatus | null) ?? 'gone' };
  const attempt = (await redis.multi().hincrby(execKey, 'attempts', 1).hset(execKey, 'attemptAt', Date.now()).exec())?.[0]?.[1] as number;
  const run = new Attempt(redis, keys, job, attempt);
  if (attempt > 1) await new EventWriter(redis, keys, job.runId).write({ kind: 'warning', data: `Attempt ${attempt}: the worker running this run died, so it runs again from its first step.` });
  await setStatus(redis, keys, job.runId, 'running');
  return { status: await run.run() };
});
