import { get, TaskUnschedulableError } from '../../runtime';
import { getTask } from '../../runtime/state';
import { eventually, useCluster } from '../helpers/cluster';
import { LocatorActor, where } from '../fixtures/parity';

// Four one-CPU nodes; zone labels on three of them.
const cluster = useCluster({
  nodeResources: [{ CPU: 1 }, { CPU: 1 }, { CPU: 1 }, { CPU: 1 }],
  nodeLabels: [{ zone: 'a' }, { zone: 'a' }, { zone: 'b' }, undefined],
  // Short, so the node-death test is quick; long enough that a busy machine does not take a slow node for dead.
  nodeTimeoutMs: 4000,
});
const ids = () => cluster.agents.map((a) => a.nodeId);
const count = (nodes: string[]) => ids().map((id) => nodes.filter((n) => n === id).length);

describe('scheduling strategies', () => {
  test('SPREAD places 8 actors on 4 nodes round-robin: 2 on each', async () => {
    const actors = Array.from({ length: 8 }, () => LocatorActor.options({ schedulingStrategy: 'SPREAD' }).remote());
    expect(count(await get(actors.map((a) => a.node.remote())))).toEqual([2, 2, 2, 2]);
  });

  test('SPREAD tasks go round-robin over the nodes', async () => {
    const nodes = await get(Array.from({ length: 8 }, () => where.options({ schedulingStrategy: 'SPREAD' }).remote(50)));
    expect(count(nodes)).toEqual([2, 2, 2, 2]);
  });

  test('a hard node affinity runs every task on that node; a soft one to an unknown node runs elsewhere', async () => {
    const target = ids()[2];
    const pinned = where.options({ schedulingStrategy: { nodeId: target, soft: false } });
    expect(new Set(await get(Array.from({ length: 4 }, () => pinned.remote())))).toEqual(new Set([target]));
    const actor = LocatorActor.options({ schedulingStrategy: { nodeId: target } }).remote();
    expect(await get(actor.node.remote())).toBe(target);
    expect(ids()).toContain(await get(where.options({ schedulingStrategy: { nodeId: 'node-00000000', soft: true } }).remote()));
  });

  test('a hard node affinity to a node that does not exist fails with TaskUnschedulableError saying what to do', async () => {
    const err = await get(where.options({ schedulingStrategy: { nodeId: 'node-00000000' } }).remote()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskUnschedulableError);
    expect((err as Error).message).toMatch(/nodeId: 'node-00000000', soft: false.*is not in the cluster.*soft: true/);
  });

  test('labelSelector runs tasks only on nodes whose labels match (exact, !, in())', async () => {
    const [a, , b, none] = ids();
    const on = async (labelSelector: Record<string, string>) => new Set(await get(Array.from({ length: 6 }, () => where.options({ labelSelector }).remote(30))));
    expect([...(await on({ zone: 'a' }))].every((n) => [a, ids()[1]].includes(n))).toBe(true);
    expect([...(await on({ zone: '!a' }))].every((n) => [b, none].includes(n))).toBe(true);
    expect(await on({ zone: 'in(b,c)' })).toEqual(new Set([b]));
    const actor = LocatorActor.options({ labelSelector: { zone: 'b' } }).remote();
    expect(await get(actor.node.remote())).toBe(b);
  });

  test('when its node dies, hard-affinity tasks waiting for it fail clearly and soft ones run elsewhere', async () => {
    const doomed = ids()[3];
    const hard = where.options({ schedulingStrategy: { nodeId: doomed, soft: false } });
    const soft = where.options({ schedulingStrategy: { nodeId: doomed, soft: true } });
    // The node's one CPU is busy, so these wait in its queue.
    const busy = hard.remote(60_000);
    // Its task events say when it runs (the node's record can still count a task of the test before).
    await eventually(async () => (await getTask(busy.id))?.state === 'RUNNING', 'the node runs the long task');
    const waitingHard = hard.remote();
    const waitingSoft = Array.from({ length: 2 }, () => soft.remote());
    await new Promise((r) => setTimeout(r, 300));
    process.kill(cluster.agents[3].pid, 'SIGKILL');
    for (const ref of [busy, waitingHard]) {
      const err = await get(ref, { timeout: 30_000 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TaskUnschedulableError);
      expect((err as Error).message).toContain(`that node is dead`);
    }
    const ran = await get(waitingSoft, { timeout: 30_000 });
    // Elsewhere: on another node (on a loaded machine a slow node may have joined again under a new id meanwhile).
    expect(ran.every((n) => n !== doomed && /^node-/.test(n))).toBe(true);
    // Submitted now, a hard affinity to the dead node fails at once.
    await expect(get(hard.remote(), { timeout: 10_000 })).rejects.toThrow(/that node is dead/);
  });
});
