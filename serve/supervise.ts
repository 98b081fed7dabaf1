/**
 * @module The second line of liveness for executions: the process that launched an execution watches its runner, but
 * that process may be gone (restarted, killed). The gateway sweeps the executions not yet ended with this.
 */
import type { Redis } from 'ioredis';
import { ActorDiedError, get, getActor } from '../runtime';
import { RUNNER_NAMESPACE, isFinal, type ServiceKeys } from '../runtime/protocol/services';
import type { Runner } from './runner';
import { readExecution, setStatus } from './store';

export interface SuperviseOptions {
  /** A runner that does not exist this long after its execution was created never started. @default 60000 */
  startGraceMs?: number;
  /** How long a ping may take; a busy runner (a sync entrypoint holds its thread) is not dead. @default 2000 */
  pingTimeoutMs?: number;
}

/**
 * Ends with status `error` every execution whose runner is dead (or never started), naming the cause.
 * Resolves to how many it ended.
 */
export async function superviseExecutions(redis: Redis, keys: ServiceKeys, o: SuperviseOptions = {}): Promise<number> {
  const fids = await redis.zrange(keys.activeExecs, 0, -1);
  let ended = 0;
  await Promise.all(
    fids.map(async (fid) => {
      const rec = await readExecution(redis, keys, fid);
      if (!rec || isFinal(rec.status)) {
        await redis.zrem(keys.activeExecs, fid);
        return;
      }
      const fail = async (message: string) => {
        if (await setStatus(redis, keys, fid, 'error', { message, before: [{ kind: 'error', data: { name: 'RunnerDiedError', message } }] })) ended++;
      };
      const runner = await getActor<Runner>(fid, { namespace: RUNNER_NAMESPACE }).catch(() => undefined);
      if (!runner) {
        // A dead actor's name is released: a runner that had begun is dead, one that had not never started.
        if (rec.status === 'running') await fail('the runner of this execution died (its actor is gone)');
        else if (Date.now() - Number(rec.createdAt) > (o.startGraceMs ?? 60_000)) await fail('the runner of this execution never started (the service that launched it stopped before it could)');
        return;
      }
      try {
        await get(runner.ping.remote(), { timeout: o.pingTimeoutMs ?? 2000 });
      } catch (err) {
        if (err instanceof ActorDiedError) await fail(`the runner of this execution died: ${err.message}`);
      }
    }),
  );
  return ended;
}
