/** @module Ending a run as failed, with the reason the API reports beside the message. */
import type { Redis } from 'ioredis';
import type { ServiceKeys } from '../runtime/protocol/services';
import { setStatus } from '../serve/store';
import type { FailReason } from './protocol';

/**
 * Ends a run `error` (unless it has ended already: the first end wins) with an `error` event. The reason is written
 * first, and only by the first to try (HSETNX), so that nobody reads the failed status without it; on a run that ended
 * otherwise it stays unread (the API reports a reason for failed runs only).
 *
 * @example
 * await failRun(redis, keys, runId, 'timeout', 'timeout: ...', { name: 'TimeoutError', message: 'timeout: ...' });
 */
export async function failRun(redis: Redis, keys: ServiceKeys, runId: string, reason: FailReason, message: string, error: Record<string, unknown>): Promise<boolean> {
  await redis.hsetnx(keys.exec(runId), 'reason', reason);
  return setStatus(redis, keys, runId, 'error', { message, before: [{ kind: 'error', data: error }] });
}
