import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ObjectLostError, get, init, put, shutdown, type Ref } from '../../runtime';
import { parseRecord, storeKeys } from '../../runtime/internal/local-store';
import { Keys, ValueTag, type NodeInfo } from '../../runtime/protocol';
import { collectGarbage, eventually, startCluster, type TestCluster } from '../helpers/cluster';
import { onSecondMachine } from '../helpers/second-machine';
import { countedFill, echo, fill, sumArray } from '../fixtures/tasks';

const keys = new Keys();
const MiB = 1024 * 1024;
/** 2 MiB of float64: over the store's 1 MiB threshold. */
const N = 256 * 1024;

async function record(redis: TestCluster['redis'], id: string) {
  const head = await redis.getBuffer(keys.value(id));
  expect(head?.[0]).toBe(ValueTag.Stored);
  return parseRecord(head!);
}

const files = (dir: string, id: string, stripes: number) => Array.from({ length: stripes }, (_, i) => join(dir, `${id}.${i}`));

describe('the node-local object store (one machine, two nodes)', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    // 7 MiB of shared memory per node: a fourth 2 MiB object goes to the spill folder.
    cluster = await startCluster({ nodes: 2, cpus: 1, nodeTimeoutMs: 2000, env: { NODUS_OBJECT_STORE_BYTES: String(7 * MiB), NODUS_STORE_SWEEP_MS: '300' } });
    await init({ address: cluster.address, logToDriver: false });
  });

  afterAll(async () => {
    await shutdown();
    await cluster?.stop();
  });

  test('a large put() is written to a node store under /dev/shm, Redis keeps only where it is, and it comes back as the same typed arrays', async () => {
    const arr = new Float64Array(N).map((_, i) => i);
    const ref = await put(arr);
    const r = await record(cluster.redis, ref.id);
    expect(r.dir.startsWith('/dev/shm/nodus/')).toBe(true);
    expect(r.spilled).toBe(false);
    expect(r.size).toBeGreaterThan(N * 8);
    for (const f of files(r.dir, ref.id, r.stripes)) expect(existsSync(f)).toBe(true);
    // No chunk of it in Redis: the value is the short record.
    expect(await cluster.redis.strlen(keys.value(ref.id))).toBeLessThan(300);
    expect(await cluster.redis.exists(keys.chunk(ref.id, 0))).toBe(0);
    const back = await get(ref);
    expect(back).toBeInstanceOf(Float64Array);
    expect(back).toEqual(arr);

    // Large arrays anywhere in plain objects and arrays, with small values beside them.
    const mixed = { name: 'mixed', a: new Float32Array(N).fill(1.5), list: [1, { b: Buffer.alloc(2 * MiB, 7), n: 3n }], small: new Int16Array([1, 2, 3]) };
    const got = await get(await put(mixed));
    expect(got.name).toBe('mixed');
    expect(got.a).toBeInstanceOf(Float32Array);
    expect(got.a[N - 1]).toBe(1.5);
    const inner = got.list[1] as { b: Buffer; n: bigint };
    expect(Buffer.isBuffer(inner.b)).toBe(true);
    expect(inner.b.length).toBe(2 * MiB);
    expect(inner.b[12345]).toBe(7);
    expect(inner.n).toBe(3n);
    expect(got.small).toEqual(new Int16Array([1, 2, 3]));
    // The caller's value is untouched.
    expect(mixed.a).toBeInstanceOf(Float32Array);
  });

  test('tasks read large arguments from the store and write large results to their own node’s store', async () => {
    const arr = new Float64Array(N).fill(2);
    const ref = await put(arr);
    const sums = await get([sumArray.remote(ref), sumArray.remote(ref), sumArray.remote(ref), sumArray.remote(ref)]);
    for (const s of sums) expect(s.sum).toBe(2 * N);
    // A large argument passed by value is stored too, and a large result.
    expect((await get(sumArray.remote(new Float64Array(N).fill(3)))).sum).toBe(3 * N);
    const made = fill.remote(N, 5);
    const out = await get(made);
    expect(out).toBeInstanceOf(Float64Array);
    expect(out[N - 1]).toBe(5);
    const r = await record(cluster.redis, made.id);
    const nodes = Object.values(await cluster.redis.hgetall(keys.nodes)).map((n) => JSON.parse(n) as NodeInfo);
    expect(nodes.map((n) => n.store?.id)).toContain(r.store);
    expect(await get(echo.remote(made))).toEqual(out);
  });

  test('an object is freed from the store when its last reference goes', async () => {
    const held: { ref?: Ref<Float64Array> } = { ref: await put(new Float64Array(N).fill(1)) };
    const id = held.ref!.id;
    const r = await record(cluster.redis, id);
    expect(Number(await cluster.redis.get(storeKeys.used(keys.prefix, r.store)))).toBeGreaterThanOrEqual(r.size);
    delete held.ref;
    await collectGarbage();
    await eventually(async () => files(r.dir, id, r.stripes).every((f) => !existsSync(f)) && !(await cluster.redis.exists(keys.value(id))), 'the files and the record were removed');
  });

  test('past the store’s capacity, objects go to its spill folder on disk and still come back', async () => {
    const refs: Ref<Float64Array>[] = [];
    for (let i = 0; i < 5; i++) refs.push(await put(new Float64Array(N).fill(i)));
    const records = await Promise.all(refs.map((r) => record(cluster.redis, r.id)));
    const spilled = records.filter((r) => r.spilled);
    expect(spilled.length).toBeGreaterThanOrEqual(2);
    for (const r of spilled) expect(r.dir.startsWith('/dev/shm')).toBe(false);
    for (let i = 0; i < 5; i++) expect((await get(refs[i]))[N - 1]).toBe(i);
    expect((await get(sumArray.remote(refs[4]))).sum).toBe(4 * N);
    // Spilled objects are freed too (the first spilled one: no task borrowed it).
    const first = spilled[0];
    const firstId = refs[records.indexOf(first)].id;
    expect(firstId).not.toBe(refs[4].id);
    refs.length = 0;
    await collectGarbage();
    await eventually(() => files(first.dir, firstId, first.stripes).every((f) => !existsSync(f)), 'the spilled files were removed');
  });

  test('when a node dies its store is removed: its task results are made again, a put() in it is lost with an error saying so', async () => {
    const mine = await put(new Float64Array(N).fill(4));
    const mr = await record(cluster.redis, mine.id);
    const victim = cluster.agents.find((a) => mr.store.startsWith(`${a.pid}-`))!;
    expect(victim).toBeDefined();
    const marks = join(cluster.dir, 'fill.runs');
    const made = countedFill.options({ maxRetries: 2, schedulingStrategy: { nodeId: victim.nodeId, soft: true } }).remote(marks, N, 9);
    expect((await get(made))[0]).toBe(9);
    expect((await record(cluster.redis, made.id)).store).toBe(mr.store);
    process.kill(victim.pid, 'SIGKILL');
    // The other node's agent removes the dead one's store.
    await eventually(() => !existsSync(mr.dir), 'the dead agent’s store was removed');
    // The owner makes a lost task result again (lineage), on the node that is left.
    expect((await get(made))[N - 1]).toBe(9);
    expect(readFileSync(marks, 'utf8').trim().split('\n')).toHaveLength(2);
    // A put() has no lineage: lost, and the error says where it was.
    await expect(get(mine)).rejects.toThrow(ObjectLostError);
    await expect(get(mine)).rejects.toThrow(/object store of another node/);
    // put() carries on: into the other node's store, or Redis.
    expect((await get(await put(new Float64Array(N).fill(6))))[N - 1]).toBe(6);
  });
});

describe('the node-local object store across machines', () => {
  test('objects in one machine’s store reach tasks and drivers on another, pulled by the reading node’s agent from the holding node’s agent', async () => {
    const hidden = mkdtempSync(join(tmpdir(), 'nodus-store-hide-'));
    await onSecondMachine(hidden, async (cluster) => {
      try {
        await init({ address: cluster.address, logToDriver: false });
        const far = { resources: { secondMachine: 1 } };
        const redis = new Redis(cluster.address);
        try {
          const nodes = Object.values(await redis.hgetall(keys.nodes)).map((n) => JSON.parse(n) as NodeInfo);
          const remote = nodes.find((n) => n.id === cluster.remoteNodeId)!;
          const here = nodes.find((n) => n.state === 'alive' && n.id !== cluster.remoteNodeId)!;
          // Made there, in that machine's shared memory (out of sight here): this node's agent pulls a copy
          // from that node's agent into its own store, and the driver reads it from there.
          const held: { ref?: Ref<Float64Array> } = { ref: fill.options(far).remote(N, 8) };
          const out = await get(held.ref!);
          expect(out[N - 1]).toBe(8);
          expect(out.length).toBe(N);
          const id = held.ref!.id;
          expect((await record(redis, id)).store).toBe(remote.store!.id);
          const pulled = await redis.smembers(storeKeys.copies(keys.prefix, id));
          expect(pulled).toHaveLength(1);
          expect(pulled[0].startsWith(`${here.store!.id}|`)).toBe(true);
          // The copy goes with the object.
          delete held.ref;
          await collectGarbage();
          await eventually(async () => !(await redis.exists(storeKeys.copies(keys.prefix, id), keys.value(id))), 'the object and its copy were freed');

          // Put here, read there by two tasks: one copy pulled into that node's store serves both.
          const ref = await put(new Float64Array(N).fill(3));
          const sums = await get([sumArray.options(far).remote(ref), sumArray.options(far).remote(ref)]);
          for (const s of sums) expect(s).toEqual({ sum: 3 * N, node: cluster.remoteNodeId });
          const copies = await redis.smembers(storeKeys.copies(keys.prefix, ref.id));
          expect(copies).toHaveLength(1);
          expect(copies[0].startsWith(`${remote.store!.id}|`)).toBe(true);

          // A result made there, read by a task here.
          const made = fill.options(far).remote(N, 2);
          const back = await get(sumArray.options({ schedulingStrategy: { nodeId: here.id, soft: false } }).remote(made));
          expect(back).toEqual({ sum: 2 * N, node: here.id });
        } finally {
          redis.disconnect();
        }
      } finally {
        await shutdown();
      }
    }).finally(() => rmSync(hidden, { recursive: true, force: true }));
  });
});
