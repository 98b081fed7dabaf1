/** @module What a job is submitted with, checked once for the CLI, the gateway and scripts alike. */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../runtime';
import { rejectUnknownKeys, resolveResources } from '../runtime/options';
import type { Resources } from '../runtime/protocol';
import type { JobRuntimeEnv } from '../runtime/protocol/jobs';

/** Where a job's driver runs and with what (Ray's `runtime_env` of a job). */
export interface JobRuntimeEnvOptions {
  /** A folder of the submitter's: shipped to the node and the driver's working folder there. @default none: an empty folder */
  workingDir?: string;
  /** Environment variables of the driver and of every task and actor it starts. @default {} */
  env?: Record<string, string>;
}

/** Options of {@link submitJob}. */
export interface SubmitJobOptions {
  /** A shell command line, or its words (quoted for the shell here), e.g. `'npx tsx main.ts'` or `['tsx', 'main.ts']`. */
  entrypoint: string | string[];
  runtimeEnv?: JobRuntimeEnvOptions;
  /** CPUs the driver holds on its node. @default 0 */
  numCpus?: number;
  /** GPUs the driver holds on its node. @default 0 */
  numGpus?: number;
  /** Custom resources the driver holds, e.g. `{ accel: 1 }`. Without any resources it runs on the head's node. @default {} */
  resources?: Resources;
  /** Cluster to submit to: a Redis URL, or 'auto' (the one `nodus start` made here). @default NODUS_ADDRESS, else 'auto' */
  address?: string;
  /** Key prefix of the cluster. @default NODUS_NAMESPACE, else 'nodus' */
  namespace?: string;
  /** Who submits it, as `nodus job list` shows. @default this machine's user name */
  owner?: string;
}

const SUBMIT_OPTION_NAMES = ['entrypoint', 'runtimeEnv', 'numCpus', 'numGpus', 'resources', 'address', 'namespace', 'owner'] as const;
const RUNTIME_ENV_NAMES = ['workingDir', 'env'] as const;

/** A checked submission: the command line, the runtime environment before upload, and the driver's demand. */
export interface ResolvedSubmitJob {
  entrypoint: string;
  workingDir: string | undefined;
  env: Record<string, string>;
  demand: Resources;
}

/** Words as one shell command line: each quoted when it holds anything the shell would read. */
export function shellCommand(words: string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function count(what: string, v: unknown): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`${what} must be a number >= 0, got ${JSON.stringify(v)}.`);
  return v;
}

/** Checks an environment-variable map (names as a shell takes them, values strings). */
export function resolveEnvVars(what: string, env: unknown): Record<string, string> {
  if (env === undefined) return {};
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new ConfigError(`${what} must be an object of names to strings, e.g. { "LOG_LEVEL": "debug" }.`);
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ConfigError(`${what}: '${k}' is not an environment variable name (letters, digits and _, not starting with a digit).`);
    if (typeof v !== 'string') throw new ConfigError(`${what}.${k} must be a string, got ${JSON.stringify(v)}.`);
  }
  return env as Record<string, string>;
}

/** The entrypoint as one shell command line; throws ConfigError when there is none. */
export function resolveEntrypoint(given: unknown): string {
  const words = Array.isArray(given) ? given : undefined;
  if (words && (!words.length || words.some((w) => typeof w !== 'string'))) throw new ConfigError('entrypoint, as a list, must be non-empty words (strings), e.g. ["tsx", "main.ts"].');
  const entrypoint = words ? shellCommand(words as string[]) : given;
  if (typeof entrypoint !== 'string' || !entrypoint.trim()) throw new ConfigError("entrypoint must be the command that starts the driver, e.g. 'npx tsx main.ts'.");
  return entrypoint;
}

/** What the driver holds on its node: CPUs and GPUs (default none) and custom resources. */
export function resolveJobDemand(o: { numCpus?: unknown; numGpus?: unknown; resources?: unknown }): Resources {
  const demand: Resources = {};
  const cpus = count('numCpus', o.numCpus);
  const gpus = count('numGpus', o.numGpus);
  if (cpus) demand.CPU = cpus;
  if (gpus) demand.GPU = gpus;
  return Object.assign(demand, resolveResources('resources', o.resources));
}

/** Applies defaults and checks a submission; throws ConfigError naming the fix. */
export function resolveSubmitJob(o: SubmitJobOptions): ResolvedSubmitJob {
  if (typeof o !== 'object' || o === null) throw new ConfigError('submitJob() takes an options object: { entrypoint, runtimeEnv?, ... }.');
  rejectUnknownKeys('submitJob', o, SUBMIT_OPTION_NAMES);
  const entrypoint = resolveEntrypoint(o.entrypoint);
  const env = o.runtimeEnv ?? {};
  if (typeof env !== 'object' || env === null) throw new ConfigError('runtimeEnv must be an object: { workingDir?, env? }.');
  rejectUnknownKeys('runtimeEnv', env, RUNTIME_ENV_NAMES);
  let workingDir: string | undefined;
  if (env.workingDir !== undefined) {
    if (typeof env.workingDir !== 'string' || !env.workingDir) throw new ConfigError('runtimeEnv.workingDir must be the path of a folder.');
    workingDir = resolve(env.workingDir);
    let isDir: boolean;
    try {
      isDir = statSync(workingDir).isDirectory();
    } catch {
      throw new ConfigError(`runtimeEnv.workingDir ${workingDir} does not exist; give the folder the driver should run in.`);
    }
    if (!isDir) throw new ConfigError(`runtimeEnv.workingDir ${workingDir} is a file; give the folder that holds it.`);
  }
  return { entrypoint, workingDir, env: resolveEnvVars('runtimeEnv.env', env.env), demand: resolveJobDemand(o) };
}

/** The runtime environment the job records, once its working dir is where nodes find it. */
export function jobRuntimeEnv(r: ResolvedSubmitJob, workingDir: string | undefined): JobRuntimeEnv {
  return { ...(workingDir ? { workingDir } : {}), ...(Object.keys(r.env).length ? { env: r.env } : {}) };
}
