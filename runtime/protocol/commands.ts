/** @module Loads the Lua commands in ./commands onto an ioredis client (BullMQ's layout: `<name>-<numKeys>.lua`). */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';

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
  nodusNodeBeat(...args: Arg[]): Promise<number>;
}

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
  'node-beat': 'nodusNodeBeat',
};

/** Defines the commands on a client (idempotent) and returns it typed. */
export function withCommands(redis: Redis): Redis & ObjectCommands {
  const r = redis as Redis & ObjectCommands & { __nodusCommands?: boolean };
  if (r.__nodusCommands) return r;
  for (const file of readdirSync(DIR)) {
    const m = /^([\w-]+)-(\d+)\.lua$/.exec(file);
    if (!m || !NAMES[m[1]]) continue;
    redis.defineCommand(NAMES[m[1]], { numberOfKeys: Number(m[2]), lua: load(file) });
  }
  r.__nodusCommands = true;
  return r;
}
