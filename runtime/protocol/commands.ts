/** @module Loads the Lua commands in ./commands onto an ioredis client (BullMQ's layout: `<name>-<numKeys>.lua`). */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ChainableCommander, Redis } from 'ioredis';

const DIR = join(__dirname, 'commands');

function load(name: string): string {
  // A one-level include, as BullMQ does, so shared helpers stay in one file.
  return readFileSync(join(DIR, name), 'utf8').replace(/^--@include "([\w-]+)"$/m, (_m, inc: string) => readFileSync(join(DIR, 'includes', `${inc}.lua`), 'utf8'));
}

type Arg = string | Buffer | number;

/** The object-store commands, each taking its ARGV (the prefix first). */
export interface ObjectCommands {
  nodusCreate(...args: Arg[]): Promise<number>;
  nodusPut(...args: Arg[]): Promise<number>;
  nodusComplete(...args: Arg[]): Promise<number>;
  nodusRefs(...args: Arg[]): Promise<number>;
  nodusFreeProc(...args: Arg[]): Promise<number>;
  nodusActorCreate(...args: Arg[]): Promise<string>;
  nodusActorCall(...args: Arg[]): Promise<[string, string]>;
  nodusActorDoneBuffer(...args: Arg[]): Promise<Buffer[]>;
  nodusActorEndBuffer(...args: Arg[]): Promise<[Buffer[], Buffer[], Buffer[]]>;
  nodusStreamItem(...args: Arg[]): Promise<number>;
  nodusStreamItems(...args: Arg[]): Promise<number>;
  nodusActorTake(...args: Arg[]): Promise<number>;
  nodusActorResend(...args: Arg[]): Promise<[string, string]>;
  nodusNodeBeat(...args: Arg[]): Promise<number>;
  nodusControl(...args: Arg[]): Promise<number>;
  nodusExtendLocks(...args: Arg[]): Promise<number>;
  /** A job's status change (jobs.ts): returns the status it had before. */
  nodusJobStatus(...args: Arg[]): Promise<string>;
  /** nodusComplete that runs when Redis is out of memory: only for failures (small), see RESERVED. */
  nodusCompleteReserved(...args: Arg[]): Promise<number>;
  /** nodusActorDone that runs when Redis is out of memory: only for failures (small), see RESERVED. */
  nodusActorDoneReservedBuffer(...args: Arg[]): Promise<Buffer[]>;
}

/** An explicit pipeline (`redis.pipeline()`) of a client that has the commands: ioredis copies them onto it. */
export type ObjectPipeline = ChainableCommander & { [K in keyof ObjectCommands]: (...args: Arg[]) => ObjectPipeline };

const NAMES: Record<string, string> = {
  create: 'nodusCreate',
  put: 'nodusPut',
  complete: 'nodusComplete',
  refs: 'nodusRefs',
  'free-proc': 'nodusFreeProc',
  'actor-create': 'nodusActorCreate',
  'actor-call': 'nodusActorCall',
  'actor-done': 'nodusActorDone',
  'actor-end': 'nodusActorEnd',
  'stream-item': 'nodusStreamItem',
  'stream-items': 'nodusStreamItems',
  'actor-take': 'nodusActorTake',
  'actor-resend': 'nodusActorResend',
  'node-beat': 'nodusNodeBeat',
  control: 'nodusControl',
  'extend-locks': 'nodusExtendLocks',
  'job-status': 'nodusJobStatus',
};

/**
 * Redis out of memory (over maxmemory, no eviction) refuses every script that may write. So that a full
 * object store fails the writes that fill it (put, results, submissions) and nothing else, control writes
 * run with the allow-oom flag: heartbeats and the notes that end a wait (control), job lock extensions, reference drops and
 * process ends (which are how memory gets freed), actor ends — those files start with the flag — and
 * these variants, which settle a call with ObjectStoreFullError when its result was refused. Each
 * writes a small, bounded amount, so Redis goes over maxmemory by little.
 */
const RESERVED: Record<string, string> = { complete: 'nodusCompleteReserved', 'actor-done': 'nodusActorDoneReserved' };
const ALLOW_OOM = '#!lua flags=allow-oom\n';

/**
 * Defines the commands on a client (idempotent) and returns it typed. `only`: define just these (file
 * names without the key count), for a connection that runs a few of them: ioredis copies every defined
 * command into each auto-pipeline it makes, so a short list keeps a hot connection's pipelines cheap.
 */
export function withCommands(redis: Redis, only?: string[]): Redis & ObjectCommands {
  const r = redis as Redis & ObjectCommands & { __nodusCommands?: boolean };
  if (r.__nodusCommands) return r;
  for (const file of readdirSync(DIR)) {
    const m = /^([\w-]+)-(\d+)\.lua$/.exec(file);
    if (!m || !NAMES[m[1]] || (only && !only.includes(m[1]))) continue;
    const lua = load(file);
    redis.defineCommand(NAMES[m[1]], { numberOfKeys: Number(m[2]), lua });
    if (RESERVED[m[1]]) redis.defineCommand(RESERVED[m[1]], { numberOfKeys: Number(m[2]), lua: ALLOW_OOM + lua });
  }
  r.__nodusCommands = true;
  return r;
}
