import { ConfigError, GetTimeoutError, ObjectRef, SerializationError, TaskError, get, put, remote, wait } from '../../runtime';
import { useCluster } from '../helpers/cluster';
import { submitAndStall } from '../helpers/stall';
import { CustomError, add, describeArg, echo, fail, fill, getNested, makeRefInside, nestedSquare, returnsFunction, sleep, square, sumArray, whereAmI } from '../fixtures/tasks';

const cluster = useCluster({ nodes: 2, cpus: 2 });

describe('remote functions on a two-node cluster', () => {
  test('a remote call returns an ObjectRef at once and get() gives its result', async () => {
    const ref = square.remote(3);
    expect(ref).toBeInstanceOf(ObjectRef);
    expect(await get(ref)).toBe(9);
  });

  test('awaiting a ref gives its value, like get()', async () => {
    expect(await add.remote(2, 5)).toBe(7);
  });

  test('get of a list returns the values in order', async () => {
    const refs = Array.from({ length: 50 }, (_, i) => square.remote(i));
    expect(await get(refs)).toEqual(Array.from({ length: 50 }, (_, i) => i * i));
  });

  test('work spreads over all nodes', async () => {
    // Long enough that one node cannot finish them all before an idle one takes some, even on a loaded machine.
    const where = await get(Array.from({ length: 16 }, () => whereAmI.remote(400)));
    expect(new Set(where.map((w) => w.node))).toEqual(new Set(cluster.agents.map((a) => a.nodeId)));
  });

  test('get with a timeout throws GetTimeoutError while the task keeps running', async () => {
    const ref = sleep.remote(1500);
    await expect(get(ref, { timeout: 100 })).rejects.toBeInstanceOf(GetTimeoutError);
    expect(await get(ref)).toBe(1500);
  });

  test('wait returns numReturns ready refs and the rest, in input order', async () => {
    const slow = sleep.remote(3000);
    const fast1 = sleep.remote(1);
    const fast2 = sleep.remote(2);
    const [ready, notReady] = await wait([slow, fast1, fast2], { numReturns: 2, timeout: 2500 });
    expect(ready).toEqual([fast1, fast2]);
    expect(notReady).toEqual([slow]);
    const [r2, n2] = await wait([slow], { numReturns: 1, timeout: 50 });
    expect(r2).toEqual([]);
    expect(n2).toEqual([slow]);
  });

  test('a throw inside a task comes back as TaskError with the remote name, message, stack and cause', async () => {
    const err = await get(fail.remote('boom')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    const te = err as TaskError;
    expect(te.code).toBe('TASK_ERROR');
    expect(te.remoteName).toBe('CustomError');
    expect(te.message).toContain('boom');
    expect(te.remoteStack).toContain('fixtures/tasks.ts');
    const cause = te.cause as CustomError & { cause: Error };
    expect(cause.name).toBe('CustomError');
    expect(cause.message).toBe('boom');
    expect(cause.code).toBe('E_CUSTOM');
    expect(cause.cause.name).toBe('RangeError');
    expect(cause.cause.message).toBe('inner cause');
  });

  test('a task whose argument failed fails with that cause, without running', async () => {
    const failed = fail.remote('upstream broke');
    const err = await get(square.remote(failed as unknown as ObjectRef<number>)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).message).toContain('upstream broke');
  });

  test('a function or a symbol in the arguments fails at submission, naming where it is', () => {
    expect(() => echo.remote({ cb: () => 1 })).toThrow(SerializationError);
    expect(() => echo.remote({ cb: () => 1 })).toThrow(/cb is a function/);
    expect(() => echo.remote([Symbol('s')])).toThrow(/is a symbol/);
  });

  test('a task that returns a function fails with a clear serialization error', async () => {
    await expect(get(returnsFunction.remote())).rejects.toThrow(/return value of returnsFunction.*f is a function/);
  });

  test('unknown option names are rejected with the list of valid ones', () => {
    expect(() => square.options({ numCPUs: 2 } as never)).toThrow(ConfigError);
    expect(() => square.options({ numCPUs: 2 } as never)).toThrow(/Did you mean 'numCpus'.*Valid options: numCpus, numGpus, resources, maxRetries, name/);
    expect(() => get(square.remote(1), { timout: 5 } as never)).toThrow(/Unknown get option 'timout'/);
  });

  test('calling a remote function directly throws an error that shows the right call', () => {
    expect(() => (square as unknown as (x: number) => number)(3)).toThrow('Call square.remote(3)');
  });

  test('typed arrays, Buffers, Maps, Sets, Dates and bigint survive the trip', async () => {
    const value = {
      f64: new Float64Array([1.5, -2]),
      u8: new Uint8Array([1, 2, 3]),
      buf: Buffer.from('hello'),
      map: new Map<unknown, unknown>([[1, 'one'], ['k', { deep: [1n] }]]),
      set: new Set(['a', 'b']),
      date: new Date(1_700_000_000_000),
      big: 2n ** 70n,
      small: 5n,
      plain: { a: [1, 'x', null, true] },
    };
    expect(await get(echo.remote(value))).toEqual(value);
  });

  test('top-level ObjectRef arguments arrive as values; nested ones arrive as refs', async () => {
    const ref = await put(41);
    expect(await get(describeArg.remote(ref))).toEqual({ type: 'number', ctor: 'Number', isRef: false });
    expect(await get(describeArg.remote([ref]))).toEqual({ type: 'object', ctor: 'Array', isRef: false });
    expect(await get(getNested.remote({ inner: ref }))).toBe(42);
  });

  test('a put object is an argument any node can read', async () => {
    const big = await put(new Float64Array(200_000).fill(0.5));
    const results = await get(Array.from({ length: 12 }, () => sumArray.remote(big, 300)));
    for (const r of results) expect(r.sum).toBe(100_000);
    expect(new Set(results.map((r) => r.node)).size).toBe(2);
  });

  test('results of tasks are arguments of other tasks, across nodes', async () => {
    const a = square.remote(3);
    const b = square.remote(4);
    expect(await get(add.remote(a, b))).toBe(25);
  });

  test('a task that completes before its submitter sends anything more keeps its result for the tasks that read it', async () => {
    // On a busy machine the submitter can stall right after its job went out, while a worker (a lingering
    // one takes it at once) runs the task. Its result object must exist by then, or the result is dropped
    // and every task that reads it waits forever.
    expect(await get(square.remote(2))).toBe(4);
    const { ref, completed } = await submitAndStall(cluster.address, 'task.CPU1', () => square.remote(3));
    expect(completed).toBe(true);
    expect(await get(add.remote(ref, 1), { timeout: 15_000 })).toBe(10);
  });

  test('large results travel through the object store', async () => {
    const out = await get(fill.remote(1_000_000, 2));
    expect(out).toBeInstanceOf(Float64Array);
    expect(out.length).toBe(1_000_000);
    expect(out[999_999]).toBe(2);
  });

  test('refs created inside a task can be returned and read by the driver', async () => {
    const box = await get(makeRefInside.remote(7));
    expect(box.ref).toBeInstanceOf(ObjectRef);
    expect(await get(box.ref)).toBe(7);
  });

  test('a task can submit tasks and wait for them', async () => {
    expect(await get(nestedSquare.remote(6))).toBe(36);
  });

  test('options() returns a new handle and leaves the original unchanged', async () => {
    const two = whereAmI.options({ numCpus: 2 });
    expect(two).not.toBe(whereAmI);
    expect(await get(two.remote())).toHaveProperty('node');
    expect(typeof (await get(whereAmI.remote())).pid).toBe('number');
  });

  test('remote() of a non-function is rejected with how to call it', () => {
    expect(() => remote({ numCpus: 1 }, 42 as never)).toThrow(/remote\(\) takes a function/);
  });
});
