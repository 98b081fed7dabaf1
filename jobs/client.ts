/** @module nodus/jobs for scripts: submit a job, read it, list them, stop one, read or follow its log, wait for its end. */
import { userInfo } from 'node:os';
import type { Redis } from 'ioredis';
import { ClusterError, ConfigError } from '../runtime';
import { createJob, followJobLog, listJobRecords, readJob, readJobLog, requestJobStop } from '../runtime/internal/job-store';
import type { CommandClient } from '../runtime/internal/object-store';
import { isFeasible, largestNode } from '../runtime/internal/policy';
import { connect, redact, waitForRedis } from '../runtime/internal/redis';
import { RuntimeEnvs } from '../runtime/internal/runtime-env';
import { readSession } from '../runtime/internal/session';
import { Keys, type NodeInfo } from '../runtime/protocol';
import { withCommands } from '../runtime/protocol/commands';
import { JOB_STATUSES, JobKeys, isFinalJobStatus, type JobInfo, type JobStatus, type JobStatusEvent } from '../runtime/protocol/jobs';
import type { ExecEvent } from '../runtime/protocol/services';
import { JobNotFoundError } from './errors';
import { resolveSubmitJob, type ResolvedSubmitJob, type SubmitJobOptions } from './options';
import { rejectUnknownKeys } from '../runtime/options';

/** Which cluster a call talks to. */
export interface JobClientOptions {
  /** A Redis URL, or 'auto' (the cluster `nodus start` made on this machine). @default NODUS_ADDRESS, else 'auto' */
  address?: string;
  /** Key prefix of the cluster. @default NODUS_NAMESPACE, else 'nodus' */
  namespace?: string;
}

/** One entry of a job's log: a chunk of what its driver printed, or a change of its status. */
export type JobLogEntry = { id: string; at: number } & ({ kind: 'stdout' | 'stderr'; text: string } | ({ kind: 'status' } & JobStatusEvent));

function addressOf(given: string | undefined): string {
  const address = given && given !== 'auto' ? given : process.env.NODUS_ADDRESS || readSession()?.address;
  if (!address) throw new ConfigError('No cluster to submit to: pass { address: "redis://HOST:PORT" } (or --address, or NODUS_ADDRESS), or start one here with `npx nodus start --head`.');
  if (!/^rediss?:\/\//.test(address)) throw new ConfigError(`address must be a Redis URL like redis://127.0.0.1:6379, got '${address}'.`);
  return address;
}

/** A connection to the cluster's Redis for one call, and the job keys; closed when `fn` is done. */
async function withJobs<T>(o: JobClientOptions, fn: (redis: CommandClient, keys: JobKeys, address: string) => Promise<T>): Promise<T> {
  const address = addressOf(o.address);
  const redis = withCommands(connect(address, { name: 'nodus:jobs' }));
  redis.on('error', () => undefined);
  try {
    await waitForRedis(redis, address, 5000);
    return await fn(redis, new JobKeys(o.namespace ?? process.env.NODUS_NAMESPACE ?? undefined), address);
  } finally {
    redis.disconnect();
  }
}

function clientOptions(what: string, o: object, more: readonly string[] = []): void {
  rejectUnknownKeys(what, o, ['address', 'namespace', ...more]);
}

/** Says, before the job waits forever, when no node of the cluster could ever run its driver. */
export async function checkFeasible(redis: Redis, keys: JobKeys, address: string, r: Pick<ResolvedSubmitJob, 'demand'>): Promise<void> {
  const nodes = (await redis.hvals(new Keys(keys.prefix).nodes)).map((s) => JSON.parse(s) as NodeInfo);
  if (!nodes.some((n) => n.state === 'alive')) {
    throw new ClusterError(`The cluster at ${redact(address)} has no node alive to run the job's driver on; join one with \`npx nodus worker join --address ${redact(address)}\`.`);
  }
  if (!isFeasible(r.demand, nodes)) {
    throw new ConfigError(`No node of the cluster has ${JSON.stringify(r.demand)} for the job's driver (the largest has ${JSON.stringify(largestNode(nodes))}); ask for less, or join a node that has it.`);
  }
}

/**
 * Submits a job: its entrypoint runs as a driver process on the head's node (or on a node with the resources asked
 * for), in its working dir, with NODUS_ADDRESS set, so that its `init()` joins the cluster. Resolves once it is
 * recorded (pending); follow it with {@link jobLogs} or {@link waitForJob}.
 *
 * @example
 * const job = await submitJob({ entrypoint: 'npx tsx main.ts', runtimeEnv: { workingDir: '.' }, address: 'redis://10.0.0.5:6379' });
 * for await (const e of jobLogs(job.id, { follow: true })) if (e.kind === 'stdout') process.stdout.write(e.text);
 */
export async function submitJob(options: SubmitJobOptions): Promise<SubmittedJob> {
  const r = resolveSubmitJob(options);
  return withJobs(options, async (redis, keys, address) => {
    await checkFeasible(redis, keys, address, r);
    // The working dir goes to the cluster as tasks' do (once per content); the node unpacks it into its env cache.
    const env = r.runtimeEnv ? await new RuntimeEnvs(redis, new Keys(keys.prefix), r.runtimeEnv).resolve(undefined) : undefined;
    const owner = options.owner ?? safeUserName();
    const job = await createJob(redis, keys, { entrypoint: r.entrypoint, runtimeEnv: env?.desc, workingDir: r.runtimeEnv?.workingDir, demand: r.demand, owner });
    return { ...job, ...(env?.shipped ? { shipped: { files: env.shipped.files, bytes: env.shipped.pkgBytes, uploaded: env.shipped.uploaded } } : {}) };
  });
}

/** A job just submitted, and what shipping its working dir took. */
export type SubmittedJob = JobInfo & {
  /** The working dir's files and bytes; `uploaded` false when the cluster held the same content already. */
  shipped?: { files: number; bytes: number; uploaded: boolean };
};

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/**
 * A job's record: status, exit code, node, times, message.
 *
 * @example
 * const { status, exitCode } = await getJob('job-m1abc2de3f4a5b6c');
 */
export async function getJob(id: string, options: JobClientOptions = {}): Promise<JobInfo> {
  clientOptions('getJob', options);
  return withJobs(options, (redis, keys) => mustRead(redis, keys, id));
}

async function mustRead(redis: Redis, keys: JobKeys, id: string): Promise<JobInfo> {
  const job = await readJob(redis, keys, id);
  if (!job) throw new JobNotFoundError(`No job ${id} (jobs are kept 7 days after they end); \`npx nodus job list\` lists them.`);
  return job;
}

/**
 * Jobs, newest first.
 *
 * @example
 * const running = await listJobs({ status: ['running'] });
 */
export async function listJobs(options: JobClientOptions & { status?: JobStatus[]; limit?: number } = {}): Promise<JobInfo[]> {
  clientOptions('listJobs', options, ['status', 'limit']);
  for (const s of options.status ?? []) if (!JOB_STATUSES.includes(s)) throw new ConfigError(`status must be some of ${JOB_STATUSES.join(', ')}, got '${s}'.`);
  return withJobs(options, (redis, keys) => listJobRecords(redis, keys, { status: options.status, limit: options.limit }));
}

/**
 * Stops a job: a pending one never starts; a running one's driver gets SIGTERM (its whole process group), SIGKILL after
 * 3 s, and what its drivers own (tasks, actors, objects) ends with it. Resolves to the job as it is then; its status
 * turns `stopped` once the driver is gone ({@link waitForJob}).
 *
 * @example
 * await stopJob(job.id);
 */
export async function stopJob(id: string, options: JobClientOptions = {}): Promise<JobInfo> {
  clientOptions('stopJob', options);
  return withJobs(options, async (redis, keys) => {
    await mustRead(redis, keys, id);
    return (await requestJobStop(redis, keys, id))!;
  });
}

/**
 * Waits until a job has ended and resolves to it (whatever its end: look at `status` and `exitCode`).
 *
 * @example
 * const done = await waitForJob(job.id, { timeout: 60_000 });
 */
export async function waitForJob(id: string, options: JobClientOptions & { timeout?: number } = {}): Promise<JobInfo> {
  clientOptions('waitForJob', options, ['timeout']);
  const deadline = Date.now() + (options.timeout ?? Infinity);
  return withJobs(options, async (redis, keys) => {
    for (;;) {
      const job = await mustRead(redis, keys, id);
      if (isFinalJobStatus(job.status)) return job;
      if (Date.now() > deadline) throw new ConfigError(`Job ${id} is still ${job.status} after ${options.timeout} ms.`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
}

function toEntry(e: ExecEvent): JobLogEntry {
  if (e.kind === 'status') return { id: e.id, at: e.at, kind: 'status', ...(e.data as JobStatusEvent) };
  return { id: e.id, at: e.at, kind: e.kind as 'stdout' | 'stderr', text: String(e.data) };
}

/**
 * A job's log: what its driver printed (`stdout`, `stderr`) and its status changes, in order. With `follow`, it goes on
 * as they are written until the job ends (its final `status` entry is the last). `after` resumes after an entry's id.
 *
 * @example
 * for await (const e of jobLogs(id, { follow: true })) {
 *   if (e.kind === 'status') console.log('status:', e.status);
 *   else process[e.kind].write(e.text);
 * }
 */
export async function* jobLogs(id: string, options: JobClientOptions & { follow?: boolean; after?: string } = {}): AsyncGenerator<JobLogEntry> {
  clientOptions('jobLogs', options, ['follow', 'after']);
  const address = addressOf(options.address);
  const redis = connect(address, { name: 'nodus:jobs' });
  const blocking = options.follow ? connect(address, { name: 'nodus:jobs-follow', blocking: true }) : undefined;
  redis.on('error', () => undefined);
  blocking?.on('error', () => undefined);
  try {
    await waitForRedis(redis, address, 5000);
    const keys = new JobKeys(options.namespace ?? process.env.NODUS_NAMESPACE ?? undefined);
    await mustRead(redis, keys, id);
    if (blocking) {
      for await (const e of followJobLog(redis, blocking, keys, id, options.after ?? '0')) yield toEntry(e);
      return;
    }
    for (let after = options.after ?? '0'; ; ) {
      const page = await readJobLog(redis, keys, id, after, 1000);
      for (const e of page) yield toEntry(e);
      if (page.length < 1000) return;
      after = page[page.length - 1].id;
    }
  } finally {
    redis.disconnect();
    blocking?.disconnect();
  }
}
