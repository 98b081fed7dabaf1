import { get, init, shutdown } from '../../runtime';
import { eventually, startCluster, type TestCluster } from '../helpers/cluster';
import { shout } from '../fixtures/tasks';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ nodes: 1, cpus: 1 });
  await init({ address: cluster.address });
});

afterAll(async () => {
  await shutdown();
  await cluster?.stop();
});

test("what a task prints reaches the driver's terminal, prefixed with the task, worker and node", async () => {
  const out: string[] = [];
  const err: string[] = [];
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
  try {
    expect(await get(shout.remote('the cluster'))).toBe('the cluster');
    await eventually(() => out.join('').includes('hello from the cluster') && err.join('').includes('warning from the cluster'), 'both lines arrived');
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const node = cluster.agents[0].nodeId;
  expect(out.join('')).toMatch(new RegExp(`\\(shout pid=\\d+ node=${node}\\) hello from the cluster\\n`));
  expect(err.join('')).toMatch(new RegExp(`\\(shout pid=\\d+ node=${node}\\) warning from the cluster\\n`));
});
