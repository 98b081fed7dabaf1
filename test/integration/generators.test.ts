import { TaskError, get, kill } from '../../runtime';
import { eventually, useCluster } from '../helpers/cluster';
import { CounterActor, SlowActor, StreamingProducer, tokens } from '../fixtures/actors';
import { mixedSizes } from '../fixtures/streams';

useCluster({ nodes: 1, cpus: 2 });

describe('streaming generators', () => {
  test('an actor generator streams 1000 items in order', async () => {
    const c = CounterActor.remote(0);
    const seen: number[] = [];
    for await (const ref of c.count.remote(1000)) seen.push(await get(ref));
    expect(seen).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    await kill(c);
  });

  test('an exception mid-stream reaches the consumer after the items before it', async () => {
    const c = CounterActor.remote(0);
    const seen: number[] = [];
    const err = await (async () => {
      for await (const ref of c.countThenFail.remote(10, 4)) seen.push(await get(ref));
    })().catch((e: unknown) => e);
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as Error).message).toContain('failed at 4');
    expect(((err as Error).cause as Error).name).toBe('RangeError');
    // The actor carries on.
    expect(await get(c.incr.remote(1))).toBe(1);
    await kill(c);
  });

  test('items arrive as they are yielded, not when the generator ends', async () => {
    const s = SlowActor.remote();
    const it = s.ticks.remote();
    const first = await it.next();
    const firstAt = Date.now();
    expect(await get(first.value!)).toBe('first');
    const second = await it.next();
    expect(await get(second.value!)).toBe('second');
    // The generator sleeps 1.5 s between its items: the first came well before it ended.
    expect(Date.now() - firstAt).toBeGreaterThan(1000);
    expect((await it.next()).done).toBe(true);
    await kill(s);
  });

  test('a slow consumer holds the producer back: it runs at most a window ahead', async () => {
    const p = StreamingProducer.remote();
    const it = p.numbers.remote(100_000);
    for (let i = 0; i < 5; i++) expect(await get((await it.next()).value!)).toBe(i);
    await new Promise((r) => setTimeout(r, 500));
    const { produced } = await get(p.stats.remote());
    expect(produced).toBeLessThanOrEqual(5 + 64 + 1);
    await it.return!();
    await kill(p);
  });

  test('a consumer that stops early stops the producer', async () => {
    const p = StreamingProducer.remote();
    for await (const ref of p.numbers.remote(100_000)) {
      if ((await get(ref)) === 2) break;
    }
    await eventually(async () => (await get(p.stats.remote())).finished, 'the generator ran its finally block');
    expect((await get(p.stats.remote())).produced).toBeLessThan(100);
    await kill(p);
  });

  test('a remote async generator function streams its items', async () => {
    const seen: string[] = [];
    for await (const ref of tokens.remote(5)) seen.push(await get(ref));
    expect(seen).toEqual(['token-0', 'token-1', 'token-2', 'token-3', 'token-4']);
  });

  test('small items sent in batches and large items sent alone arrive in the order they were yielded', async () => {
    const seen: number[] = [];
    for await (const ref of mixedSizes.remote(300)) {
      const v = (await get(ref)) as number | Float64Array;
      seen.push(typeof v === 'number' ? v : v[0]);
    }
    expect(seen).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });
});
