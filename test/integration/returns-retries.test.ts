import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodusError, TaskError, get, type ObjectRef } from '../../runtime';
import { Keys } from '../../runtime/protocol';
import { collectGarbage, eventually, useCluster } from '../helpers/cluster';
import { FlakyCounterActor, TimeoutError, flaky, three } from '../fixtures/parity';

const cluster = useCluster({ nodes: 1, cpus: 2 });
const keys = new Keys();
let n = 0;
const runsFile = () => join(cluster.dir, `runs-${++n}.txt`);
const runs = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').length : 0);

describe('multiple returns', () => {
  test('numReturns gives one ref per returned value, and each object is freed on its own', async () => {
    const refs: (ObjectRef | undefined)[] = three.remote(2);
    expect(await get(refs[0]!)).toBe(2);
    expect(await get(refs[1]!)).toBe('x=2');
    expect(await get(refs[2]!)).toEqual([2, 2]);
    const ids = refs.map((r) => r!.id);
    const exists = async () => Promise.all(ids.map(async (id) => (await cluster.redis.exists(keys.meta(id))) === 1));
    expect(await exists()).toEqual([true, true, true]);
    refs[1] = undefined;
    await collectGarbage();
    await eventually(async () => (await exists()).join() === 'true,false,true', 'only the dropped return is freed');
    refs.length = 0;
    await collectGarbage();
    await eventually(async () => (await exists()).join() === 'false,false,false', 'the others are freed when dropped');
  });

  test('a function returning the wrong number of values fails every return with a clear error', async () => {
    const refs: ObjectRef[] = three.options({ numReturns: 2 }).remote(1);
    expect(refs).toHaveLength(2);
    for (const r of refs) {
      const err = await get(r).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NodusError);
      expect((err as Error).message).toMatch(/three has numReturns 2, so it must return a list of 2 values; it returned a list of 3/);
    }
  });
});

describe('retry on application errors', () => {
  test('retryExceptions: true runs a throwing task again within maxRetries, then fails with TaskError', async () => {
    const ok = runsFile();
    expect(await get(flaky.options({ retryExceptions: true, maxRetries: 2 }).remote(ok, 3))).toBe(3);
    const failing = runsFile();
    const err = await get(flaky.options({ retryExceptions: true, maxRetries: 1 }).remote(failing, 99)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).remoteName).toBe('TimeoutError');
    expect(runs(failing)).toBe(2);
    // Without retryExceptions a throw is final.
    const once = runsFile();
    await expect(get(flaky.options({ maxRetries: 3 }).remote(once, 2))).rejects.toBeInstanceOf(TaskError);
    expect(runs(once)).toBe(1);
  });

  test('an allowlist retries only the errors it names (classes or names)', async () => {
    const named = runsFile();
    expect(await get(flaky.options({ retryExceptions: ['TimeoutError'], maxRetries: 3 }).remote(named, 2))).toBe(2);
    const other = runsFile();
    const err = await get(flaky.options({ retryExceptions: [TimeoutError], maxRetries: 3 }).remote(other, 2, 'type')).catch((e: unknown) => e);
    expect((err as TaskError).remoteName).toBe('TypeError');
    expect(runs(other)).toBe(1);
  });

  test('actor methods run again with maxTaskRetries + retryExceptions', async () => {
    const counter = FlakyCounterActor.remote();
    expect(await get(counter.bump.remote(2))).toBe(3);
    const worse = FlakyCounterActor.remote();
    const err = await get(worse.bump.remote(5)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as Error).message).toMatch(/call 3 timed out/);
  });
});
