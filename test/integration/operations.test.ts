import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { get, init, shutdown } from '../../runtime';
import { entryPoint, freePort } from '../../runtime/internal/launcher';
import { eventually, processAlive, startCluster } from '../helpers/cluster';
import { add, sleep } from '../fixtures/tasks';

const run = promisify(execFile);
let dir: string;
let env: NodeJS.ProcessEnv;
const nodus = (...args: string[]) => run(process.execPath, [entryPoint('cli'), ...args], { env, timeout: 60_000 });
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-ops-'));
  env = { ...process.env, NODUS_SESSION_DIR: dir, NODUS_ADDRESS: '' };
  process.env.NODUS_SESSION_DIR = dir;
});

afterAll(async () => {
  await shutdown();
  await nodus('stop').catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
  delete process.env.NODUS_SESSION_DIR;
});

/** Pids of a process's children. */
function children(pid: number): number[] {
  const out = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter(Boolean).map(Number);
}

/** Sends SIGTERM and resolves to how long the process took to end. */
async function timeToExit(pid: number): Promise<number> {
  const t0 = Date.now();
  process.kill(pid, 'SIGTERM');
  await eventually(() => !processAlive(pid), `pid ${pid} exited after SIGTERM`, 10_000);
  return Date.now() - t0;
}

test("kill -9 of the head's Redis under load: the head starts it again, every task finishes, status counts the restart", async () => {
  const port = await freePort();
  await nodus('start', '--head', '--port', String(port), '--num-cpus', '2', '--no-gateway', '--no-serve');
  const address = `redis://127.0.0.1:${port}`;
  const pidFile = join(dir, `cluster-127.0.0.1-${port}`, `redis-${port}.pid`);
  const first = Number(readFileSync(pidFile, 'utf8'));
  await init({ address, logToDriver: false });

  const refs: ReturnType<typeof add.remote>[] = [];
  for (let wave = 0; wave < 20; wave++) {
    for (let i = 0; i < 20; i++) refs.push(add.remote(wave, i));
    refs.push(sleep.remote(20) as unknown as ReturnType<typeof add.remote>);
    if (wave === 8) process.kill(first, 'SIGKILL');
    await pause(60);
  }
  const results = await get(refs, { timeout: 60_000 });
  let k = 0;
  for (let wave = 0; wave < 20; wave++) {
    for (let i = 0; i < 20; i++) expect(results[k++]).toBe(wave + i);
    expect(results[k++]).toBe(20);
  }
  const second = Number(readFileSync(pidFile, 'utf8'));
  expect(second).not.toBe(first);
  expect(processAlive(second)).toBe(true);
  const status = JSON.parse((await nodus('status', '--json', '--address', address)).stdout);
  expect(status.head.redisRestarts).toBe(1);
  expect(status.head.redisLastExit).toBe('killed by SIGKILL');
  expect((await nodus('status', '--address', address)).stdout).toMatch(/Redis: restarted by the head 1 time/);
  await shutdown();
  await nodus('stop', '--address', address);
  expect(processAlive(second)).toBe(false);
});

test('two clusters on one machine: status shows both, stop --address stops one, stop stops the rest', async () => {
  const [a, b] = [await freePort(), await freePort()];
  await nodus('start', '--head', '--port', String(a), '--num-cpus', '1');
  await nodus('start', '--head', '--port', String(b), '--num-cpus', '1');
  const [addrA, addrB] = [`redis://127.0.0.1:${a}`, `redis://127.0.0.1:${b}`];
  const both = JSON.parse((await nodus('status', '--json')).stdout) as { address: string; head: { pid: number }; nodes: { pid: number }[] }[];
  expect(both.map((s) => s.address).sort()).toEqual([addrA, addrB].sort());
  const pids = (addr: string) => {
    const s = both.find((x) => x.address === addr)!;
    return [s.head.pid, ...s.nodes.map((n) => n.pid)];
  };
  // A command that needs one cluster says how to choose.
  await expect(nodus('worker', 'join', '--num-cpus', '1')).rejects.toMatchObject({ stderr: expect.stringContaining('2 clusters run on this machine') });

  const stopped = await nodus('stop', '--address', addrA);
  expect(stopped.stdout).toContain(`of ${addrA}`);
  expect(stopped.stdout).not.toContain(`of ${addrB}`);
  await eventually(() => pids(addrA).every((p) => !processAlive(p)), "cluster A's processes stopped");
  expect(pids(addrB).every(processAlive)).toBe(true);
  const left = JSON.parse((await nodus('status', '--json')).stdout);
  expect(left.address).toBe(addrB);

  await nodus('stop');
  await eventually(() => pids(addrB).every((p) => !processAlive(p)), "cluster B's processes stopped");
  await expect(nodus('status')).rejects.toMatchObject({ stderr: expect.stringContaining('No cluster found on this machine') });
});

test('with its Redis gone, a worker, a node agent and a head each exit on SIGTERM within 5 s', async () => {
  const cluster = await startCluster({ nodes: 1, cpus: 1 });
  try {
    process.kill(cluster.redisProcess.pid, 'SIGKILL');
    await pause(1500);
    const agent = cluster.agents[0].pid;
    const worker = children(agent)[0];
    expect(worker).toBeGreaterThan(0);
    expect(await timeToExit(worker)).toBeLessThan(5000);
    const [agentMs, headMs] = await Promise.all([timeToExit(agent), timeToExit(cluster.head.pid)]);
    expect(agentMs).toBeLessThan(5000);
    expect(headMs).toBeLessThan(5000);
  } finally {
    await cluster.stop();
  }
});

test('a head and an agent without Redis log the loss once and give up after NODUS_REDIS_GIVE_UP_MS with a clear last line', async () => {
  const cluster = await startCluster({ nodes: 1, cpus: 1, env: { NODUS_REDIS_GIVE_UP_MS: '2500' } });
  const logs = [join(cluster.dir, 'head.log'), join(cluster.dir, 'agent-0.log')];
  try {
    process.kill(cluster.redisProcess.pid, 'SIGKILL');
    await eventually(() => !processAlive(cluster.head.pid) && !processAlive(cluster.agents[0].pid), 'head and agent gave up', 15_000);
    for (const file of logs) {
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      // Once per change of state, not once per reconnect attempt.
      expect(lines.filter((l) => l.includes('lost the connection to Redis'))).toHaveLength(1);
      expect(lines.filter((l) => l.includes('no connection to Redis for'))).toHaveLength(1);
      expect(lines.find((l) => l.includes('no connection to Redis for'))).toMatch(/its cluster is gone.*NODUS_REDIS_GIVE_UP_MS/);
    }
  } finally {
    await cluster.stop();
  }
});

test("shutdown() returns within a few seconds when Redis is unreachable, saying what it could not release", async () => {
  const cluster = await startCluster({ nodes: 1, cpus: 1 });
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    await init({ address: cluster.address, logToDriver: false });
    expect(await get(add.remote(1, 2))).toBe(3);
    process.kill(cluster.redisProcess.pid, 'SIGKILL');
    await pause(300);
    const t0 = Date.now();
    await shutdown();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(warn.mock.calls.map((c) => String(c[0])).join('\n')).toMatch(/did not answer within 3 s, so it could not .*free the objects/);
  } finally {
    warn.mockRestore();
    await cluster.stop();
  }
});

test('the CLI answers without npm warnings in front', async () => {
  const out = await run('npm', ['run', '--silent', 'nodus', '--', '--version'], { cwd: join(__dirname, '..', '..'), env });
  expect(`${out.stderr}${out.stdout}`).not.toMatch(/npm warn/i);
  expect(out.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
});
