/** @module Jobs (Ray's job API) on a real cluster: the CLI, the nodus/jobs functions and the gateway's /api/jobs. */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { create as createTar } from 'tar';
import { startGateway, type Gateway } from '../../gateway/gateway';
import { getJob, jobLogs, listJobs, submitJob, waitForJob, type JobLogEntry } from '../../jobs';
import { entryPoint } from '../../runtime/internal/launcher';
import { eventually, processAlive, useCluster } from '../helpers/cluster';
import { onSecondMachine } from '../helpers/second-machine';
import { readSse } from '../helpers/services';

// The head's node runs jobs that ask for nothing; the second node has the `accel` a job can ask for.
const cluster = useCluster({ nodeResources: [{ CPU: 2 }, { CPU: 1, accel: 1 }], nodeTimeoutMs: 3000 });
const APP = join(__dirname, '..', 'fixtures', 'job-app');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'nodus-jobs-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI; resolves with its exit code and output whatever the code. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [entryPoint('cli'), ...args], { env: { ...process.env, NODUS_ADDRESS: cluster.address, NODUS_SESSION_DIR: dir }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function entriesAt(address: string, id: string): Promise<JobLogEntry[]> {
  const out: JobLogEntry[] = [];
  for await (const e of jobLogs(id, { address })) out.push(e);
  return out;
}

const entries = (id: string) => entriesAt(cluster.address, id);

const text = (log: JobLogEntry[]) => log.map((e) => (e.kind === 'status' ? '' : e.text)).join('');
const statuses = (log: JobLogEntry[]) => log.flatMap((e) => (e.kind === 'status' ? [e.status] : []));

/** Waits until a job's output shows `re`; resolves to its first group. */
async function printed(id: string, re: RegExp): Promise<string> {
  let m: RegExpExecArray | null = null;
  await eventually(async () => !!(m = re.exec(text(await entries(id)))), `job ${id} prints ${re}`, 30_000);
  return m![1];
}

const submittedId = (stderr: string) => /job (job-\w+) submitted/.exec(stderr)![1];

test('job submit runs the entrypoint as a driver on the head node in its working dir: its tasks run, its output streams back, pending → running → succeeded, exit code 0', async () => {
  const r = await cli('job', 'submit', '--working-dir', APP, '--env', 'MODE=fast', '--', 'tsx', 'main.ts', 'squares');
  expect(r.stderr).toMatch(/job job-\w+ is running on node-/);
  expect(r.code).toBe(0);
  // The driver's own output, and its tasks' output (which reaches the driver and so the job's log).
  // It runs in the copy the node unpacked into its env cache, and its tasks run in the same env (MODE set there too).
  expect(r.stdout).toMatch(/sum of squares: 30 \(MODE=fast, cwd=\S+\/runtime-envs\/agent-\S+\/pkg-\w+\)/);
  expect(r.stdout).toMatch(/\(square pid=\d+ node=node-\w+\) square\(3\) MODE=fast/);
  expect(r.stderr).toMatch(/working dir \S+job-app: 2 files, [\d.]+ KiB (shipped to the cluster|, in the cluster already)/);
  const id = submittedId(r.stderr);
  expect(r.stderr).toContain(`Job ${id}: succeeded (exit code 0)`);
  const job = await getJob(id, { address: cluster.address });
  expect(job).toMatchObject({ status: 'succeeded', exitCode: 0, node: cluster.agents[0].nodeId, entrypoint: 'tsx main.ts squares' });
  expect(job.endedAt! >= job.startedAt! && job.startedAt! >= job.createdAt).toBe(true);
  const log = await entries(id);
  expect(statuses(log)).toEqual(['pending', 'running', 'succeeded']);
  expect(text(log)).toContain('sum of squares: 30');
});

test('a failing entrypoint ends failed with its exit code, its stderr reaches the submitter, and job submit exits with that code', async () => {
  const r = await cli('job', 'submit', '--working-dir', APP, '--', 'tsx main.ts fail 3');
  expect(r.code).toBe(3);
  expect(r.stderr).toContain('failing on purpose with code 3');
  const id = submittedId(r.stderr);
  expect(r.stderr).toContain(`Job ${id}: failed (exit code 3): the entrypoint exited with code 3`);
  expect(await getJob(id, { address: cluster.address })).toMatchObject({ status: 'failed', exitCode: 3 });
});

test('a working dir the node cannot set up fails the job, naming the node and the step', async () => {
  // A lockfile whose only package is a tarball that is not there: `npm ci` fails on the node.
  const bad = join(dir, 'bad-app');
  mkdirSync(bad);
  writeFileSync(join(bad, 'package.json'), JSON.stringify({ name: 'bad', version: '1.0.0', dependencies: { nope: 'file:nope-1.0.0.tgz' } }));
  const lock = { name: 'bad', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'bad', version: '1.0.0', dependencies: { nope: 'file:nope-1.0.0.tgz' } }, 'node_modules/nope': { version: '1.0.0', resolved: 'file:nope-1.0.0.tgz' } } };
  writeFileSync(join(bad, 'package-lock.json'), JSON.stringify(lock));
  const job = await submitJob({ entrypoint: 'echo never', runtimeEnv: { workingDir: bad }, address: cluster.address });
  const done = await waitForJob(job.id, { address: cluster.address, timeout: 60_000 });
  expect(done.status).toBe('failed');
  expect(done.message).toMatch(new RegExp(`^its runtime env could not be set up: .*node ${cluster.agents[0].nodeId} could not set it up at step 'npm ci'`));
  expect(text(await entries(job.id))).not.toContain('never');
});

test('job stop ends a long job within seconds, and with it its driver, its running task and its actor; a job that asks for a resource runs on the node that has it', async () => {
  const job = await submitJob({ entrypoint: 'tsx main.ts long', runtimeEnv: { workingDir: APP }, resources: { accel: 1 }, address: cluster.address });
  expect(job.status).toBe('pending');
  const driver = Number(await printed(job.id, /driver pid=(\d+)/));
  const actor = Number(await printed(job.id, /actor pid=(\d+)/));
  const worker = Number(await printed(job.id, /sleepy worker pid=(\d+)/));
  expect((await getJob(job.id, { address: cluster.address })).node).toBe(cluster.agents[1].nodeId);
  expect([driver, actor, worker].every(processAlive)).toBe(true);

  const stopped = await cli('job', 'stop', job.id);
  expect(stopped.stdout).toMatch(new RegExp(`Job ${job.id}: stopped \\(exit code \\d+\\): stopped on request`));
  await eventually(() => ![driver, actor, worker].some(processAlive), 'the driver, the actor and the task worker are gone', 10_000);
  const status = await cli('job', 'status', job.id);
  expect(status.stdout).toContain(`node:        ${cluster.agents[1].nodeId}`);
  // Stopping an ended job says so; an unknown one says how to find them.
  expect((await cli('job', 'stop', job.id)).stdout).toContain('stopped');
  const unknown = await cli('job', 'status', 'job-nope');
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain('No job job-nope (jobs are kept 7 days after they end); `npx nodus job list` lists them.');
});

test('job list shows every job, newest first, with its status and exit code; submit refuses typos and resources no node has', async () => {
  const list = await cli('job', 'list');
  const lines = list.stdout.trim().split('\n');
  expect(lines.map((l) => /^job-\w+\s+(\w+)/.exec(l)?.[1])).toEqual(['stopped', 'failed', 'failed', 'succeeded']);
  expect(lines[2]).toMatch(/failed +exit 3 +node-\w+ .* tsx main\.ts fail 3$/);
  expect((await listJobs({ address: cluster.address, status: ['failed'] })).map((j) => j.exitCode)).toEqual([undefined, 3]);

  await expect(submitJob({ entrypoint: 'x', runtimeEnv: { workingDirr: APP } as never, address: cluster.address })).rejects.toThrow(
    /Unknown runtimeEnv option 'workingDirr'\. Did you mean 'workingDir'\?/,
  );
  await expect(submitJob({ entrypoint: 'x', resources: { tpu: 1 }, address: cluster.address })).rejects.toThrow(/No node of the cluster has \{"tpu":1\} for the job's driver/);
  await expect(submitJob({ entrypoint: 'x', runtimeEnv: { workingDir: join(APP, 'main.ts') }, address: cluster.address })).rejects.toThrow(/main\.ts is not a folder: give a folder/);
  const noCommand = await cli('job', 'submit', '--no-wait', '--env', 'NOEQUALS', '--', 'true');
  expect(noCommand.stderr).toContain("--env takes NAME=value, got 'NOEQUALS'");
});

describe('the gateway', () => {
  let gw: Gateway;
  let admin: string;
  const quiet = pino({ level: 'silent' });

  beforeAll(async () => {
    gw = await startGateway({ address: cluster.address, port: 0, sessionDir: dir }, { logger: quiet });
    const res = await fetch(`${gw.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: 'admin' }) });
    admin = res.headers.get('set-cookie')!.split(';')[0];
  });

  afterAll(() => gw?.close());

  const call = async (path: string, body?: unknown, cookie = admin) => {
    const res = await fetch(`${gw.url}${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { cookie, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as any, headers: res.headers };
  };

  let runtimeEnv: { pkg: string; lock?: string };

  test('a working dir sent as a .tar.gz is stored once per content: the same folder the CLI shipped is there already', async () => {
    const chunks: Buffer[] = [];
    for await (const c of createTar({ gzip: true, cwd: APP }, ['.']) as unknown as AsyncIterable<Buffer>) chunks.push(c);
    const res = await fetch(`${gw.url}/api/jobs/packages`, { method: 'POST', headers: { cookie: admin, 'content-type': 'application/gzip' }, body: Buffer.concat(chunks) });
    const body = (await res.json()) as { runtimeEnv: { pkg: string }; files: number; uploaded: boolean };
    expect(res.status).toBe(201);
    expect(body).toMatchObject({ files: 2, uploaded: false });
    const viaCli = (await listJobs({ address: cluster.address, status: ['succeeded'] })).at(-1)!;
    expect(body.runtimeEnv.pkg).toBe(viaCli.runtimeEnv!.pkg);
    runtimeEnv = body.runtimeEnv;
    const notGzip = await fetch(`${gw.url}/api/jobs/packages`, { method: 'POST', headers: { cookie: admin, 'content-type': 'application/gzip' }, body: 'hello' });
    expect(((await notGzip.json()) as { message: string }).message).toContain('The body is not gzip: send the working dir as a .tar.gz (tar czf).');
  });

  test('POST /api/jobs runs a job, GET /api/jobs/{id} shows it, and its log streams as Server-Sent Events until it ends', async () => {
    const posted = await call('/api/jobs', { entrypoint: ['tsx', 'main.ts', 'squares'], runtimeEnv: { ...runtimeEnv, env: { MODE: 'http' } } });
    expect(posted.status).toBe(201);
    const id = posted.body.jobId as string;
    expect(posted.body).toEqual({ jobId: id, status: 'pending', job: `/api/jobs/${id}`, logs: `/api/jobs/${id}/logs` });
    expect(posted.headers.get('location')).toBe(`/api/jobs/${id}`);

    const { events, eof } = await readSse(`${gw.url}/api/jobs/${id}/logs`, { cookie: admin });
    expect(eof).toBe(true);
    const kinds = events.map((e) => e.event);
    expect(kinds[0]).toBe('status');
    expect(events.filter((e) => e.event === 'status').map((e) => (e.data as { data: { status: string } }).data.status)).toEqual(['pending', 'running', 'succeeded']);
    expect(events.filter((e) => e.event === 'stdout').map((e) => (e.data as { data: string }).data).join('')).toContain('sum of squares: 30 (MODE=http');
    // Resumed after an event, the stream goes on from there.
    const resumed = await readSse(`${gw.url}/api/jobs/${id}/logs`, { cookie: admin, lastEventId: events[events.length - 2].id });
    expect(resumed.events.map((e) => e.id)).toEqual([events[events.length - 1].id]);
    expect(resumed.eof).toBe(true);

    expect((await call(`/api/jobs/${id}`)).body).toMatchObject({ id, status: 'succeeded', exitCode: 0, entrypoint: 'tsx main.ts squares' });
    expect((await call('/api/jobs?status=succeeded')).body.jobs.map((j: { id: string }) => j.id)).toContain(id);
    expect((await call(`/api/jobs/${id}/stop`, {})).status).toBe(409);
  });

  test('POST /api/jobs/{id}/stop stops a running job; bad bodies and unknown jobs get clear errors; only admins may use jobs', async () => {
    const id = (await call('/api/jobs', { entrypoint: 'tsx main.ts long', runtimeEnv })).body.jobId as string;
    await printed(id, /driver pid=(\d+)/);
    const asked = await call(`/api/jobs/${id}/stop`, {});
    expect(asked.status).toBe(200);
    expect(asked.body.id).toBe(id);
    await eventually(async () => (await call(`/api/jobs/${id}`)).body.status === 'stopped', 'the job is stopped', 10_000);

    const bad = await call('/api/jobs', { entrypoint: 'x', numCpu: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/numCpu/);
    expect((await call('/api/jobs', { entrypoint: '  ' })).body.message).toContain("entrypoint must be the command that starts the driver, e.g. 'npx tsx main.ts'.");
    expect((await call('/api/jobs', { entrypoint: 'x', runtimeEnv: { pkg: 'ab'.repeat(16) } })).body.message).toContain(`The cluster holds no package ${'ab'.repeat(16)}; upload the working dir first with POST /api/jobs/packages`);
    expect((await call('/api/jobs/job-nope')).status).toBe(404);
    expect((await call('/api/jobs?status=done')).body.message).toContain('status must be one or more of pending, running, succeeded, failed, stopped');
    expect((await fetch(`${gw.url}/api/jobs`)).status).toBe(401);
    await call('/api/users', { name: 'ada', password: 'ada-password' });
    const login = await fetch(`${gw.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ada', password: 'ada-password' }) });
    const ada = login.headers.get('set-cookie')!.split(';')[0];
    expect((await call('/api/jobs', undefined, ada)).status).toBe(403);
  });
});

// Last: it takes the second node away.
test('a job whose node dies is marked failed, with a message naming the node', async () => {
  const job = await submitJob({ entrypoint: 'tsx main.ts long', runtimeEnv: { workingDir: APP }, resources: { accel: 1 }, address: cluster.address });
  await printed(job.id, /driver pid=(\d+)/);
  const { pid } = await getJob(job.id, { address: cluster.address });
  const node = cluster.agents[1];
  try {
    process.kill(node.pid, 'SIGKILL');
    await eventually(async () => (await getJob(job.id, { address: cluster.address })).status === 'failed', 'the job is failed', 20_000);
    const failed = await getJob(job.id, { address: cluster.address });
    expect(failed.message).toBe(`its node ${node.nodeId} died (no heartbeat for 3000 ms) while the job ran`);
    expect(statuses(await entries(job.id))).toEqual(['pending', 'running', 'failed']);
  } finally {
    // A node agent killed with SIGKILL leaves its driver behind (on a machine that died, it died with it).
    try {
      process.kill(-pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

test('a job runs its driver on a second machine that has nothing of its code: shipped, unpacked there, and run', async () => {
  await onSecondMachine(APP, async (far) => {
    // Submitted from here; the folder it comes from is an empty tmpfs there.
    const job = await submitJob({ entrypoint: 'tsx main.ts squares', runtimeEnv: { workingDir: APP, env: { MODE: 'far' } }, resources: { secondMachine: 1 }, address: far.address });
    const done = await waitForJob(job.id, { address: far.address, timeout: 60_000 });
    const log = text(await entriesAt(far.address, job.id));
    expect(done).toMatchObject({ status: 'succeeded', exitCode: 0, node: far.remoteNodeId });
    expect(log).toMatch(/sum of squares: 30 \(MODE=far, cwd=\S+\/cache\/agent-\S+\/pkg-\w+\)/);
  });
});
