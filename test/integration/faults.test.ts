import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TaskCancelledError, WorkerCrashedError, cancel, get } from '../../runtime';
import { eventually, processAlive, useCluster } from '../helpers/cluster';
import { blockFor, crash, killable, sleep, square, writeMarker } from '../fixtures/tasks';
import { existsSync } from 'node:fs';

const cluster = useCluster({ nodes: 2, cpus: 2 });

const pids = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);

describe('failures', () => {
  test('a worker killed with SIGKILL mid-task has its task retried on another worker', async () => {
    const file = join(cluster.dir, 'killable.pids');
    const ref = killable.remote(file, 60_000);
    await eventually(() => existsSync(file), 'the task started');
    const [victim] = pids(file);
    process.kill(victim, 'SIGKILL');
    const result = await get(ref, { timeout: 20_000 });
    expect(result.runs).toBe(2);
    expect(result.pid).not.toBe(victim);
    // The cluster keeps serving.
    expect(await get(square.remote(5))).toBe(25);
  });

  test('a task whose worker keeps dying fails with WorkerCrashedError after maxRetries', async () => {
    const file = join(cluster.dir, 'crash.pids');
    const err = await get(crash.remote(file), { timeout: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerCrashedError);
    expect((err as Error).message).toMatch(/crash died .*2 times, and maxRetries \(1\) allows no more runs/);
    // Run once plus one retry, each in a different process.
    expect(new Set(pids(file)).size).toBe(2);
    expect(await get(square.remote(6))).toBe(36);
  });

  test('cancel of a running task stops it and get throws TaskCancelledError', async () => {
    const ref = sleep.remote(30_000);
    await new Promise((r) => setTimeout(r, 500));
    await cancel(ref);
    await expect(get(ref, { timeout: 10_000 })).rejects.toBeInstanceOf(TaskCancelledError);
    expect(await get(square.remote(7))).toBe(49);
  });

  test('cancel of a queued task means it never runs', async () => {
    // Fill all four CPUs, then queue one more and cancel it before it can start.
    const started = join(cluster.dir, 'blockers.pids');
    // Long enough that none ends before the cancel, however late the last one started (a worker may be cold).
    const blockers = Array.from({ length: 4 }, () => blockFor.remote(started, 5000));
    await eventually(() => existsSync(started) && pids(started).length === 4, 'all four CPUs are busy');
    const marker = join(cluster.dir, 'never.txt');
    const ref = writeMarker.remote(marker);
    await cancel(ref);
    await expect(get(ref)).rejects.toBeInstanceOf(TaskCancelledError);
    await get(blockers);
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(marker)).toBe(false);
  });

  test('a node agent process keeps running when its workers crash', () => {
    for (const a of cluster.agents) expect(processAlive(a.pid)).toBe(true);
  });
});
