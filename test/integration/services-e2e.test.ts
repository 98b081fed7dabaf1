import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnGateway, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { ServiceKeys } from '../../runtime/protocol/services';
import { readAllEvents, readExecution } from '../../serve/store';
import { app as myService } from '../../services/my_service/app';
import { testService } from '../fixtures/services';
import { eventually, processAlive, useCluster } from '../helpers/cluster';
import { CookieJar, curlPost, readSse } from '../helpers/services';

// my_service's tasks take 1 to 3 units of 20 ms here (NODUS_DEMO_TASK_MS) instead of seconds.
const cluster = useCluster({ nodes: 1, cpus: 2, env: { NODUS_DEMO_TASK_MS: '20' } });
const keys = new ServiceKeys();
let dir: string;
let gateway: StartedProcess;
let gw: string;
let gatewayPort: number;
const services: { close(): Promise<void>; port: number }[] = [];
let myPort: number;
let testPort: number;

async function startGateway(register: string[]): Promise<void> {
  gateway = await spawnGateway({ address: cluster.address, attached: true, logFile: join(dir, 'gateway.log'), port: gatewayPort, register, sessionDir: dir });
  gw = `http://localhost:${gatewayPort}`;
}

async function login(name = 'admin', password = 'admin'): Promise<CookieJar> {
  const jar = new CookieJar();
  const res = await curlPost(`${gw}/api/login`, JSON.stringify({ name, password }), jar);
  expect(res.status).toBe(200);
  return jar;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-e2e-'));
  const my = await myService.listen({ port: 0 });
  const test = await testService.listen({ port: 0 });
  services.push(my, test);
  [myPort, testPort] = [my.port, test.port];
  gatewayPort = await freePort();
  await startGateway([`http://localhost:${myPort}/openapi.json`, `http://localhost:${testPort}/openapi.json`]);
});

afterAll(async () => {
  if (gateway) await stopProcess(gateway.pid, 3000);
  for (const s of services) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

test("the seed's two curl requests, byte for byte, log in and launch my_service; its events stream until it finishes", async () => {
  const jar = new CookieJar();
  // curl -b cookie -c cookie -X POST -d '{"name": "admin", "password": "admin"}' http://localhost:3370/api/login
  const loggedIn = await curlPost(`${gw}/api/login`, '{"name": "admin", "password": "admin"}', jar);
  expect(loggedIn.status).toBe(200);
  expect(jar.header()).toMatch(/nodus_session=/);
  // curl -b cookie -c cookie -X POST -d '{"tasks": 100}' http://localhost:3370/-/localhost/8005/-/
  const launched = await curlPost(`${gw}/-/localhost/${myPort}/-/`, '{"tasks": 100}', jar);
  expect(launched.status).toBe(200);
  const body = JSON.parse(launched.body);
  expect(body).toMatchObject({ fid: expect.any(String), status: `/outputs/status/${body.fid}`, stream: `/outputs/stream/${body.fid}` });

  const { events, eof } = await readSse(`${gw}${body.stream}`, { cookie: jar.header() });
  expect(eof).toBe(true);
  const kinds = events.map((e) => (e.data as { kind: string }).kind);
  expect(kinds[0]).toBe('status');
  expect(kinds).toContain('markdown');
  const final = events.find((e) => (e.data as { kind: string }).kind === 'final')!.data as { data: { i: number; result: number }[] };
  expect(final.data.map((r) => r.i).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  expect(events.at(-1)!.data).toMatchObject({ kind: 'status', data: { status: 'finished' } });
  // Every markdown event reports results, and they add up to the 100 tasks.
  const reported = events.filter((e) => (e.data as { kind: string }).kind === 'markdown').map((e) => JSON.parse(/`(.*)`/s.exec((e.data as { data: string }).data)![1]).length);
  expect(reported.reduce((a, b) => a + b, 0)).toBe(100);
  const status = await (await fetch(`${gw}/outputs/status/${body.fid}`, { headers: { cookie: jar.header() } })).json();
  expect(status).toMatchObject({ fid: body.fid, status: 'finished', owner: 'admin', summary: 'My Service', inputs: { tasks: 100 } });
});

test('a stream resumed with Last-Event-ID after a disconnect gets every remaining event once, in order', async () => {
  const jar = await login();
  const { fid } = JSON.parse((await curlPost(`${gw}/-/localhost/${myPort}/-/`, '{"tasks": 40}', jar)).body);
  const first = await readSse(`${gw}/outputs/stream/${fid}`, { cookie: jar.header(), stopAfter: 3 });
  expect(first.eof).toBe(false);
  expect(first.events).toHaveLength(3);
  const rest = await readSse(`${gw}/outputs/stream/${fid}`, { cookie: jar.header(), lastEventId: first.events[2].id });
  expect(rest.eof).toBe(true);
  const all = await readAllEvents(cluster.redis, keys, fid);
  expect([...first.events, ...rest.events].map((e) => e.id)).toEqual(all.map((e) => e.id));
});

test('DELETE of a running execution ends it cancelled within 2 s and cancels the tasks it started, even when it ignores the signal', async () => {
  const jar = await login();
  const file = join(dir, 'ticks');
  const { fid } = JSON.parse((await curlPost(`${gw}/-/localhost/${testPort}/-/stubborn`, JSON.stringify({ file }), jar)).body);
  await eventually(() => {
    try {
      return readFileSync(file, 'utf8').length > 0;
    } catch {
      return false;
    }
  }, 'the long task runs', 20_000);
  const t0 = Date.now();
  const res = await fetch(`${gw}/outputs/${fid}`, { method: 'DELETE', headers: { cookie: jar.header() } });
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ fid, status: 'cancelled' });
  expect(Date.now() - t0).toBeLessThan(2000);
  expect((await readExecution(cluster.redis, keys, fid))!.status).toBe('cancelled');
  // The runner is killed after the execution ends, and its end cancels the task it started: the task stops writing
  // (it would tick for 60 s). On a loaded machine that chain can take more than a second after the DELETE answered.
  const stoppedWithin = async (ms: number) => {
    for (const until = Date.now() + ms; Date.now() < until; ) {
      const size = readFileSync(file, 'utf8').length;
      await new Promise((r) => setTimeout(r, 500));
      if (readFileSync(file, 'utf8').length === size) return true;
    }
    return false;
  };
  expect(await stoppedWithin(10_000)).toBe(true);
  // Cancelling what has ended is a conflict, and says so.
  expect((await fetch(`${gw}/outputs/${fid}`, { method: 'DELETE', headers: { cookie: jar.header() } })).status).toBe(409);
});

test('the gateway killed and restarted mid-execution: the execution finishes, a reconnecting client misses no event, flows are still registered', async () => {
  const jar = await login();
  const { fid } = JSON.parse((await curlPost(`${gw}/-/localhost/${myPort}/-/`, '{"tasks": 60}', jar)).body);
  const before = await readSse(`${gw}/outputs/stream/${fid}`, { cookie: jar.header(), stopAfter: 2 });
  process.kill(gateway.pid, 'SIGKILL');
  await eventually(() => !processAlive(gateway.pid), 'the gateway died');
  // A new gateway on the same Redis, told nothing: registrations and sessions live in Redis.
  await startGateway([]);
  const after = await readSse(`${gw}/outputs/stream/${fid}`, { cookie: jar.header(), lastEventId: before.events.at(-1)!.id });
  expect(after.eof).toBe(true);
  const all = await readAllEvents(cluster.redis, keys, fid);
  expect([...before.events, ...after.events].map((e) => e.id)).toEqual(all.map((e) => e.id));
  expect(all.at(-1)).toMatchObject({ kind: 'status', data: { status: 'finished' } });
  const flows = (await (await fetch(`${gw}/flow`, { headers: { cookie: jar.header() } })).json()) as { url: string }[];
  expect(flows.map((f) => f.url)).toEqual(expect.arrayContaining([`/-/localhost/${myPort}/-/`, `/-/localhost/${testPort}/-/hello`]));
});

test('a user header forged on a direct call is ignored, and one user cannot read the execution of another', async () => {
  // Straight to the service, claiming to be admin without the gateway's signature.
  const forged = await fetch(`http://127.0.0.1:${testPort}/-/hello`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-nodus-user': 'admin' }, body: '{"name": "Eve"}' });
  const direct = (await forged.json()) as { fid: string };
  expect((await readExecution(cluster.redis, keys, direct.fid))!.owner).toBe('anonymous');

  const admin = await login();
  const made = await fetch(`${gw}/api/users`, { method: 'POST', headers: { cookie: admin.header(), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bob', password: 'bob-secret-1' }) });
  expect(made.status).toBeLessThan(300);
  const bob = await login('bob', 'bob-secret-1');
  const { fid } = JSON.parse((await curlPost(`${gw}/-/localhost/${testPort}/-/hello`, '{"name": "Ada"}', admin)).body);
  expect((await readExecution(cluster.redis, keys, fid))!.owner).toBe('admin');
  expect((await fetch(`${gw}/outputs/status/${fid}`, { headers: { cookie: bob.header() } })).status).toBe(404);
  expect((await fetch(`${gw}/outputs/stream/${fid}`, { headers: { cookie: bob.header() } })).status).toBe(404);
  const timeline = (await (await fetch(`${gw}/timeline`, { headers: { cookie: bob.header() } })).json()) as { items: { fid: string }[] };
  expect(timeline.items.map((i) => i.fid)).not.toContain(fid);
  const bobs = JSON.parse((await curlPost(`${gw}/-/localhost/${testPort}/-/hello`, '{"name": "Bob"}', bob)).body);
  expect((await readExecution(cluster.redis, keys, bobs.fid))!.owner).toBe('bob');
  expect((await fetch(`${gw}/outputs/status/${bobs.fid}`, { headers: { cookie: bob.header() } })).status).toBe(200);
});
