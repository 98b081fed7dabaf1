/**
 * @module The task runner: a detached actor per run, named by the run id in the runners' namespace (so the gateway's
 * sweep, cancel and panel treat it as any execution's runner). It submits the run as a remote task with the task's
 * resources and retries, and enforces what the task itself cannot: its timeout, a cancel, and a worker that keeps dying.
 */
import type { Redis } from 'ioredis';
import { TaskCancelledError, WorkerCrashedError, cancel, get, getActor, kill, remote, wait } from '../runtime';
import { Keys, type NodeInfo, type Resources } from '../runtime/protocol';
import { RUNNER_NAMESPACE, type ServiceKeys } from '../runtime/protocol/services';
import { serviceLink } from '../serve/cluster';
import { appendEvents, setStatus } from '../serve/store';
import { failRun } from './end';
import { executeRun, type RunJob } from './execute';
import type { FailReason, TaskRecord } from './protocol';

/** What the runner needs: the job for the worker, and the task's resources, timeout and retries. */
export interface RunSpec extends RunJob {
  resources: TaskRecord['resources'];
  timeoutMs: number;
  retries: number;
}

/** How often the runner looks at its run (cancel asked, timeout passed, a node that fits joined). */
const POLL_MS = 200;
const FEASIBLE_CHECK_MS = 1000;

function demandOf(r: TaskRecord['resources']): Resources {
  return { CPU: r.numCpus, ...(r.numGpus ? { GPU: r.numGpus } : {}), ...r.resources };
}

function fmtDemand(d: Resources): string {
  return Object.entries(d)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
}

/** The flags of `nodus worker join` that give a node this demand. */
function joinFlags(d: Resources): string {
  return Object.entries(d)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => (k === 'CPU' ? `--num-cpus ${v}` : k === 'GPU' ? `--num-gpus ${v}` : `--resources '{"${k}":${v}}'`))
    .join(' ');
}

/** Runs one run; its process holds nothing else. */
export class TaskRunner {
  /** Answers while the process lives: the gateway's liveness sweep. */
  ping(): string {
    return 'ok';
  }

  async run(spec: RunSpec): Promise<string> {
    const { redis, keys } = await serviceLink();
    try {
      if (await redis.hget(keys.exec(spec.runId), 'cancelRequested')) {
        await setStatus(redis, keys, spec.runId, 'cancelled', { message: 'cancelled before it started' });
        return 'cancelled';
      }
      const { runId, slug, version, module, exportName, parameters, resources } = spec;
      const ref = executeRun
        .options({ numCpus: resources.numCpus, numGpus: resources.numGpus, resources: resources.resources, maxRetries: spec.retries, name: `task ${slug}` })
        .remote({ runId, slug, version, module, exportName, parameters });
      return await this.watch(redis, keys, spec, ref);
    } finally {
      // A detached actor lives until killed: this one's work is done once it has reported.
      setTimeout(() => void getActor(spec.runId, { namespace: RUNNER_NAMESPACE }).then((h) => kill(h), () => undefined), 200).unref();
    }
  }

  private async watch(redis: Redis, keys: ServiceKeys, spec: RunSpec, ref: ReturnType<typeof executeRun.remote>): Promise<string> {
    const key = keys.exec(spec.runId);
    const fail = async (reason: FailReason, message: string, name: string) => {
      await failRun(redis, keys, spec.runId, reason, message, { name, message });
      return 'error';
    };
    let feasibleCheckedAt = 0;
    for (;;) {
      const [ready] = await wait([ref], { timeout: POLL_MS });
      if (ready.length) break;
      const [status, cancelRequested, attemptAt, waiting] = await redis.hmget(key, 'status', 'cancelRequested', 'attemptAt', 'waiting');
      if (cancelRequested) {
        // Stopping the task stops its worker process if it runs. (A run the worker has just ended stays as it ended.)
        await setStatus(redis, keys, spec.runId, 'cancelled', { message: 'cancelled' });
        await cancel(ref).catch(() => undefined);
        return (await redis.hget(key, 'status')) ?? 'cancelled';
      }
      if (status === 'running' && attemptAt && Date.now() > Number(attemptAt) + spec.timeoutMs) {
        const result = await fail('timeout', `timeout: the run took longer than its timeoutMs (${spec.timeoutMs} ms), so its worker process was stopped.`, 'TimeoutError');
        await cancel(ref).catch(() => undefined);
        return result;
      }
      if (status === 'starting' && Date.now() - feasibleCheckedAt > FEASIBLE_CHECK_MS) {
        feasibleCheckedAt = Date.now();
        await this.checkFeasible(redis, keys, spec, !!waiting);
      }
    }
    try {
      return (await get(ref)).status;
    } catch (err) {
      if (err instanceof TaskCancelledError) {
        await setStatus(redis, keys, spec.runId, 'cancelled', { message: 'its task was cancelled' });
        return 'cancelled';
      }
      if (err instanceof WorkerCrashedError) {
        return fail('worker', `The worker process running this run died ${spec.retries + 1} times (retries: ${spec.retries}); it is not run again. ${err.message}`, err.name);
      }
      return fail('error', `The run could not be carried out: ${(err as Error).message}`, (err as Error).name);
    }
  }

  /**
   * Says in the run (field `waiting` and a warning event) when no node of the cluster could ever run it, such as a GPU
   * task before any GPU node has joined; clears it once one has. `nodus status` shows the same as infeasible demand.
   */
  private async checkFeasible(redis: Redis, keys: ServiceKeys, spec: RunSpec, flagged: boolean): Promise<void> {
    const demand = demandOf(spec.resources);
    const nodes = (await redis.hvals(new Keys(keys.prefix).nodes)).map((s) => JSON.parse(s) as NodeInfo);
    const fits = nodes.some((n) => n.state === 'alive' && Object.entries(demand).every(([k, v]) => v <= 0 || (n.total[k] ?? 0) >= v));
    const key = keys.exec(spec.runId);
    if (!fits && !flagged) {
      const message = `Waiting for a node with ${fmtDemand(demand)}: no node of the cluster has that much. It runs once one joins (npx nodus worker join --address <head> ${joinFlags(demand)}).`;
      await redis.hset(key, 'waiting', message);
      await appendEvents(redis, keys, spec.runId, [{ kind: 'warning', data: message }]);
    } else if (fits && flagged) {
      await redis.hdel(key, 'waiting');
      await appendEvents(redis, keys, spec.runId, [{ kind: 'text', data: 'A node that fits this run has joined; it runs as soon as that node is free.' }]);
    }
  }
}

/** The runner actor: no CPU of its own (its task takes the task's), never restarted (a run is submitted once). */
export const TaskRunnerActor = remote(TaskRunner, { numCpus: 0, maxRestarts: 0, maxTaskRetries: 0, maxConcurrency: 4 });
