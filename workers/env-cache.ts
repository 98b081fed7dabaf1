/**
 * @module A node's cache of runtime envs: each working dir fetched from the cluster and unpacked the first time a task
 * or actor of it runs here, its packages installed once per lockfile (`npm ci`) or taken from the submitter's shipped
 * node_modules, `nodus` in it linked to this node's own; bounded, evicting the least recently used envs not in use.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, lstat, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ConfigError, RuntimeEnvError } from '../runtime/errors';
import { distRoot } from '../runtime/internal/launcher';
import { fetchPackage, unpackTo } from '../runtime/internal/packaging';
import { isRunning } from '../runtime/internal/process-state';
import { LOCKFILES } from '../runtime/internal/runtime-env';
import { sessionDir } from '../runtime/internal/session';
import type { Keys, RuntimeEnvDescriptor } from '../runtime/protocol';

/** Settings of a node's env cache, from the environment of its agent (see resolveEnvCacheOptions). */
export interface EnvCacheSettings {
  /** Folder under which each agent keeps its cache (NODUS_ENV_CACHE_DIR). @default $NODUS_SESSION_DIR/runtime-envs */
  root: string;
  /** Largest total size of unpacked envs and installed packages (NODUS_ENV_CACHE_MAX_BYTES). @default 10 GiB */
  maxBytes: number;
  /** Most working dirs kept unpacked (NODUS_ENV_CACHE_MAX_ENVS). @default 32 */
  maxEnvs: number;
  /** This node cannot reach a registry: no `npm ci`, shipped node_modules only (NODUS_OFFLINE=1). @default false */
  offline: boolean;
  /** How long one `npm ci` may take (NODUS_NPM_CI_TIMEOUT_MS). @default 10 minutes */
  npmTimeoutMs: number;
  /** Set-up failures are remembered this long (NODUS_ENV_RETRY_MS): tasks of a broken env fail at once meanwhile, not one install each. @default 30 s */
  retryMs: number;
}

function positive(env: NodeJS.ProcessEnv, name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new ConfigError(`${name} must be a number > 0, got '${v}'.`);
  return n;
}

/** Reads the cache's settings from environment variables; a bad value is a ConfigError naming it. */
export function resolveEnvCacheOptions(env: NodeJS.ProcessEnv = process.env): EnvCacheSettings {
  const offline = env.NODUS_OFFLINE ?? '';
  if (!['', '0', '1', 'true', 'false'].includes(offline)) throw new ConfigError(`NODUS_OFFLINE must be 1 or 0, got '${offline}'.`);
  return {
    root: env.NODUS_ENV_CACHE_DIR || join(sessionDir(), 'runtime-envs'),
    maxBytes: positive(env, 'NODUS_ENV_CACHE_MAX_BYTES', 10 * 1024 ** 3),
    maxEnvs: positive(env, 'NODUS_ENV_CACHE_MAX_ENVS', 32),
    offline: offline === '1' || offline === 'true',
    npmTimeoutMs: positive(env, 'NODUS_NPM_CI_TIMEOUT_MS', 10 * 60 * 1000),
    retryMs: positive(env, 'NODUS_ENV_RETRY_MS', 30_000),
  };
}

export interface EnvCacheOptions extends EnvCacheSettings {
  redis: Redis;
  keys: Keys;
  /** The node's current id, for messages. */
  nodeId(): string;
  logger: Logger;
  /** True while a worker or actor whose env uses this folder lives (it is not evicted then). */
  inUse(dir: string): boolean;
  /** A folder was evicted: its env's idle worker pool can go. */
  onEvict?(dir: string): void;
}

/** An env ready on this node: where its worker processes run (none: only variables) and with what. */
export interface ReadyEnv {
  desc: RuntimeEnvDescriptor;
  /** The unpacked working dir: the workers' current directory, and where relative module paths point. */
  dir?: string;
}

interface Unit {
  name: string;
  dir: string;
  bytes: number;
  lastUsed: number;
  /** The installed or shipped node_modules folder it links to, if any (kept while a unit uses it). */
  modules?: string;
}

/** The package root of this node's nodus: shipped code that imports `nodus` gets this one, the worker's own. */
export function nodusRoot(): string {
  return dirname(distRoot());
}

/** Bytes under a folder, symlinks not followed. */
async function du(path: string): Promise<number> {
  const s = await lstat(path).catch(() => undefined);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  let n = 0;
  for (const name of await readdir(path).catch(() => [] as string[])) n += await du(join(path, name));
  return n;
}

/** A failed step, named with the node and the env: what reaches the submitter. */
class SetupError extends RuntimeEnvError {}

export class EnvCache {
  /** This agent's own folder (agents on one machine never share one: no two processes unpack into the same place). */
  readonly dir: string;
  private readonly units = new Map<string, Unit>();
  private readonly making = new Map<string, Promise<Unit>>();
  private readonly modules = new Map<string, { path: string; bytes: number }>();
  private readonly installing = new Map<string, Promise<{ path: string; bytes: number }>>();
  private readonly failed = new Map<string, { err: SetupError; at: number }>();
  private readonly npm = new Set<ChildProcess>();
  private closed = false;

  constructor(private readonly o: EnvCacheOptions) {
    this.dir = join(o.root, `agent-${process.pid}-${randomBytes(3).toString('hex')}`);
    this.sweepStale();
  }

  /**
   * Makes an env ready here: fetched, unpacked and installed the first time, at once after that; concurrent first uses
   * wait for one set-up. A failure names the node and the step.
   */
  async prepare(desc: RuntimeEnvDescriptor): Promise<ReadyEnv> {
    if (!desc.pkg) return { desc };
    const name = `pkg-${desc.pkg}${desc.mods ? `-m${desc.mods.slice(0, 12)}` : ''}`;
    const have = this.units.get(name);
    if (have && existsSync(have.dir)) {
      have.lastUsed = Date.now();
      return { desc, dir: have.dir };
    }
    const failed = this.failed.get(name);
    if (failed && Date.now() - failed.at < this.o.retryMs) throw failed.err;
    let p = this.making.get(name);
    if (!p) {
      p = this.make(name, desc).finally(() => this.making.delete(name));
      this.making.set(name, p);
    }
    try {
      const unit = await p;
      unit.lastUsed = Date.now();
      return { desc, dir: unit.dir };
    } catch (err) {
      const e = err instanceof SetupError ? err : this.fail(desc, 'set-up', err);
      this.failed.set(name, { err: e, at: Date.now() });
      throw e;
    }
  }

  private fail(desc: RuntimeEnvDescriptor, step: string, err: unknown, hint = ''): SetupError {
    const why = err instanceof Error ? err.message : String(err);
    return new SetupError(`runtime env ${desc.key}: node ${this.o.nodeId()} could not set it up at step '${step}': ${why}${hint ? ` ${hint}` : ''}`);
  }

  private async make(name: string, desc: RuntimeEnvDescriptor): Promise<Unit> {
    if (this.closed) throw this.fail(desc, 'set-up', new Error('the node is stopping'));
    await mkdir(this.dir, { recursive: true });
    const dir = join(this.dir, name);
    const t0 = Date.now();
    if (!existsSync(dir)) {
      const data = await fetchPackage(this.o.redis, this.o.keys, desc.pkg!).catch((err) => {
        throw this.fail(desc, 'fetch', err);
      });
      if (!data) throw this.fail(desc, 'fetch', new Error(`the cluster holds no package ${desc.pkg}`), 'Start the task again from its driver, which stores it again.');
      await unpackTo(data, dir).catch((err) => {
        throw this.fail(desc, 'unpack', err, `Check the space and permissions of ${this.o.root} (NODUS_ENV_CACHE_DIR).`);
      });
    }
    const unit: Unit = { name, dir, bytes: 0, lastUsed: Date.now() };
    try {
      unit.modules = await this.modulesFor(desc, dir);
      const link = join(dir, 'node_modules');
      await rm(link, { recursive: true, force: true });
      if (unit.modules) await symlink(unit.modules, link, 'dir');
      else await mkdir(link);
      await this.linkNodus(link);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    unit.bytes = await du(dir);
    this.units.set(name, unit);
    this.o.logger.info({ env: desc.key, dir, ms: Date.now() - t0, modules: unit.modules }, 'runtime env ready');
    await this.evict(name);
    return unit;
  }

  /**
   * The node_modules a working dir gets: installed with `npm ci` from its lockfile (once per lockfile on this node) unless
   * this node is offline; the submitter's shipped ones when installing is not possible or failed; none otherwise.
   */
  private async modulesFor(desc: RuntimeEnvDescriptor, dir: string): Promise<string | undefined> {
    const hasLock = desc.lock && existsSync(join(dir, 'package.json')) && LOCKFILES.some((f) => existsSync(join(dir, f)));
    if (hasLock && !this.o.offline) {
      try {
        return await this.once(`deps-${desc.lock}`, () => this.install(desc, dir));
      } catch (err) {
        if (!desc.mods) throw err;
        this.o.logger.warn({ env: desc.key, err: (err as Error).message }, 'npm ci failed; using the node_modules shipped by the submitter');
      }
    }
    if (desc.mods) return this.once(`mods-${desc.mods}`, () => this.unpackModules(desc));
    if (hasLock) {
      throw this.fail(desc, 'npm ci', new Error('this node is offline (NODUS_OFFLINE=1) and the submitter shipped no node_modules'), 'Set runtimeEnv.shipNodeModules: true on the submitter.');
    }
    return undefined;
  }

  /** One install (or unpack) of a set of packages at a time, kept for every env that shares it. */
  private async once(name: string, make: () => Promise<{ path: string; bytes: number }>): Promise<string> {
    const have = this.modules.get(name);
    if (have && existsSync(have.path)) return have.path;
    let p = this.installing.get(name);
    if (!p) {
      p = make().finally(() => this.installing.delete(name));
      this.installing.set(name, p);
    }
    const made = await p;
    this.modules.set(name, made);
    return made.path;
  }

  /** `npm ci` in a copy of the working dir (so that `file:` dependencies inside it resolve), kept per lockfile. */
  private async install(desc: RuntimeEnvDescriptor, dir: string): Promise<{ path: string; bytes: number }> {
    const home = join(this.dir, `deps-${desc.lock}`);
    const src = join(home, 'src');
    await rm(home, { recursive: true, force: true });
    try {
      await cp(dir, src, { recursive: true, filter: (from) => !from.startsWith(join(dir, 'node_modules')) });
      await this.npmCi(desc, src);
      const path = join(src, 'node_modules');
      if (!existsSync(path)) await mkdir(path);
      await this.linkNodus(path);
      return { path, bytes: await du(home) };
    } catch (err) {
      await rm(home, { recursive: true, force: true });
      throw err instanceof SetupError ? err : this.fail(desc, 'npm ci', err);
    }
  }

  private npmCi(desc: RuntimeEnvDescriptor, cwd: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let out = '';
      const child = spawn('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
        cwd,
        env: { ...process.env, npm_config_update_notifier: 'false' },
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its own process group: a timeout or the node's stop ends npm and what it started.
        detached: true,
      });
      this.npm.add(child);
      const keep = (b: Buffer) => (out = (out + b.toString()).slice(-2000));
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      const timer = setTimeout(() => {
        out += `\n(stopped after ${this.o.npmTimeoutMs} ms, NODUS_NPM_CI_TIMEOUT_MS)`;
        killGroup(child);
      }, this.o.npmTimeoutMs);
      const hint = 'If this node cannot reach a registry, ship the packages from the submitter with runtimeEnv.shipNodeModules: true (or set NODUS_OFFLINE=1 here); else fix package.json and its lockfile.';
      child.once('error', (err) => {
        clearTimeout(timer);
        this.npm.delete(child);
        reject(this.fail(desc, 'npm ci', (err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error('npm is not installed on this node') : err, hint));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        this.npm.delete(child);
        if (code === 0) resolve();
        else reject(this.fail(desc, 'npm ci', new Error(`npm ci ${signal ? `was killed (${signal})` : `exited with code ${code}`}: ${out.trim().split('\n').slice(-8).join(' | ')}`), hint));
      });
    });
  }

  private async unpackModules(desc: RuntimeEnvDescriptor): Promise<{ path: string; bytes: number }> {
    const path = join(this.dir, `mods-${desc.mods}`);
    if (!existsSync(path)) {
      const data = await fetchPackage(this.o.redis, this.o.keys, desc.mods!).catch((err) => {
        throw this.fail(desc, 'fetch node_modules', err);
      });
      if (!data) throw this.fail(desc, 'fetch node_modules', new Error(`the cluster holds no package ${desc.mods}`));
      await unpackTo(data, path).catch((err) => {
        throw this.fail(desc, 'unpack node_modules', err);
      });
    }
    await this.linkNodus(path);
    return { path, bytes: await du(path) };
  }

  /** node_modules/nodus → this node's nodus: the shipped code and the worker share one runtime (one module instance). */
  private async linkNodus(nodeModules: string): Promise<void> {
    const link = join(nodeModules, 'nodus');
    await rm(link, { recursive: true, force: true });
    await symlink(nodusRoot(), link, 'dir');
  }

  /** Drops least recently used working dirs not in use while over the limits, and the packages no kept one uses. */
  private async evict(keep: string): Promise<void> {
    const total = () => [...this.units.values()].reduce((n, u) => n + u.bytes, 0) + [...this.modules.values()].reduce((n, m) => n + m.bytes, 0);
    while (this.units.size > this.o.maxEnvs || total() > this.o.maxBytes) {
      const victim = [...this.units.values()].filter((u) => u.name !== keep && !this.o.inUse(u.dir)).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!victim) break;
      this.units.delete(victim.name);
      this.o.onEvict?.(victim.dir);
      await rm(victim.dir, { recursive: true, force: true });
      this.o.logger.info({ dir: victim.dir }, 'runtime env evicted from the cache');
      const used = new Set([...this.units.values()].map((u) => u.modules));
      for (const [name, m] of this.modules) {
        if (used.has(m.path)) continue;
        this.modules.delete(name);
        await rm(name.startsWith('deps-') ? dirname(dirname(m.path)) : m.path, { recursive: true, force: true });
      }
    }
  }

  /** Working dirs unpacked here now (for tests and status). */
  get size(): number {
    return this.units.size;
  }

  /** Caches of agents on this machine that are gone (killed before they could clean up). */
  private sweepStale(): void {
    try {
      for (const name of readdirSync(this.o.root)) {
        const m = /^agent-(\d+)-/.exec(name);
        if (m && !isRunning(Number(m[1]))) rmSync(join(this.o.root, name), { recursive: true, force: true });
      }
    } catch {
      /* no cache folder yet */
    }
  }

  /** Stops installs under way and removes this agent's cache (bounded: a stop must end within seconds). */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.npm) killGroup(c);
    await Promise.race([rm(this.dir, { recursive: true, force: true }).catch(() => undefined), new Promise((r) => setTimeout(r, 1500))]);
  }
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}
