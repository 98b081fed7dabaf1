/** @module The state API (nodus/state and `nodus list|get|summary|logs`): what a test started is listed, filters work, a failed task is found after it ended. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { get, kill, TaskError } from '../../runtime';
import { getActorInfo, getLogs, getTask, listActors, listNodes, listObjects, listTasks, summarizeTasks } from '../../runtime/state';
import { put } from '../../runtime';
import { eventually, useCluster } from '../helpers/cluster';
import { AnnouncerActor, explode, linger, tally } from '../fixtures/state-tasks';

const cluster = useCluster({ nodes: 2, cpus: 1 });
const run = promisify(execFile);
const CLI = join(__dirname, '..', '..', 'dist', 'scripts', 'cli.js');
const cli = async (...args: string[]) => (await run(process.execPath, [CLI, ...args, '--address', cluster.address], { env: { ...process.env, NODUS_ADDRESS: '' } })).stdout;

test('tasks a driver ran are listed with their function, state, node and worker, and a filter keeps the ones asked for', async () => {
  const refs = [1, 2, 3].map((x) => tally.remote(x));
  expect(await get(refs)).toEqual([2, 3, 4]);
  const slow = linger.remote(20_000);
  const nodes = cluster.agents.map((a) => a.nodeId);
  await eventually(async () => (await listTasks({ filter: { name: 'tally', state: 'FINISHED' } })).length === 3, 'the three tally tasks are listed as finished');
  for (const t of await listTasks({ filter: { name: 'tally' } })) {
    expect(refs.map((r) => r.id)).toContain(t.taskId);
    expect(nodes).toContain(t.node);
    expect(t.worker).toMatch(/^worker-/);
    expect(t.durationMs).toBeGreaterThanOrEqual(0);
    expect(t.events.map((e) => e.event)).toEqual(['SUBMITTED', 'RUNNING', 'FINISHED']);
  }
  await eventually(async () => (await listTasks({ filter: { state: 'RUNNING' } })).some((t) => t.taskId === slow.id), 'the lingering task is listed as running');
  expect((await listTasks({ filter: { state: 'RUNNING' } })).every((t) => t.state === 'RUNNING')).toBe(true);
  const json = JSON.parse(await cli('list', 'tasks', '--filter', 'state=RUNNING', '--json')) as { taskId: string }[];
  expect(json.map((t) => t.taskId)).toContain(slow.id);
  expect(await cli('list', 'tasks', '--filter', 'name=tally')).toMatch(/tally\s+FINISHED/);
  await expect(listTasks({ filter: { colour: 'red' } as never })).rejects.toThrow(/cannot be filtered on 'colour'.*Fields: taskId, name, state/);
});

test('a failed task is found after it ended, with its error, node and worker; get task and summary show it too', async () => {
  const ref = explode.remote('for the state API');
  await expect(get(ref)).rejects.toBeInstanceOf(TaskError);
  await eventually(async () => (await getTask(ref.id))?.state === 'FAILED', 'the failure is recorded');
  const t = (await getTask(ref.id))!;
  expect(t).toMatchObject({ name: 'explode', state: 'FAILED', error: { name: 'RangeError', message: 'exploded on purpose: for the state API' } });
  expect(cluster.agents.map((a) => a.nodeId)).toContain(t.node);
  expect(t.worker).toMatch(/^worker-/);
  expect((await listTasks({ filter: { state: 'FAILED' } })).map((x) => x.taskId)).toContain(ref.id);

  const shown = JSON.parse(await cli('get', 'task', ref.id)) as { state: string; error: { message: string } };
  expect(shown).toMatchObject({ state: 'FAILED', error: { message: 'exploded on purpose: for the state API' } });
  const summary = await summarizeTasks();
  expect(summary.find((r) => r.name === 'explode')?.byState.FAILED).toBeGreaterThanOrEqual(1);
  expect(summary.find((r) => r.name === 'tally')?.byState.FINISHED).toBe(3);
  expect(await cli('summary', 'tasks')).toMatch(/tally\s+3\s+0\s+0\s+3\s+0/);
});

test('what a task and an actor printed is kept, by task id and by actor id', async () => {
  const ref = tally.remote(41);
  await get(ref);
  await eventually(async () => (await getLogs({ task: ref.id })).some((l) => l.text === 'tallying 41'), 'the task log is kept');
  const failed = explode.remote('loudly');
  await get(failed).catch(() => undefined);
  await eventually(async () => (await getLogs({ task: failed.id })).some((l) => l.stream === 'stderr' && l.text === 'about to fail: loudly'), 'stderr is kept too');
  expect(await cli('logs', '--task', ref.id)).toBe('tallying 41\n');

  const actor = AnnouncerActor.remote();
  expect(await get(actor.say.remote('hello'))).toBe('hello');
  await eventually(async () => (await getLogs({ actor: actor.actorId })).some((l) => l.text === 'announcer says hello'), 'the actor log is kept');
  expect(await cli('logs', '--actor', actor.actorId)).toContain('announcer says hello');
  expect((await getActorInfo(actor.actorId))?.state).toBe('ALIVE');
  expect((await listActors({ filter: { className: 'Announcer', state: 'ALIVE' } })).map((a) => a.actorId)).toContain(actor.actorId);
  await kill(actor);
  await eventually(async () => (await getActorInfo(actor.actorId))?.state === 'DEAD', 'the killed actor is dead');
  expect((await getActorInfo(actor.actorId))?.deathCause).toMatch(/ActorDiedError/);
});

test('objects and nodes are listed: a put object with its owner and size, both nodes alive with their resources', async () => {
  const big = await put(new Float64Array(1000));
  const objects = await listObjects({ limit: 100_000 });
  const mine = objects.find((o) => o.objectId === big.id);
  expect(mine).toBeDefined();
  expect(mine!.sizeBytes).toBeGreaterThan(8000);
  expect(mine!.refCount).toBeGreaterThanOrEqual(1);
  expect(mine!.location).toBe('redis');
  // A large one is in a node's store: its size is the object's, not its record's.
  const large = await put(new Float64Array(256 * 1024));
  const listed = (await listObjects({ limit: 100_000 })).find((o) => o.objectId === large.id);
  expect(listed).toMatchObject({ location: 'node store', store: expect.stringMatching(/^\d+-/) });
  expect(listed!.sizeBytes).toBeGreaterThan(2 * 1024 * 1024);
  const nodes = await listNodes({ filter: { state: 'ALIVE' } });
  expect(nodes.map((n) => n.nodeId).sort()).toEqual(cluster.agents.map((a) => a.nodeId).sort());
  expect(nodes.every((n) => n.total.CPU === 1)).toBe(true);
  expect(await cli('list', 'nodes')).toContain(cluster.agents[0].nodeId);
  expect(await cli('list', 'placement-groups')).toBe('No placement-groups.\n');
});
