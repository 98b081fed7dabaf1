import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ActorDiedError, ConfigError, get, getActor, kill, type ActorHandle } from '../../runtime';
import { readClusterStatus } from '../../runtime/internal/cluster-status';
import { Keys } from '../../runtime/protocol';
import { eventually, useCluster } from '../helpers/cluster';
import { fail } from '../fixtures/tasks';
import { AccelCounter, BrokenActor, Counter, CounterActor, PlainCounter, RetryingCounter, SleeperActor, incrVia, passHandle } from '../fixtures/actors';

const cluster = useCluster({ nodeResources: [{ CPU: 2 }, { CPU: 2, accel: 1 }], driverTimeoutMs: 1500 });

const actorState = async (id: string) => (await readClusterStatus(cluster.address)).actors.find((a) => a.id === id);

describe('actors', () => {
  test('state survives between calls, and 1000 pipelined calls run in the order they were made', async () => {
    const c = CounterActor.remote(10);
    expect(await get(c.incr.remote(5))).toBe(15);
    const refs = Array.from({ length: 1000 }, () => c.incr.remote(1));
    expect(await get(refs)).toEqual(Array.from({ length: 1000 }, (_, i) => 16 + i));
    expect(await get(c.value.remote())).toBe(1015);
    await kill(c);
  });

  test('calling a method directly throws an error that shows the right call', () => {
    const c = PlainCounter.remote();
    expect(() => (c.incr as unknown as (n: number) => number)(5)).toThrow('call handle.incr.remote(5)');
    return kill(c);
  });

  test('kill -9 of its process restarts it with fresh state, as often as maxRestarts allows', async () => {
    const c = CounterActor.remote(10); // maxRestarts: 2
    for (let restart = 1; restart <= 2; restart++) {
      await get(c.incr.remote(7));
      const pid = await get(c.pid.remote());
      process.kill(pid, 'SIGKILL');
      // Called while it restarts: waits, then runs on the new instance.
      expect(await get(c.value.remote(), { timeout: 20_000 })).toBe(10);
      expect(await get(c.pid.remote())).not.toBe(pid);
      expect((await actorState(c.actorId))?.restarts).toBe(restart);
    }
    process.kill(await get(c.pid.remote()), 'SIGKILL');
    const err = await get(c.value.remote(), { timeout: 20_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorDiedError);
    expect((err as Error).message).toMatch(/after 2 restarts \(maxRestarts is 2\)/);
    await eventually(async () => (await actorState(c.actorId))?.state === 'dead', 'status shows it dead');
  });

  test('a call that an earlier process of the actor took and never finished is run by the current one', async () => {
    const c = CounterActor.remote(0);
    await get(c.value.remote());
    const busy = c.slowIncr.remote(2500);
    const stolen = c.incr.remote(5);
    const keys = new Keys();
    await eventually(async () => (await cluster.redis.llen(keys.mailbox(c.actorId))) === 1, 'the call waits in the mailbox');
    // As a process that outlived its restart (its node declared dead, or cut off) would: take it, then vanish.
    expect(await cluster.redis.lmove(keys.mailbox(c.actorId), keys.running(c.actorId), 'LEFT', 'RIGHT')).not.toBeNull();
    expect(await get(busy)).toBe(1);
    expect(await get(stolen, { timeout: 20_000 })).toBe(6);
    await kill(c);
  });

  test('a call running when the process dies fails with ActorDiedError, unless maxTaskRetries lets it run again', async () => {
    const c = CounterActor.remote(0); // maxTaskRetries: 0
    const pid = await get(c.pid.remote());
    const running = c.slowIncr.remote(30_000);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, 'SIGKILL');
    await expect(get(running, { timeout: 20_000 })).rejects.toThrow(/died while slowIncr\(\) ran, and maxTaskRetries \(0\)/);
    expect(await get(c.value.remote())).toBe(0);
    await kill(c);

    const r = RetryingCounter.remote(0); // maxRestarts: 1, maxTaskRetries: 1
    const rpid = await get(r.pid.remote());
    const retried = r.slowIncr.remote(1500);
    await new Promise((res) => setTimeout(res, 300));
    process.kill(rpid, 'SIGKILL');
    expect(await get(retried, { timeout: 20_000 })).toBe(1);
    await kill(r);
  });

  test('a constructor that throws makes the actor dead, and every call fails with its error', async () => {
    const b = BrokenActor.remote('no disk');
    const err = await get(b.noop.remote()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorDiedError);
    expect((err as Error).message).toContain('its constructor threw TypeError: cannot build: no disk');
    const cause = (err as Error).cause as Error;
    expect(cause.name).toBe('TypeError');
    expect(cause.message).toBe('cannot build: no disk');
    await expect(get(b.noop.remote())).rejects.toBeInstanceOf(ActorDiedError);
  });

  test('an actor whose constructor argument failed is dead, with that error as cause', async () => {
    const c = CounterActor.remote(fail.remote('no start value') as never);
    const err = await get(c.value.remote()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorDiedError);
    expect((err as Error).message).toMatch(/a constructor argument failed: no start value/);
  });

  test('maxConcurrency 4 lets four sleeping calls overlap', async () => {
    const s = SleeperActor.remote();
    const runs = await get(Array.from({ length: 4 }, () => s.sleep.remote(600)));
    const lastStart = Math.max(...runs.map((r) => r.start));
    const firstEnd = Math.min(...runs.map((r) => r.end));
    expect(lastStart).toBeLessThan(firstEnd);
    await kill(s);
  });

  test('a handle passed to a task is called from there, and a handle returned inside an object still works', async () => {
    const c = CounterActor.remote(1);
    expect(await get(incrVia.remote(c, 41))).toBe(42);
    const { counter } = await get(passHandle.remote(c));
    expect(await get(counter.incr.remote(1))).toBe(43);
    await kill(c);
  });

  test('an actor runs where its resources are, holds them while it lives and frees them when it dies', async () => {
    const accelNode = cluster.agents[1].nodeId;
    const a = AccelCounter.remote(0); // numCpus 2, accel 1
    expect(await get(a.where.remote())).toBe(accelNode);
    const freeOf = async () => (await readClusterStatus(cluster.address)).nodes.find((n) => n.id === accelNode)!.free;
    await eventually(async () => (await freeOf()).CPU === 0 && (await freeOf()).accel === 0, 'its node shows the resources taken');
    await kill(a);
    await eventually(async () => (await freeOf()).CPU === 2 && (await freeOf()).accel === 1, 'the resources are free again');
  });

  test('a taken name is refused with a clear error, and getActor of an unknown name lists the names there', async () => {
    const first = CounterActor.options({ name: 'solo', namespace: 'names' }).remote(1);
    const second = CounterActor.options({ name: 'solo', namespace: 'names' }).remote(2);
    await expect(get(second.value.remote())).rejects.toThrow(/the name 'solo' is taken in namespace 'names'/);
    const found = await getActor<Counter>('solo', { namespace: 'names' });
    expect(await get(found.value.remote())).toBe(1);
    const err = await getActor('nobody', { namespace: 'names' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/No actor named 'nobody' in namespace 'names'. Named actors there: solo\./);
    await kill(first);
    await expect(getActor('solo', { namespace: 'names' })).rejects.toThrow(/No actor named 'solo'/);
  });

  test('a detached actor outlives its driver and is found by name; a non-detached one dies with its driver', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(__dirname, '../fixtures/actor-driver.ts')], {
      env: { ...process.env, NODUS_ADDRESS: cluster.address },
      cwd: join(__dirname, '../..'),
      timeout: 60_000,
    });
    const ids = JSON.parse(stdout.trim().split('\n').pop()!) as { keeper: string; ephemeral: string };
    await eventually(async () => (await actorState(ids.ephemeral))?.state === 'dead', 'the non-detached actor died with its driver', 15_000);
    const keeper = await getActor<Counter>('keeper', { namespace: 'app' });
    expect(keeper.actorId).toBe(ids.keeper);
    expect(await get(keeper.incr.remote(1))).toBe(106);
    expect((await actorState(ids.keeper))?.state).toBe('alive');
    await expect(getActor('ephemeral', { namespace: 'app' })).rejects.toThrow(/No actor named 'ephemeral'.*Named actors there: keeper/);
    await kill(keeper);
  });

  test('nodus status lists actors with class, name, node, state and restarts', async () => {
    const c = CounterActor.options({ name: 'listed', namespace: 'status' }).remote(0);
    const node = await get(c.where.remote());
    const a = await actorState(c.actorId);
    expect(a).toMatchObject({ cls: 'Counter', name: 'listed', namespace: 'status', node, state: 'alive', restarts: 0, detached: false });
    await kill(c);
    expect((await actorState(c.actorId))?.state).toBe('dead');
  });

  test('kill with noRestart: false restarts the actor', async () => {
    const c: ActorHandle<Counter> = CounterActor.remote(3);
    await get(c.incr.remote(1));
    await kill(c, { noRestart: false });
    await eventually(async () => (await actorState(c.actorId))?.restarts === 1, 'it restarted');
    expect(await get(c.value.remote())).toBe(3);
    await kill(c);
  });
});
