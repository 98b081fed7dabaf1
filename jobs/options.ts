/** @module What a job is submitted with, checked once for the CLI, the gateway and scripts alike. */
import { ConfigError, type RuntimeEnv } from '../runtime';
import { rejectUnknownKeys, resolveResources, resolveRuntimeEnv, type ResolvedRuntimeEnv } from '../runtime/options';
import type { Resources } from '../runtime/protocol';

/** Options of {@link submitJob}. */
export interface SubmitJobOptions {
  /** A shell command line, or its words (quoted for the shell here), e.g. `'npx tsx main.ts'` or `['tsx', 'main.ts']`. */
  entrypoint: string | string[];
  /**
   * The driver's runtime env, as init() takes it: `workingDir` is shipped to the cluster (once per content) and the
   * driver runs in its copy on the node; `env` sets variables. Every task and actor the driver starts runs in it too.
   * @default none: the driver runs in an empty folder
   */
  runtimeEnv?: RuntimeEnv;
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

/** A checked submission: the command line, the runtime env before its working dir is shipped, and the driver's demand. */
export interface ResolvedSubmitJob {
  entrypoint: string;
  runtimeEnv: ResolvedRuntimeEnv | undefined;
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
  return { entrypoint: resolveEntrypoint(o.entrypoint), runtimeEnv: resolveRuntimeEnv(o.runtimeEnv), demand: resolveJobDemand(o) };
}
