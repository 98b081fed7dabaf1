/**
 * @module Registered tasks: finding them in modules (a file, or every task module under a folder), describing them
 * (JSON Schemas made by zod's own z.toJSONSchema), keeping them in Redis so that any gateway answers discovery, and
 * checking parameters against the registered schema without loading the task's code.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ConfigError } from '../runtime/errors';
import type { ServiceKeys } from '../runtime/protocol/services';
import { isTask, slugify, type Task } from './define';
import { TASKS_PROTOCOL_VERSION, TaskKeys, type TaskRecord } from './protocol';

/** Files a folder is searched for: `task.ts`, `tasks.ts`, `*.task.ts` (and their .js/.mts/... forms). */
const TASK_FILE = /^(?:tasks?|.+\.task)\.(?:ts|mts|cts|js|mjs|cjs)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git']);

/** A task found in a module, with where it lives. */
export interface FoundTask {
  task: Task;
  module: string;
  exportName: string;
}

/** The task module files under `target`: itself when it is a file, else the task files under it (searched recursively). */
export function taskModuleFiles(target: string): string[] {
  const path = resolve(target);
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new ConfigError(`No file or folder ${path}. Give a task module (e.g. services/hello_world/task.ts) or a folder of them.`);
  }
  if (stat.isFile()) return [path];
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.isDirectory() && !SKIP_DIRS.has(entry.name) && !entry.name.startsWith('.')) walk(join(dir, entry.name));
      else if (entry.isFile() && TASK_FILE.test(entry.name) && !entry.name.endsWith('.d.ts')) found.push(join(dir, entry.name));
    }
  };
  walk(path);
  if (!found.length) throw new ConfigError(`No task modules under ${path}: a folder is searched for task.ts, tasks.ts and *.task.ts files. Name one that way, or give the file itself.`);
  return found;
}

/**
 * Imports task modules (TypeScript, CommonJS or ESM, through tsx, as workers load them) and returns the tasks they export.
 * Throws when a module does not load, exports no task, or two tasks share a slug.
 *
 * @example
 * const found = await findTasks('services');   // every task.ts under services/
 */
export async function findTasks(target: string): Promise<FoundTask[]> {
  const found: FoundTask[] = [];
  for (const file of taskModuleFiles(target)) {
    let mod: Record<string, unknown>;
    try {
      mod = await importTaskModule(file);
    } catch (err) {
      throw new ConfigError(`Could not load ${file}: ${(err as Error).message}`, { cause: err });
    }
    // CommonJS modules imported as ESM keep their exports under default as well; a task counts once.
    const exports = { ...((mod.default && typeof mod.default === 'object' ? mod.default : {}) as Record<string, unknown>), ...mod };
    const tasks = Object.entries(exports).filter(([k, v]) => k !== 'default' && isTask(v)) as [string, Task][];
    if (!tasks.length) throw new ConfigError(`${file} exports no task. Export what task() returns: export const ${basename(file).split('.')[0]} = task({ name, parameters, results }, fn).`);
    for (const [exportName, task] of tasks) {
      const same = found.find((f) => f.task.slug === task.slug);
      if (same) throw new ConfigError(`Two tasks have the slug '${task.slug}': ${same.exportName} in ${same.module} and ${exportName} in ${file}. Rename one.`);
      found.push({ task, module: file, exportName });
    }
  }
  return found;
}

/**
 * Loads a module as workers do (tsx: TypeScript, CommonJS or ESM). CommonJS goes through tsx's require hook rather than
 * its namespaced import: that one loads packages this process already has (ioredis) a second time, which some refuse.
 */
async function importTaskModule(file: string): Promise<Record<string, unknown>> {
  if (/\.m[jt]s$/.test(file)) {
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(pathToFileURL(file).href, { parentURL: pathToFileURL(__filename).href })) as Record<string, unknown>;
  }
  const { register } = await import('tsx/cjs/api');
  const unregister = register();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as Record<string, unknown>;
  } finally {
    unregister();
  }
}

/**
 * The record kept in Redis for a task: its options, and JSON Schemas of what a client sends and gets back.
 *
 * @example
 * await registerTasks(redis, keys, (await findTasks('services/hello_world')).map((f) => describeTask(f)));
 */
export function describeTask(f: FoundTask, now = Date.now()): TaskRecord {
  const { task } = f;
  return {
    v: TASKS_PROTOCOL_VERSION,
    slug: task.slug,
    name: task.name,
    description: task.description,
    version: task.version,
    // Parameters as sent (defaults make fields optional); results as returned. Types JSON cannot say become {}.
    parameters: z.toJSONSchema(task.parameters, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>,
    results: z.toJSONSchema(task.results, { io: 'output', unrepresentable: 'any' }) as Record<string, unknown>,
    resources: task.resources,
    timeoutMs: task.timeoutMs,
    retries: task.retries,
    module: f.module,
    exportName: f.exportName,
    registeredAt: now,
  };
}

/**
 * Stores tasks: each becomes the current one of its slug, and its version is added to the slug's history.
 *
 * @example
 * await registerTasks(redis, keys, [describeTask(found)]);
 */
export async function registerTasks(redis: Redis, keys: ServiceKeys, records: TaskRecord[]): Promise<void> {
  const tk = new TaskKeys(keys);
  const multi = redis.multi();
  for (const r of records) multi.hset(tk.tasks, r.slug, JSON.stringify(r)).hset(tk.versions(r.slug), r.version, JSON.stringify(r));
  await multi.exec();
}

/** Every registered task (the current version of each), by name. */
export async function listTasks(redis: Redis, keys: ServiceKeys): Promise<TaskRecord[]> {
  const all = Object.values(await redis.hgetall(new TaskKeys(keys).tasks)).map((s) => JSON.parse(s) as TaskRecord);
  return all.sort((a, b) => a.name.localeCompare(b.name));
}

/** The task with this slug, or with this name (any case); a ConfigError listing the registered ones otherwise. */
export async function findTask(redis: Redis, keys: ServiceKeys, slugOrName: string): Promise<TaskRecord> {
  const tk = new TaskKeys(keys);
  const raw = (await redis.hget(tk.tasks, slugOrName)) ?? (await redis.hget(tk.tasks, slugify(slugOrName)));
  if (raw) return JSON.parse(raw) as TaskRecord;
  const known = await redis.hkeys(tk.tasks);
  throw new TaskNotFoundError(
    `No task '${slugOrName}' is registered. ${known.length ? `Registered: ${known.sort().join(', ')}.` : 'None is.'} Register one with \`nodus tasks register path/to/task.ts\`.`,
  );
}

/** A task that is not registered (the gateway answers 404). */
export class TaskNotFoundError extends ConfigError {}

/** Every version of a task ever registered, oldest first. */
export async function taskVersions(redis: Redis, keys: ServiceKeys, slug: string): Promise<string[]> {
  const all = Object.values(await redis.hgetall(new TaskKeys(keys).versions(slug))).map((s) => JSON.parse(s) as TaskRecord);
  return all.sort((a, b) => a.registeredAt - b.registeredAt).map((r) => r.version);
}

/** Per-field messages (`_global_` for the whole), as ServeAPI answers a form's errors. */
export type FieldErrors = Record<string, string[]>;

/** zod issues as per-field messages; a union's says what each branch expected ("expected string or null"). */
export function fieldErrors(issues: readonly z.core.$ZodIssue[], prefix: (string | number)[] = []): FieldErrors {
  const out: FieldErrors = {};
  for (const issue of issues) {
    const field = [...prefix, ...issue.path].map(String).join('.') || '_global_';
    let message = issue.message;
    if (issue.code === 'invalid_union' && issue.errors.length) {
      const expected = [...new Set(issue.errors.flatMap((branch) => branch.filter((i) => i.code === 'invalid_type' && !i.path.length).map((i) => (i as { expected: string }).expected)))];
      if (expected.length === issue.errors.length) message = `Invalid input: expected ${expected.join(' or ')}`;
    }
    (out[field] ??= []).push(message);
  }
  return out;
}

/** One line of per-field messages, for errors that are not JSON. */
export function describeFieldErrors(errors: FieldErrors): string {
  return Object.entries(errors)
    .map(([field, messages]) => `${field}: ${messages.join('; ')}`)
    .join('; ');
}

/** A POST's parameters that do not match the task's schema: the gateway answers 422 with `errors`. */
export class ParametersError extends ConfigError {
  constructor(
    readonly task: string,
    readonly errors: FieldErrors,
  ) {
    super(`The parameters of ${task} do not match its schema: ${describeFieldErrors(errors)}.`);
  }
}

const compiled = new Map<string, z.ZodType>();

/**
 * Checks parameters against the registered JSON Schema (zod's z.fromJSONSchema: the gateway never loads a task's code)
 * and applies its defaults. The worker checks them again with the task's own schema, which may say more.
 *
 * @example
 * validateParameters(await findTask(redis, keys, 'hello-world'), {});   // { name: null }; { name: 42 } throws ParametersError
 */
export function validateParameters(record: TaskRecord, parameters: unknown): Record<string, unknown> {
  const id = `${record.slug}@${record.version}@${record.registeredAt}`;
  let schema = compiled.get(id);
  if (!schema) {
    schema = z.fromJSONSchema(record.parameters as z.core.JSONSchema.JSONSchema);
    compiled.set(id, schema);
  }
  const r = schema.safeParse(parameters ?? {});
  if (!r.success) throw new ParametersError(record.name, fieldErrors(r.error.issues));
  return r.data as Record<string, unknown>;
}
