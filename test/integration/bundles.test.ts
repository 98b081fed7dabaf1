import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TaskCancelledError, cancel, get } from '../../runtime';
import { useCluster } from '../helpers/cluster';
import { numbered } from '../fixtures/tasks';

// Many tasks submitted at once run in bundles (several tasks per queued job): what a user observes
// must be the same as with one job per task, failures included.
const cluster = useCluster({ nodes: 2, cpus: 2 });

const runs = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);

describe('tasks submitted in bulk', () => {
  test('a worker that dies mid-bundle: its task runs again, the tasks done before it do not, the ones after it still run once', async () => {
    const file = join(cluster.dir, 'bundle-crash.txt');
    const results = await get(Array.from({ length: 400 }, (_, i) => numbered.remote(file, i, 123)), { timeout: 30_000 });
    expect(results).toEqual(Array.from({ length: 400 }, (_, i) => i * 2));
    const seen = runs(file);
    const counts = new Map<number, number>();
    for (const i of seen) counts.set(i, (counts.get(i) ?? 0) + 1);
    expect(counts.get(123)).toBe(2);
    expect([...counts].filter(([i, n]) => i !== 123 && n !== 1)).toEqual([]);
    expect(counts.size).toBe(400);
  });

  test('cancel of a task queued in a bundle: it never runs and get throws TaskCancelledError; the rest run', async () => {
    const file = join(cluster.dir, 'bundle-cancel.txt');
    const refs = Array.from({ length: 400 }, (_, i) => numbered.remote(file, i, -1, 5));
    await cancel(refs[390]);
    await expect(get(refs[390], { timeout: 30_000 })).rejects.toBeInstanceOf(TaskCancelledError);
    const rest = await get([...refs.slice(0, 390), ...refs.slice(391)], { timeout: 30_000 });
    expect(rest).toHaveLength(399);
    expect(runs(file)).not.toContain(390);
  });
});
