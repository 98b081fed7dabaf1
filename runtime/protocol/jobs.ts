/**
 * @module The wire contract of jobs (Ray's job API): the job record, its statuses, its log stream and its Redis keys.
 * One definition read by the node agent that runs a job's driver, the head (a node's death), nodus/jobs, the gateway and the CLI.
 */
import { DEFAULT_PREFIX, type Resources, type RuntimeEnvDescriptor } from './index';

/** Bumped whenever a job record, log entry or key layout changes incompatibly. */
export const JOBS_PROTOCOL_VERSION = 1;

/** pending → running → succeeded | failed | stopped; a pending job can be stopped (or fail) without running. */
export type JobStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'stopped';
export const JOB_STATUSES: readonly JobStatus[] = ['pending', 'running', 'succeeded', 'failed', 'stopped'];
export const FINAL_JOB_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'stopped'];
export function isFinalJobStatus(status: string | undefined): boolean {
  return FINAL_JOB_STATUSES.includes(status as JobStatus);
}

/** A job's record: a Redis hash, all strings there. */
export interface JobRecord {
  id: string;
  v: string;
  /** A shell command line (run with `sh -c`), as Ray's entrypoint. */
  entrypoint: string;
  /**
   * JSON of the runtime env the driver runs in (its working dir shipped, its variables), '' for none. The driver's
   * init() takes it as the env of everything it starts (NODUS_RUNTIME_ENV), so its tasks run the same code on every node.
   */
  runtimeEnv: string;
  /** The working dir as the submitter named it (for people: the driver gets the shipped copy). */
  workingDir: string;
  /** JSON of the resources the driver holds on its node ({} : none, and then it runs on the head node). */
  demand: string;
  status: JobStatus;
  /** Who submitted it: the gateway's user, or `cli:<os user>`. */
  owner: string;
  /** The node that runs (or ran) its driver, once one took it. */
  node: string;
  /** Pid of the driver's process (the leader of its process group). */
  pid: string;
  /** The entrypoint's exit code ('' while it runs; 128 + n when a signal n ended it). */
  exitCode: string;
  /** Why it ended as it did, or what it waits for. */
  message: string;
  createdAt: string;
  startedAt: string;
  endedAt: string;
  /** Set (to the time asked) when a stop was asked for. */
  stopRequested: string;
}

/** A job as readers see it (the record with its fields typed). */
export interface JobInfo {
  id: string;
  entrypoint: string;
  runtimeEnv?: RuntimeEnvDescriptor;
  workingDir?: string;
  resources: Resources;
  status: JobStatus;
  owner: string;
  node?: string;
  pid?: number;
  exitCode?: number;
  message?: string;
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
  stopRequested?: number;
}

/** Turns a record (HGETALL) into what readers see; undefined when there is none. */
export function toJobInfo(rec: Record<string, string>): JobInfo | undefined {
  if (!rec.id) return undefined;
  const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
  const parse = <T>(v: string | undefined, dflt: T): T => {
    try {
      return v ? (JSON.parse(v) as T) : dflt;
    } catch {
      return dflt;
    }
  };
  return {
    id: rec.id,
    entrypoint: rec.entrypoint ?? '',
    runtimeEnv: parse<RuntimeEnvDescriptor | undefined>(rec.runtimeEnv, undefined),
    workingDir: rec.workingDir || undefined,
    resources: parse<Resources>(rec.demand, {}),
    status: rec.status as JobStatus,
    owner: rec.owner ?? '',
    node: rec.node || undefined,
    pid: num(rec.pid),
    exitCode: num(rec.exitCode),
    message: rec.message || undefined,
    createdAt: Number(rec.createdAt ?? 0),
    startedAt: num(rec.startedAt),
    endedAt: num(rec.endedAt),
    stopRequested: num(rec.stopRequested),
  };
}

/**
 * A job's log is a Redis stream of entries in the execution events' format (runtime/protocol/services.ts EVENT_FIELDS:
 * kind, JSON data, time), so the gateway streams it like an execution's events. Kinds: `stdout` and `stderr` (a
 * string: a chunk of what the driver printed, at most JOB_LOG_CHUNK bytes), and `status` (`{ status, exitCode?,
 * message? }`, one per change; the last is final).
 */
export type JobLogKind = 'stdout' | 'stderr' | 'status';

/** The data of a `status` entry. */
export interface JobStatusEvent {
  status: JobStatus;
  exitCode?: number;
  message?: string;
  node?: string;
}

/** A job's log keeps about this many entries (older ones are trimmed): its memory in Redis is bounded. */
export const JOB_LOG_MAX_ENTRIES = 10_000;
/** Output is cut into entries of at most this many bytes: with the cap above, a log holds at most ~40 MiB. */
export const JOB_LOG_CHUNK = 4096;
/** An ended job (record and log) is kept this long, then deleted. @default 7 days */
export const JOB_RETENTION_MS = 7 * 24 * 3600 * 1000;
/** After SIGTERM, a driver's process group has this long to exit before SIGKILL. */
export const JOB_STOP_GRACE_MS = 3000;

/** The environment variable that tells a driver which job it is (its DriverInfo says so, for the job's stop). */
export const JOB_ID_VAR = 'NODUS_JOB_ID';

/** Names of every Redis key and channel of jobs, under the cluster's prefix. */
export class JobKeys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {}
  /** Hash: the job record. */
  job(id: string): string { return `${this.prefix}:job:${id}`; }
  /** Stream: the job's log (see JobLogKind). */
  logs(id: string): string { return `${this.prefix}:job:${id}:log`; }
  /** Sorted set of every job id by creation time (list, retention). */
  get all(): string { return `${this.prefix}:jobs`; }
  /** Sorted set of jobs no node has taken yet, by creation time: node agents take them from here. */
  get pending(): string { return `${this.prefix}:jobs:pending`; }
  /** Set of jobs not ended (pending or running): the head fails those of a node that died. */
  get active(): string { return `${this.prefix}:jobs:active`; }
  /** Pub/sub: `JobMessage`s to node agents (a job was submitted, a stop was asked for). */
  get channel(): string { return `${this.prefix}:jobs:ctl`; }
}

/** Messages on JobKeys.channel. */
export type JobMessage = { type: 'submitted'; id: string } | { type: 'stop'; id: string };
