/** @module Metrics: the head's cluster-wide /metrics over HTTP, scraped while tasks run — built-in task metrics by function and a user Counter summed across processes. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cancel, get, TaskCancelledError } from '../../runtime';
import { listTasks } from '../../runtime/state';
import { eventually, useCluster } from '../helpers/cluster';
import { linger, tally } from '../fixtures/state-tasks';

// Every process pushes its snapshot this often (the default is 2 s); this driver too.
process.env.NODUS_METRICS_INTERVAL_MS = '300';
const cluster = useCluster({ nodes: 2, cpus: 1, env: { NODUS_METRICS_INTERVAL_MS: '300' } });

let metricsUrl = '';
/** Where the head serves the cluster's metrics, as `nodus status` finds it. */
const url = () => metricsUrl;
beforeAll(async () => {
  metricsUrl = (await cluster.redis.hget('nodus:head', 'metricsUrl')) ?? '';
});
const scrape = async () => (await fetch(url())).text();
/** The value of one sample line, e.g. value(text, 'nodus_tasks_finished_total{function="tally"}'). */
function value(text: string, sample: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

test('the head serves /metrics over HTTP while tasks run: running, finished and submitted tasks by function, node resources, worker processes, Redis round trips', async () => {
  expect(url()).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const slow = linger.remote(15_000);
  await eventually(async () => value(await scrape(), 'nodus_tasks_running{function="linger"}') === 1, 'the lingering task shows as running');
  expect(await get(Array.from({ length: 6 }, (_, i) => tally.remote(i)))).toHaveLength(6);
  await eventually(async () => value(await scrape(), 'nodus_tasks_finished_total{function="tally"}') === 6, 'the six tally tasks show as finished');
  // The driver counts what it submitted and pushes on its own clock, so its count may come a push later.
  await eventually(async () => value(await scrape(), 'nodus_tasks_submitted_total{function="tally"}') === 6, 'the driver\'s six submissions show');
  const text = await scrape();
  for (const a of cluster.agents) {
    expect(value(text, `nodus_node_resources{node="${a.nodeId}",resource="CPU",kind="total"}`)).toBe(1);
    expect(value(text, `nodus_worker_processes{node="${a.nodeId}",kind="task"}`)).toBeGreaterThanOrEqual(1);
  }
  expect(value(text, 'nodus_scheduling_latency_seconds_count')).toBeGreaterThanOrEqual(7);
  expect(value(text, 'nodus_redis_round_trip_seconds_count')).toBeGreaterThan(0);
  expect(value(text, 'nodus_nodes{state="alive"}')).toBe(2);
  expect(text).toMatch(/^nodus_queue_depth\{queue="task\.CPU1"\} \d+$/m);
  expect(text).toMatch(/^nodus_object_store_objects \d+$/m);
  await cancel(slow);
  await expect(get(slow)).rejects.toBeInstanceOf(TaskCancelledError);
  const status = await promisify(execFile)(process.execPath, [join(__dirname, '..', '..', 'dist', 'scripts', 'cli.js'), 'status', '--address', cluster.address]);
  expect(status.stdout).toContain(`Metrics: ${url()}`);
});

test('a user Counter incremented inside tasks on several worker processes is summed in the cluster /metrics', async () => {
  const before = value(await scrape(), 'test_items_done_total{kind="tally"}') ?? 0;
  // SPREAD puts them on both nodes, so two worker processes count.
  const refs = Array.from({ length: 8 }, (_, i) => tally.options({ schedulingStrategy: 'SPREAD' }).remote(i, 150));
  await get(refs);
  const ids = new Set(refs.map((r) => r.id));
  await eventually(async () => (await listTasks({ filter: { name: 'tally', state: 'FINISHED' }, limit: 1000 })).filter((t) => ids.has(t.taskId)).length === 8, 'the tasks are recorded');
  const workers = new Set((await listTasks({ filter: { name: 'tally' }, limit: 1000 })).filter((t) => ids.has(t.taskId)).map((t) => t.worker));
  expect(workers.size).toBeGreaterThanOrEqual(2);
  await eventually(async () => value(await scrape(), 'test_items_done_total{kind="tally"}') === before + 8, 'the counter is summed over the workers');
});

test('an unknown path says where the metrics are', async () => {
  const res = await fetch(url().replace('/metrics', '/'));
  expect(res.status).toBe(404);
  expect(await res.text()).toContain('GET /metrics');
});
