/** @module The head's upkeep of the task event stream: events older than the window go, then the oldest while it is over its size. */
import type { Redis } from 'ioredis';
import type { TaskEventRetention } from '../runtime/protocol/state';

/**
 * Trims `key` to `r`. By time with MINID (stream ids are milliseconds), then by size: MEMORY USAGE samples the
 * stream, and the oldest entries go in proportion (approximate trims, `~`, so Redis drops whole nodes: cheap).
 */
export async function trimTaskEvents(redis: Redis, key: string, r: TaskEventRetention): Promise<void> {
  await redis.xtrim(key, 'MINID', '~', Date.now() - r.windowMs);
  const bytes = Number(await redis.memory('USAGE', key)) || 0;
  if (bytes <= r.maxBytes) return;
  const len = await redis.xlen(key);
  await redis.xtrim(key, 'MAXLEN', '~', Math.floor((len * r.maxBytes * 0.9) / bytes));
}
