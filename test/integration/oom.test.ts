import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ObjectStoreFullError, get, init, put, shutdown } from '../../runtime';
import { Keys } from '../../runtime/protocol';
import { startCluster, type TestCluster } from '../helpers/cluster';
import { CounterActor, slowTokens } from '../fixtures/actors';
import { countedSleep, slowFill, square } from '../fixtures/tasks';

// Short timeouts, so that heartbeats refused for longer than them would get nodes and drivers declared
// dead, and job locks not renewed for longer than LOCK_MS would get a running task taken for stalled.
const TIMEOUT_MS = 2000;
const LOCK_MS = 2000;
let cluster: TestCluster;
const keys = new Keys();

beforeAll(async () => {
  cluster = await startCluster({ nodes: 1, cpus: 2, nodeTimeoutMs: TIMEOUT_MS, driverTimeoutMs: TIMEOUT_MS, env: { NODUS_LOCK_MS: String(LOCK_MS) } });
  await init({ address: cluster.address, logToDriver: false });
});

afterAll(async () => {
  await shutdown();
  await cluster?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Sets Redis's maxmemory far below what it holds: every write that needs memory is refused until `undo`. */
async function fillUp(): Promise<() => Promise<void>> {
  await cluster.redis.config('SET', 'maxmemory', '1');
  return async () => void (await cluster.redis.config('SET', 'maxmemory', '0'));
}
const nodeStates = async () => Object.entries(await cluster.redis.hgetall(keys.nodes)).map(([id, raw]) => `${id} ${JSON.parse(raw).state}`);

test('when Redis is out of memory, results fail with ObjectStoreFullError, nothing is declared dead, and the cluster carries on once memory is freed', async () => {
  const kept = await put(new Float64Array(1000).fill(3));
  const counter = CounterActor.remote(5);
  expect(await get(counter.incr.remote(1))).toBe(6);
  const nodesBefore = await nodeStates();
  // Both are running when Redis fills up; each makes a 2 MB result.
  const task = slowFill.remote(1500, 256 * 1024, 1);
  const call = counter.slowFill.remote(1500, 256 * 1024);
  await sleep(500);
  const undo = await fillUp();
  let outcomes: unknown[];
  try {
    outcomes = await Promise.all([get(task), get(call), get(square.options({ numCpus: 0.5 }).remote(3))].map((p) => p.catch((e: unknown) => e)));
    // Longer than the node and driver timeouts: heartbeats still get through.
    await sleep(3 * TIMEOUT_MS);
  } finally {
    await undo();
  }
  for (const e of outcomes) {
    expect(e).toBeInstanceOf(ObjectStoreFullError);
    expect((e as Error).message).toMatch(/object store is full.*maxmemory.*(Free objects|raise the limit)/s);
  }
  await sleep(TIMEOUT_MS);
  expect(await nodeStates()).toEqual(nodesBefore);
  // The driver was not declared dead (its objects would be freed), the actor not restarted (its count kept).
  expect((await get(kept))[999]).toBe(3);
  expect(await get(counter.incr.remote(1))).toBe(7);
  // A task of a shape first submitted while Redis was full runs now.
  expect(await get(square.options({ numCpus: 0.5 }).remote(4))).toBe(16);
  expect((await get(slowFill.remote(0, 256 * 1024, 2)))[0]).toBe(2);
});

test('a task that runs through a spell of Redis out of memory longer than its job lock keeps its lock, runs once and ends with ObjectStoreFullError', async () => {
  const file = join(cluster.dir, 'through-oom.txt');
  const ref = countedSleep.remote(file, 3 * LOCK_MS);
  await new Promise((r) => setTimeout(r, 300));
  const undo = await fillUp();
  let err: unknown;
  try {
    err = await get(ref).catch((e: unknown) => e);
  } finally {
    await undo();
  }
  expect(err).toBeInstanceOf(ObjectStoreFullError);
  // Long enough for a job taken for stalled to be found and run again.
  await new Promise((r) => setTimeout(r, 3 * LOCK_MS));
  expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1);
  expect(await get(square.remote(5))).toBe(25);
});

test('a generator whose items Redis refuses ends its stream with ObjectStoreFullError after the items it could send', async () => {
  const seen: number[] = [];
  let err: unknown;
  let undo: (() => Promise<void>) | undefined;
  try {
    for await (const ref of slowTokens.remote(50, 100)) {
      seen.push(await get(ref));
      if (seen.length === 3) undo = await fillUp();
    }
  } catch (e) {
    err = e;
  } finally {
    await undo?.();
  }
  expect(err).toBeInstanceOf(ObjectStoreFullError);
  expect(seen.slice(0, 3)).toEqual([0, 1, 2]);
  expect(seen.length).toBeLessThan(50);
});
