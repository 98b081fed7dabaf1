/**
 * @module The table's workloads, each as python/ray/_private/ray_perf.py defines it, with its peer where one
 * exists. Ray 2.22's figures are from its published microbenchmark (64 vCPUs), for reference only.
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { get, kill, put, wait } from '../../runtime';
import { Actor, ConcurrentActor, actorWork, createObjectContainingRef, smallValue } from '../bench-tasks';
import { collector, fmt, sleep, summarize, timeit, type Settings } from './measure';
import { memcpy, moleculerSync, rawBullmq } from './peers';
import { MiB, redisUsedMemory } from './procmem';
import { storeKeys } from '../../runtime/internal/local-store';
import { Keys } from '../../runtime/protocol';
import { withPeer, type Row } from './report';

const batch = () => Array.from({ length: 1000 }, () => smallValue.remote());

/** Tasks: sync, async (peer: raw BullMQ), and get batch. */
export async function taskRows(s: Settings, address: string): Promise<Row[]> {
  const sync = await timeit(s, 'single client tasks sync', () => get(smallValue.remote()));
  const asyncTasks = await timeit(s, 'single client tasks async', () => get(batch()), 1000);
  const raw = await rawBullmq(s, address);
  // ray_perf times the very same loop again, counted in batches; --quick derives it from the trials above instead.
  const getBatch = s.quick
    ? summarize(asyncTasks.trials.map((t) => t / 1000), 'batches/s')
    : await timeit(s, 'single client tasks and get batch', () => get(batch()), 1, 'batches/s');
  return [
    { workload: 'single client tasks sync: get(f.remote())', nodus: sync, ray: 971, target: { text: '≥1,000/s', met: sync.median >= 1000 } },
    {
      ...withPeer({ workload: 'single client tasks async: get of 1000 f.remote()', nodus: asyncTasks, ray: 8194 }, { name: 'raw BullMQ add+process', figure: raw }),
      target: { text: '≥8,200/s and ≥0.8× raw BullMQ', met: asyncTasks.median >= 8200 && asyncTasks.median >= 0.8 * raw.median },
    },
    { workload: 'single client tasks and get batch (1000 tasks)', nodus: getBatch, ray: 8.1, note: s.quick ? 'the same loop as tasks async; --quick reuses its trials (÷ 1000) instead of timing it again.' : undefined },
  ];
}

/** The object store and wait(): get calls, put calls, put gigabytes (peer: memcpy), wait 1k refs, get of 10k refs. */
export async function objectRows(s: Settings, redis: Redis): Promise<Row[]> {
  const zero = await put(0);
  const getCalls = await timeit(s, 'single client get calls', () => get(zero));
  const putCalls = await timeit(s, 'single client put calls', () => put(0));
  const rows: Row[] = [
    { workload: 'single client get calls: get(ref) of put(0)', nodus: getCalls, ray: 10270 },
    { workload: 'single client put calls: put(0)', nodus: putCalls, ray: 5196 },
    ...(await putGigabytes(s, redis)),
  ];
  const waitRefs = await timeit(s, 'single client wait 1k refs', async () => {
    let notReady = batch();
    while (notReady.length) [, notReady] = await wait(notReady, { numReturns: 1 });
  });
  rows.push({ workload: 'single client wait 1k refs: 1000 f.remote(), then wait(numReturns 1) until none is left', nodus: waitRefs, ray: 5.0 });
  // ray_perf creates the object once and times only get() of it; we also time the task that makes it.
  const holder = createObjectContainingRef.remote();
  await get(holder);
  const getContaining = await timeit(s, 'single client get object containing 10k refs', () => get(holder));
  rows.push({ workload: 'single client get object containing 10k refs', nodus: getContaining, ray: 13.3, note: 'as ray_perf.py: the object is made once by a task of 10,000 put(1); one op is get() of it.' });
  if (!s.quick) {
    const submitAndGet = await timeit(s, 'task making 10k put(1) refs, submit + get', () => get(createObjectContainingRef.remote()));
    rows.push({ workload: 'submit + get of a task returning 10k put(1) refs', nodus: submitAndGet, note: 'the task of the row above timed as a whole (the 10,000 puts run in a worker process); no Ray figure; not in --quick.' });
  }
  return rows;
}

/** Bytes held now: Redis's used memory plus what the node stores hold (their counters). */
async function heldBytes(redis: Redis): Promise<number> {
  const used = await redis.keys(storeKeys.used(new Keys().prefix, '*'));
  const inStores = used.length ? (await redis.mget(...used)).reduce((n, v) => n + Number(v ?? 0), 0) : 0;
  return (await redisUsedMemory(redis)) + inStores;
}

/**
 * ray_perf's put gigabytes: put() of an array of 100 Mi int64 (800 MiB; 80 MiB in --quick). Each trial is one
 * put, then one get() of it (a row of its own: the same node, one copy); between trials the ref is dropped and
 * collected and the store is waited on to free it, outside the clock, so that it holds at most one copy.
 * Peer: this machine's memcpy of the same size.
 */
async function putGigabytes(s: Settings, redis: Redis): Promise<Row[]> {
  const elements = (s.quick ? 10 : 100) * 1024 * 1024;
  // Written, not left as zeros: untouched pages all map the kernel's one zero page, and reading them would
  // flatter both the put and the memcpy (they would be read from cache, not from memory).
  const arr = new Float64Array(elements);
  for (let i = 0; i < elements; i++) arr[i] = i;
  const bytes = arr.byteLength;
  const gc = collector();
  const base = await heldBytes(redis);
  let unfreed = 0;
  // The ref and the value live only in here, so that they can be collected once it returns.
  const timed = async (): Promise<[number, number]> => {
    let start = performance.now();
    const ref = await put(arr);
    const putSecs = (performance.now() - start) / 1000;
    start = performance.now();
    const back = await get(ref);
    const getSecs = (performance.now() - start) / 1000;
    if (back[elements - 1] !== elements - 1) throw new Error('put gigabytes: get() returned another array');
    return [putSecs, getSecs];
  };
  const once = async (): Promise<[number, number]> => {
    const [putSecs, getSecs] = await timed();
    // The ref is unreachable now: collect it, let its finalizer run, and wait for the store to drop the object.
    for (let i = 0; i < 200; i++) {
      gc();
      await sleep(10);
      if ((await heldBytes(redis)) < base + bytes / 2) return [putSecs, getSecs];
    }
    unfreed++;
    return [putSecs, getSecs];
  };
  await once();
  const rates: number[] = [];
  const getRates: number[] = [];
  for (let t = 0; t < s.trials; t++) {
    const [p, g] = await once();
    rates.push(bytes / 1e9 / p);
    getRates.push(bytes / 1e9 / g);
  }
  const nodus = summarize(rates, 'GB/s');
  const gets = summarize(getRates, 'GB/s');
  console.log(`  single client put gigabytes (${bytes / MiB} MiB): ${fmt(nodus.median)} GB/s (${fmt(nodus.min)}–${fmt(nodus.max)})`);
  console.log(`  single client get gigabytes (${bytes / MiB} MiB, same node): ${fmt(gets.median)} GB/s (${fmt(gets.min)}–${fmt(gets.max)})`);
  const copy = memcpy(s, new Uint8Array(arr.buffer), `memcpy (Buffer.copy) of ${bytes / MiB} MiB`);
  const row = withPeer({ workload: `single client put gigabytes: put(Float64Array of ${bytes / MiB} MiB)`, nodus, ray: 20.1 }, { name: 'memcpy of the same size', figure: copy });
  const getRow = withPeer({ workload: `single client get gigabytes: get() of that object on the same node`, nodus: gets }, { name: 'memcpy of the same size', figure: copy });
  return [
    {
      ...row,
      target: { text: '≥0.3× memcpy', met: row.ratio! >= 0.3 },
      note:
        `GB = 1e9 bytes; one put per trial into the node's store under /dev/shm, its ref freed between trials (untimed)${unfreed ? `; the store had not freed ${unfreed} of the objects within 2 s` : ''}. ` +
        `Ray counts 0.8 "GB" per 800 MiB put, so its 20.1 is 21.1 GB/s of 1e9 bytes.${s.quick ? ' --quick puts 80 MiB; the full run puts 800 MiB as ray_perf does.' : ''}`,
    },
    {
      ...getRow,
      note: 'one copy: the store\'s files read into one new buffer, the Float64Array a view on it (no Ray figure: ray_perf has no such row; Ray maps the object without a copy).',
    },
  ];
}

/** Actors: 1:1 sync (peer: Moleculer), 1:1 async, 1:1 concurrent, n:n async, and a streamed generator. */
export async function actorRows(s: Settings, address: string, cores: number): Promise<Row[]> {
  const a = Actor.remote();
  await get(a.smallValue.remote());
  const sync = await timeit(s, '1:1 actor calls sync', () => get(a.smallValue.remote()));
  const moleculer = await moleculerSync(s, address);
  const asyncCalls = await timeit(s, '1:1 actor calls async', () => get(Array.from({ length: 1000 }, () => a.smallValue.remote())), 1000);
  const c = ConcurrentActor.remote();
  await get(c.asyncSmallValue.remote());
  const concurrent = await timeit(s, '1:1 actor calls concurrent', () => get(Array.from({ length: 1000 }, () => c.asyncSmallValue.remote())), 1000);
  // ray_perf: cpu_count // 2 actors; 4 `work` tasks, each making n calls round-robin over all of them.
  const actors = Array.from({ length: Math.max(1, Math.floor(cores / 2)) }, () => Actor.remote());
  await get(actors.map((x) => x.smallValue.remote()));
  const m = 4;
  const n = s.quick ? 1000 : 5000;
  const nn = await timeit(s, 'n:n actor calls async', () => get(Array.from({ length: m }, () => actorWork.remote(actors, n))), m * n);
  const items = await timeit(
    s,
    'generator items streamed from one actor',
    async () => {
      for await (const ref of a.items.remote(1000)) void ref;
    },
    1000,
    'items/s',
  );
  await Promise.all([a, c, ...actors].map((x) => kill(x)));
  return [
    { ...withPeer({ workload: '1:1 actor calls sync', nodus: sync, ray: 2097 }, { name: 'Moleculer 0.14 request/response (Redis transporter)', figure: moleculer }), target: { text: '≥1× Moleculer', met: sync.median >= moleculer.median } },
    { workload: '1:1 actor calls async (1000 calls, then get)', nodus: asyncCalls, ray: 9063 },
    { workload: '1:1 actor calls concurrent (maxConcurrency 16, async method)', nodus: concurrent, ray: 5480 },
    {
      workload: `n:n actor calls async (${m} tasks × ${n.toLocaleString('en-US')} calls over ${actors.length} actor${actors.length > 1 ? 's' : ''})`,
      nodus: nn,
      ray: 27688,
      note: s.quick ? 'ray_perf makes 5,000 calls per task; --quick makes 1,000.' : undefined,
    },
    { workload: 'generator items streamed from one actor (1000 items)', nodus: items },
  ];
}
