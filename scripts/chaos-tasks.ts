/** @module Remote functions and actors of the chaos suite (workers import this module). */
import { get, remote } from '../runtime';

/** Slow enough that kills land mid-task now and then. */
export const chaosSquare = remote({ maxRetries: -1 }, async function chaosSquare(x: number) {
  await new Promise((r) => setTimeout(r, 5 + (x % 20)));
  return x * x;
});

/** A task that submits a task and waits for it. It holds no CPU while it waits: a waiting task keeps no worker from its children (Ray frees a blocked task's CPU; nodus does not yet). */
export const chaosNested = remote({ maxRetries: -1, numCpus: 0 }, async function chaosNested(x: number) {
  return (await get(chaosSquare.remote(x))) + 1;
});

/** Receives numbered messages, as in Ray's chaos_many_actors. */
export class Receiver {
  private received = 0;
  async message(n: number) {
    await new Promise((r) => setTimeout(r, 2));
    this.received++;
    return n;
  }
  count() {
    return this.received;
  }
}
export const ReceiverActor = remote(Receiver, { maxRestarts: -1, maxTaskRetries: -1 });
