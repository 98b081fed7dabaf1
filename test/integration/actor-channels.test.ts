import { connect } from 'node:net';
import { ActorDiedError, get, kill } from '../../runtime';
import { frame } from '../../runtime/internal/frames';
import { encode } from '../../runtime/internal/serialization';
import { Keys } from '../../runtime/protocol';
import { eventually, useCluster } from '../helpers/cluster';
import { CounterActor } from '../fixtures/actors';

// Sync calls go over a direct channel to the actor's process (runtime/internal/actor-channels.ts,
// workers/actor-channel.ts); bursts go through the mailbox. These tests mix both and break the channel.
const cluster = useCluster({ nodes: 1, cpus: 2 });

const keys = new Keys();
const idOf = (handle: unknown) => (handle as { actorId: string }).actorId;

describe('direct channels to actors', () => {
  test('sync calls and bursts of calls run in the order they were made', async () => {
    const c = CounterActor.remote(0);
    for (let i = 1; i <= 20; i++) expect(await get(c.incr.remote(1))).toBe(i);
    const burst = Array.from({ length: 100 }, () => c.incr.remote(1));
    expect(await get(burst)).toEqual(Array.from({ length: 100 }, (_, i) => 21 + i));
    for (let i = 121; i <= 130; i++) expect(await get(c.incr.remote(1))).toBe(i);
    await kill(c);
  });

  test('a direct call running when the actor process is killed fails with ActorDiedError, and the restarted actor answers sync calls again', async () => {
    const c = CounterActor.remote(0); // maxRestarts 2, maxTaskRetries 0
    for (let i = 1; i <= 5; i++) await get(c.incr.remote(1));
    const pid = await get(c.pid.remote());
    const running = c.slowIncr.remote(30_000);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, 'SIGKILL');
    await expect(get(running, { timeout: 20_000 })).rejects.toBeInstanceOf(ActorDiedError);
    // Fresh state in a new process; its channel is found again after the restart.
    for (let i = 1; i <= 20; i++) expect(await get(c.incr.remote(1), { timeout: 20_000 })).toBe(i);
    expect(await get(c.pid.remote())).not.toBe(pid);
    await kill(c);
  });

  test('the channel runs nothing for a connection that does not know the secret from the actor record', async () => {
    const c = CounterActor.remote(0);
    expect(await get(c.incr.remote(1))).toBe(1);
    let chan: string | null = null;
    await eventually(async () => !!(chan = await cluster.redis.hget(keys.actor(idOf(c)), 'chan')), 'the actor published its channel');
    const [host, port] = chan!.split(':');
    const s = connect({ host, port: Number(port) });
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('error', () => undefined);
    s.write(frame(Buffer.from('not-the-secret')));
    s.write(frame(encode(['forged-call', 'incr', encode([100]).bytes, null, 'nobody', 'nobody', false, 0]).bytes));
    await closed;
    expect(await get(c.value.remote())).toBe(1);
    await kill(c);
  });
});
