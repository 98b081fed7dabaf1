import { get, init, shutdown } from '../../runtime';
import { readClusterStatus } from '../../runtime/internal/cluster-status';
import { eventually, processAlive } from '../helpers/cluster';
import { square } from '../fixtures/tasks';

test('init() with no address starts a local cluster that shutdown() stops', async () => {
  const before = process.env.NODUS_ADDRESS;
  delete process.env.NODUS_ADDRESS;
  try {
    const info = await init({ numCpus: 1, logToDriver: false });
    expect(info.local).toBe(true);
    expect(await get(square.remote(11))).toBe(121);
    const status = await readClusterStatus(info.address);
    expect(status.nodes.filter((n) => n.state === 'alive')).toHaveLength(1);
    const pids = [status.head!.pid!, status.nodes[0].pid];
    await shutdown();
    await eventually(() => pids.every((p) => !processAlive(p)), 'the local cluster stopped');
  } finally {
    if (before !== undefined) process.env.NODUS_ADDRESS = before;
  }
});

test('get before init says to call init()', () => {
  expect(() => square.remote(1)).toThrow(/call `await init\(\)` first/);
});
