/**
 * @module task() and step(): a task is a typed function with zod schemas for its parameters and results and the
 * resources it runs with; a step is a named part of it whose start, end, error and output are recorded in the run.
 * Nothing here touches the cluster, so a task module stays cheap to import (the CLI reads its schemas, workers run it).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { z } from 'zod';
import { ConfigError } from '../runtime/errors';
import { rejectUnknownKeys, resolveRemoteOptions } from '../runtime/options';
import type { Resources } from '../runtime/protocol';

/** What a task runs with: CPUs, GPUs and custom resources, as remote functions take them. */
export interface TaskResources {
  /** @default 1 */
  numCpus?: number;
  /** A task with GPUs runs only on a node that has them free, and waits while none has. @default 0 */
  numGpus?: number;
  /** Custom resources a node must have declared, e.g. `{ accel: 1 }`. @default {} */
  resources?: Resources;
}

/** Options of {@link task}. */
export interface TaskOptions<P extends z.ZodType, R extends z.ZodType> {
  /** Shown everywhere; its slug (`Hello World` → `hello-world`) names the task in URLs and the CLI. */
  name: string;
  /** @default '' */
  description?: string;
  /** A zod schema of the parameters; the function gets what it parses to. @default z.object({}) */
  parameters: P;
  /** A zod schema the function's return value must match; a run whose result does not fails, saying where. */
  results: R;
  /** @default { numCpus: 1 } */
  resources?: TaskResources;
  /** Registered with the task; a new version keeps the runs of the old one readable. @default '1.0.0' */
  version?: string;
  /** A run (each attempt) that runs longer fails with reason `timeout` and its worker process is stopped. @default 3600000 (1 h) */
  timeoutMs?: number;
  /** How many times a run whose worker process died runs again (its steps from the start). @default 3 */
  retries?: number;
}

/** Options of {@link step}. */
export interface StepOptions {
  name: string;
  /** @default '' */
  description?: string;
}

export interface ResolvedTaskOptions {
  name: string;
  slug: string;
  description: string;
  version: string;
  resources: Required<TaskResources>;
  timeoutMs: number;
  retries: number;
}

/** The function of a task: the parsed parameters in, something the results schema accepts out. */
export type TaskFunction<P extends z.ZodType, R extends z.ZodType> = (parameters: z.output<P>) => z.input<R> | Promise<z.input<R>>;

const TASK = Symbol.for('nodus.task');

/**
 * A task, as `task()` returns it: its resolved options, schemas and function. Export it from a module; `nodus tasks
 * register` finds it there and workers import the module to run it.
 */
export interface Task<P extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType> extends ResolvedTaskOptions {
  readonly parameters: P;
  readonly results: R;
  readonly fn: TaskFunction<P, R>;
  readonly [TASK]: true;
}

const TASK_OPTIONS = ['name', 'description', 'parameters', 'results', 'resources', 'version', 'timeoutMs', 'retries'] as const;
const RESOURCE_OPTIONS = ['numCpus', 'numGpus', 'resources'] as const;
const STEP_OPTIONS = ['name', 'description'] as const;
const DEFAULT_TIMEOUT_MS = 3600_000;

/** `Hello World` → `hello-world`: lower case, runs of anything but letters and digits become one dash. */
export function slugify(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function isSchema(v: unknown): v is z.ZodType {
  return !!v && typeof v === 'object' && typeof (v as z.ZodType).safeParse === 'function' && '_zod' in v;
}

function text(what: string, v: unknown, dflt?: string): string {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || (dflt === undefined && !v.trim())) throw new ConfigError(`${what} must be a ${dflt === undefined ? 'non-empty ' : ''}string, got ${JSON.stringify(v)}.`);
  return v;
}

/** Checks task() options and applies defaults; throws ConfigError naming the valid options on a typo. */
export function resolveTaskOptions(o: TaskOptions<z.ZodType, z.ZodType>): ResolvedTaskOptions {
  if (!o || typeof o !== 'object') throw new ConfigError('task(options, fn): options must be an object with name, parameters and results.');
  rejectUnknownKeys('task', o, TASK_OPTIONS);
  const name = text('task name', o.name);
  const slug = slugify(name);
  if (!slug) throw new ConfigError(`task name ${JSON.stringify(name)} has no letters or digits to make its slug from; name it in words.`);
  for (const key of ['parameters', 'results'] as const) {
    if (!isSchema(o[key])) throw new ConfigError(`task ${name}: ${key} must be a zod schema, e.g. z.object({ ... }).`);
  }
  const r = o.resources ?? {};
  if (typeof r !== 'object' || r === null) throw new ConfigError(`task ${name}: resources must be an object like { numCpus: 1, numGpus: 1, resources: { accel: 1 } }.`);
  rejectUnknownKeys('task resources', r, RESOURCE_OPTIONS);
  // The runtime's own checks: the same rules and messages as remote().
  const { demand } = resolveRemoteOptions({ numCpus: r.numCpus, numGpus: r.numGpus, resources: r.resources });
  const { CPU, GPU, ...custom } = demand;
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new ConfigError(`task ${name}: timeoutMs must be a whole number of milliseconds > 0, got ${JSON.stringify(o.timeoutMs)}.`);
  const retries = o.retries ?? 3;
  if (!Number.isInteger(retries) || retries < 0) throw new ConfigError(`task ${name}: retries must be a whole number >= 0, got ${JSON.stringify(o.retries)}.`);
  return {
    name,
    slug,
    description: text(`task ${name}: description`, o.description, ''),
    version: text(`task ${name}: version`, o.version, '1.0.0') || '1.0.0',
    resources: { numCpus: CPU, numGpus: GPU ?? 0, resources: custom },
    timeoutMs,
    retries,
  };
}

/**
 * Defines a task. Types flow: `fn` gets what `parameters` parses to and must return what `results` accepts.
 *
 * @example
 * export const helloWorld = task(
 *   { name: 'Hello World', description: 'A hello world task', parameters: z.object({ name: z.string() }), results: z.object({ message: z.string() }) },
 *   async (p) => ({ message: await sayHello(p.name) }),
 * );
 */
export function task<P extends z.ZodType, R extends z.ZodType>(options: TaskOptions<P, R>, fn: TaskFunction<P, R>): Task<P, R> {
  const resolved = resolveTaskOptions(options);
  if (typeof fn !== 'function') throw new ConfigError(`task ${resolved.name}: the second argument must be the task's function, (parameters) => results.`);
  return Object.freeze({ ...resolved, parameters: options.parameters, results: options.results, fn, [TASK]: true as const });
}

/** True for what task() returns, from any copy of this package. */
export function isTask(value: unknown): value is Task {
  return !!value && typeof value === 'object' && (value as { [TASK]?: unknown })[TASK] === true;
}

/** What a run's worker lends its steps: how to record a step, and the step running now (for its output). */
export interface RunScope {
  begin(step: { name: string; description: string }): StepRecorder;
  /** The step whose code is running in this async context. */
  current?: StepRecorder;
}

export interface StepRecorder {
  /** Output the step printed (the worker's stdout/stderr while it ran in this context). */
  output(text: string): void;
  end(error?: unknown): void;
}

const SCOPE = Symbol.for('nodus.tasks.scope');

/** The run scope's storage, one per process whichever copy of the package asks (a task module may load another). */
export function runScopes(): AsyncLocalStorage<RunScope> {
  const g = globalThis as { [SCOPE]?: AsyncLocalStorage<RunScope> };
  return (g[SCOPE] ??= new AsyncLocalStorage<RunScope>());
}

/**
 * Defines a step: calling it runs `fn` (sync or async) and, inside a run, records its start, end, duration, what it
 * printed and its error in the run's events. A step that throws fails the run, naming the step. Outside a run it just
 * runs `fn`.
 *
 * @example
 * const sayHello = step({ name: 'Say Hello', description: 'Print a hello message' }, (name: string) => `Hello, ${name}!`);
 * await sayHello('Ada');   // 'Hello, Ada!'
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function step<A extends any[], T>(options: StepOptions, fn: (...args: A) => T): (...args: A) => Promise<Awaited<T>> {
  if (!options || typeof options !== 'object') throw new ConfigError('step(options, fn): options must be { name, description }.');
  rejectUnknownKeys('step', options, STEP_OPTIONS);
  const meta = { name: text('step name', options.name), description: text(`step ${options.name}: description`, options.description, '') };
  if (typeof fn !== 'function') throw new ConfigError(`step ${meta.name}: the second argument must be the step's function.`);
  const scopes = runScopes();
  const run = async (...args: A): Promise<Awaited<T>> => {
    const scope = scopes.getStore();
    if (!scope) return await fn(...args);
    const rec = scope.begin(meta);
    try {
      const value = await scopes.run({ ...scope, current: rec }, () => fn(...args));
      rec.end();
      return value;
    } catch (err) {
      rec.end(err ?? new Error('the step threw a nullish value'));
      throw err;
    }
  };
  Object.defineProperty(run, 'name', { value: meta.name });
  return run;
}
