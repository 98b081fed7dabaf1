/** @module Launch: an entry point's handler starts an execution — a detached runner actor on the cluster — and answers at once. */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError, get } from '../runtime';
import { RUNNER_NAMESPACE, flowUid, type LaunchBody } from '../runtime/protocol/services';
import type { EnterRequest } from './api';
import { serviceLink } from './cluster';
import { RunnerActor } from './runner';
import { createExecution, setStatus } from './store';
import type { Tracer } from './tracer';

/** An entrypoint: `execute(inputs, tracer)`, sync or async; its return value is the execution's final result. */
export type Entrypoint<I = never> = (inputs: I, tracer: Tracer) => unknown;

/** A new execution's id: time-ordered (newest sorts last), unique. */
function newFid(): string {
  return `${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
}

const EXTENSIONS = ['', '.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '/index.ts', '/index.js'];

/** The module file of `spec`: a path (relative to the working folder) or kodosumi's dotted form (`my_service.calc`). */
function moduleFile(spec: string): string | undefined {
  const candidates = [spec, ...(!spec.includes('/') && spec.includes('.') ? [spec.replace(/\./g, '/')] : [])];
  for (const c of candidates) {
    const base = isAbsolute(c) ? c : resolve(process.cwd(), c);
    for (const ext of EXTENSIONS) {
      const f = base + ext;
      if (existsSync(f) && statSync(f).isFile()) return f;
    }
  }
  return undefined;
}

/** `module:export` with the module as an absolute path, for the runner (which may run on another node). */
function resolveEntry(entry: string | Entrypoint<never>): string {
  if (typeof entry === 'function') {
    // A function is found by the module that exports it, as remote functions are.
    for (const m of Object.values(require.cache)) {
      const exp = m?.exports as Record<string, unknown> | undefined;
      if (!exp || (typeof exp !== 'object' && typeof exp !== 'function')) continue;
      for (const [key, value] of Object.entries(exp)) if (value === entry) return `${m!.filename}:${key}`;
    }
    throw new ConfigError(`Launch(request, ${entry.name || 'fn'}): the entrypoint must be exported from a module (workers import it there); export it, or pass 'path/to/module:${entry.name || 'execute'}'.`);
  }
  if (typeof entry !== 'string' || !entry) throw new ConfigError("Launch(request, entry, inputs): entry is 'path/to/module:function' or the exported function itself.");
  const at = entry.lastIndexOf(':');
  const [spec, name] = at > 0 ? [entry.slice(0, at), entry.slice(at + 1)] : [entry, 'execute'];
  const file = moduleFile(spec);
  if (!file) throw new ConfigError(`Launch: no module ${spec} (looked in ${process.cwd()} with ${EXTENSIONS.filter(Boolean).join(', ')}). Give a path relative to the folder the service runs in, e.g. 'services/my_service/calc:execute'.`);
  return `${file}:${name}`;
}

/**
 * Starts an execution of `entry` with `inputs` on the cluster and returns at once with its id (`fid`) and where to
 * follow it. The owner is the user the gateway vouched for. The entrypoint runs in a runner actor of its own:
 * what it returns is the final result, what it throws ends the execution with status `error`.
 *
 * @example
 * app.enter({ path: '/', model, summary: 'My Service' }, async (request, inputs) =>
 *   Launch(request, 'services/my_service/calc:execute', { tasks: Number(inputs.tasks) }));
 */
export async function Launch<I>(request: EnterRequest, entry: string | Entrypoint<I>, inputs: I): Promise<LaunchBody> {
  const resolved = resolveEntry(entry as string | Entrypoint<never>);
  const { redis, keys } = await serviceLink();
  const fid = newFid();
  await createExecution(redis, keys, {
    fid,
    owner: request.user?.user ?? 'anonymous',
    flow: flowUid(request.baseUrl, request.entry.route),
    summary: request.entry.meta.summary,
    entry: resolved,
    inputs,
    service: request.baseUrl,
  });
  const runner = RunnerActor.options({ name: fid, namespace: RUNNER_NAMESPACE, lifetime: 'detached' }).remote();
  // Whoever launched it watches it while it lives: a runner whose process dies ends the execution with status error.
  get(runner.run.remote(fid, resolved, inputs)).catch(async (err: Error) => {
    // Killed because a cancel was asked for: that is a cancel, not a failure.
    if (await redis.hget(keys.exec(fid), 'cancelRequested').catch(() => null)) return void (await setStatus(redis, keys, fid, 'cancelled', { message: 'cancelled' }).catch(() => undefined));
    const message = `the runner of this execution died: ${err.message}`;
    await setStatus(redis, keys, fid, 'error', { message, before: [{ kind: 'error', data: { name: err.name, message } }] }).catch(() => undefined);
  });
  return { fid, status: `/outputs/status/${fid}`, stream: `/outputs/stream/${fid}`, main: `/outputs/main/${fid}` };
}
