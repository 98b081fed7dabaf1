import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { get, init, kill, shutdown } from '../../runtime';
import { readClusterStatus } from '../../runtime/internal/cluster-status';
import { eventually, startCluster, type TestCluster } from '../helpers/cluster';
import { RetryingCounter } from '../fixtures/actors';
import { nodeWork } from '../fixtures/tasks';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await shutdown();
  await cluster?.stop();
  cluster = undefined;
});

async function start(cpus: number): Promise<TestCluster> {
  cluster = await startCluster({ nodes: 2, cpus, nodeTimeoutMs: 2000 });
  await init({ address: cluster.address, logToDriver: false });
  return cluster;
}

const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')) : []);
const nodeState = async (c: TestCluster, id: string) => (await readClusterStatus(c.address)).nodes.find((n) => n.id === id)?.state;

/** Kills a node's agent and the given processes of it, as a machine that dies would. */
function killNode(c: TestCluster, index: number, pids: number[]): void {
  process.kill(c.agents[index].pid, 'SIGKILL');
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone with its agent */
    }
  }
}

describe('node death', () => {
  test('a dead node is marked dead within the timeout, its running tasks run again on another node, and its resources leave the totals', async () => {
    const c = await start(1);
    const [a, b] = c.agents;
    const file = join(c.dir, 'node-work.txt');
    const refs = Array.from({ length: 2 }, () => nodeWork.remote(file, 3000));
    await eventually(() => lines(file).length === 2, 'one task started on each node');
    const victims = lines(file).filter(([node]) => node === b.nodeId).map(([, pid]) => Number(pid));
    expect(victims).toHaveLength(1);
    const t0 = Date.now();
    killNode(c, 1, victims);
    await eventually(async () => (await nodeState(c, b.nodeId)) === 'dead', 'the node is marked dead', 10_000);
    expect(Date.now() - t0).toBeLessThan(2000 + 3000);
    expect((await readClusterStatus(c.address)).total).toEqual({ CPU: 1 });
    const results = await get(refs, { timeout: 30_000 });
    expect(results.map((r) => r.node)).toEqual([a.nodeId, a.nodeId]);
    // Run twice in all: once on each node's worker before the kill, the killed one again on a.
    expect(lines(file).filter(([node]) => node === a.nodeId)).toHaveLength(2);
  });

  test("a dead node's actors restart on another node, with fresh state, within maxRestarts", async () => {
    const c = await start(2);
    const b = c.agents[1];
    // Four 1-CPU actors on two 2-CPU nodes: two on each.
    const actors = Array.from({ length: 4 }, () => RetryingCounter.options({ numCpus: 1 }).remote(7));
    const where = await get(actors.map((x) => x.where.remote()));
    const onB = actors.filter((_, i) => where[i] === b.nodeId);
    expect(onB).toHaveLength(2);
    for (const x of onB) await get(x.incr.remote(1));
    const pids = await get(onB.map((x) => x.pid.remote()));
    const spare = await c.addNode({ CPU: 2 }, 2);
    killNode(c, 1, pids);
    for (const x of onB) {
      expect(await get(x.where.remote(), { timeout: 30_000 })).toBe(spare.nodeId);
      expect(await get(x.incr.remote(0))).toBe(7);
    }
    const states = (await readClusterStatus(c.address)).actors.filter((s) => onB.some((x) => x.actorId === s.id));
    expect(states.map((s) => [s.state, s.restarts])).toEqual([
      ['alive', 1],
      ['alive', 1],
    ]);
    await Promise.all(actors.map((x) => kill(x)));
  });

  test('a node that stops heartbeating is declared dead, and when it comes back it joins as a new node', async () => {
    const c = await start(1);
    const paused = c.agents[1];
    process.kill(paused.pid, 'SIGSTOP');
    try {
      await eventually(async () => (await nodeState(c, paused.nodeId)) === 'dead', 'the paused node is declared dead', 10_000);
    } finally {
      process.kill(paused.pid, 'SIGCONT');
    }
    await eventually(
      async () => (await readClusterStatus(c.address)).nodes.some((n) => n.state === 'alive' && n.pid === paused.pid && n.id !== paused.nodeId),
      'it joined again under a new id',
      10_000,
    );
    expect(await nodeState(c, paused.nodeId)).toBe('dead');
  });
});
