/** @module `nodus tasks`: register task modules, list them, run one (following its steps with --wait), show a run. */
import { relative } from 'node:path';
import type { Command } from 'commander';
import type { Redis } from 'ioredis';
import { NodusError } from '../runtime/errors';
import { init, shutdown } from '../runtime';
import { connect, waitForRedis } from '../runtime/internal/redis';
import { readSession } from '../runtime/internal/session';
import { ServiceKeys, type ExecEvent, type ExecStatus } from '../runtime/protocol/services';
import type { StepEventData, TaskRecord } from '../tasks/protocol';
import { ParametersError, describeTask, findTask, findTasks, listTasks, registerTasks, validateParameters } from '../tasks/registry';
import { followRun, readRun, startRun, type RunView } from '../tasks/runs';

const ADDRESS_HELP = 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)';

function addressOf(given: string | undefined): string {
  const address = given || process.env.NODUS_ADDRESS || readSession()?.address;
  if (!address) throw new NodusError('No cluster found on this machine. Start one with `npx nodus start --head`, or pass --address redis://HOST:PORT (or set NODUS_ADDRESS).');
  return address;
}

/** Runs `fn` with a connection to the cluster's Redis; as a driver of the cluster too when `driver` (runs start actors). */
async function withCluster<T>(given: string | undefined, driver: boolean, fn: (redis: Redis, keys: ServiceKeys) => Promise<T>): Promise<T> {
  const address = addressOf(given);
  const redis = connect(address, { name: 'nodus:cli' });
  redis.on('error', () => undefined);
  try {
    await waitForRedis(redis, address, 5000);
    if (driver) await init({ address, logToDriver: false });
    return await fn(redis, new ServiceKeys(process.env.NODUS_NAMESPACE || undefined));
  } finally {
    if (driver) await shutdown();
    redis.disconnect();
  }
}

function fmtResources(r: TaskRecord['resources']): string {
  const parts = [`${r.numCpus} CPU`, ...(r.numGpus ? [`${r.numGpus} GPU`] : []), ...Object.entries(r.resources).map(([k, v]) => `${v} ${k}`)];
  return parts.join(', ');
}

/**
 * `--param k=v` values, typed by the task's parameter schema: a field that takes strings keeps the text as it is,
 * anything else is read as JSON (numbers, booleans, lists) when it parses.
 */
export function parseParams(task: TaskRecord, pairs: string[], json: string | undefined): Record<string, unknown> {
  let out: Record<string, unknown> = {};
  if (json !== undefined) {
    try {
      out = JSON.parse(json) as Record<string, unknown>;
    } catch (err) {
      throw new NodusError(`--params is not JSON (${(err as Error).message}); quote it, e.g. --params '{"name": "Ada"}'.`);
    }
  }
  const props = (task.parameters.properties ?? {}) as Record<string, { type?: string | string[] }>;
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new NodusError(`--param takes name=value, got '${pair}'. Parameters of ${task.slug}: ${Object.keys(props).join(', ') || 'none'}.`);
    const [key, text] = [pair.slice(0, at), pair.slice(at + 1)];
    const types = [props[key]?.type ?? []].flat();
    if (types.includes('string')) out[key] = text;
    else {
      try {
        out[key] = JSON.parse(text);
      } catch {
        out[key] = text;
      }
    }
  }
  return out;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** One line (or a few) per event, as `run --wait` prints them. */
export function formatEvent(e: ExecEvent): string | undefined {
  const d = e.data as Record<string, unknown> | string;
  switch (e.kind) {
    case 'status': {
      const { status, message } = d as { status: ExecStatus; message?: string };
      return status === 'starting' ? undefined : `status: ${status}${message ? ` (${message})` : ''}`;
    }
    case 'step': {
      const s = d as unknown as StepEventData;
      const tag = `[${s.attempt > 1 ? `attempt ${s.attempt}, ` : ''}step ${s.index}] ${s.name}`;
      if (s.phase === 'start') return `${tag}${s.description ? ` — ${s.description}` : ''}`;
      return s.error ? `${tag} failed after ${s.durationMs} ms: ${s.error.name}: ${s.error.message}` : `${tag} done in ${s.durationMs} ms`;
    }
    case 'stdout':
    case 'stderr':
      return String(d)
        .replace(/\n$/, '')
        .split('\n')
        .map((l) => `    | ${l}`)
        .join('\n');
    case 'warning':
      return `warning: ${String(d)}`;
    case 'text':
    case 'markdown':
      return String(d);
    default:
      return undefined;
  }
}

function printRun(run: RunView): void {
  const took = run.endedAt && run.startedAt ? ` in ${seconds(run.endedAt - run.startedAt)}` : '';
  console.log(`Run ${run.runId} of ${run.taskName} ${run.version}: ${run.status}${took}${run.attempts > 1 ? ` (${run.attempts} attempts)` : ''}`);
  if (run.waiting) console.log(`  ${run.waiting}`);
  if (run.error) console.log(`  ${run.reason ?? 'error'}: ${run.error}`);
  for (const s of run.steps) {
    const state = s.error ? `failed: ${s.error}` : s.end === null ? 'running' : `${s.durationMs} ms`;
    console.log(`  ${run.attempts > 1 ? `attempt ${s.attempt} ` : ''}step ${s.index} ${s.name}: ${state}`);
  }
  if (run.status === 'succeeded') console.log(JSON.stringify(run.results, null, 2));
}

function collect(v: string, all: string[]): string[] {
  return [...all, v];
}

/**
 * Adds `nodus tasks register|list|run|status` to the CLI.
 *
 * @example
 * addTaskCommands(program);   // then: nodus tasks run "Hello World" --param name=Ada --wait
 */
export function addTaskCommands(program: Command): void {
  const tasks = program.command('tasks').description('Task platform: register task modules, list them, run them, show runs');

  tasks
    .command('register')
    .description('Register the tasks a module exports (or every task.ts, tasks.ts and *.task.ts under a folder); a new version keeps the old runs readable')
    .argument('<paths...>', 'task modules or folders, e.g. services/hello_world/task.ts')
    .option('--address <url>', ADDRESS_HELP)
    .action(async (paths: string[], o: { address?: string }) => {
      const found = (await Promise.all(paths.map((p) => findTasks(p)))).flat();
      await withCluster(o.address, false, async (redis, keys) => {
        const records = found.map((f) => describeTask(f));
        await registerTasks(redis, keys, records);
        for (const r of records) console.log(`Registered ${r.slug} ${r.version} (${r.name}) from ${relative(process.cwd(), r.module) || r.module}: ${fmtResources(r.resources)}`);
      });
    });

  tasks
    .command('list')
    .description('The registered tasks')
    .option('--address <url>', ADDRESS_HELP)
    .option('--json', 'print JSON (with the JSON Schemas)')
    .action(async (o: { address?: string; json?: boolean }) => {
      await withCluster(o.address, false, async (redis, keys) => {
        const all = await listTasks(redis, keys);
        if (o.json) return console.log(JSON.stringify(all, null, 2));
        if (!all.length) return console.log('No tasks registered. Register some with `npx nodus tasks register path/to/task.ts`.');
        for (const t of all) {
          const params = Object.keys((t.parameters.properties ?? {}) as object);
          console.log(`${t.slug}  ${t.version}  ${t.name}  (${fmtResources(t.resources)})${t.description ? `  ${t.description}` : ''}\n    parameters: ${params.join(', ') || 'none'}`);
        }
      });
    });

  tasks
    .command('run')
    .description('Run a task on the cluster; --wait prints its steps as they run, then its results')
    .argument('<task>', 'its name or slug, e.g. "Hello World" or hello-world')
    .option('--param <name=value>', 'a parameter; repeatable (strings stay strings, other types are read as JSON)', collect, [])
    .option('--params <json>', 'parameters as a JSON object (--param adds to them)')
    .option('--wait', 'follow the run until it ends; the exit code is 1 unless it succeeded')
    .option('--owner <user>', 'the gateway user the run belongs to (who may see it)', 'admin')
    .option('--address <url>', ADDRESS_HELP)
    .action(async (name: string, o: { param: string[]; params?: string; wait?: boolean; owner: string; address?: string }) => {
      const ok = await withCluster(o.address, true, async (redis, keys) => {
        const task = await findTask(redis, keys, name);
        let parameters: Record<string, unknown>;
        try {
          parameters = validateParameters(task, parseParams(task, o.param, o.params));
        } catch (err) {
          if (!(err instanceof ParametersError)) throw err;
          throw new NodusError(`${err.message}\n${Object.entries(err.errors).map(([f, m]) => `  --param ${f}: ${m.join('; ')}`).join('\n')}`);
        }
        const { runId } = await startRun(redis, keys, { task, parameters, owner: o.owner });
        console.log(`Run ${runId} of ${task.name} ${task.version}: queued`);
        if (!o.wait) {
          console.log(`Follow it with \`npx nodus tasks status ${runId}\` (or GET /api/runs/${runId}).`);
          return true;
        }
        await followRun(redis, keys, runId, (e) => {
          const line = formatEvent(e);
          if (line !== undefined) console.log(line);
        });
        const run = (await readRun(redis, keys, runId))!;
        const took = run.endedAt && run.startedAt ? ` in ${seconds(run.endedAt - run.startedAt)}` : '';
        console.log(`Run ${runId} ${run.status}${took}${run.error ? `: ${run.error}` : ''}`);
        if (run.status === 'succeeded') console.log(JSON.stringify(run.results, null, 2));
        return run.status === 'succeeded';
      });
      if (!ok) process.exitCode = 1;
    });

  tasks
    .command('status')
    .description('A run: status, steps, error or results')
    .argument('<runId>', 'as `run` printed it')
    .option('--address <url>', ADDRESS_HELP)
    .option('--json', 'print JSON (what GET /api/runs/{id} answers)')
    .action(async (runId: string, o: { address?: string; json?: boolean }) => {
      await withCluster(o.address, false, async (redis, keys) => {
        const run = await readRun(redis, keys, runId);
        if (!run) throw new NodusError(`No run ${runId} (it may have expired: runs are kept as long as executions).`);
        if (o.json) console.log(JSON.stringify(run, null, 2));
        else printRun(run);
      });
    });
}
