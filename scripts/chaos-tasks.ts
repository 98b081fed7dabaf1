/** @module Remote functions and actors of the chaos suite (workers import this module). */
import { Redis } from 'ioredis';
import { get, remote } from '../runtime';

/** Counts in Redis how often each task ran and each message was applied: the suite checks them after. */
let counter: Redis | undefined;
function tally(field: string): Promise<unknown> {
  counter ??= new Redis(process.env.NODUS_ADDRESS!, { maxRetriesPerRequest: null });
  return counter.hincrby('chaos:tally', field, 1);
}

/** Slow enough that kills land mid-task now and then. */
export const chaosSquare = remote({ maxRetries: -1 }, async function chaosSquare(x: number) {
  await tally('runs');
  await new Promise((r) => setTimeout(r, 5 + (x % 20)));
  return x * x;
});

/** A task that submits a task and waits for it, with a CPU of its own, which it lends to other work while it waits. */
export const chaosNested = remote({ maxRetries: -1 }, async function chaosNested(x: number) {
  return (await get(chaosSquare.remote(x))) + 1;
});

/** Receives numbered messages, as in Ray's chaos_many_actors. */
export class Receiver {
  private received = 0;
  constructor(private readonly name: string) {}
  /** Applies message n: counted once it is applied, then answered. */
  async message(n: number) {
    await new Promise((r) => setTimeout(r, 2));
    this.received++;
    await tally(`${this.name}:${n}`);
    return n;
  }
  count() {
    return this.received;
  }
}
/**
 * Actors need an `actorSlot`, which every node of the suite offers, the partitioned one included: an
 * actor process cut off from Redis can still hold a blocked take on its mailbox and swallow a call
 * when the link comes back; the actor's next process settles such calls (see the README's failure table).
 */
/** At least once: a call cut short by a crash runs again. */
export const ReceiverActor = remote(Receiver, { maxRestarts: -1, maxTaskRetries: -1, resources: { actorSlot: 1 } });
/** At most once: a call cut short by a crash fails (ActorDiedError) and is not run again. */
export const AtMostOnceActor = remote(Receiver, { maxRestarts: -1, maxTaskRetries: 0, resources: { actorSlot: 1 } });
