import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getActor, kill } from '../../runtime';
import { RUNNER_NAMESPACE, ServiceKeys, type ExecEvent } from '../../runtime/protocol/services';
import { Launch } from '../../serve';
import type { EnterRequest } from '../../serve/api';
import { RunnerActor } from '../../serve/runner';
import { createExecution, setStatus, readAllEvents, readExecution, requestCancel } from '../../serve/store';
import { superviseExecutions } from '../../serve/supervise';
import { get } from '../../runtime';
import { eventually, processAlive, useCluster } from '../helpers/cluster';

const cluster = useCluster({ nodes: 1, cpus: 2 });
const keys = new ServiceKeys();
const entry = (name: string) => `${join(__dirname, '..', 'fixtures', 'entrypoints.ts')}:${name}`;
const request = (user = 'ada'): EnterRequest =>
  ({
    user: { user, admin: false, iat: Date.now() },
    headers: {},
    entry: { path: '/', route: '/-/', meta: { summary: 'Test flow', description: '', tags: [], version: '1', author: '', organization: '' } },
    baseUrl: 'http://127.0.0.1:1',
    raw: {},
  }) as unknown as EnterRequest;

async function ended(fid: string, timeoutMs = 20_000): Promise<ExecEvent[]> {
  await eventually(async () => ['finished', 'error', 'cancelled'].includes((await readExecution(cluster.redis, keys, fid))?.status ?? ''), `execution ${fid} ended`, timeoutMs);
  return readAllEvents(cluster.redis, keys, fid);
}

test('Launch answers at once with the fid; the entrypoint runs on the cluster and its events, output and final result are kept in order', async () => {
  const t0 = Date.now();
  const launched = await Launch(request(), entry('hello'), { name: 'Ada' });
  expect(Date.now() - t0).toBeLessThan(2000);
  expect(launched).toEqual({ fid: expect.any(String), status: `/outputs/status/${launched.fid}`, stream: `/outputs/stream/${launched.fid}`, main: `/outputs/main/${launched.fid}` });
  const events = await ended(launched.fid);
  const rec = await readExecution(cluster.redis, keys, launched.fid);
  expect(rec).toMatchObject({ status: 'finished', owner: 'ada', summary: 'Test flow' });
  expect(Number(rec!.endedAt)).toBeGreaterThanOrEqual(Number(rec!.startedAt));
  const statuses = events.filter((e) => e.kind === 'status').map((e) => (e.data as { status: string }).status);
  expect(statuses).toEqual(['starting', 'running', 'finished']);
  expect(events.find((e) => e.kind === 'inputs')!.data).toEqual({ name: 'Ada' });
  expect(events.find((e) => e.kind === 'markdown')!.data).toBe('# Hello Ada');
  expect(events.filter((e) => e.kind === 'progress').map((e) => e.data)).toEqual([{ done: 1, total: 2, label: 'half' }, { done: 2, total: 2 }]);
  // msgpack-able values are shown as JSON.
  expect(events.find((e) => e.kind === 'result')!.data).toEqual({ loud: 'ADA', when: '1970-01-01T00:00:00.000Z', big: '10', set: [1] });
  expect(events.filter((e) => e.kind === 'stdout').map((e) => e.data).join('')).toMatch(/printed by the entrypoint[\s\S]*task says Ada|task says Ada[\s\S]*printed by the entrypoint/);
  const final = events.findIndex((e) => e.kind === 'final');
  expect(events[final].data).toEqual({ greeting: 'Hello Ada', loud: 'ADA' });
  // The final result lands right before the final status, and ids grow.
  expect(events[final + 1]).toMatchObject({ kind: 'status', data: { status: 'finished' } });
  const ids = events.map((e) => e.id.split('-').map(Number));
  for (let i = 1; i < ids.length; i++) expect(ids[i][0] > ids[i - 1][0] || (ids[i][0] === ids[i - 1][0] && ids[i][1] > ids[i - 1][1])).toBe(true);
  // The runner is gone once its execution ended.
  const runner = (await getActor(launched.fid, { namespace: RUNNER_NAMESPACE })) as unknown as { actorId: string };
  await eventually(async () => (await cluster.redis.hget(`nodus:actor:${runner.actorId}`, 'state')) === 'dead', 'the runner actor ended');
});

test('a sync entrypoint works, and one that throws ends with status error and its message, the stack only in its error event', async () => {
  const sum = await Launch(request(), entry('syncSum'), { n: 100 });
  const failed = await Launch(request(), entry('boom'), { why: 'on purpose' });
  expect((await ended(sum.fid)).find((e) => e.kind === 'final')!.data).toBe(5050);
  const events = await ended(failed.fid);
  const rec = await readExecution(cluster.redis, keys, failed.fid);
  expect(rec).toMatchObject({ status: 'error', error: 'RangeError: boom: on purpose' });
  expect(events.find((e) => e.kind === 'error')!.data).toMatchObject({ name: 'RangeError', message: 'boom: on purpose', stack: expect.stringContaining('entrypoints.ts') });
  expect(events.some((e) => e.kind === 'final')).toBe(false);
});

test('a cancel aborts tracer.signal and ends the execution cancelled', async () => {
  const { fid } = await Launch(request(), entry('patient'), {});
  await eventually(async () => (await readAllEvents(cluster.redis, keys, fid)).some((e) => e.kind === 'text'), 'the entrypoint started');
  expect(await requestCancel(cluster.redis, keys, fid)).toBe(true);
  await ended(fid, 5000);
  expect((await readExecution(cluster.redis, keys, fid))!.status).toBe('cancelled');
  expect(await requestCancel(cluster.redis, keys, fid)).toBe(false);
});

test('killing the runner for good cancels the tasks it started', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodus-exec-'));
  const file = join(dir, 'ticks');
  try {
    const { fid } = await Launch(request(), entry('stubborn'), { file });
    await eventually(() => { try { return readFileSync(file, 'utf8').length > 0; } catch { return false; } }, 'the long task ticks', 20_000);
    await kill(await getActor(fid, { namespace: RUNNER_NAMESPACE }));
    await new Promise((r) => setTimeout(r, 1500));
    const size = readFileSync(file, 'utf8').length;
    await new Promise((r) => setTimeout(r, 600));
    expect(readFileSync(file, 'utf8').length).toBe(size);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the runner's process killed: the execution ends with status error naming the cause, no hang", async () => {
  const { fid } = await Launch(request(), entry('patient'), {});
  await eventually(async () => (await readAllEvents(cluster.redis, keys, fid)).some((e) => e.kind === 'text'), 'the entrypoint started');
  const handle = (await getActor(fid, { namespace: RUNNER_NAMESPACE })) as unknown as { actorId: string };
  const pid = Number(await cluster.redis.hget(`nodus:actor:${handle.actorId}`, 'pid'));
  process.kill(pid, 'SIGKILL');
  await ended(fid, 10_000);
  const rec = await readExecution(cluster.redis, keys, fid);
  expect(rec!.status).toBe('error');
  expect(rec!.error).toMatch(/runner of this execution died.*SIGKILL/);
  expect(processAlive(pid)).toBe(false);
});

test('the sweep ends executions whose runner died or never started, when nobody watched them', async () => {
  const base = { owner: 'ada', flow: 'f', summary: 's', entry: entry('patient'), inputs: {}, service: 'http://127.0.0.1:1' };
  await createExecution(cluster.redis, keys, { ...base, fid: 'never-started' });
  // A runner whose launcher is gone: made here without a watcher, then its process killed.
  await createExecution(cluster.redis, keys, { ...base, fid: 'orphan-runner' });
  await setStatus(cluster.redis, keys, 'orphan-runner', 'running');
  const runner = RunnerActor.options({ name: 'orphan-runner', namespace: RUNNER_NAMESPACE, lifetime: 'detached' }).remote();
  expect(await get(runner.ping.remote())).toBe('ok');
  const pid = Number(await cluster.redis.hget(`nodus:actor:${(runner as unknown as { actorId: string }).actorId}`, 'pid'));
  process.kill(pid, 'SIGKILL');
  await eventually(async () => (await cluster.redis.hget(`nodus:actor:${(runner as unknown as { actorId: string }).actorId}`, 'state')) === 'dead', 'the runner is dead');
  expect(await superviseExecutions(cluster.redis, keys, { startGraceMs: 0 })).toBe(2);
  expect(await readExecution(cluster.redis, keys, 'never-started')).toMatchObject({ status: 'error', error: expect.stringContaining('never started') });
  expect(await readExecution(cluster.redis, keys, 'orphan-runner')).toMatchObject({ status: 'error', error: expect.stringContaining('died') });
  expect(await cluster.redis.zscore(keys.activeExecs, 'orphan-runner')).toBeNull();
});

test('an ended execution and its events are deleted after the retention time (NODUS_EXEC_RETENTION_MS)', async () => {
  const before = process.env.NODUS_EXEC_RETENTION_MS;
  process.env.NODUS_EXEC_RETENTION_MS = '300';
  try {
    const fid = 'short-lived';
    await createExecution(cluster.redis, keys, { fid, owner: 'ada', flow: 'f', summary: 's', entry: entry('hello'), inputs: {}, service: '' });
    await setStatus(cluster.redis, keys, fid, 'finished');
    expect((await readExecution(cluster.redis, keys, fid))?.status).toBe('finished');
    await eventually(async () => !(await readExecution(cluster.redis, keys, fid)) && (await readAllEvents(cluster.redis, keys, fid)).length === 0, 'the execution expired', 5000);
  } finally {
    if (before === undefined) delete process.env.NODUS_EXEC_RETENTION_MS;
    else process.env.NODUS_EXEC_RETENTION_MS = before;
  }
});
