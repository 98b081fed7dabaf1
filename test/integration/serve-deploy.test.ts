import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { freePort, spawnGateway, spawnIngress, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { DeployKeys } from '../../runtime/protocol/deploy';
import { ServiceKeys, flowUid } from '../../runtime/protocol/services';
import { resolveDeployment, type DeploymentOptions } from '../../serve/deploy/config';
import { listApps, readApp, submitApps, type AppView } from '../../serve/deploy/store';
import { readExecution } from '../../serve/store';
import { eventually, processAlive, useCluster } from '../helpers/cluster';
import { CookieJar, curlPost, readSse } from '../helpers/services';

const run = promisify(execFile);
const root = resolve(__dirname, '../..');
const CLI = join(root, 'dist/scripts/cli.js');
const APP = 'test/fixtures/deploy/app.ts';

// my_service's tasks take 1 to 3 units of 20 ms here (NODUS_DEMO_TASK_MS) instead of seconds.
const cluster = useCluster({ nodes: 1, cpus: 2, env: { NODUS_DEMO_TASK_MS: '20' } });
const keys = new DeployKeys();
let ingress: StartedProcess | undefined;
let base: string;
let servePort: number;
let mode: 'actor calls' | 'direct' | undefined;

/**
 * (Re)starts the ingress forwarding requests by actor calls (the way to a replica on another machine) or to the
 * replicas' loopback ports directly (the way to one on its own machine, as here unless NODUS_SERVE_DIRECT=0).
 */
async function useIngress(want: 'actor calls' | 'direct'): Promise<void> {
  if (ingress && mode === want) return;
  if (ingress) await stopProcess(ingress.pid, 3000);
  const env = { NODUS_SESSION_DIR: cluster.dir, NODUS_SERVE_DIRECT: want === 'direct' ? '1' : '0' };
  ingress = await spawnIngress({ address: cluster.address, attached: true, logFile: join(cluster.dir, 'serve.log'), port: servePort, env });
  mode = want;
}

function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args, '--address', cluster.address], { cwd: root, env: { ...process.env, NODUS_SESSION_DIR: cluster.dir }, timeout: 120_000 });
}

async function deploy(o: Omit<DeploymentOptions, 'import'> & { import?: string }): Promise<AppView> {
  const [rec] = await submitApps(cluster.redis, keys, [resolveDeployment({ import: APP, ...o }, root)]);
  await eventually(async () => {
    const a = await app(rec.name);
    return a?.state?.generation === rec.generation && a.state.status === 'running' && a.state.replicas.every((r) => r.state === 'running' && r.generation === rec.generation);
  }, `${rec.name} runs generation ${rec.generation}`, 60_000);
  return (await app(rec.name))!;
}

async function app(name: string): Promise<AppView | undefined> {
  return (await listApps(cluster.redis, keys)).find((a) => a.name === name);
}

const running = async (name: string) => (await app(name))?.state?.replicas.filter((r) => r.state === 'running') ?? [];

interface Outcome {
  status: number;
  pid?: number;
  retryAfter?: string | null;
}

/** A bounded load generator: `clients` concurrent HTTP clients, `requests` requests each, one after another. */
async function load(path: string, o: { clients: number; requests: number; method?: string; body?: string }): Promise<Outcome[]> {
  const out: Outcome[] = [];
  await Promise.all(
    Array.from({ length: o.clients }, async () => {
      for (let i = 0; i < o.requests; i++) {
        try {
          // A request that hangs would fail here: nothing may hang.
          const res = await fetch(`${base}${path}`, { method: o.method ?? 'GET', body: o.body, signal: AbortSignal.timeout(30_000) });
          const text = await res.text();
          out.push({ status: res.status, pid: res.ok ? (JSON.parse(text) as { pid: number }).pid : undefined, retryAfter: res.headers.get('retry-after') });
        } catch {
          out.push({ status: 0 });
        }
      }
    }),
  );
  return out;
}

beforeAll(async () => {
  servePort = await freePort();
  base = `http://127.0.0.1:${servePort}`;
});

afterAll(async () => {
  if (ingress) await stopProcess(ingress.pid, 3000);
});

/** Server-Sent Events come through as they are written, not at the end. */
async function expectStreamed(path: string): Promise<void> {
  const started = Date.now();
  const res = await fetch(`${base}${path}`);
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const arrivals: number[] = [];
  let text = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += Buffer.from(chunk).toString('utf8');
    arrivals.push(Date.now() - started);
  }
  expect(text.match(/^data: /gm)).toHaveLength(5);
  expect(arrivals[0]).toBeLessThan(arrivals.at(-1)! - 300);
}

test('serve run deploys a handler as 2 replicas behind the ingress: least-loaded routing, streams, /-/routes, and an ingress restart keeps them', async () => {
  await useIngress('actor calls');
  const { stdout } = await cli('serve', 'run', APP, '--name', 'echo', '--replicas', '2', '--detach');
  expect(stdout).toContain(`echo is running at ${base}/echo`);
  const replicas = await running('echo');
  expect(replicas).toHaveLength(2);

  // 8 at once over 2 replicas: both take a share.
  const answers = await load('/echo/slow?ms=200', { clients: 8, requests: 1 });
  expect(answers.map((a) => a.status)).toEqual(Array(8).fill(200));
  expect(new Set(answers.map((a) => a.pid))).toEqual(new Set(replicas.map((r) => r.pid)));
  // The prefix is stripped for the app; bodies and methods arrive as sent.
  expect(await (await fetch(`${base}/echo/pid?x=1`)).json()).toMatchObject({ url: '/pid?x=1' });
  expect(await (await fetch(`${base}/echo/echo`, { method: 'POST', body: 'hello' })).json()).toMatchObject({ body: 'hello' });
  expect((await fetch(`${base}/nothing/here`)).status).toBe(404);
  expect(await (await fetch(`${base}/-/routes`)).json()).toEqual({ '/echo': 'echo' });

  await expectStreamed('/echo/sse');

  const { stdout: status } = await cli('serve', 'status', '--json');
  expect(JSON.parse(status).apps[0]).toMatchObject({ name: 'echo', routePrefix: '/echo', state: { status: 'running', target: 2 } });

  // A new ingress adopts the replicas from Redis: the same processes answer (now on their loopback ports).
  await useIngress('direct');
  expect(await (await fetch(`${base}/-/routes`)).json()).toEqual({ '/echo': 'echo' });
  const after = await load('/echo/slow?ms=100', { clients: 6, requests: 1 });
  expect(after.every((a) => a.status === 200 && replicas.some((r) => r.pid === a.pid))).toBe(true);
  await expectStreamed('/echo/sse');
  expect(await (await fetch(`${base}/echo/echo`, { method: 'POST', body: 'hello' })).json()).toMatchObject({ body: 'hello' });
  // The ingress's probe of a replica's port is its own: a client sending its header reaches the app.
  expect(await (await fetch(`${base}/echo/pid`, { headers: { 'x-nodus-replica-probe': '1' } })).json()).toMatchObject({ url: '/pid' });
  await cli('serve', 'delete', 'echo');
  expect(await readApp(cluster.redis, keys, 'echo')).toBeUndefined();
  for (const r of replicas) await eventually(() => !processAlive(r.pid!), `replica ${r.name} stopped`);
});

test('past maxOngoingRequests and a full queue, requests are answered 503 with Retry-After', async () => {
  await useIngress('direct');
  await deploy({ name: 'tight', replicas: 1, maxOngoingRequests: 1, maxQueuedRequests: 1 });
  const answers = await load('/tight/slow?ms=1000', { clients: 5, requests: 1 });
  const statuses = answers.map((a) => a.status).sort();
  // One runs, one waits in the queue, three are turned away at once.
  expect(statuses).toEqual([200, 200, 503, 503, 503]);
  expect(answers.filter((a) => a.status === 503).every((a) => Number(a.retryAfter) >= 1)).toBe(true);
});

test('autoscaling adds replicas under load within seconds and removes them after the idle delay', async () => {
  await useIngress('direct');
  await deploy({ name: 'auto', minReplicas: 1, maxReplicas: 3, targetOngoingRequests: 1, maxOngoingRequests: 4, upscaleDelayS: 0.5, downscaleDelayS: 1 });
  expect(await running('auto')).toHaveLength(1);
  let most = 1;
  const watch = setInterval(() => void running('auto').then((r) => (most = Math.max(most, r.length)), () => undefined), 100);
  // 6 clients × 12 requests of 250 ms: 6 ongoing against a target of 1 per replica.
  const answers = await load('/auto/slow?ms=250', { clients: 6, requests: 12 });
  clearInterval(watch);
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  expect(most).toBe(3);
  expect(new Set(answers.map((a) => a.pid)).size).toBe(3);
  await eventually(async () => (await app('auto'))?.state?.target === 1 && (await running('auto')).length === 1, 'auto is back to 1 replica', 30_000);
});

test('a redeploy under load rolls the replicas one at a time with no failed request', async () => {
  await useIngress('direct');
  const before = await deploy({ name: 'roll', replicas: 2 });
  const oldPids = new Set(before.state!.replicas.map((r) => r.pid));
  // POSTs are not retried by the ingress: a request lost in the roll would show as a failure.
  const loading = load('/roll/echo?ms=20', { clients: 4, requests: 120, method: 'POST', body: 'x' });
  await new Promise((r) => setTimeout(r, 300));
  const after = await deploy({ name: 'roll', replicas: 2 });
  const answers = await loading;
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  const newPids = new Set(after.state!.replicas.map((r) => r.pid));
  expect([...newPids].some((p) => oldPids.has(p))).toBe(false);
  // Both generations served this load: the roll happened under it.
  expect(answers.some((a) => oldPids.has(a.pid))).toBe(true);
  expect(answers.some((a) => newPids.has(a.pid))).toBe(true);
});

test.each(['actor calls', 'direct'] as const)('a replica killed under load (%s) is replaced; its idempotent requests are retried, the others answer 503, none hangs', async (how) => {
  await useIngress(how);
  const name = how === 'direct' ? 'kill-direct' : 'kill';
  const before = await deploy({ name, replicas: 2, maxOngoingRequests: 8 });
  const victim = before.state!.replicas[0];
  expect(before.state!.replicas.every((r) => (how === 'direct' ? r.directPort! > 0 : r.directPort === undefined))).toBe(true);
  const gets = load(`/${name}/slow?ms=300`, { clients: 4, requests: 6 });
  // Eight POST clients, so that the killed replica is all but sure to be serving one (with four, about one run in
  // sixteen had none there at that moment, and no POST could fail).
  const posts = load(`/${name}/echo?ms=300`, { clients: 8, requests: 6, method: 'POST', body: 'x' });
  await new Promise((r) => setTimeout(r, 800));
  process.kill(victim.pid!, 'SIGKILL');
  const [g, p] = await Promise.all([gets, posts]);
  expect(g.filter((a) => a.status !== 200)).toEqual([]);
  expect(p.every((a) => a.status === 200 || (a.status === 503 && a.retryAfter === '1'))).toBe(true);
  expect(p.some((a) => a.status === 503)).toBe(true);
  await eventually(async () => {
    const r = await running(name);
    return r.length === 2 && r.every((x) => x.pid !== victim.pid);
  }, 'a new replica replaced the killed one', 30_000);
});

test('serve deploy of a serve.yaml, registered with `nodus register .../-/routes`, launches my_service through the gateway as standalone', async () => {
  await useIngress('direct');
  const yaml = join(cluster.dir, 'serve.yaml');
  writeFileSync(
    yaml,
    `applications:\n  - name: my_service\n    import: ${join(root, 'services/my_service/app.ts')}\n    replicas: 2\n  - name: prime\n    import: ${join(root, 'services/prime/app.ts')}\n    routePrefix: /primes\n`,
  );
  const deployed = await cli('serve', 'deploy', yaml);
  expect(deployed.stdout).toContain(`my_service is running at ${base}/my_service`);
  expect(await (await fetch(`${base}/-/routes`)).json()).toMatchObject({ '/my_service': 'my_service', '/primes': 'prime' });
  const gatewayPort = await freePort();
  const gateway = await spawnGateway({ address: cluster.address, attached: true, logFile: join(cluster.dir, 'gateway.log'), port: gatewayPort, sessionDir: cluster.dir });
  try {
    const registered = await cli('register', `${base}/-/routes`);
    expect(registered.stdout).toContain('2 flows');
    const gw = `http://localhost:${gatewayPort}`;
    const jar = new CookieJar();
    expect((await curlPost(`${gw}/api/login`, '{"name": "admin", "password": "admin"}', jar)).status).toBe(200);
    const flows = (await (await fetch(`${gw}/flow`, { headers: { cookie: jar.header() } })).json()) as { items?: unknown[] } | { url: string; uid: string; summary: string }[];
    const list = (Array.isArray(flows) ? flows : (flows.items ?? [])) as { url: string; uid: string; summary: string }[];
    const mine = list.find((f) => f.summary === 'My Service')!;
    expect(mine.url).toBe(`/-/127.0.0.1/${servePort}/my_service/-/`);
    // The seed's launch, through the gateway's proxy, the ingress and a replica.
    const launched = await curlPost(`${gw}${mine.url}`, '{"tasks": 4}', jar);
    expect(launched.status).toBe(200);
    const { fid, stream } = JSON.parse(launched.body) as { fid: string; stream: string };
    const { events, eof } = await readSse(`${gw}${stream}`, { cookie: jar.header() });
    expect(eof).toBe(true);
    expect(events.at(-1)!.data).toMatchObject({ kind: 'status', data: { status: 'finished' } });
    const exec = await readExecution(cluster.redis, new ServiceKeys(), fid);
    // Recorded as the flow the gateway lists, owned by the user the gateway vouched for: as when it runs standalone.
    expect(exec).toMatchObject({ owner: 'admin', flow: mine.uid, service: `http://127.0.0.1:${servePort}/my_service` });
    expect(flowUid(`http://127.0.0.1:${servePort}/my_service`, '/-/')).toBe(mine.uid);
  } finally {
    await stopProcess(gateway.pid, 3000);
  }
});
