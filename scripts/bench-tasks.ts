/** @module Remote functions and actors of the benchmark (as in Ray's ray_perf.py). */
import { get, remote, type ActorHandle } from '../runtime';

export const smallValue = remote(function smallValue() {
  return 'ok';
});

export class BenchActor {
  smallValue() {
    return 'ok';
  }
  async asyncSmallValue() {
    return 'ok';
  }
  async *items(n: number) {
    for (let i = 0; i < n; i++) yield i;
  }
}

export const Actor = remote(BenchActor);
export const ConcurrentActor = remote(BenchActor, { maxConcurrency: 16 });

/** The client side of Ray's n:n loop: one task per actor, each making `calls` async calls to it. */
export const actorClient = remote({ numCpus: 0 }, async function actorClient(actor: ActorHandle<BenchActor>, calls: number) {
  await get(Array.from({ length: calls }, () => actor.smallValue.remote()));
  return calls;
});
