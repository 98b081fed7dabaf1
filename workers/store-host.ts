/**
 * @module The node agent's side of the node-local object store (runtime/internal/local-store.ts): it makes the
 * store's folders, serves its objects to other machines over HTTP, deletes an object's files when Redis frees
 * it (the Lua scripts queue them: Keys' store free list), keeps a small pool of freed files for writes to
 * reuse, and removes the folders of agents on this machine that died without doing it themselves.
 */
import { createReadStream, createWriteStream, existsSync, statfsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { networkInterfaces, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Keys, StoreInfo } from '../runtime/protocol';
import { DEFAULT_STORE_MIN_BYTES, POOL_DIR, fetchObject, newSecret, parseRecord, recordBytes, storeKeys, type StoredRecord } from '../runtime/internal/local-store';

export interface StoreSettings {
  /** Folder of the stores of this machine. @default /dev/shm/nodus (os.tmpdir()/nodus-shm without /dev/shm); NODUS_STORE_DIR */
  base: string;
  /** Folder of spilled objects. @default os.tmpdir()/nodus-spill; NODUS_SPILL_DIR */
  spillBase: string;
  /** Bytes of shared memory objects may take. @default 30% of memory, at most 90% of the folder's free space; NODUS_OBJECT_STORE_BYTES */
  capacity?: number;
  /** @default 1 MiB; NODUS_STORE_MIN_BYTES */
  minBytes: number;
}

export function resolveStoreSettings(env = process.env): StoreSettings | null {
  if (env.NODUS_OBJECT_STORE === '0') return null;
  const num = (v: string | undefined) => (v && Number.isFinite(Number(v)) && Number(v) > 0 ? Number(v) : undefined);
  return {
    base: env.NODUS_STORE_DIR || (existsSync('/dev/shm') ? '/dev/shm/nodus' : join(tmpdir(), 'nodus-shm')),
    spillBase: env.NODUS_SPILL_DIR || join(tmpdir(), 'nodus-spill'),
    capacity: num(env.NODUS_OBJECT_STORE_BYTES),
    minBytes: num(env.NODUS_STORE_MIN_BYTES) ?? DEFAULT_STORE_MIN_BYTES,
  };
}

/** Object ids (and task return ids, `<id>.<i>`) as they may appear in a path. */
const ID = /^[A-Za-z0-9_-]+(\.\d+)?$/;

/** Records a pulled copy beside its object, while the object exists (KEYS: its value, its copies). */
const REGISTER_COPY = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end redis.call('SADD', KEYS[2], ARGV[1]) return 1";

/** Fetches an object's bytes from the agent that holds it, into one file. */
async function download(r: StoredRecord, id: string, path: string): Promise<void> {
  const why = await fetchObject(r, id, async (res) => {
    await pipeline(res, createWriteStream(path, { flags: 'w' }));
    const { size } = await stat(path);
    if (size !== r.size) throw new Error(`a short copy (${size} of ${r.size} bytes)`);
  });
  if (why) throw new Error(`could not fetch object ${id} from store ${r.store} at ${r.addr}: it ${why}`);
}

/** How often freed objects' files are deleted. */
const FREE_POLL_MS = 50;
/** Pool files unused this long are deleted. */
const POOL_IDLE_MS = 10_000;
/** Folders of dead agents are looked for this often (NODUS_STORE_SWEEP_MS). */
const SWEEP_MS = Number(process.env.NODUS_STORE_SWEEP_MS) > 0 ? Number(process.env.NODUS_STORE_SWEEP_MS) : 10_000;

export class StoreHost {
  readonly info: StoreInfo;
  private server: Server | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private poolUsedAt = 0;
  private freeing: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly settings: StoreSettings,
    private readonly logger: Logger,
    info: StoreInfo,
  ) {
    this.info = info;
  }

  /** Makes the store's folders and starts serving; `host` is the address this agent reaches Redis from. */
  static async open(redis: Redis, keys: Keys, settings: StoreSettings, logger: Logger): Promise<StoreHost> {
    const id = `${process.pid}-${randomBytes(4).toString('hex')}`;
    const dir = join(settings.base, id);
    const spill = join(settings.spillBase, id);
    await mkdir(join(dir, POOL_DIR), { recursive: true, mode: 0o700 });
    await mkdir(spill, { recursive: true, mode: 0o700 });
    await writeFile(join(dir, '.id'), id);
    let free = Infinity;
    try {
      const fs = statfsSync(settings.base);
      free = fs.bavail * fs.bsize * 0.9;
    } catch {
      // keep the memory-based figure
    }
    const capacity = Math.floor(settings.capacity ?? Math.min(totalmem() * 0.3, free));
    const host = new StoreHost(redis, keys, settings, logger, { id, dir, spill, capacity, minBytes: settings.minBytes, addr: '', secret: newSecret() });
    host.info.addr = await host.serve();
    await host.sweep();
    host.timers.push(
      setInterval(() => void (host.freeing = host.freeing.then(() => host.freeQueued()).catch(() => undefined)), FREE_POLL_MS),
      setInterval(() => void host.sweep().catch(() => undefined), SWEEP_MS),
    );
    logger.info({ store: dir, capacity, spill }, 'object store ready');
    return host;
  }

  /** Serves `GET /objects/<id>?stripes=&spilled=&store=` with the store's secret: the object's bytes, its stripes in order. */
  private serve(): Promise<string> {
    this.server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://store');
      if (req.method === 'POST' && url.pathname.startsWith('/pull/')) return this.onPull(req, res, decodeURIComponent(url.pathname.slice(6)));
      const id = decodeURIComponent(url.pathname.replace(/^\/objects\//, ''));
      const stripes = Number(url.searchParams.get('stripes'));
      if (req.headers['x-nodus-store'] !== this.info.secret || url.searchParams.get('store') !== this.info.id) {
        res.writeHead(403).end();
        return;
      }
      if (!ID.test(id) || !(stripes >= 1 && stripes <= 64)) {
        res.writeHead(400).end();
        return;
      }
      const dir = url.searchParams.get('spilled') === '1' ? this.info.spill : this.info.dir;
      const paths = Array.from({ length: stripes }, (_, i) => join(dir, `${id}.${i}`));
      void Promise.all(paths.map((p) => stat(p)))
        .then((stats) => {
          res.writeHead(200, { 'content-length': stats.reduce((n, s) => n + s.size, 0) });
          const next = (i: number): void => {
            if (i === paths.length) return void res.end();
            const s = createReadStream(paths[i], { highWaterMark: 1024 * 1024 });
            s.on('error', () => res.destroy());
            s.on('end', () => next(i + 1));
            s.pipe(res, { end: false });
          };
          next(0);
        })
        .catch(() => res.writeHead(404).end());
    });
    this.server.keepAliveTimeout = 1000;
    const ips = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && a.family === 'IPv4' && !a.internal)
      .map((a) => a!.address);
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(0, '0.0.0.0', () => {
        const { port } = this.server!.address() as { port: number };
        resolve(`${[...ips, '127.0.0.1'].join(',')}:${port}`);
      });
    });
  }

  /** Copies pulled from other nodes' stores (or being pulled), by object id: one pull per object and node. */
  private readonly copies = new Map<string, Promise<string>>();

  /** `POST /pull/<id>` from a process of this node, the body the record of an object held by another node: answers the record of a copy here. */
  private onPull(req: IncomingMessage, res: ServerResponse, id: string): void {
    if (req.headers['x-nodus-store'] !== this.info.secret || !ID.test(id)) {
      req.resume();
      res.writeHead(403).end();
      return;
    }
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      let copy = this.copies.get(id);
      if (!copy) {
        copy = this.pull(parseRecord(Buffer.concat([Buffer.from([3]), ...body])), id);
        this.copies.set(id, copy);
        copy.catch(() => this.copies.delete(id));
      }
      copy.then(
        (record) => res.writeHead(200).end(record),
        (err: Error) => res.writeHead(502).end(err.message),
      );
    });
  }

  /**
   * Fetches an object from the agent of the node that holds it into this store (its spill folder when full)
   * and records the copy beside the object in Redis, so that it is freed with it. An object freed meanwhile
   * leaves no copy.
   */
  private async pull(r: StoredRecord, id: string): Promise<string> {
    const used = await this.redis.incrby(storeKeys.used(this.keys.prefix, this.info.id), r.size);
    const spilled = used > this.info.capacity;
    if (spilled) await this.redis.decrby(storeKeys.used(this.keys.prefix, this.info.id), r.size);
    const dir = spilled ? this.info.spill : this.info.dir;
    const path = join(dir, `${id}.0`);
    const undo = async () => {
      await unlink(path).catch(() => undefined);
      if (!spilled) await this.redis.decrby(storeKeys.used(this.keys.prefix, this.info.id), r.size).catch(() => undefined);
    };
    try {
      await download(r, id, path);
      const record = recordBytes({ store: this.info.id, dir, spilled, stripes: 1, size: r.size, addr: this.info.addr, secret: this.info.secret }).subarray(1).toString();
      const kept = await this.redis.eval(REGISTER_COPY, 2, this.keys.value(id), storeKeys.copies(this.keys.prefix, id), record);
      if (!kept) throw new Error(`object ${id} was freed while it was copied`);
      return record;
    } catch (err) {
      await undo();
      throw err;
    }
  }

  /** Deletes the files of objects Redis freed (or pools them for reuse), and trims an idle pool. */
  private async freeQueued(): Promise<void> {
    if (this.closed) return;
    const entries = (await this.redis.lpop(storeKeys.free(this.keys.prefix, this.info.id), 256)) ?? [];
    let released = 0;
    for (const entry of entries) {
      const cut = entry.lastIndexOf('|');
      const r = parseRecord(Buffer.concat([Buffer.from([0]), Buffer.from(entry.slice(0, cut))]));
      const id = entry.slice(cut + 1);
      if (!ID.test(id)) continue;
      if (r.store === this.info.id) this.copies.delete(id);
      for (let i = 0; i < r.stripes; i++) await this.release(join(r.spilled ? this.info.spill : this.info.dir, `${id}.${i}`), !r.spilled);
      if (!r.spilled) released += r.size;
    }
    if (released) await this.redis.decrby(storeKeys.used(this.keys.prefix, this.info.id), released);
    if (this.poolUsedAt && Date.now() - this.poolUsedAt > POOL_IDLE_MS) {
      this.poolUsedAt = 0;
      await this.emptyPool();
    }
  }

  /** A freed file goes to the pool while the pool holds less than a quarter of the capacity (at most 1 GiB), else is deleted. */
  private async release(path: string, poolable: boolean): Promise<void> {
    const size = await stat(path).then((s) => s.size, () => -1);
    if (size < 0) return;
    const poolDir = join(this.info.dir, POOL_DIR);
    if (poolable && size >= this.info.minBytes / 4) {
      const pooled = await readdir(poolDir).catch(() => [] as string[]);
      const bytes = pooled.reduce((n, f) => n + Number(f.split('-')[0] || 0), 0);
      if (bytes + size <= Math.min(this.info.capacity / 4, 2 ** 30)) {
        if (await rename(path, join(poolDir, `${size}-${randomBytes(4).toString('hex')}`)).then(() => true, () => false)) {
          this.poolUsedAt = Date.now();
          return;
        }
      }
    }
    await unlink(path).catch(() => undefined);
  }

  private async emptyPool(): Promise<void> {
    const poolDir = join(this.info.dir, POOL_DIR);
    for (const f of await readdir(poolDir).catch(() => [] as string[])) await unlink(join(poolDir, f)).catch(() => undefined);
  }

  /** Removes the stores of agents of this machine that are gone (killed without closing theirs), and their Redis keys. */
  async sweep(): Promise<void> {
    for (const name of await readdir(this.settings.base).catch(() => [] as string[])) {
      const pid = Number(name.split('-')[0]);
      if (name === this.info.id || !Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
      await rm(join(this.settings.base, name), { recursive: true, force: true }).catch(() => undefined);
      await rm(join(this.settings.spillBase, name), { recursive: true, force: true }).catch(() => undefined);
      await this.redis.del(storeKeys.used(this.keys.prefix, name), storeKeys.free(this.keys.prefix, name)).catch(() => undefined);
      this.logger.info({ store: name }, 'removed the object store of an agent that is gone');
    }
  }

  /** Stops serving and deletes the store: its objects go with this node, as in Ray. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.server?.closeAllConnections();
    this.server?.close();
    await rm(this.info.dir, { recursive: true, force: true }).catch(() => undefined);
    await rm(this.info.spill, { recursive: true, force: true }).catch(() => undefined);
    // Not waited on: the agent must stop within seconds whatever state Redis is in.
    void this.redis.del(storeKeys.used(this.keys.prefix, this.info.id), storeKeys.free(this.keys.prefix, this.info.id)).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
