import { get } from '../../runtime';
import { eventually, useCluster } from '../helpers/cluster';
import { shout } from '../fixtures/tasks';

const cluster = useCluster({ nodes: 1, cpus: 1, logToDriver: true });

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
