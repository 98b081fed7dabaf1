/**
 * @module The app actor: one per registered app, it imports the app's module (its `config.tasks` and `serve`) and runs
 * `serve(request)` for every invocation, many at once. Its unit tasks call the shared model hosts.
 */
import { pathToFileURL } from 'node:url';
import { ConfigError, remote } from '../runtime';
import type { UnitSpec } from './deployments';
import { collectTasks, isTask, type Task } from './task';
import { isUnitTask } from './unit-tasks';

/** What an app module exports (Cornserve's app: `config.tasks` and `serve`). */
export interface AppModule {
  config: { tasks: Record<string, Task> };
  serve(request: unknown): unknown;
}

async function loadApp(source: string): Promise<AppModule> {
  let mod: Partial<AppModule>;
  try {
    const ns = (await import(pathToFileURL(source).href)) as Partial<AppModule> & { default?: Partial<AppModule> };
    // A CommonJS module imported as ESM may show its exports only on `default` (when its named exports cannot be detected).
    mod = ns.serve || !ns.default ? ns : ns.default;
  } catch (err) {
    throw new ConfigError(`The app ${source} could not be loaded: ${(err as Error).message}`, { cause: err });
  }
  if (typeof mod.serve !== 'function') throw new ConfigError(`The app ${source} exports no serve function: export async function serve(request) { ... }.`);
  const tasks = mod.config?.tasks;
  if (!tasks || typeof tasks !== 'object' || !Object.values(tasks).every(isTask)) {
    throw new ConfigError(`The app ${source} must export config = { tasks: { name: new SomeTask(...) } } (every value a Task).`);
  }
  return mod as AppModule;
}

function isAsyncGeneratorFunction(fn: unknown): boolean {
  return typeof fn === 'function' && fn.constructor?.name === 'AsyncGeneratorFunction';
}

export class AppHost {
  private readonly app: Promise<AppModule>;

  constructor(readonly source: string) {
    this.app = loadApp(source);
    this.app.catch(() => undefined);
  }

  /** The unit tasks the app's tasks use (composite tasks initialized on the way), and whether `serve` streams. */
  async describe(): Promise<{ units: UnitSpec[]; streaming: boolean }> {
    const app = await this.app;
    const all = await collectTasks(Object.values(app.config.tasks));
    const units = all.filter(isUnitTask).map((u) => u.spec);
    return { units, streaming: isAsyncGeneratorFunction(app.serve) };
  }

  async invoke(request: unknown): Promise<unknown> {
    const app = await this.app;
    if (isAsyncGeneratorFunction(app.serve)) throw new ConfigError('This app streams (serve is an async generator): invoke it with stream, or through POST /app/invoke (NDJSON).');
    // Wrapped: a result holding refs must reach the caller as refs.
    return { result: await app.serve(request) };
  }

  async *stream(request: unknown): AsyncGenerator<unknown> {
    const app = await this.app;
    const out = app.serve(request);
    if (out && typeof (out as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      for await (const item of out as AsyncIterable<unknown>) yield item;
    } else yield await out;
  }
}

/** Holds no CPU of its own (its work is in the model hosts); many requests at once. */
export const AppHostActor = remote(AppHost, { numCpus: 0, maxConcurrency: 256, maxRestarts: -1, maxTaskRetries: 0 });
