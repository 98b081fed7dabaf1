/** @module Remote functions and actors of the benchmark (as in Ray's ray_perf.py). */
import { get, put, remote, type ActorHandle } from '../runtime';

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

/** Ray's create_object_containing_ref: puts 10,000 small objects and returns the list of their refs. */
export const createObjectContainingRef = remote(async function createObjectContainingRef() {
  return Promise.all(Array.from({ length: 10_000 }, () => put(1)));
});

/** Ray's n:n `work` task: `calls` calls spread round-robin over the actors, then get of them all. */
export const actorWork = remote(async function actorWork(actors: ActorHandle<BenchActor>[], calls: number) {
  await get(Array.from({ length: calls }, (_, i) => actors[i % actors.length].smallValue.remote()));
  return calls;
});
