/** @module The placement rows of the table: placement groups created, reserved and removed per second (Ray's release tests report this), and SPREAD's cost on task submission. */
import { get, placementGroup, removePlacementGroup } from '../../runtime';
import { smallValue } from '../bench-tasks';
import { timeit, type Settings } from './measure';
import type { Row } from './report';

/** One op: placementGroup([{ CPU: 0.01 }]) + ready() + removePlacementGroup(); then SPREAD tasks async beside the tasks-async row's loop. */
export async function placementRows(s: Settings): Promise<Row[]> {
  const cycle = await timeit(s, 'placement group create + ready + remove', async () => {
    const pg = placementGroup([{ CPU: 0.01 }]);
    await pg.ready();
    await removePlacementGroup(pg);
  });
  const plain = await timeit(s, 'single client tasks async, DEFAULT (beside SPREAD)', () => get(Array.from({ length: 1000 }, () => smallValue.remote())), 1000);
  const spread = smallValue.options({ schedulingStrategy: 'SPREAD' });
  const spreadTasks = await timeit(s, 'single client tasks async, SPREAD', () => get(Array.from({ length: 1000 }, () => spread.remote())), 1000);
  return [
    {
      workload: 'placement group create + ready + remove (one bundle)',
      nodus: cycle,
      note: 'one at a time: the head reserves the bundle in two phases (ask the node, its answer, commit), the driver polls ready(); removal waits for the head to release it.',
    },
    {
      workload: 'single client tasks async with schedulingStrategy SPREAD (1000 tasks)',
      nodus: spreadTasks,
      peer: { name: 'DEFAULT, same loop', figure: plain },
      ratio: spreadTasks.median / plain.median,
      note: 'round-robin over the nodes: each node has a queue of its own.',
    },
  ];
}
