import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { NodusError, ObjectStoreFullError, get, init, put, shutdown, type Ref } from '../../runtime';
import { decode } from '../../runtime/internal/serialization';
import { fromStored } from '../../runtime/internal/object-store';
import { Keys, PROTOCOL_VERSION } from '../../runtime/protocol';
import { processAlive, startCluster, type TestCluster } from '../helpers/cluster';
import { square } from '../fixtures/tasks';

let cluster: TestCluster;
const keys = new Keys();

beforeAll(async () => {
  cluster = await startCluster({ nodes: 1, cpus: 2 });
  await init({ address: cluster.address, logToDriver: false });
});

afterAll(async () => {
  await shutdown();
  await cluster?.stop();
});

/** Puts a job in the queue by hand, as anyone with access to Redis could, and reads what its caller is told. */
async function rawJob(data: Record<string, unknown>): Promise<string> {
  await cluster.redis.hset(keys.shapes, 'task.CPU1', JSON.stringify({ CPU: 1 }));
  const q = new Queue('task.CPU1', { connection: cluster.redis, prefix: keys.bullPrefix });
  await q.add('raw', data, { removeOnComplete: true, removeOnFail: true });
  await cluster.redis.publish(keys.wakeChannel, 'task.CPU1');
  await q.close();
  const res = await cluster.redis.duplicate().blpopBuffer(keys.inbox(String(data.caller)), 15);
  const [, , value] = decode<[number, string, Buffer]>(res![1]);
  try {
    fromStored(value);
    return 'no error';
  } catch (err) {
    return (err as Error).message;
  }
}

const job = (over: Record<string, unknown>) => ({
  v: PROTOCOL_VERSION,
  id: `bad-${Math.random().toString(36).slice(2)}`,
  fn: { module: join(__dirname, '../fixtures/tasks.ts'), key: 'square', name: 'square' },
  args: Buffer.from([0x91, 0x03]).toString('base64'),
  argsRef: null,
  owner: 'probe',
  caller: `probe-${Math.random().toString(36).slice(2)}`,
  demand: { CPU: 1 },
  maxRetries: 0,
  ...over,
});

describe('bad input', () => {
  test('a hand-made job that is well formed runs (the check below is not vacuous)', async () => {
    expect(await rawJob(job({}))).toBe('no error');
  });

  test('a malformed job gets its submitter a clear error, and the node stays up', async () => {
    expect(await rawJob(job({ args: null }))).toMatch(/neither args nor argsRef/);
    expect(await rawJob(job({ fn: 'square' }))).toMatch(/lacks its function descriptor/);
    const q = new Queue('task.CPU1', { connection: cluster.redis, prefix: keys.bullPrefix });
    await q.add('garbage', { hello: 'world' });
    await q.close();
    expect(await get(square.remote(12))).toBe(144);
    expect(processAlive(cluster.agents[0].pid)).toBe(true);
  });

  test('a job from a driver of another protocol version is refused, naming the versions', async () => {
    expect(await rawJob(job({ v: PROTOCOL_VERSION + 7 }))).toMatch(new RegExp(`protocol v${PROTOCOL_VERSION + 7}; this node speaks v${PROTOCOL_VERSION}`));
  });

  test('arguments that cannot be decoded fail the task with a clear error', async () => {
    expect(await rawJob(job({ args: Buffer.from([0x92, 0x01]).toString('base64') }))).toMatch(/arguments could not be decoded/);
    expect(await rawJob(job({ args: Buffer.from([0x07]).toString('base64') }))).toMatch(/arguments are not a list/);
    expect(await get(square.remote(3))).toBe(9);
  });

  test('a module a worker cannot import fails the task with an error naming the module, and the worker stays up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodus-ghost-'));
    const file = join(dir, 'ghost.js');
    writeFileSync(file, `module.exports.ghost = require(${JSON.stringify(join(__dirname, '../../runtime'))}).remote(function ghost() { return 1; });\n`);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { ghost } = require(file) as { ghost: { remote(): Ref<number> } };
    rmSync(dir, { recursive: true, force: true });
    const err = await get(ghost.remote()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodusError);
    expect((err as Error).message).toMatch(/could not import .*ghost\.js, which defines ghost.*same path on every node/);
    expect(await get(square.remote(5))).toBe(25);
  });

  test('when Redis is out of memory, put fails with ObjectStoreFullError saying what to do, and what was stored is intact', async () => {
    const first = await put(new Float64Array(1000).fill(7));
    await cluster.redis.config('SET', 'maxmemory', String(24 * 1024 * 1024));
    const kept: Ref<Uint8Array>[] = [];
    let err: unknown;
    try {
      // Objects under the node store's 1 MiB threshold: these go to Redis.
      for (let i = 0; i < 64 && !err; i++) {
        try {
          kept.push(await put(new Uint8Array(768 * 1024).fill(i)));
        } catch (e) {
          err = e;
        }
      }
    } finally {
      await cluster.redis.config('SET', 'maxmemory', '0');
    }
    expect(err).toBeInstanceOf(ObjectStoreFullError);
    expect((err as Error).message).toMatch(/object store is full.*maxmemory/);
    expect((await get(first))[999]).toBe(7);
    expect((await get(kept[0]))[0]).toBe(0);
    expect(await get(square.remote(6))).toBe(36);
  });
});
