/**
 * @module Runtime environments, a submitting process's side: the job's env merged with a task's or actor's, its working
 * dir (and node_modules, when asked) shipped to the cluster once per content, and the descriptor tasks and actors carry.
 */
import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import type { Redis } from 'ioredis';
import { RuntimeEnvError } from '../errors';
import { mergeRuntimeEnv, type ResolvedRuntimeEnv } from '../options';
import type { Keys, RuntimeEnvDescriptor } from '../protocol';
import { DEFAULT_MAX_MODULES_BYTES, DEFAULT_MAX_PACKAGE_BYTES, byteLimit, shipDir } from './packaging';

/** A runtime env ready to be used: its descriptor, and where its working dir is in this process (modules under it travel relative to it). */
export interface PreparedEnv {
  desc: RuntimeEnvDescriptor;
  /** The working dir here: the submitter's folder (real path), or in a worker the folder its node unpacked it to. */
  root?: string;
  /** What shipping it did in this process (absent when it had no working dir or was inherited). */
  shipped?: { pkgBytes: number; files: number; uploaded: boolean };
}

/** A working dir as shipped: package hashes and what it took. */
interface ShippedWorkingDir {
  root: string;
  pkg: string;
  lock?: string;
  mods?: string;
  pkgBytes: number;
  files: number;
  uploaded: boolean;
}

/** The lockfiles `npm ci` installs from. */
export const LOCKFILES = ['package-lock.json', 'npm-shrinkwrap.json'];

/** The env's identity: equal content, equal variables, equal key (and so the same queues and workers). */
export function envKey(d: Omit<RuntimeEnvDescriptor, 'key'>): string {
  const vars = Object.keys(d.vars)
    .sort()
    .map((k) => [k, d.vars[k]]);
  return createHash('sha256')
    .update(JSON.stringify([d.pkg ?? '', d.lock ?? '', d.mods ?? '', vars]))
    .digest('hex')
    .slice(0, 16);
}

/** A module path as it travels: relative to the env's working dir when it is inside it, else as it is. */
export function envModulePath(module: string, root: string | undefined): string {
  if (!root || !module.startsWith(root + sep)) return module;
  return module.slice(root.length + 1).split(sep).join('/');
}

/** Hash of package.json and the npm lockfile beside it, when the folder has both: nodes run `npm ci` once per hash. */
async function lockHash(root: string): Promise<string | undefined> {
  const pkg = await readFile(join(root, 'package.json')).catch(() => undefined);
  if (!pkg) return undefined;
  for (const name of LOCKFILES) {
    const lock = await readFile(join(root, name)).catch(() => undefined);
    if (lock) return createHash('sha256').update(pkg).update('\0').update(lock).digest('hex').slice(0, 32);
  }
  return undefined;
}

/**
 * Ships a working dir: the folder's package (and its node_modules with `shipNodeModules`), each stored once per
 * content. Reusable on its own (jobs ship their working dir with it).
 *
 * @example
 * const shipped = await shipWorkingDir(redis, keys, { workingDir: '/home/me/app', env: {} });
 */
export async function shipWorkingDir(redis: Redis, keys: Keys, spec: ResolvedRuntimeEnv & { workingDir: string }): Promise<ShippedWorkingDir> {
  const root = await realpath(spec.workingDir).catch(() => spec.workingDir);
  const limitName = 'NODUS_RUNTIME_ENV_MAX_BYTES';
  const pkg = await shipDir(redis, keys, root, { what: 'runtimeEnv.workingDir', excludes: spec.excludes, maxBytes: byteLimit(limitName, DEFAULT_MAX_PACKAGE_BYTES), limitName });
  const out: ShippedWorkingDir = { root, pkg: pkg.hash, lock: await lockHash(root), pkgBytes: pkg.bytes, files: pkg.files, uploaded: pkg.uploaded };
  if (spec.shipNodeModules) {
    const nm = join(root, 'node_modules');
    if (!(await stat(nm).catch(() => undefined))?.isDirectory()) {
      throw new RuntimeEnvError(`runtimeEnv.shipNodeModules is set, but ${nm} does not exist: install the packages there first (npm ci), or leave shipNodeModules out.`);
    }
    const modsLimit = 'NODUS_RUNTIME_ENV_MAX_MODULES_BYTES';
    // The node's own nodus serves the shipped code (one runtime per process), so nodus itself stays here.
    const mods = await shipDir(redis, keys, nm, {
      what: 'runtimeEnv.shipNodeModules: node_modules',
      gitignore: false,
      skipNames: [],
      skipTop: ['nodus', '.cache'],
      maxBytes: byteLimit(modsLimit, DEFAULT_MAX_MODULES_BYTES),
      limitName: modsLimit,
    });
    out.mods = mods.hash;
    out.uploaded ||= mods.uploaded;
  }
  return out;
}

/**
 * The runtime envs of one process: the job's (init's, or in a worker the env it runs in) merged with each task's and
 * actor's. Working dirs are shipped once per process and folder; the same env asked for again is answered at once.
 */
export class RuntimeEnvs {
  private readonly shipped = new Map<string, Promise<ShippedWorkingDir>>();
  private readonly ready = new Map<string, PreparedEnv>();
  private readonly preparing = new Map<string, Promise<PreparedEnv>>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** The job's env (init's runtimeEnv). */
    private readonly job: ResolvedRuntimeEnv | undefined,
    /** In a worker: the env it runs in, which its tasks' tasks inherit. */
    private readonly inherited?: PreparedEnv,
  ) {}

  /** The job's env once ready: most submissions ask for it, and get it without merging anything. */
  private jobEnv: PreparedEnv | undefined;

  /** The env a task or actor with this option runs in: none, ready now, or once its working dir is shipped. */
  resolve(over: ResolvedRuntimeEnv | undefined): PreparedEnv | Promise<PreparedEnv> | undefined {
    if (!over && this.jobEnv) return this.jobEnv;
    const spec = mergeRuntimeEnv(this.job, over);
    if (!spec) return this.inherited;
    const id = JSON.stringify(spec);
    const done = this.ready.get(id);
    if (done) {
      if (!over) this.jobEnv = done;
      return done;
    }
    const parent = this.inherited;
    const vars = { ...parent?.desc.vars, ...spec.env };
    if (spec.shipped) {
      // A working dir shipped by another process (a serve deployment's): its hashes, nothing to ship here.
      const base = { ...spec.shipped, vars };
      const env: PreparedEnv = { desc: clean({ key: envKey(base), ...base }) };
      this.ready.set(id, env);
      return env;
    }
    if (!spec.workingDir) {
      // Variables only, over the inherited working dir if there is one: nothing to ship.
      if (!parent && !Object.keys(vars).length) return undefined;
      const base = { pkg: parent?.desc.pkg, lock: parent?.desc.lock, mods: parent?.desc.mods, vars };
      const env: PreparedEnv = { desc: clean({ key: envKey(base), ...base }), root: parent?.root };
      this.ready.set(id, env);
      return env;
    }
    let p = this.preparing.get(id);
    if (!p) {
      const dir = spec.workingDir;
      p = this.ship({ ...spec, workingDir: dir }).then((s) => {
        const base = { pkg: s.pkg, lock: s.lock, mods: s.mods, vars };
        const env: PreparedEnv = { desc: clean({ key: envKey(base), ...base }), root: s.root, shipped: { pkgBytes: s.pkgBytes, files: s.files, uploaded: s.uploaded } };
        this.ready.set(id, env);
        return env;
      });
      this.preparing.set(id, p);
      // A failure is not kept: the next task tries again (the folder may have been fixed).
      p.catch(() => this.preparing.delete(id));
    }
    return p;
  }

  /** Where the env's working dir is in this process, known at once (module paths under it travel relative to it). */
  rootOf(over: ResolvedRuntimeEnv | undefined): string | undefined {
    const spec = mergeRuntimeEnv(this.job, over);
    if (spec?.shipped) return undefined;
    if (!spec?.workingDir) return this.inherited?.root;
    try {
      return realpathSync(spec.workingDir);
    } catch {
      return resolve(spec.workingDir);
    }
  }

  private ship(spec: ResolvedRuntimeEnv & { workingDir: string }): Promise<ShippedWorkingDir> {
    const id = JSON.stringify([spec.workingDir, spec.excludes ?? [], !!spec.shipNodeModules]);
    let p = this.shipped.get(id);
    if (!p) {
      p = shipWorkingDir(this.redis, this.keys, spec);
      this.shipped.set(id, p);
      p.catch(() => this.shipped.delete(id));
    }
    return p;
  }
}

/**
 * The runtime env this process runs in, as its node agent set it (NODUS_RUNTIME_ENV, NODUS_ENV_DIR): a worker's, or a
 * job's driver's. What the process starts runs in it too.
 */
export function inheritedEnv(env: NodeJS.ProcessEnv = process.env): PreparedEnv | undefined {
  const raw = env.NODUS_RUNTIME_ENV;
  if (!raw) return undefined;
  return { desc: JSON.parse(raw) as RuntimeEnvDescriptor, root: env.NODUS_ENV_DIR ? realpathSync(env.NODUS_ENV_DIR) : undefined };
}

/** Leaves out fields that are undefined, so descriptors stay small and compare equal. */
function clean(d: RuntimeEnvDescriptor): RuntimeEnvDescriptor {
  const out: RuntimeEnvDescriptor = { key: d.key, vars: d.vars };
  if (d.pkg) out.pkg = d.pkg;
  if (d.lock) out.lock = d.lock;
  if (d.mods) out.mods = d.mods;
  return out;
}
