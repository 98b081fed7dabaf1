import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TaskCancelledError, cancel, get } from '../../runtime';
import { eventually, useCluster } from '../helpers/cluster';
import { killable, sleep, square } from '../fixtures/tasks';

// One CPU: after each task its worker keeps the lease a moment and takes the next task straight from the
// queue (workers/linger.ts), so the tasks below run on that path rather than on a fresh lease.
const cluster = useCluster({ nodes: 1, cpus: 1 });

const pids = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);

describe('a leased worker that takes its next task itself', () => {
  test('runs a loop of sync tasks, and a task it took is retried when its process is killed', async () => {
    for (let i = 0; i < 50; i++) expect(await get(square.remote(i))).toBe(i * i);
    const file = join(cluster.dir, 'linger-killable.pids');
    const ref = killable.remote(file, 60_000);
    await eventually(() => existsSync(file), 'the task started');
    process.kill(pids(file)[0], 'SIGKILL');
    const result = await get(ref, { timeout: 20_000 });
    expect(result.runs).toBe(2);
    expect(await get(square.remote(7))).toBe(49);
  });

  test('a task it took can be cancelled', async () => {
    expect(await get(square.remote(3))).toBe(9);
    const ref = sleep.remote(30_000);
    await new Promise((r) => setTimeout(r, 300));
    await cancel(ref);
    await expect(get(ref, { timeout: 10_000 })).rejects.toBeInstanceOf(TaskCancelledError);
    expect(await get(square.remote(4))).toBe(16);
  });
});
