import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ObjectLostError, ObjectRef, get, init, put, shutdown, type Ref } from '../../runtime';
import { Keys } from '../../runtime/protocol';
import { collectGarbage, eventually, startCluster, type TestCluster } from '../helpers/cluster';
import { countedFill, echo, fill, makeRefInside, sleep as sleepTask, square, sumArray } from '../fixtures/tasks';

let cluster: TestCluster;
const keys = new Keys();

beforeAll(async () => {
  cluster = await startCluster({ nodes: 1, cpus: 2, driverTimeoutMs: 1500, env: { NODUS_CHUNK_BYTES: String(256 * 1024) } });
  process.env.NODUS_CHUNK_BYTES = String(256 * 1024);
  await init({ address: cluster.address, logToDriver: false });
});

afterAll(async () => {
  delete process.env.NODUS_CHUNK_BYTES;
  await shutdown();
  await cluster?.stop();
});

const exists = async (id: string) => (await cluster.redis.exists(keys.value(id), keys.meta(id))) > 0;

describe('the object store', () => {
  test('put returns a ref whose value any get returns, equal to what was put', async () => {
    const ref = await put({ a: 1, list: [1, 2, 3] });
    expect(ref).toBeInstanceOf(ObjectRef);
    expect(await get(ref)).toEqual({ a: 1, list: [1, 2, 3] });
    expect(await exists(ref.id)).toBe(true);
  });

  test('values too large for one string are split into chunks and come back whole', async () => {
    const value = new Float64Array(100_000).map((_, i) => i); // 800 kB, over the 256 kB chunk size set above
    const ref = await put(value);
    expect(await cluster.redis.exists(keys.chunk(ref.id, 0), keys.chunk(ref.id, 3))).toBe(2);
    expect(await get(ref)).toEqual(value);
    // A chunked value is also a task argument and a task result.
    const out = await get(echo.remote(ref));
    expect(out).toEqual(value);
    const big = await get(fill.remote(100_000, 3));
    expect(big[99_999]).toBe(3);
  });

  test('an object is freed when no reference to it remains', async () => {
    const held: { ref?: Ref<number> } = { ref: await put(123) };
    const id = held.ref!.id;
    expect(await exists(id)).toBe(true);
    delete held.ref;
    await collectGarbage();
    await eventually(async () => !(await exists(id)), 'the object was deleted from Redis');
  });

  test('a task result is freed when the driver drops its ref', async () => {
    const held: { ref?: ObjectRef<number> } = { ref: square.remote(12) };
    expect(await get(held.ref!)).toBe(144);
    const id = held.ref!.id;
    expect(await exists(id)).toBe(true);
    delete held.ref;
    await collectGarbage();
    await eventually(async () => !(await exists(id)), 'the result was deleted');
  });

  test('a ref nested in a stored object keeps its target alive until the container goes', async () => {
    const held: { inner?: Ref<string>; box?: Ref<{ r: Ref<string> }> } = { inner: await put('payload') };
    const innerId = held.inner!.id;
    held.box = await put({ r: held.inner! });
    delete held.inner;
    await collectGarbage();
    await new Promise((r) => setTimeout(r, 200));
    expect(await exists(innerId)).toBe(true);
    expect(await get((await get(held.box)).r)).toBe('payload');
    delete held.box;
    await collectGarbage();
    await eventually(async () => !(await exists(innerId)), 'the nested object was freed with its container');
  });

  test('a ref made inside a task outlives the task while the driver holds it', async () => {
    const box = await get(makeRefInside.remote(99));
    await new Promise((r) => setTimeout(r, 300));
    expect(await get(box.ref)).toBe(99);
  });

  test('get of an object that was freed says it is lost', async () => {
    // Large enough to live only in the store (the process that put a small object keeps a copy).
    const ref = await put('short-lived'.repeat(20_000));
    await cluster.redis.del(keys.value(ref.id), keys.meta(ref.id));
    await expect(get(ref)).rejects.toBeInstanceOf(ObjectLostError);
  });

  test('a driver that exits without shutdown has its objects freed', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(__dirname, '../fixtures/driver-exit.ts')], {
      env: { ...process.env, NODUS_ADDRESS: cluster.address },
      cwd: join(__dirname, '../..'),
    });
    const ids = JSON.parse(stdout.trim().split('\n').pop()!) as string[];
    expect(ids).toHaveLength(2);
    // The driver is gone but its objects are still there until the head notices.
    await eventually(async () => !(await exists(ids[0])) && !(await exists(ids[1])), 'the dead driver’s objects were freed', 10_000);
    expect(await cluster.redis.hlen(keys.drivers)).toBe(1);
  });

  test('a driver whose event loop is busy for longer than the heartbeat timeout keeps its objects', async () => {
    const ref = await put('still mine');
    const until = Date.now() + 2500; // driverTimeoutMs is 1500 here
    while (Date.now() < until) {
      /* a long synchronous computation: no heartbeats go out */
    }
    await new Promise((r) => setTimeout(r, 1000)); // the head has looked at us by now
    expect(await get(ref)).toBe('still mine');
    expect(await cluster.redis.hlen(keys.drivers)).toBe(1);
  });

  test('shutdown frees everything the driver owns', async () => {
    const ref = await put('mine');
    const r2 = square.remote(3);
    await get(r2);
    await shutdown();
    expect(await exists(ref.id)).toBe(false);
    expect(await exists(r2.id)).toBe(false);
    await init({ address: cluster.address, logToDriver: false });
  });
});

describe('lost objects', () => {
  test("a lost task result is rebuilt by running its task again; a lost put() object is reported with its creator", async () => {
    const file = join(cluster.dir, 'lineage.txt');
    const ref = countedFill.remote(file, 30_000, 5); // 240 kB: kept in the store, not inline
    expect((await get(ref))[29_999]).toBe(5);
    await cluster.redis.del(keys.value(ref.id), keys.meta(ref.id));
    const again = await get(ref);
    expect(again[0]).toBe(5);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(2);

    const put1 = await put(new Float64Array(30_000));
    await cluster.redis.del(keys.value(put1.id), keys.meta(put1.id));
    await expect(get(put1)).rejects.toThrow(/Object .* is lost .* stored with put\(\), which has no lineage.*Created by driver-/);
  });

  test('a task whose argument was lost runs once the task that made the argument has rebuilt it', async () => {
    const file = join(cluster.dir, 'lineage-arg.txt');
    const runs = () => readFileSync(file, 'utf8').trim().split('\n').length;
    const a = countedFill.remote(file, 30_000, 2);
    await get(a);
    // Lost before the task that needs it is submitted: the submitter rebuilds it first.
    await cluster.redis.del(keys.value(a.id), keys.meta(a.id));
    expect((await get(sumArray.remote(a))).sum).toBe(60_000);
    expect(runs()).toBe(2);
    // Lost while that task waits in the queue (both CPUs busy): its worker finds it gone, the owner rebuilds it and the task runs again.
    const blockers = [sleepTask.remote(1500), sleepTask.remote(1500)];
    await new Promise((r) => setTimeout(r, 300));
    const b = sumArray.remote(a);
    await new Promise((r) => setTimeout(r, 300));
    await cluster.redis.del(keys.value(a.id), keys.meta(a.id));
    expect((await get(b)).sum).toBe(60_000);
    expect(runs()).toBe(3);
    await get(blockers);
    // An argument that cannot be rebuilt (put() has no lineage): the task fails naming it and its creator.
    const p = await put(new Float64Array(30_000).fill(1));
    const blocker = [sleepTask.remote(1000), sleepTask.remote(1000)];
    await new Promise((r) => setTimeout(r, 300));
    const c = sumArray.remote(p);
    await new Promise((r) => setTimeout(r, 300));
    await cluster.redis.del(keys.value(p.id), keys.meta(p.id));
    const err = await get(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectLostError);
    expect((err as Error).message).toMatch(new RegExp(`sumArray could not read an argument: Object ${p.id} is lost .*stored with put\\(\\).*Created by driver-`));
    await get(blocker);
  });
});
