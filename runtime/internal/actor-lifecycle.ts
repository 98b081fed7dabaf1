/** @module An actor's process life ending (dead, or restarting) and what becomes of its calls: shared by drivers, node agents and the head. */
import type { SerializedFailure } from '../errors';
import type { ActorCall, ControlMessage, Keys } from '../protocol';
import { failureBytes, settleCall, type CommandClient } from './object-store';
import { decode, encode } from './serialization';

/** The failure of an actor-level death, as a base64 string for the actor record. */
export function actorFailure(message: string, cause?: SerializedFailure): string {
  const f: SerializedFailure = { kind: 'actor', task: '?', name: 'ActorDiedError', message, cause };
  return encode(f).bytes.toString('base64');
}

/** Turns an actor record's `cause` into the failure a call of a dead actor gets. */
export function diedFailure(actorId: string, cause: string): SerializedFailure {
  if (cause) return decode<SerializedFailure>(Buffer.from(cause, 'base64'));
  return { kind: 'actor', task: '?', name: 'ActorDiedError', message: `actor ${actorId} is dead` };
}

/**
 * Ends an actor's process life (dead, or about to restart) and settles the calls that cannot run:
 * all of them when it is dead; when it restarts, the running ones beyond maxTaskRetries (the others go
 * back to the front of its mailbox). Shared by node agents, the head and drivers.
 */
export async function endActor(redis: CommandClient, keys: Keys, actorId: string, mode: 'dead' | 'restart', cause: string, maxTaskRetries: number): Promise<void> {
  const [running, queued, startedIds] = await redis.nodusActorEndBuffer(keys.prefix, actorId, mode, mode === 'dead' ? cause : '');
  const started = new Set(startedIds.map((b) => b.toString()));
  if (mode === 'restart') return settleTaken(redis, keys, actorId, running, started, maxTaskRetries);
  const base = failureBytes(diedFailure(actorId, cause));
  for (const call of [...running, ...queued].map((raw) => decode<ActorCall>(raw))) {
    await settleCall(redis, keys, call[0], call[4], base);
  }
}

/**
 * Calls an actor process took and did not finish, handed back as a restart does: those never begun go
 * back to the front of the mailbox; begun ones run again if maxTaskRetries allows, else fail with
 * ActorDiedError.
 */
async function settleTaken(redis: CommandClient, keys: Keys, actorId: string, taken: Buffer[], started: Set<string>, maxTaskRetries: number): Promise<void> {
  const retry: Buffer[] = [];
  const fail: ActorCall[] = [];
  for (const raw of taken) {
    const call = decode<ActorCall>(raw);
    if (!started.has(call[0])) {
      // Taken by the process as it died, never begun: it simply waits for the next one.
      retry.push(raw);
    } else if (call[7] < maxTaskRetries) {
      call[7]++;
      retry.push(encode(call).bytes);
    } else fail.push(call);
  }
  // Back in front, in their original order: they were taken first.
  if (retry.length) await redis.lpush(keys.mailbox(actorId), ...retry.reverse());
  for (const call of fail) {
    const bytes = failureBytes({
      kind: 'actor',
      task: call[1],
      name: 'ActorDiedError',
      message: `the process of actor ${actorId} died while ${call[1]}() ran, and maxTaskRetries (${maxTaskRetries}) does not allow running it again; the actor is restarting`,
    });
    await settleCall(redis, keys, call[0], call[4], bytes);
  }
}

/**
 * Calls left in an actor's running list that no live process of it holds: a process that outlived its
 * restart (its node was declared dead but lived on a moment, or was cut off) took them after the restart
 * had handed the running calls back. The actor's current process, when idle, settles those it has seen
 * there twice in a row, as a restart would have; a call the old process finishes meanwhile is left alone.
 */
export async function adoptOrphans(redis: CommandClient, keys: Keys, actorId: string, orphans: Buffer[], maxTaskRetries: number): Promise<number> {
  const mine: Buffer[] = [];
  const started = new Set<string>();
  for (const raw of orphans) {
    if (!(await redis.lrem(keys.running(actorId), 1, raw))) continue;
    mine.push(raw);
    const id = decode<ActorCall>(raw)[0];
    if (await redis.hdel(keys.started(actorId), id)) started.add(id);
  }
  await settleTaken(redis, keys, actorId, mine, started, maxTaskRetries);
  return mine.length;
}

/**
 * Asks for an actor's death (noRestart) or restart: a placed actor's node kills its process; one not
 * placed yet is ended here. `reason` ends up in the ActorDiedError its calls get.
 */
export async function killActor(redis: CommandClient, keys: Keys, actorId: string, noRestart: boolean, reason: string): Promise<void> {
  const key = keys.actor(actorId);
  if (noRestart) await redis.hset(key, 'killed', reason);
  const [state, cls] = await redis.hmget(key, 'state', 'cls');
  if (!state || state === 'dead') return;
  if (state === 'pending' && noRestart) {
    await endActor(redis, keys, actorId, 'dead', actorFailure(`actor ${cls} (${actorId}) is dead: ${reason} before it started`), 0);
    return;
  }
  await redis.publish(keys.controlChannel, JSON.stringify({ type: 'kill', actorId, noRestart } satisfies ControlMessage));
}
