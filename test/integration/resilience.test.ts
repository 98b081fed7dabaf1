import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { ClusterError, get, getActor, init, kill, put, shutdown } from '../../runtime';
import { readClusterStatus } from '../../runtime/internal/cluster-status';
import { freePort, spawnAgent, spawnHead, startRedisServer, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { makeTlsFiles, type TlsFiles } from '../../runtime/internal/tls';
import { Keys } from '../../runtime/protocol';
import { eventually, processAlive, startCluster } from '../helpers/cluster';
import { CounterActor, type Counter } from '../fixtures/actors';
import { square, whereAmI } from '../fixtures/tasks';

const procs: StartedProcess[] = [];
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-resilience-'));
});

afterEach(async () => {
  await shutdown();
  for (const p of procs.splice(0).reverse()) await stopProcess(p.pid, 2000);
  rmSync(dir, { recursive: true, force: true });
});

async function cluster(opts: { password?: string; persistence?: boolean; port?: number; driverTimeoutMs?: number; resources?: Record<string, number>; tls?: TlsFiles } = {}) {
  const port = opts.port ?? (await freePort());
  const redis = await startRedisServer({ port, dir, detached: false, password: opts.password, persistence: opts.persistence, tls: opts.tls });
  procs.push(redis);
  const head = await spawnHead({ address: redis.address, attached: true, logFile: join(dir, 'head.log'), driverTimeoutMs: opts.driverTimeoutMs });
  procs.push(head);
  const agent = await spawnAgent({ address: redis.address, attached: true, logFile: join(dir, 'agent.log'), resources: opts.resources ?? { CPU: 1 } });
  procs.push(agent);
  return { address: redis.address, port, redis, head, agent };
}

describe('cluster security', () => {
  test('a client without the password can neither submit a task nor read an object', async () => {
    const c = await cluster({ password: 'correct-horse' });
    expect(c.address).toBe(`redis://:correct-horse@127.0.0.1:${c.port}`);
    await init({ address: c.address, logToDriver: false });
    const secret = await put('the secret');
    expect(await get(square.remote(4))).toBe(16);
    await shutdown();

    const err = await init({ address: `redis://127.0.0.1:${c.port}`, logToDriver: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClusterError);
    expect((err as Error).message).toMatch(/requires a password.*redis:\/\/:PASSWORD@host:port.*NODUS_PASSWORD/);
    const raw = new Redis(`redis://127.0.0.1:${c.port}`, { enableReadyCheck: false, maxRetriesPerRequest: 1 });
    raw.on('error', () => undefined);
    await expect(raw.get(new Keys().value(secret.id))).rejects.toThrow(/NOAUTH/);
    await expect(raw.rpush('nodus:q:task.CPU1:wait', 'x')).rejects.toThrow(/NOAUTH/);
    raw.disconnect();
  });

  test('with TLS the cluster runs over rediss:// only, and a client must trust its certificate authority', async () => {
    const tls = makeTlsFiles(join(dir, 'tls'), ['127.0.0.1']);
    // The head, the agent and its workers inherit it, as they do from `nodus start --tls`.
    process.env.NODUS_TLS_CA = tls.ca;
    try {
      const c = await cluster({ password: 'correct-horse', tls });
      expect(c.address).toBe(`rediss://:correct-horse@127.0.0.1:${c.port}`);
      await init({ address: c.address, logToDriver: false });
      const secret = await put('sent encrypted');
      expect(await get(square.remote(7))).toBe(49);
      expect(await get(secret)).toBe('sent encrypted');
      await shutdown();
      // No plain-text port: a redis:// client, even with the password, gets no answer.
      const plain = new Redis(`redis://:correct-horse@127.0.0.1:${c.port}`, { enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
      plain.on('error', () => undefined);
      await expect(plain.get(new Keys().value(secret.id))).rejects.toThrow();
      plain.disconnect();
      // A client that does not trust the cluster's CA is told what to set.
      delete process.env.NODUS_TLS_CA;
      const err = await init({ address: c.address, logToDriver: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClusterError);
      expect((err as Error).message).toMatch(/uses TLS, and its certificate is not trusted here.*NODUS_TLS_CA/);
    } finally {
      delete process.env.NODUS_TLS_CA;
    }
  });
});

describe('restarts', () => {
  test('after a Redis restart queued tasks and stored objects are still there, and clients carry on', async () => {
    const c = await cluster({ persistence: true });
    await init({ address: c.address, logToDriver: false });
    const kept = await put({ survives: true });
    // Queued, not runnable yet: they wait for a node with `later`.
    const queued = Array.from({ length: 3 }, (_, i) => square.options({ resources: { later: 1 } }).remote(i + 2));
    await new Promise((r) => setTimeout(r, 300));
    await stopProcess(c.redis.pid, 5000); // SHUTDOWN: the append-only file is flushed
    const again = await startRedisServer({ port: c.port, dir, detached: false, persistence: true });
    procs.push(again);
    procs.push(await spawnAgent({ address: c.address, attached: true, logFile: join(dir, 'agent2.log'), resources: { CPU: 1, later: 1 } }));
    expect(await get(queued, { timeout: 30_000 })).toEqual([4, 9, 16]);
    expect(await get(kept)).toEqual({ survives: true });
    expect(await get(square.remote(9), { timeout: 30_000 })).toBe(81);
  });

  test('with the head killed, tasks and actor calls keep going and new actors start; a restarted head carries on', async () => {
    const c = await cluster({ resources: { CPU: 2 } });
    await init({ address: c.address, logToDriver: false });
    const detached = CounterActor.options({ name: 'survivor', namespace: 'ha', lifetime: 'detached' }).remote(1);
    expect(await get(detached.incr.remote(1))).toBe(2);
    process.kill(c.head.pid, 'SIGKILL');
    await eventually(() => !processAlive(c.head.pid), 'the head is gone');
    expect(await get(Array.from({ length: 4 }, (_, i) => square.remote(i)))).toEqual([0, 1, 4, 9]);
    expect(await get(detached.incr.remote(1))).toBe(3);
    const fresh = CounterActor.remote(40);
    expect(await get(fresh.incr.remote(2))).toBe(42);

    const head = await spawnHead({ address: c.address, attached: true, logFile: join(dir, 'head2.log') });
    procs.push(head);
    await eventually(async () => (await readClusterStatus(c.address)).head?.pid === head.pid, 'the new head is up');
    const status = await readClusterStatus(c.address);
    expect(status.head?.alive).toBe(true);
    expect(status.nodes.filter((n) => n.state === 'alive')).toHaveLength(1);
    const same = await getActor<Counter>('survivor', { namespace: 'ha' });
    expect(await get(same.incr.remote(1))).toBe(4);
    expect(await get(whereAmI.remote())).toHaveProperty('node', c.agent.nodeId);
    await kill(fresh);
    await kill(same);
  });

  test('a head killed while it recovered a dead node leaves the recovery to the next head', async () => {
    const c = await cluster({ resources: { CPU: 1 } });
    const second = await spawnAgent({ address: c.address, attached: true, logFile: join(dir, 'agent-2.log'), resources: { CPU: 1 } });
    procs.push(second);
    await init({ address: c.address, logToDriver: false });
    const a = CounterActor.remote(10);
    expect(await get(a.incr.remote(1))).toBe(11);
    const host = (await readClusterStatus(c.address)).actors.find((x) => x.id === a.actorId)!.node;
    const victim = [c.agent, second].find((p) => p.nodeId === host)!;
    process.kill(c.head.pid, 'SIGKILL');
    await eventually(() => !processAlive(c.head.pid), 'the head is gone');
    process.kill(victim.pid, 'SIGKILL');
    // What a head leaves behind when it is killed after marking the node dead and before handing over its work.
    const keys = new Keys();
    const raw = new Redis(c.address);
    const info = JSON.parse((await raw.hget(keys.nodes, host))!) as Record<string, unknown>;
    await raw.hset(keys.nodes, host, JSON.stringify({ ...info, state: 'dead' }));
    raw.disconnect();
    procs.push(await spawnHead({ address: c.address, attached: true, logFile: join(dir, 'head2.log'), nodeTimeoutMs: 2000 }));
    // Restarted on the other node, with fresh state.
    expect(await get(a.incr.remote(1), { timeout: 30_000 })).toBe(11);
    expect((await readClusterStatus(c.address)).actors.find((x) => x.id === a.actorId)?.node).not.toBe(host);
  });
});

describe('driver death', () => {
  test('the tasks of a driver that died without shutdown are cancelled', async () => {
    const c = await startCluster({ nodes: 1, cpus: 1, driverTimeoutMs: 1500 });
    try {
      await promisify(execFile)(process.execPath, ['--import', 'tsx', join(__dirname, '../fixtures/busy-driver.ts')], {
        env: { ...process.env, NODUS_ADDRESS: c.address },
        cwd: join(__dirname, '../..'),
      });
      const busy = await readClusterStatus(c.address);
      expect(busy.tasks.reduce((n, t) => n + t.queued + t.running, 0)).toBe(6);
      await eventually(async () => {
        const s = await readClusterStatus(c.address);
        return s.tasks.reduce((n, t) => n + t.queued + t.running, 0) === 0 && s.nodes[0].free.CPU === 1;
      }, 'its queued and running tasks are gone and the CPU is free', 20_000);
    } finally {
      await c.stop();
    }
  });
});
