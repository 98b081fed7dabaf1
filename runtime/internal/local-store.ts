/**
 * @module The node-local object store, as the processes of a node use it (the node agent owns it: workers/store-host.ts).
 * A large object is files under the node's store folder in /dev/shm (shared memory), written by the process that
 * makes it and read by any process of that machine; Redis keeps only a short record of where it is, and its
 * reference count as for any object. Objects that do not fit in the store's capacity go to its spill folder on
 * disk. A process on another machine fetches the bytes from the holding node's agent over HTTP, not through Redis.
 *
 * Record (the object's value in Redis): tag byte 3, then `store|folder|spilled|stripes|size|addresses|secret`.
 * A file is striped over up to four files (`<id>.<i>`) written and read in parallel: tmpfs writes one file at a
 * time, so one file is half as fast as two.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { ObjectLostError } from '../errors';
import { ValueTag, type Keys, type NodeInfo, type StoreInfo } from '../protocol';
import { decodeFramed } from './framing';

/** The process environment variable through which a node agent tells its workers about its store (JSON of StoreInfo). */
export const STORE_VAR = 'NODUS_STORE';

/** Default smallest object kept in the store (smaller ones stay in Redis). */
export const DEFAULT_STORE_MIN_BYTES = 1024 * 1024;
/** Files in the store's pool of freed files, reused by writes (their pages are already allocated). */
export const POOL_DIR = 'pool';

export const storeKeys = {
  used: (prefix: string, store: string) => `${prefix}:store:used:${store}`,
  free: (prefix: string, store: string) => `${prefix}:store:free:${store}`,
  /** Set: records of the copies other nodes' agents pulled of an object (freed with it). */
  copies: (prefix: string, id: string) => `${prefix}:store:copies:${id}`,
};

/** Stripes of an object of `size` bytes: one per 64 MiB, at most four, each under 1 GiB. */
export function stripesFor(size: number): number {
  return Math.max(Math.min(4, Math.ceil(size / (64 * 1024 * 1024))), Math.ceil(size / 2 ** 30), 1);
}

function stripeRange(size: number, stripes: number, i: number): [number, number] {
  const each = Math.ceil(size / stripes / 4096) * 4096;
  const start = Math.min(size, each * i);
  return [start, Math.min(size, start + each)];
}

export interface StoredRecord {
  store: string;
  dir: string;
  spilled: boolean;
  stripes: number;
  size: number;
  addr: string;
  secret: string;
}

export function recordBytes(r: StoredRecord): Buffer {
  return Buffer.concat([Buffer.from([ValueTag.Stored]), Buffer.from([r.store, r.dir, r.spilled ? 1 : 0, r.stripes, r.size, r.addr, r.secret].join('|'))]);
}

export function parseRecord(head: Buffer): StoredRecord {
  const [store, dir, spilled, stripes, size, addr, secret] = head.subarray(1).toString().split('|');
  return { store, dir, spilled: spilled === '1', stripes: Number(stripes), size: Number(size), addr, secret };
}

/** Writes `pieces` (in order, `size` bytes in all) into files from `start`: each stripe with one writev. */
async function writeStripes(paths: string[], handles: FileHandle[], pieces: Uint8Array[], size: number): Promise<void> {
  const stripes = paths.length;
  const jobs: Promise<unknown>[] = [];
  let p = 0;
  let pOff = 0;
  for (let i = 0; i < stripes; i++) {
    const [start, end] = stripeRange(size, stripes, i);
    const parts: Uint8Array[] = [];
    let need = end - start;
    while (need > 0) {
      const piece = pieces[p];
      const take = Math.min(need, piece.byteLength - pOff);
      parts.push(piece.subarray(pOff, pOff + take));
      need -= take;
      pOff += take;
      if (pOff === piece.byteLength) {
        p++;
        pOff = 0;
      }
    }
    jobs.push(writeAll(handles[i], parts));
  }
  await Promise.all(jobs);
}

/** writev until everything is written (the kernel may write less than asked, and takes at most 1,024 buffers). */
async function writeAll(fh: FileHandle, parts: Uint8Array[]): Promise<void> {
  let position = 0;
  const rest = parts.filter((b) => b.byteLength);
  while (rest.length) {
    const batch = rest.slice(0, 1024);
    const { bytesWritten } = await fh.writev(batch, position);
    position += bytesWritten;
    let n = bytesWritten;
    while (n > 0 && rest.length) {
      if (rest[0].byteLength <= n) {
        n -= rest[0].byteLength;
        rest.shift();
      } else {
        rest[0] = rest[0].subarray(n);
        n = 0;
      }
    }
  }
  await fh.truncate(position);
}

/** A node's store as a process on that node writes to it. */
export class LocalStore {
  constructor(private readonly redis: Redis, private readonly keys: Keys, readonly info: StoreInfo) {}

  get minBytes(): number {
    return this.info.minBytes;
  }

  /**
   * Writes an object's bytes to the store (or, past its capacity or when shared memory is full, to its spill
   * folder) and resolves to the record to set as the object's value.
   */
  async write(id: string, pieces: Uint8Array[], size: number): Promise<Buffer> {
    const stripes = stripesFor(size);
    const used = await this.redis.incrby(storeKeys.used(this.keys.prefix, this.info.id), size);
    if (used <= this.info.capacity) {
      try {
        await this.writeFiles(this.info.dir, id, stripes, pieces, size, true);
        return recordBytes({ store: this.info.id, dir: this.info.dir, spilled: false, stripes, size, addr: this.info.addr, secret: this.info.secret });
      } catch (err) {
        await this.removeFiles(this.info.dir, id, stripes);
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') {
          await this.redis.decrby(storeKeys.used(this.keys.prefix, this.info.id), size).catch(() => undefined);
          throw err;
        }
      }
    }
    await this.redis.decrby(storeKeys.used(this.keys.prefix, this.info.id), size);
    try {
      await this.writeFiles(this.info.spill, id, stripes, pieces, size, false);
    } catch (err) {
      await this.removeFiles(this.info.spill, id, stripes);
      throw err;
    }
    return recordBytes({ store: this.info.id, dir: this.info.spill, spilled: true, stripes, size, addr: this.info.addr, secret: this.info.secret });
  }

  /** Removes what write() left of an object whose record was never set (its put failed). */
  async discard(id: string, record: Buffer): Promise<void> {
    const r = parseRecord(record);
    await this.removeFiles(r.dir, id, r.stripes);
    if (!r.spilled) await this.redis.decrby(storeKeys.used(this.keys.prefix, this.info.id), r.size).catch(() => undefined);
  }

  private async writeFiles(dir: string, id: string, stripes: number, pieces: Uint8Array[], size: number, pooled: boolean): Promise<void> {
    const paths = Array.from({ length: stripes }, (_, i) => join(dir, `${id}.${i}`));
    const handles: FileHandle[] = [];
    try {
      const claimed = pooled ? await this.claimPooled(paths, size, stripes) : [];
      for (let i = 0; i < stripes; i++) handles.push(await open(paths[i], claimed[i] ? 'r+' : 'wx'));
      await writeStripes(paths, handles, pieces, size);
    } finally {
      await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
    }
  }

  /**
   * Takes freed files of the right size from the store's pool for the stripes (rename is atomic, so two
   * writers never take the same one): writing into pages tmpfs has already allocated is twice as fast.
   */
  private async claimPooled(paths: string[], size: number, stripes: number): Promise<boolean[]> {
    const pool = join(this.info.dir, POOL_DIR);
    let names: string[];
    try {
      names = await readdir(pool);
    } catch {
      return [];
    }
    if (!names.length) return [];
    const files = names.map((n) => ({ n, size: Number(n.split('-')[0]) })).filter((f) => f.size > 0).sort((a, b) => a.size - b.size);
    const claimed: boolean[] = [];
    for (let i = 0; i < stripes; i++) {
      const [start, end] = stripeRange(size, stripes, i);
      const need = end - start;
      for (let j = 0; j < files.length; j++) {
        const f = files[j];
        if (f.size < need || f.size > need * 2) continue;
        files.splice(j, 1);
        try {
          await rename(join(pool, f.n), paths[i]);
          claimed[i] = true;
        } catch {
          continue; // another writer took it
        }
        break;
      }
    }
    return claimed;
  }

  /**
   * Asks this node's agent for a copy of an object held by another node's store: the agent fetches it
   * from that node's agent (or has it already) and answers the copy's record; null when it could not.
   */
  pull(head: Buffer, id: string): Promise<StoredRecord | null> {
    const [ips, port] = this.info.addr.split(':');
    const ip = ips.split(',').includes('127.0.0.1') ? '127.0.0.1' : ips.split(',')[0];
    return new Promise((resolve) => {
      const req = request(
        { host: ip, port: Number(port), agent: false, method: 'POST', path: `/pull/${encodeURIComponent(id)}`, headers: { 'x-nodus-store': this.info.secret }, timeout: 60_000 },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('end', () => resolve(res.statusCode === 200 ? parseRecord(Buffer.concat([Buffer.from([ValueTag.Stored]), ...parts])) : null));
          res.on('error', () => resolve(null));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', () => resolve(null));
      req.end(head.subarray(1));
    });
  }

  private async removeFiles(dir: string, id: string, stripes: number): Promise<void> {
    await Promise.all(Array.from({ length: stripes }, (_, i) => unlink(join(dir, `${id}.${i}`)).catch(() => undefined)));
  }
}

/** The store named in this process's environment (a worker's, from its agent), or null. */
export function storeFromEnv(redis: Redis, keys: Keys): LocalStore | null {
  const raw = process.env[STORE_VAR];
  if (!raw) return null;
  try {
    return new LocalStore(redis, keys, JSON.parse(raw) as StoreInfo);
  } catch {
    return null;
  }
}

/** A driver's store: that of a node whose store folder this process can see (so: one on this machine), or null. */
export async function findLocalStore(redis: Redis, keys: Keys): Promise<LocalStore | null> {
  if (process.env.NODUS_OBJECT_STORE === '0') return null;
  const nodes = await redis.hgetall(keys.nodes);
  for (const raw of Object.values(nodes)) {
    const n = JSON.parse(raw) as NodeInfo;
    if (n.state !== 'alive' || !n.store) continue;
    try {
      const marker = join(n.store.dir, '.id');
      if (existsSync(marker) && readFileSync(marker, 'utf8') === n.store.id) return new LocalStore(redis, keys, n.store);
    } catch {
      // not this machine's
    }
  }
  return null;
}

/** Bytes as readStored returns them: 8 bytes (tag, padding) then the frame, 8-byte aligned for typed-array views. */
function framedBuffer(size: number): Buffer {
  const out = Buffer.allocUnsafe(size + 8);
  out.fill(0, 0, 8);
  out[0] = ValueTag.Stored;
  return out;
}

/** Decodes what readStored returned for a stored object. */
export function fromFramedBuffer(bytes: Buffer): unknown {
  return decodeFramed(bytes.subarray(8));
}

/** Addresses that answered, by store, so that a reader tries the right one first next time. */
const reachable = new Map<string, string>();

/**
 * Reads a stored object: from its files when this process can see them (same machine: one copy, stripes
 * in parallel), else from the holding agent over HTTP. Throws ObjectLostError when neither works.
 */
export async function readRecordBytes(head: Buffer, id: string, own: LocalStore | null = null): Promise<Buffer> {
  const r = parseRecord(head);
  const out = framedBuffer(r.size);
  const tryLocal = (rec: StoredRecord) =>
    readLocal(rec, id, out).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    });
  if (await tryLocal(r)) return out;
  // On another machine: this node's agent pulls a copy into its own store (once for every reader of
  // this node), from which it is read as a local object.
  if (own && own.info.id !== r.store) {
    const copy = await own.pull(head, id);
    if (copy && (await tryLocal(copy))) return out;
  }
  const why = await fetchObject(r, id, (res) => readInto(res, out, r.size));
  if (why === '') return out;
  throw new ObjectLostError(
    `Object ${id} is lost: its bytes were in the object store of another node (store ${r.store}, served at ${r.addr}), which ${why}. ` +
      'The node is gone or restarted; its owner rebuilds a task result when maxRetries allows.',
    { objectId: id },
  );
}

async function readLocal(r: StoredRecord, id: string, out: Buffer): Promise<boolean> {
  const handles: FileHandle[] = [];
  try {
    for (let i = 0; i < r.stripes; i++) handles.push(await open(join(r.dir, `${id}.${i}`), 'r'));
    await Promise.all(
      handles.map(async (fh, i) => {
        const [start, end] = stripeRange(r.size, r.stripes, i);
        for (let pos = start; pos < end; ) {
          const { bytesRead } = await fh.read(out, 8 + pos, Math.min(end - pos, 2 ** 30), pos - start);
          if (!bytesRead) throw Object.assign(new Error('short file'), { code: 'ENOENT' });
          pos += bytesRead;
        }
      }),
    );
    return true;
  } finally {
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  }
}

/**
 * Fetches an object's bytes from the agent of the node that holds it (its addresses in turn, the one that
 * answered last time first) and hands the answer to `take`, which consumes it (and throws if it falls short).
 * Resolves to '' when done, else why not. Used by readers and by agents pulling a copy (workers/store-host.ts).
 */
export async function fetchObject(r: StoredRecord, id: string, take: (res: IncomingMessage) => Promise<void>): Promise<string> {
  const [ips, port] = r.addr.split(':');
  const candidates = ips.split(',').filter(Boolean);
  const known = reachable.get(r.store);
  if (known) candidates.sort((a, b) => Number(b === known) - Number(a === known));
  let why = 'did not answer';
  for (const ip of candidates) {
    let res: IncomingMessage;
    try {
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        const path = `/objects/${encodeURIComponent(id)}?stripes=${r.stripes}&spilled=${r.spilled ? 1 : 0}&store=${encodeURIComponent(r.store)}`;
        const req = request({ host: ip, port: Number(port), agent: false, path, headers: { 'x-nodus-store': r.secret }, timeout: 2000 }, resolve);
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', reject);
        req.end();
      });
    } catch (err) {
      why = `cannot be reached (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
      continue;
    }
    if (res.statusCode !== 200) {
      res.resume();
      if (res.statusCode === 404) return 'no longer has it';
      why = `answered ${res.statusCode}`;
      continue;
    }
    try {
      await take(res);
    } catch (err) {
      why = `broke off (${(err as Error).message})`;
      continue;
    }
    reachable.set(r.store, ip);
    return '';
  }
  return why;
}

/** Reads an answer of `size` bytes into `out` from offset 8 (see framedBuffer). */
function readInto(res: IncomingMessage, out: Buffer, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 8;
    res.on('data', (chunk: Buffer) => {
      off += chunk.copy(out, off);
    });
    res.on('end', () => (off === size + 8 ? resolve() : reject(new Error(`a short copy (${off - 8} of ${size} bytes)`))));
    res.on('error', reject);
  });
}

export function newSecret(): string {
  return randomBytes(16).toString('hex');
}
