/**
 * @module Packages: a folder scanned (respecting .gitignore and excludes, within a size limit), hashed by content, packed
 * as a gzipped tar, stored in the cluster's Redis once per hash, fetched and unpacked elsewhere. Runtime envs ship working
 * dirs and node_modules with it; jobs ship their working dir the same way.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import ignore, { type Ignore } from 'ignore';
import { create as createTar, extract as extractTar } from 'tar';
import { RuntimeEnvError } from '../errors';
import type { Keys } from '../protocol';

/** Largest working dir shipped, summed file sizes before compression (NODUS_RUNTIME_ENV_MAX_BYTES). */
export const DEFAULT_MAX_PACKAGE_BYTES = 100 * 1024 * 1024;
/** Largest node_modules shipped (NODUS_RUNTIME_ENV_MAX_MODULES_BYTES). */
export const DEFAULT_MAX_MODULES_BYTES = 512 * 1024 * 1024;
/** Stored packages are split into strings of this size: one huge Redis string is a huge allocation on its heap. */
const CHUNK_BYTES = 8 * 1024 * 1024;

/** A byte limit from an environment variable, or the default. */
export function byteLimit(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new RuntimeEnvError(`${name} must be a number of bytes > 0, got '${v}'.`);
  return n;
}

export interface ScanOptions {
  /** What the folder is, for messages (e.g. "runtimeEnv.workingDir"). */
  what: string;
  /** .gitignore patterns relative to the folder, left out besides .gitignore's. @default [] */
  excludes?: string[];
  /** Honour the .gitignore files found in the folder and below. @default true */
  gitignore?: boolean;
  /** Names left out wherever they are. @default ['.git', 'node_modules'] */
  skipNames?: string[];
  /** Names left out at the top level only (e.g. `nodus` in a shipped node_modules). @default [] */
  skipTop?: string[];
  /** Largest total of file sizes. @default DEFAULT_MAX_PACKAGE_BYTES */
  maxBytes?: number;
  /** Which limit it is, for the message (an option or variable name). */
  limitName?: string;
}

interface Entry {
  /** Path relative to the folder, `/`-separated. */
  rel: string;
  size: number;
  link?: string;
  exec: boolean;
}

/** A folder as it will be packed: its files, their total size and the content hash that names the package. */
export interface ScannedDir {
  dir: string;
  files: Entry[];
  bytes: number;
  /** sha256 (hex, 32 characters) of every file's path, kind and content, in order: equal folders, equal hashes. */
  hash: string;
}

function fmtBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

function unreadable(o: ScanOptions, dir: string, rel: string, err: NodeJS.ErrnoException): RuntimeEnvError {
  return new RuntimeEnvError(
    `${o.what} ${dir}: cannot read ${rel || '.'} (${err.code ?? err.message}). Make it readable by this process, ` +
      (rel ? `or leave it out with excludes: ['${rel}'] or a .gitignore line.` : 'or point at another folder.'),
  );
}

/**
 * Lists the files of a folder that a package holds, then hashes their content. Fails with the limit and the biggest
 * entries when the folder is too big, and names what it cannot read.
 */
export async function scanDir(dir: string, o: ScanOptions): Promise<ScannedDir> {
  const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
    throw new RuntimeEnvError(`${o.what} ${dir} ${err.code === 'ENOENT' ? 'does not exist' : `cannot be read (${err.code})`}: give a folder that exists here.`);
  });
  if (!st.isDirectory()) throw new RuntimeEnvError(`${o.what} ${dir} is not a folder: give a folder.`);
  const skipNames = new Set(o.skipNames ?? ['.git', 'node_modules']);
  const skipTop = new Set(o.skipTop ?? []);
  const top: Array<{ base: string; ig: Ignore }> = [];
  if (o.excludes?.length) top.push({ base: '', ig: ignore().add(o.excludes) });
  const files: Entry[] = [];
  const walk = async (relDir: string, rules: Array<{ base: string; ig: Ignore }>): Promise<void> => {
    const abs = relDir ? join(dir, relDir) : dir;
    let names: string[];
    try {
      names = (await readdir(abs)).sort();
    } catch (err) {
      throw unreadable(o, dir, relDir, err as NodeJS.ErrnoException);
    }
    if (o.gitignore !== false && names.includes('.gitignore')) {
      try {
        rules = [...rules, { base: relDir, ig: ignore().add(await readFile(join(abs, '.gitignore'), 'utf8')) }];
      } catch (err) {
        throw unreadable(o, dir, relDir ? `${relDir}/.gitignore` : '.gitignore', err as NodeJS.ErrnoException);
      }
    }
    for (const name of names) {
      if (skipNames.has(name) || (!relDir && skipTop.has(name))) continue;
      const rel = relDir ? `${relDir}/${name}` : name;
      let s;
      try {
        s = await lstat(join(abs, name));
      } catch (err) {
        throw unreadable(o, dir, rel, err as NodeJS.ErrnoException);
      }
      const isDir = s.isDirectory();
      if (rules.some((r) => r.ig.ignores((r.base ? rel.slice(r.base.length + 1) : rel) + (isDir ? '/' : '')))) continue;
      if (isDir) await walk(rel, rules);
      else if (s.isSymbolicLink()) files.push({ rel, size: 0, link: await readlink(join(abs, name)), exec: false });
      // Sockets, pipes and devices are not files to ship.
      else if (s.isFile()) files.push({ rel, size: s.size, exec: (s.mode & 0o111) !== 0 });
    }
  };
  await walk('', top);
  const bytes = files.reduce((sum, f) => sum + f.size, 0);
  const max = o.maxBytes ?? DEFAULT_MAX_PACKAGE_BYTES;
  if (bytes > max) {
    const byTop = new Map<string, number>();
    for (const f of files) {
      const i = f.rel.indexOf('/');
      const key = i < 0 ? f.rel : `${f.rel.slice(0, i)}/`;
      byTop.set(key, (byTop.get(key) ?? 0) + f.size);
    }
    const biggest = [...byTop].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, n]) => `${k} (${fmtBytes(n)})`);
    throw new RuntimeEnvError(
      `${o.what} ${dir} holds ${fmtBytes(bytes)} of files, over the limit of ${fmtBytes(max)}${o.limitName ? ` (${o.limitName})` : ''}. ` +
        `Biggest entries: ${biggest.join(', ')}. Leave out what the tasks do not need with excludes or a .gitignore line` +
        `${o.limitName ? `, or raise ${o.limitName}` : ''}.`,
    );
  }
  const h = createHash('sha256');
  for (const f of files) {
    let content: string | Buffer;
    if (f.link !== undefined) content = f.link;
    else {
      try {
        content = await readFile(join(dir, f.rel));
      } catch (err) {
        throw unreadable(o, dir, f.rel, err as NodeJS.ErrnoException);
      }
    }
    h.update(`${f.rel}\0${f.link !== undefined ? 'l' : f.exec ? 'x' : 'f'}\0`);
    h.update(createHash('sha256').update(content).digest());
  }
  return { dir, files, bytes, hash: h.digest('hex').slice(0, 32) };
}

/** The scanned files as a gzipped tar (paths relative to the folder; owners and times left out). */
export async function packDir(scan: ScannedDir): Promise<Buffer> {
  if (!scan.files.length) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  const stream = createTar({ gzip: true, cwd: scan.dir, portable: true, noDirRecurse: true, mtime: new Date(0) }, scan.files.map((f) => f.rel));
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** True when the cluster holds the package of this hash (complete: its record is written last). */
export async function packageStored(redis: Redis, keys: Keys, hash: string): Promise<boolean> {
  return (await redis.exists(keys.envPackage(hash))) === 1;
}

/** Stores a package under its hash: the chunks first, then the record that says it is complete. */
export async function storePackage(redis: Redis, keys: Keys, hash: string, data: Buffer, files: number): Promise<void> {
  const chunks = Math.ceil(data.length / CHUNK_BYTES);
  for (let i = 0; i < chunks; i++) await redis.set(keys.envPackageChunk(hash, i), data.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES));
  await redis.hset(keys.envPackage(hash), 'bytes', String(data.length), 'chunks', String(chunks), 'files', String(files), 'createdAt', String(Date.now()));
}

/** A package's bytes, or undefined when the cluster does not hold it. */
export async function fetchPackage(redis: Redis, keys: Keys, hash: string): Promise<Buffer | undefined> {
  const meta = await redis.hgetall(keys.envPackage(hash));
  if (!meta.chunks) return undefined;
  const parts: Buffer[] = [];
  for (let i = 0; i < Number(meta.chunks); i++) {
    const part = await redis.getBuffer(keys.envPackageChunk(hash, i));
    if (!part) return undefined;
    parts.push(part);
  }
  const data = Buffer.concat(parts);
  if (data.length !== Number(meta.bytes)) throw new RuntimeEnvError(`stored package ${hash} is ${data.length} bytes, its record says ${meta.bytes}: it was changed by hand.`);
  return data;
}

/** What shipDir did: the package's hash, and whether this call stored it (false: the cluster had it already). */
export interface ShippedDir {
  hash: string;
  /** Summed file sizes. */
  bytes: number;
  files: number;
  uploaded: boolean;
}

/**
 * Scans a folder and stores its package in the cluster unless a package of the same content is there already
 * (checked before anything is packed, so an unchanged folder costs a scan and one EXISTS).
 *
 * @example
 * const { hash } = await shipDir(redis, keys, '/home/me/app', { what: 'runtimeEnv.workingDir' });
 */
export async function shipDir(redis: Redis, keys: Keys, dir: string, o: ScanOptions): Promise<ShippedDir> {
  const scan = await scanDir(dir, o);
  const out = { hash: scan.hash, bytes: scan.bytes, files: scan.files.length, uploaded: false };
  if (await packageStored(redis, keys, scan.hash)) return out;
  await storePackage(redis, keys, scan.hash, await packDir(scan), scan.files.length);
  return { ...out, uploaded: true };
}

/**
 * Unpacks a package into `dest`, which must not exist yet: into a fresh folder beside it first, renamed into place
 * when complete, so a reader never sees half a package. Resolves false when another unpack got there first.
 */
export async function unpackTo(data: Buffer, dest: string): Promise<boolean> {
  const tmp = `${dest}.part-${randomBytes(4).toString('hex')}`;
  await mkdir(tmp, { recursive: true });
  try {
    if (data.length) {
      const file = `${tmp}.tgz`;
      await writeFile(file, data);
      try {
        // strict: a damaged archive fails rather than leaving files out. node-tar keeps paths inside tmp.
        await extractTar({ file, cwd: tmp, strict: true });
      } finally {
        await rm(file, { force: true });
      }
    }
    await rename(tmp, dest);
    return true;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}
