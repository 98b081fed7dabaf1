import { ActorDiedError, GetTimeoutError, TaskCancelledError, get, placementGroup, removePlacementGroup, type PlacementGroup } from '../../runtime';
import { readClusterStatus } from '../../runtime/internal/cluster-status';
import { listPlacementGroups } from '../../runtime/state';
import { eventually, useCluster } from '../helpers/cluster';
import { RestartingLocator, where } from '../fixtures/parity';

// Short, so the node-death test is quick; long enough that a busy machine does not take a slow node for dead.
const cluster = useCluster({ nodes: 3, cpus: 2, nodeTimeoutMs: 4000 });

const groupOf = async (pg: PlacementGroup) => (await readClusterStatus(cluster.address)).placementGroups.find((g) => g.id === pg.id);
const allFree = async () => (await readClusterStatus(cluster.address)).nodes.every((n) => n.state !== 'alive' || n.free.CPU === n.total.CPU);

describe('placement groups', () => {
  test('PACK and STRICT_PACK put the bundles on one node; tasks in a bundle run on its node', async () => {
    for (const strategy of ['PACK', 'STRICT_PACK'] as const) {
      const pg = placementGroup([{ CPU: 1 }, { CPU: 1 }], { strategy, name: `packed-${strategy}` });
      await pg.ready();
      const g = (await groupOf(pg))!;
      expect(g.state).toBe('CREATED');
      expect(new Set(g.nodes).size).toBe(1);
      // The state API lists it with the node holding each bundle.
      expect((await listPlacementGroups()).find((x) => x.id === pg.id)).toMatchObject({ state: 'CREATED', bundles: [{ resources: { CPU: 1 }, node: g.nodes[0] }, { resources: { CPU: 1 }, node: g.nodes[0] }] });
      const ran = await get([0, 1].map((i) => where.options({ placementGroup: pg, bundleIndex: i }).remote()));
      expect(ran).toEqual([g.nodes[0], g.nodes[0]]);
      // The reservation is taken from the node's free resources.
      await eventually(async () => (await readClusterStatus(cluster.address)).nodes.find((n) => n.id === g.nodes[0])!.free.CPU === 0, 'the node shows its CPUs reserved');
      await removePlacementGroup(pg);
      await eventually(allFree, 'the bundles are released');
    }
  });

  test('SPREAD puts bundles on different nodes while they have room; actors in a bundle live on its node', async () => {
    const pg = placementGroup([{ CPU: 1 }, { CPU: 1 }, { CPU: 1 }], { strategy: 'SPREAD' });
    await pg.ready();
    const g = (await groupOf(pg))!;
    expect(new Set(g.nodes).size).toBe(3);
    const actor = RestartingLocator.options({ placementGroup: pg, bundleIndex: 2 }).remote();
    expect(await get(actor.node.remote())).toBe(g.nodes[2]);
    await removePlacementGroup(pg);
    await expect(get(actor.node.remote())).rejects.toBeInstanceOf(ActorDiedError);
    await eventually(allFree, 'the bundles are released');
  });

  test('STRICT_SPREAD with more bundles than nodes stays pending, is reported, and is placed when a node joins', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const pg = placementGroup([{ CPU: 1 }, { CPU: 1 }, { CPU: 1 }, { CPU: 1 }], { strategy: 'STRICT_SPREAD', name: 'wide' });
      const err = await pg.ready({ timeout: 1500 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GetTimeoutError);
      expect((err as Error).message).toMatch(/wide \(STRICT_SPREAD\).*cannot be placed/);
      expect(String(warn.mock.calls.at(-1)?.[0])).toMatch(/placement group wide \(STRICT_SPREAD.*cannot be placed on the 3 alive nodes.*nodus worker join/);
      await eventually(async () => (await readClusterStatus(cluster.address)).infeasible.some((i) => i.shape === `pg:${pg.id}` && /wide/.test(i.task ?? '')), 'status lists the group as infeasible');
      expect((await groupOf(pg))?.state).toBe('PENDING');
      // The state API shows it as Ray's does: infeasible, with why.
      const listed = (await listPlacementGroups()).find((x) => x.id === pg.id)!;
      expect(listed).toMatchObject({ name: 'wide', strategy: 'STRICT_SPREAD', state: 'INFEASIBLE' });
      expect(listed.reason).toMatch(/no 4 alive nodes can each hold its bundles/);
      await cluster.addNode({ CPU: 2 });
      await pg.ready({ timeout: 20_000 });
      expect(new Set((await groupOf(pg))!.nodes).size).toBe(4);
      await removePlacementGroup(pg);
    } finally {
      warn.mockRestore();
    }
  });

  test('removePlacementGroup stops what runs in it and frees its resources', async () => {
    const pg = placementGroup([{ CPU: 2 }], { strategy: 'STRICT_PACK' });
    await pg.ready();
    const inPg = where.options({ placementGroup: pg });
    const running = [inPg.remote(60_000), inPg.remote(60_000)];
    const queued = inPg.remote(60_000);
    await eventually(async () => (await readClusterStatus(cluster.address)).nodes.some((n) => n.running === 2), 'both tasks run');
    await removePlacementGroup(pg);
    for (const ref of [...running, queued]) await expect(get(ref, { timeout: 15_000 })).rejects.toBeInstanceOf(TaskCancelledError);
    expect(await groupOf(pg)).toBeUndefined();
    await eventually(allFree, 'every CPU is free again');
  });

  test('when a node holding a bundle dies, the bundle is reserved again elsewhere and its actor restarts there', async () => {
    const pg = placementGroup([{ CPU: 1 }, { CPU: 1 }], { strategy: 'STRICT_SPREAD' });
    await pg.ready();
    const before = (await groupOf(pg))!.nodes;
    const actor = RestartingLocator.options({ placementGroup: pg, bundleIndex: 1 }).remote();
    expect(await get(actor.node.remote())).toBe(before[1]);
    const victim = cluster.agents.find((a) => a.nodeId === before[1])!;
    process.kill(victim.pid, 'SIGKILL');
    await eventually(async () => {
      const g = await groupOf(pg);
      return g?.state === 'CREATED' && !!g.nodes[1] && g.nodes[1] !== before[1];
    }, 'bundle 1 is reserved on another node', 30_000);
    const after = (await groupOf(pg))!.nodes;
    expect(after[0]).toBe(before[0]);
    expect(after[1]).not.toBe(after[0]); // still STRICT_SPREAD
    expect(await get(actor.node.remote(), { timeout: 20_000 })).toBe(after[1]);
    await removePlacementGroup(pg);
  });
});
