/** @module A worker process's side of a lease: the BullMQ queue it completes jobs in and fetches the next ones from. */
import { Worker as BullWorker, Job, type JobJson } from 'bullmq';
import type { Redis } from 'ioredis';
import { PROTOCOL_VERSION, type TaskJob } from '../runtime/protocol';

/** A BullMQ worker used by hand: it never runs a loop of its own, the lease does. */
export class TaskQueue extends BullWorker<TaskJob> {
  constructor(name: string, connection: Redis, prefix: string) {
    super(name, null, { connection, prefix, autorun: false });
    this.on('error', () => undefined);
  }

  /** The job the agent took and handed over. */
  adopt(json: JobJson, token: string): Job<TaskJob> {
    const job = Job.fromJSON<TaskJob>(this, json, json.id);
    job.token = token;
    return job;
  }

  /** Completes a job and, with `fetchNext`, takes the next waiting one in the same script (same lock token). */
  async finish(job: Job<TaskJob>, token: string, fetchNext: boolean): Promise<Job<TaskJob> | undefined> {
    return (await this.handleCompleted(null, job, token, () => fetchNext)) ?? undefined;
  }
}

/** What is wrong with a job, if anything: anything can be put in a queue by hand. */
export function checkJob(data: TaskJob | undefined): string | undefined {
  const problem = checkTask(data);
  if (problem || data!.more === undefined) return problem;
  if (!Array.isArray(data!.more)) return 'job field "more" must be a list of tasks';
  for (const [i, t] of data!.more.entries()) {
    const p = checkTask(t);
    if (p) return `task ${i + 1} of the bundle: ${p}`;
  }
  return undefined;
}

function checkTask(data: TaskJob | undefined): string | undefined {
  if (!data || typeof data !== 'object') return 'job data is not an object';
  if (data.v !== PROTOCOL_VERSION) return `job was made by a driver speaking protocol v${String(data.v)}; this node speaks v${PROTOCOL_VERSION}. Use the same nodus version on drivers and nodes.`;
  if (typeof data.id !== 'string' || typeof data.caller !== 'string' || typeof data.owner !== 'string') return 'job lacks id, caller or owner';
  if (!data.fn || typeof data.fn.module !== 'string' || typeof data.fn.key !== 'string') return 'job lacks its function descriptor';
  if (data.args !== null && typeof data.args !== 'string') return 'job args must be base64 msgpack or null';
  if (data.args === null && typeof data.argsRef !== 'string') return 'job has neither args nor argsRef';
  if (typeof data.maxRetries !== 'number') return 'job lacks maxRetries';
  return undefined;
}
