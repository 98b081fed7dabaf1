import { ActorDiedError, OutOfMemoryError, get } from '../../runtime';
import { readClusterStatus } from '../../runtime/internal/cluster-status';
import { useCluster } from '../helpers/cluster';
import { HogActor, hog, where } from '../fixtures/parity';

const GiB = 2 ** 30;
const cluster = useCluster({ nodeResources: [{ CPU: 2, memory: 4 * GiB }] });

test('memory is a resource: a task that grows past the memory it asked for is stopped with OutOfMemoryError and its node stays up', async () => {
  const node = cluster.agents[0].nodeId;
  const err = await get(hog.options({ memory: 200 * 2 ** 20, maxRetries: 3 }).remote(2000)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OutOfMemoryError);
  expect((err as Error).message).toMatch(/task hog used \d+ MiB of memory, more than the 200 MiB it asked for.*node is fine.*memory: <bytes>/);
  // Within its memory it runs; the node is the same, alive, with all its memory free again.
  expect(await get(hog.options({ memory: 400 * 2 ** 20 }).remote(64))).toBe(2);
  expect(await get(where.remote())).toBe(node);
  const status = await readClusterStatus(cluster.address);
  const n = status.nodes.find((x) => x.id === node)!;
  expect(n.state).toBe('alive');
  expect(n.total.memory).toBe(4 * GiB);
});

test('an actor that grows past its memory is stopped: its calls fail saying so, and the node stays up', async () => {
  const actor = HogActor.remote();
  expect(await get(actor.grow.remote(32))).toBe(1);
  const err = await get(actor.grow.remote(2000)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ActorDiedError);
  expect((err as Error).message).toMatch(/OutOfMemoryError.*more than the 200 MiB it asked for/);
  expect(await get(where.remote())).toBe(cluster.agents[0].nodeId);
});
