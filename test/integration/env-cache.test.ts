/** @module A node's runtime env cache against a real Redis: one unpack for concurrent first uses, nodus linked to the node's own, LRU eviction sparing envs in use, failures named. */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { freePort, startRedisServer, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { packDir, scanDir, shipDir, storePackage } from '../../runtime/internal/packaging';
import { envKey } from '../../runtime/internal/runtime-env';
import { Keys, type RuntimeEnvDescriptor } from '../../runtime/protocol';
import { EnvCache, nodusRoot, resolveEnvCacheOptions } from '../../workers/env-cache';

let dir: string;
let server: StartedProcess;
let redis: Redis;
const keys = new Keys('envcache');
const caches: EnvCache[] = [];
const used = new Set<string>();
const lines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-envcache-'));
  const started = await startRedisServer({ port: await freePort(), dir, detached: false });
  server = started;
  redis = new Redis(started.address, { maxRetriesPerRequest: null });
});
afterAll(async () => {
  for (const c of caches) await c.close();
  redis.disconnect();
  await stopProcess(server.pid, 3000);
  rmSync(dir, { recursive: true, force: true });
});

function cache(maxEnvs = 32): EnvCache {
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, cb) => (lines.push(String(chunk)), cb()) }));
  const c = new EnvCache({ ...resolveEnvCacheOptions({}), root: join(dir, 'cache'), maxEnvs, redis, keys, nodeId: () => 'node-test', logger, inUse: (d) => used.has(d) });
  caches.push(c);
  return c;
}

/** A working dir stored in the cluster, as a submitter ships it. */
async function shipped(name: string): Promise<RuntimeEnvDescriptor> {
  const wd = join(dir, name);
  mkdirSync(wd, { recursive: true });
  writeFileSync(join(wd, 'tasks.js'), `exports.name = ${JSON.stringify(name)};`);
  const { hash } = await shipDir(redis, keys, wd, { what: 'runtimeEnv.workingDir' });
  const base = { pkg: hash, vars: {} };
  return { key: envKey(base), ...base };
}

test('concurrent first uses of an env unpack it once, with nodus linked to the node\'s own; later uses are answered at once', async () => {
  const c = cache();
  const env = await shipped('one');
  lines.length = 0;
  const ready = await Promise.all(Array.from({ length: 5 }, () => c.prepare(env)));
  expect(new Set(ready.map((r) => r.dir)).size).toBe(1);
  expect(lines.filter((l) => l.includes('runtime env ready'))).toHaveLength(1);
  const unpacked = ready[0].dir!;
  expect(existsSync(join(unpacked, 'tasks.js'))).toBe(true);
  expect(realpathSync(join(unpacked, 'node_modules', 'nodus'))).toBe(realpathSync(nodusRoot()));
  expect((await c.prepare(env)).dir).toBe(unpacked);
  expect(lines.filter((l) => l.includes('runtime env ready'))).toHaveLength(1);
});

test('the cache keeps at most its number of envs, evicting the least recently used one not in use', async () => {
  const c = cache(2);
  const [a, b, d] = [await shipped('a'), await shipped('b'), await shipped('d')];
  const da = (await c.prepare(a)).dir!;
  const db = (await c.prepare(b)).dir!;
  // a is the least recently used, but a worker of it lives: b goes instead.
  used.add(da);
  const dd = (await c.prepare(d)).dir!;
  expect([existsSync(da), existsSync(db), existsSync(dd)]).toEqual([true, false, true]);
  used.clear();
  // b is back (unpacked again); now a, unused and least recently used, goes.
  expect(existsSync((await c.prepare(b)).dir!)).toBe(true);
  expect([existsSync(da), existsSync(dd)]).toEqual([false, true]);
  expect(c.size).toBe(2);
  expect(readdirSync(c.dir).filter((n) => n.startsWith('pkg-'))).toHaveLength(2);
});

test('a package the cluster does not hold fails naming the node and the step; the failure is remembered for a while, then tried again', async () => {
  const c = cache();
  const quick = new EnvCache({ ...resolveEnvCacheOptions({ NODUS_ENV_RETRY_MS: '1' }), root: join(dir, 'cache'), redis, keys, nodeId: () => 'node-test', logger: pino({ level: 'silent' }), inUse: () => false });
  caches.push(quick);
  const env = { key: 'k', pkg: '0'.repeat(32), vars: {} };
  await expect(c.prepare(env)).rejects.toThrow(/runtime env k: node node-test could not set it up at step 'fetch': the cluster holds no package 0+/);
  await expect(quick.prepare(env)).rejects.toThrow(/step 'fetch'/);
  // The package appears: within NODUS_ENV_RETRY_MS the failure stands (tasks of a broken env fail at once, not one set-up each)...
  const wd = join(dir, 'late');
  mkdirSync(wd);
  writeFileSync(join(wd, 'x.js'), '');
  await storePackage(redis, keys, env.pkg, await packDir(await scanDir(wd, { what: 'x' })), 1);
  await expect(c.prepare(env)).rejects.toThrow(/step 'fetch'/);
  // ...and after it, the next use tries again.
  await new Promise((r) => setTimeout(r, 5));
  expect(existsSync(join((await quick.prepare(env)).dir!, 'x.js'))).toBe(true);
});
