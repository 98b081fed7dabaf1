import { get, wait } from '../../runtime';
import { readClusterStatus } from '../../runtime/internal/cluster-status';
import { eventually, useCluster } from '../helpers/cluster';
import { huge, interval, needsAccel, nestedSquare, whereAmI } from '../fixtures/tasks';

const cluster = useCluster({ nodeResources: [{ CPU: 2 }, { CPU: 2, accel: 1 }] });

describe('resource-aware scheduling', () => {
  test('a task that asks for a custom resource runs only where it is', async () => {
    const accelNode = cluster.agents[1].nodeId;
    const nodes = await get(Array.from({ length: 6 }, () => needsAccel.remote()));
    expect(new Set(nodes)).toEqual(new Set([accelNode]));
  });

  test('no node is ever oversubscribed: 2-CPU tasks on 2-CPU nodes never overlap on a node', async () => {
    // Enough work that both nodes take some even if one is slow to open the new shape's queue.
    const runs = await get(Array.from({ length: 12 }, () => interval.remote(300)));
    const byNode = new Map<string, { start: number; end: number }[]>();
    for (const r of runs) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r]);
    expect(byNode.size).toBe(2);
    for (const list of byNode.values()) {
      list.sort((a, b) => a.start - b.start);
      for (let i = 1; i < list.length; i++) expect(list[i].start).toBeGreaterThanOrEqual(list[i - 1].end);
    }
  });

  test('a task waiting in get() lends its CPUs: tasks that fill every node and wait on tasks they submit finish', async () => {
    // Each takes a whole 2-CPU node, then waits for a 1-CPU task of its own: without lending, none could run.
    const wide = nestedSquare.options({ numCpus: 2 });
    expect(await get([1, 2, 3, 4].map((x) => wide.remote(x)), { timeout: 30_000 })).toEqual([1, 4, 9, 16]);
    await eventually(async () => (await readClusterStatus(cluster.address)).nodes.every((n) => n.state !== 'alive' || n.free.CPU === n.total.CPU), 'every CPU is free again');
  });

  test('options({ resources }) routes a call to the node that has them', async () => {
    const res = await get(whereAmI.options({ resources: { accel: 1 } }).remote());
    expect(res.node).toBe(cluster.agents[1].nodeId);
  });

  test('a task no node could ever fit is reported to the submitter and in status, not silently stuck', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const ref = huge.remote();
      await eventually(() => warn.mock.calls.length > 0, 'the submitter was warned');
      expect(String(warn.mock.calls[0][0])).toMatch(/huge needs \{CPU: 64\}.*largest node: \{CPU: 2.*nodus worker join .*--num-cpus 64/);
      const [ready] = await wait([ref], { timeout: 300 });
      expect(ready).toEqual([]);
      await eventually(async () => (await readClusterStatus(cluster.address)).infeasible.some((i) => i.demand.CPU === 64), 'status lists the infeasible demand');
      // A node that fits joins: the task runs there.
      const big = await cluster.addNode({ CPU: 64 });
      expect(await get(ref, { timeout: 15_000 })).toBe('ran');
      await eventually(async () => (await readClusterStatus(cluster.address)).infeasible.length === 0, 'the infeasible line is gone');
      expect(big.nodeId).toMatch(/^node-/);
    } finally {
      warn.mockRestore();
    }
  });

  test('status shows nodes, their total and free resources, and workers', async () => {
    const s = await readClusterStatus(cluster.address);
    const alive = s.nodes.filter((n) => n.state === 'alive');
    expect(alive.length).toBeGreaterThanOrEqual(2);
    expect(alive.find((n) => n.id === cluster.agents[1].nodeId)?.total).toEqual({ CPU: 2, accel: 1 });
    expect(alive.every((n) => n.workers >= 1)).toBe(true);
    expect(s.head?.alive).toBe(true);
    expect(s.drivers.length).toBe(1);
  });
});
