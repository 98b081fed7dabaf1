import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expectTypeOf } from 'expect-type';
import sharp from 'sharp';
import { z } from 'zod';
import { readClusterStatus } from '../../runtime/internal/cluster-status';
import { entryPoint, freePort, spawnGateway, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { ServiceKeys } from '../../runtime/protocol/services';
import { readAllEvents } from '../../serve/store';
import { Parameters as HelloParameters, Results as HelloResults, helloWorld } from '../../services/hello_world/task';
import { step, task } from '../../tasks';
import type { TaskRecord } from '../../tasks/protocol';
import { registerTasks } from '../../tasks/registry';
import type { RunView } from '../../tasks/runs';
import { eventually, processAlive, useCluster } from '../helpers/cluster';
import { CookieJar, curlPost, readSse } from '../helpers/services';

const run = promisify(execFile);
// One node of 2 CPUs and no GPU: the GPU test adds one.
const cluster = useCluster({ nodes: 1, cpus: 2 });
const keys = new ServiceKeys();
let dir: string;
let gateway: StartedProcess;
let gw: string;
let port: number;
let jar: CookieJar;
let apiKey: string;

function cli(...args: string[]) {
  return run(process.execPath, [entryPoint('cli'), ...args, '--address', cluster.address], { cwd: join(__dirname, '..', '..'), timeout: 30_000 });
}

async function api<T = Record<string, unknown>>(path: string, o: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${gw}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { 'x-nodus-api-key': apiKey, ...(o.body === undefined ? {} : { 'content-type': 'application/json' }), ...o.headers },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

async function start(slug: string, parameters: unknown, headers: Record<string, string> = {}): Promise<string> {
  const res = await api<{ runId: string }>(`/api/tasks/${slug}/runs`, { body: { parameters }, headers });
  expect(res.status).toBe(202);
  return res.body.runId;
}

async function until(runId: string, check: (r: RunView) => boolean, what: string, timeoutMs = 20_000): Promise<RunView> {
  let last: RunView | undefined;
  await eventually(async () => check((last = (await api<RunView>(`/api/runs/${runId}`)).body)), `${what} (last seen: ${JSON.stringify(last)})`, timeoutMs);
  return last!;
}

const ended = (r: RunView) => ['succeeded', 'failed', 'cancelled'].includes(r.status);

/** The pid of the worker running a run's step, as the fixtures print it. */
async function workerPid(runId: string, attempt = 1): Promise<number> {
  let pid = 0;
  await eventually(async () => {
    const events = await readAllEvents(cluster.redis, keys, runId);
    const steps = events.filter((e) => e.kind === 'step' && (e.data as { attempt: number }).attempt === attempt);
    const printed = events.slice(events.indexOf(steps[0])).find((e) => e.kind === 'stdout' && /pid=\d+/.test(String(e.data)));
    pid = printed ? Number(/pid=(\d+)/.exec(String(printed.data))![1]) : 0;
    return pid > 0;
  }, `attempt ${attempt} of ${runId} prints its pid`);
  return pid;
}

async function startGateway(): Promise<void> {
  gateway = await spawnGateway({ address: cluster.address, attached: true, logFile: join(dir, 'gateway.log'), port, sessionDir: dir });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-tasks-'));
  port = await freePort();
  // Registered as the CLI does it: two folders (searched for task.ts) and one module.
  const [registered] = await Promise.all([
    cli('tasks', 'register', 'services/hello_world', 'services/ocr_detect', 'test/fixtures/platform-tasks.ts'),
    startGateway(),
  ]);
  expect(registered.stdout).toMatch(/Registered hello-world 1\.0\.0 \(Hello World\) from services\/hello_world\/task\.ts: 1 CPU/);
  expect(registered.stdout).toMatch(/Registered ocr-detect 1\.0\.0 \(OCR Detect\) .*1 CPU, 1 GPU/);
  gw = `http://localhost:${port}`;
  jar = new CookieJar();
  expect((await curlPost(`${gw}/api/login`, '{"name": "admin", "password": "admin"}', jar)).status).toBe(200);
  const made = await fetch(`${gw}/api/keys`, { method: 'POST', headers: { cookie: jar.header() } });
  apiKey = ((await made.json()) as { key: string }).key;
}, 60_000);

afterAll(async () => {
  if (gateway) await stopProcess(gateway.pid, 3000);
  rmSync(dir, { recursive: true, force: true });
});

test('discovery lists hello-world and ocr-detect with the JSON Schemas zod makes of their parameters and results', async () => {
  expect((await fetch(`${gw}/api/tasks`)).status).toBe(401);
  const { status, body } = await api<{ tasks: TaskRecord[] }>('/api/tasks');
  expect(status).toBe(200);
  const hello = body.tasks.find((t) => t.slug === 'hello-world')!;
  expect(hello).toMatchObject({ name: 'Hello World', description: 'A hello world task', version: '1.0.0', resources: { numCpus: 1, numGpus: 0, resources: {} }, retries: 3 });
  expect(hello.parameters).toEqual(z.toJSONSchema(HelloParameters, { io: 'input' }));
  expect(hello.parameters).toMatchObject({ type: 'object', properties: { name: { type: ['string', 'null'], default: null, description: 'The name of the hello world branch' } } });
  expect(hello.results).toEqual(z.toJSONSchema(HelloResults));
  expect(hello.results).toMatchObject({ properties: { message: { type: 'string' } }, required: ['message'] });
  const ocr = (await api<TaskRecord & { versions: string[] }>('/api/tasks/ocr-detect')).body;
  expect(ocr).toMatchObject({ name: 'OCR Detect', resources: { numCpus: 1, numGpus: 1 }, versions: ['1.0.0'], module: expect.stringMatching(/services\/ocr_detect\/task\.ts$/) });
  expect(ocr.parameters).toMatchObject({ properties: { image: { type: 'string', pattern: '^data:image\\/.*' }, threshold: { default: 0.3, minimum: 0, maximum: 1 } }, required: ['image'] });
  expect(ocr.results).toMatchObject({ properties: { boxes: { type: 'array' }, device: { enum: ['cpu', 'cuda'] } } });
  expect((await api('/api/tasks/no-such-task')).status).toBe(404);
  // Types flow from the schemas into the task's function.
  expectTypeOf(helloWorld.fn).parameter(0).toEqualTypeOf<{ name: string | null }>();
});

test('task() and step() refuse unknown options and bad values, saying what is valid', () => {
  const schemas = { parameters: z.object({}), results: z.object({}) };
  expect(() => task({ name: 'X', ...schemas, timeout: 5 } as never, () => ({}))).toThrow(/Unknown task option 'timeout'\. Did you mean 'timeoutMs'\? Valid options: name, description, parameters, results, resources, version, timeoutMs, retries\./);
  expect(() => task({ name: 'X', ...schemas, resources: { numGPUs: 1 } } as never, () => ({}))).toThrow(/Unknown task resources option 'numGPUs'\. Did you mean 'numGpus'\?/);
  expect(() => task({ name: 'X', parameters: { name: 'string' } as never, results: schemas.results }, () => ({}))).toThrow(/parameters must be a zod schema/);
  expect(() => task({ name: '!!!', ...schemas }, () => ({}))).toThrow(/has no letters or digits/);
  expect(() => step({ name: 'S', about: 'x' } as never, () => 1)).toThrow(/Unknown step option 'about'/);
  expect(task({ name: 'Déjà Vu 2', ...schemas }, () => ({})).slug).toBe('deja-vu-2');
});

test('a run with good parameters succeeds with each step timed, what it printed and its results; it is an execution like any other', async () => {
  const runId = await start('hello-world', { name: 'Ada' });
  const done = await until(runId, ended, 'hello-world ends');
  expect(done).toMatchObject({ runId, task: 'hello-world', taskName: 'Hello World', version: '1.0.0', status: 'succeeded', reason: null, error: null, parameters: { name: 'Ada' }, results: { message: 'Hello, Ada!' }, attempts: 1 });
  expect(done.steps.map((s) => [s.index, s.name, s.description, s.error])).toEqual([
    [1, 'Get Name', 'Generate a name', null],
    [2, 'Say Hello', 'Print a hello message', null],
  ]);
  for (const s of done.steps) expect(s.end! - s.start).toBe(s.durationMs);
  expect(done.steps[1].start).toBeGreaterThanOrEqual(done.steps[0].end!);
  expect(done.steps[1].output).toBe('Hello, Ada!\n');
  // The same run through the executions API, the timeline, its event stream and the run list.
  expect((await api(`/outputs/status/${runId}`)).body).toMatchObject({ fid: runId, status: 'finished', summary: 'Hello World', flow: 'task:hello-world', final: { message: 'Hello, Ada!' } });
  expect(((await api<{ items: { fid: string }[] }>('/timeline')).body.items).map((i) => i.fid)).toContain(runId);
  const { events, eof } = await readSse(`${gw}/api/runs/${runId}/events`, { cookie: jar.header() });
  expect(eof).toBe(true);
  expect(events.filter((e) => e.event === 'step').map((e) => `${(e.data as { data: { phase: string; name: string } }).data.phase} ${(e.data as { data: { name: string } }).data.name}`)).toEqual([
    'start Get Name',
    'end Get Name',
    'start Say Hello',
    'end Say Hello',
  ]);
  const list = (await api<{ runs: { runId: string; status: string }[] }>('/api/runs?task=hello-world&status=succeeded&limit=5')).body;
  expect(list.runs[0]).toMatchObject({ runId, status: 'succeeded' });
});

test('parameters that do not match the schema are refused with 422, each field named', async () => {
  const bad = await api<{ errors: Record<string, string[]> }>('/api/tasks/hello-world/runs', { body: { parameters: { name: 42 } } });
  expect(bad.status).toBe(422);
  expect(bad.body.errors).toEqual({ name: ['Invalid input: expected string or null'] });
  const ocr = await api<{ errors: Record<string, string[]>; message: string }>('/api/tasks/ocr-detect/runs', { body: { parameters: { threshold: 2 } } });
  expect(ocr.status).toBe(422);
  expect(Object.keys(ocr.body.errors).sort()).toEqual(['image', 'threshold']);
  expect(ocr.body.message).toMatch(/threshold: Too big/);
  expect((await api('/api/tasks/hello-world/runs', { body: { name: 'Ada' } })).status).toBe(400);
});

test('a POST retried with the same Idempotency-Key gets the same run; the key with other parameters is refused', async () => {
  const headers = { 'Idempotency-Key': `key-${Date.now()}` };
  const first = await api<{ runId: string; replayed: boolean }>('/api/tasks/hello-world/runs', { body: { parameters: { name: 'Grace' } }, headers });
  const again = await api<{ runId: string; replayed: boolean }>('/api/tasks/hello-world/runs', { body: { parameters: { name: 'Grace' } }, headers });
  expect([first.status, again.status]).toEqual([202, 202]);
  expect(again.body).toMatchObject({ runId: first.body.runId, replayed: true });
  expect(again.headers.get('idempotent-replayed')).toBe('true');
  expect((await api('/api/tasks/hello-world/runs', { body: { parameters: { name: 'Linus' } }, headers })).status).toBe(409);
  const runs = (await api<{ runs: { runId: string; parameters?: unknown }[] }>('/api/runs?task=hello-world&limit=50')).body.runs;
  expect(runs.filter((r) => r.runId === first.body.runId)).toHaveLength(1);
  expect((await until(first.body.runId, ended, 'the idempotent run ends')).results).toEqual({ message: 'Hello, Grace!' });
});

test('a step that throws fails the run, naming the step, with its error and what it printed', async () => {
  const done = await until(await start('fails-in-a-step', {}), ended, 'the failing run ends');
  expect(done).toMatchObject({ status: 'failed', reason: 'step', error: 'Step "Explode" failed: Error: boom: on purpose', results: null });
  expect(done.steps.map((s) => [s.name, s.error, s.output])).toEqual([
    ['Prepare', null, ''],
    ['Explode', 'Error: boom: on purpose', 'about to fail\n'],
  ]);
});

test('results that break the results schema fail the run, saying where', async () => {
  const done = await until(await start('breaks-its-schema', {}), ended, 'the run with bad results ends');
  expect(done).toMatchObject({ status: 'failed', reason: 'results', results: null });
  expect(done.error).toMatch(/^The results do not match the results schema: count: Invalid input: expected number, received string; items\.1: Invalid input: expected string, received number/);
});

test('a run longer than its timeout fails with reason timeout, and its worker process is stopped', async () => {
  const runId = await start('too-slow', { ms: 30_000 });
  const pid = await workerPid(runId);
  const done = await until(runId, ended, 'the slow run ends', 10_000);
  expect(done).toMatchObject({ status: 'failed', reason: 'timeout' });
  expect(done.error).toMatch(/^timeout: the run took longer than its timeoutMs \(1500 ms\)/);
  expect(done.endedAt! - done.startedAt!).toBeGreaterThanOrEqual(1500);
  expect(done.endedAt! - done.startedAt!).toBeLessThan(4000);
  await eventually(() => !processAlive(pid), 'the worker process is stopped', 5000);
});

test('DELETE cancels a running run within 2 s and stops its worker; cancelling it again is a conflict', async () => {
  const runId = await start('sleeper', { ms: 30_000 });
  const pid = await workerPid(runId);
  const t0 = Date.now();
  const res = await api(`/api/runs/${runId}`, { method: 'DELETE' });
  expect(res).toMatchObject({ status: 200, body: { runId, status: 'cancelled' } });
  expect(Date.now() - t0).toBeLessThan(2000);
  expect((await api<RunView>(`/api/runs/${runId}`)).body.status).toBe('cancelled');
  await eventually(() => !processAlive(pid), 'the worker process is stopped', 5000);
  expect((await api(`/api/runs/${runId}`, { method: 'DELETE' })).status).toBe(409);
});

test('a worker killed mid-run makes the run start again from its first step, and it succeeds', async () => {
  const runId = await start('sleeper', { ms: 1500 });
  process.kill(await workerPid(runId, 1), 'SIGKILL');
  const done = await until(runId, ended, 'the retried run ends');
  expect(done).toMatchObject({ status: 'succeeded', attempts: 2, results: { slept: 1500 } });
  expect(done.steps.map((s) => [s.attempt, s.name, s.error])).toEqual([
    [1, 'Sleep', 'the worker process running it died'],
    [2, 'Sleep', null],
  ]);
});

test('results over 100 KiB are kept beside the run, not in its event stream, and read back whole', async () => {
  const runId = await start('big-results', { kib: 200 });
  const done = await until(runId, ended, 'the big run ends');
  expect(done.status).toBe('succeeded');
  expect((done.results as { data: string }).data).toHaveLength(200 * 1024);
  const final = (await readAllEvents(cluster.redis, keys, runId)).find((e) => e.kind === 'final');
  expect(final!.data).toEqual({ $stored: 'results', bytes: 200 * 1024 + '{"data":""}'.length });
});

/** A line of text-like glyphs (black 6x12 boxes, 3 px apart, x 12 to 84, y 15 to 27) on a white 60x120 image. */
async function textLine(): Promise<string> {
  const [width, height] = [120, 60];
  const raw = Buffer.alloc(width * height * 3, 255);
  for (let y = 15; y < 27; y++) for (let x0 = 12; x0 < 84; x0 += 9) raw.fill(0, (y * width + x0) * 3, (y * width + x0 + 6) * 3);
  return `data:image/png;base64,${(await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer()).toString('base64')}`;
}

test('a GPU task waits while no node has a GPU, shown in the run and as infeasible demand, then runs the detector once one joins', async () => {
  const runId = await start('ocr-detect', { image: await textLine() });
  const waiting = await until(runId, (r) => !!r.waiting, 'the run says what it waits for');
  expect(waiting).toMatchObject({ status: 'queued', waiting: expect.stringMatching(/^Waiting for a node with CPU: 1, GPU: 1: no node of the cluster has that much.*--num-gpus 1/) });
  await eventually(async () => (await readClusterStatus(cluster.address)).infeasible.some((i) => i.demand.GPU === 1), 'nodus status lists the GPU demand as infeasible');
  await new Promise((r) => setTimeout(r, 500));
  expect((await api<RunView>(`/api/runs/${runId}`)).body.status).toBe('queued');

  await cluster.addNode({ CPU: 1, GPU: 1 });
  const done = await until(runId, ended, 'the detector run ends', 30_000);
  expect(done).toMatchObject({ status: 'succeeded', waiting: null });
  expect(done.steps.map((s) => s.name)).toEqual(['Load Model', 'Read Image', 'Detect Text', 'Find Boxes']);
  const results = done.results as { boxes: { x: number; y: number; width: number; height: number; score: number }[]; width: number; height: number; device: string };
  expect(results).toMatchObject({ width: 120, height: 60 });
  // The node's GPU is a declared resource only: without onnxruntime-node's CUDA provider the detector says so, in the
  // step's output, and runs on the CPU.
  if (results.device === 'cpu') expect(done.steps[0].output).toMatch(/CUDA provider of onnxruntime-node is not available here/);
  // One box around the glyph line (x 12 to 84, y 15 to 27), a few pixels either way.
  expect(results.boxes).toHaveLength(1);
  const [box] = results.boxes;
  expect(box.x).toBeGreaterThanOrEqual(6);
  expect(box.x).toBeLessThanOrEqual(16);
  expect(box.y).toBeGreaterThanOrEqual(9);
  expect(box.y).toBeLessThanOrEqual(19);
  expect(box.x + box.width).toBeGreaterThanOrEqual(80);
  expect(box.x + box.width).toBeLessThanOrEqual(92);
  expect(box.y + box.height).toBeGreaterThanOrEqual(24);
  expect(box.y + box.height).toBeLessThanOrEqual(34);
  expect(box.score).toBeGreaterThan(0.6);
});

test('nodus tasks run --wait prints each step as it runs, then the results; tasks status shows the run', async () => {
  const { stdout } = await cli('tasks', 'run', 'Hello World', '--param', 'name=Ada', '--wait');
  const lines = stdout.trim().split('\n');
  const runId = /^Run (\S+) of Hello World 1\.0\.0: queued$/.exec(lines[0])![1];
  expect(lines.slice(1)).toEqual([
    'status: running',
    '[step 1] Get Name — Generate a name',
    '    | Getting name: Ada',
    expect.stringMatching(/^\[step 1\] Get Name done in \d+ ms$/),
    '[step 2] Say Hello — Print a hello message',
    '    | Hello, Ada!',
    expect.stringMatching(/^\[step 2\] Say Hello done in \d+ ms$/),
    'status: finished',
    expect.stringMatching(new RegExp(`^Run ${runId} succeeded in \\d+\\.\\d\\d s$`)),
    '{',
    '  "message": "Hello, Ada!"',
    '}',
  ]);
  expect((await cli('tasks', 'list')).stdout).toMatch(/^hello-world {2}1\.0\.0 {2}Hello World {2}\(1 CPU\) {2}A hello world task\n {4}parameters: name$/m);
  const status = await cli('tasks', 'status', runId);
  expect(status.stdout).toMatch(/: succeeded in .*\n {2}step 1 Get Name: \d+ ms\n {2}step 2 Say Hello: \d+ ms\n/);
});

test('registering a new version makes it the current one and keeps the runs of the old one readable', async () => {
  const runId = await start('hello-world', { name: 'Hedy' });
  await until(runId, ended, 'the version 1 run ends');
  const current = (await api<TaskRecord>('/api/tasks/hello-world')).body;
  await registerTasks(cluster.redis, keys, [{ ...current, version: '2.0.0', registeredAt: Date.now() }]);
  expect((await api<TaskRecord & { versions: string[] }>('/api/tasks/hello-world')).body).toMatchObject({ version: '2.0.0', versions: ['1.0.0', '2.0.0'] });
  expect((await api<RunView>(`/api/runs/${runId}`)).body).toMatchObject({ version: '1.0.0', status: 'succeeded', results: { message: 'Hello, Hedy!' } });
});

test('a run carries on across a gateway restart: started before the gateway is killed, it finishes and the new gateway reads it', async () => {
  const runId = await start('sleeper', { ms: 1500 });
  await until(runId, (r) => r.status === 'running', 'the run starts');
  process.kill(gateway.pid, 'SIGKILL');
  await eventually(() => !processAlive(gateway.pid), 'the gateway died');
  await startGateway();
  expect(await until(runId, ended, 'the run ends')).toMatchObject({ status: 'succeeded', attempts: 1, results: { slept: 1500 } });
});
