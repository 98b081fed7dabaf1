/** @module The object connection: a process's second Redis connection, for put() writes and get() reads only. */
import type { Redis } from 'ioredis';
import { withCommands, type ObjectCommands } from '../protocol/commands';
import { connect } from './redis';

/** The commands the object connection runs: a put's write; reads are plain GETs. */
export type ObjectClient = Redis & Pick<ObjectCommands, 'nodusPut'>;

/**
 * Opens the object connection. Why a second one: on the main connection a put waits in the same pipeline
 * as whatever else the tick sent (a flush of thousands of reference drops, a bundle of jobs), and each of
 * its auto-pipelines copies every Lua command the runtime defines; a connection of its own that sends each
 * command at once and defines one command halves the cost of a sequential put(). Lazy: a process that never
 * puts or reads a stored object never opens it.
 *
 * Order across the two connections: put() hands out its ref only after the write has been acknowledged, so
 * nothing sent later on the main connection (a task using the ref, a drop of it) can overtake it. A put the
 * runtime makes for its own use (a large task argument) stays on the main connection, ordered before its job.
 */
export function openObjectConnection(address: string, name: string): ObjectClient {
  const redis = withCommands(connect(address, { name, direct: true, lazy: true }), ['put']);
  // A lost connection must not crash the process: ioredis reconnects, commands wait.
  redis.on('error', () => undefined);
  return redis;
}

/** Closes it: politely when it was ever opened, at once when Redis is not answering. */
export async function closeObjectConnection(redis: Redis, polite: boolean): Promise<void> {
  if (redis.status === 'wait' || !polite) return redis.disconnect();
  await redis.quit().catch(() => redis.disconnect());
}
