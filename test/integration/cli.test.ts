import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { get, init, shutdown } from '../../runtime';
import { entryPoint, freePort } from '../../runtime/internal/launcher';
import { readSession } from '../../runtime/internal/session';
import { eventually, processAlive } from '../helpers/cluster';
import { whereAmI } from '../fixtures/tasks';
import { testService } from '../fixtures/services';
import { CookieJar, curlPost } from '../helpers/services';

const run = promisify(execFile);
let dir: string;
let env: NodeJS.ProcessEnv;
const nodus = (...args: string[]) => run(process.execPath, [entryPoint('cli'), ...args], { env, timeout: 60_000 });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-cli-'));
  env = { ...process.env, NODUS_SESSION_DIR: dir, NODUS_ADDRESS: '' };
  process.env.NODUS_SESSION_DIR = dir;
});

afterAll(async () => {
  await shutdown();
  await nodus('stop').catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
  delete process.env.NODUS_SESSION_DIR;
});

test('start --head and worker join form a cluster that status shows, a driver uses both nodes, and stop ends it all', async () => {
  const port = await freePort();
  const started = await nodus('start', '--head', '--port', String(port), '--num-cpus', '1', '--no-gateway', '--no-serve');
  expect(started.stdout).toContain(`nodus cluster is up at redis://127.0.0.1:${port}`);
  expect(started.stdout).toContain('npx nodus worker join --address');
  const address = `redis://127.0.0.1:${port}`;

  const joined = await nodus('worker', 'join', '--address', address, '--num-cpus', '1', '--resources', '{"accel": 2}');
  expect(joined.stdout).toMatch(/Node node-\w+ joined/);

  const status = JSON.parse((await nodus('status', '--json')).stdout);
  const alive = status.nodes.filter((n: { state: string }) => n.state === 'alive');
  expect(alive).toHaveLength(2);
  // Each node also offers its free memory (tasks ask for it with `memory`).
  expect(alive.map((n: { total: Record<string, number> }) => n.total)).toEqual(expect.arrayContaining([{ CPU: 1, memory: expect.any(Number) }, { CPU: 1, accel: 2, memory: expect.any(Number) }]));
  expect(status.head.alive).toBe(true);
  const text = (await nodus('status')).stdout;
  expect(text).toContain('Nodes: 2 alive, 0 dead');
  expect(text).toMatch(/Resources: .*CPU 2/);

  await init({ address, logToDriver: false });
  const where = await get(Array.from({ length: 8 }, () => whereAmI.remote(400)));
  expect(new Set(where.map((w) => w.node))).toEqual(new Set(alive.map((n: { id: string }) => n.id)));
  await shutdown();

  const pids = readSession()?.processes.map((p) => p.pid) ?? [];
  expect(pids.length).toBe(4); // redis, head, two agents
  const stopped = await nodus('stop');
  expect(stopped.stdout).toContain('Stopped redis');
  await eventually(() => pids.every((p) => !processAlive(p)), 'every process stopped');
  await expect(nodus('status')).rejects.toMatchObject({ stderr: expect.stringContaining('No cluster found on this machine') });
});

test('a head bound off loopback gets a password: generated, saved readable only by its owner, printed once, required', async () => {
  const port = await freePort();
  const out = await nodus('start', '--head', '--port', String(port), '--num-cpus', '0', '--bind', '0.0.0.0', '--no-gateway');
  const file = join(dir, `cluster-127.0.0.1-${port}`, 'redis_password');
  const password = readFileSync(file, 'utf8').trim();
  expect(password.length).toBeGreaterThanOrEqual(24);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(out.stdout).toContain(password);
  const refused = await nodus('status', '--address', `redis://127.0.0.1:${port}`).catch((e: { stderr: string }) => e);
  expect((refused as { stderr: string }).stderr).toMatch(/requires a password/);
  const status = JSON.parse((await nodus('status', '--json', '--address', `redis://:${password}@127.0.0.1:${port}`)).stdout);
  expect(status.head.alive).toBe(true);
  expect(status.address).not.toContain(password);
  await nodus('stop');
});

test('start names the install command when redis-server is missing', async () => {
  const err = await run(process.execPath, [entryPoint('cli'), 'start', '--head', '--port', String(await freePort())], {
    env: { ...env, NODUS_REDIS_SERVER: '/nonexistent/redis-server' },
  }).catch((e: { stderr: string }) => e);
  expect((err as { stderr: string }).stderr).toContain('apt-get install -y redis-server');
});

test('a wrong option gets a clear error', async () => {
  const err = await nodus('start', '--head', '--num-cpu', '2').catch((e: { stderr: string }) => e);
  expect((err as { stderr: string }).stderr).toMatch(/unknown option '--num-cpu'[\s\S]*--num-cpus/);
});

test('start --head starts the gateway and the serve ingress; register and flows add and list a service through the cluster; stop ends them too', async () => {
  const [port, gatewayPort, servePort] = [await freePort(), await freePort(), await freePort()];
  const service = await testService.listen({ port: 0 });
  try {
    const out = await nodus('start', '--head', '--port', String(port), '--num-cpus', '0', '--gateway-port', String(gatewayPort), '--serve-port', String(servePort));
    expect(out.stdout).toContain(`Started the gateway`);
    expect(out.stdout).toContain(`http://127.0.0.1:${gatewayPort}`);
    expect(await (await fetch(`http://127.0.0.1:${gatewayPort}/health`)).json()).toMatchObject({ status: 'ok' });
    expect(out.stdout).toContain(`Started the serve ingress`);
    expect(await (await fetch(`http://127.0.0.1:${servePort}/-/routes`)).json()).toEqual({});
    const registered = await nodus('register', `http://localhost:${service.port}/openapi.json`);
    expect(registered.stdout).toMatch(/Registered .*: 2 flows/);
    const flows = JSON.parse((await nodus('flows', '--json')).stdout) as { url: string; summary: string }[];
    expect(flows.map((f) => f.summary).sort()).toEqual(['Hello', 'Stubborn']);
    // The gateway lists what the CLI registered: both read the registry in Redis.
    const jar = new CookieJar();
    await curlPost(`http://127.0.0.1:${gatewayPort}/api/login`, '{"name": "admin", "password": "admin"}', jar);
    const listed = (await (await fetch(`http://127.0.0.1:${gatewayPort}/flow`, { headers: { cookie: jar.header() } })).json()) as unknown[];
    expect(listed).toHaveLength(2);
    expect((await nodus('unregister', `http://localhost:${service.port}/openapi.json`)).stdout).toContain('Unregistered');
    const gatewayPid = readSession()!.processes.find((p) => p.role === 'gateway')!.pid;
    const ingressPid = readSession()!.processes.find((p) => p.role === 'serve')!.pid;
    const stopped = await nodus('stop');
    expect(stopped.stdout).toContain('Stopped gateway');
    expect(stopped.stdout).toContain('Stopped serve');
    await eventually(() => !processAlive(gatewayPid) && !processAlive(ingressPid), 'the gateway and the ingress stopped');
  } finally {
    await service.close();
  }
});
