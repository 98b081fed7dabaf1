/** @module The service process's link to its cluster: connects as a driver on first need, and reads the cluster's shared secret. */
import type { Redis } from 'ioredis';
import { init } from '../runtime';
import { currentContext } from '../runtime/internal/global';
import { connect } from '../runtime/internal/redis';
import { ServiceKeys } from '../runtime/protocol/services';
import { readSession } from '../runtime/internal/session';

let link: Promise<{ redis: Redis; keys: ServiceKeys; address: string }> | undefined;
let linkAddress: string | undefined;

/** The address of the cluster this process works with: the one init() connected to, NODUS_ADDRESS, or the one started on this machine. */
function clusterAddress(): string | undefined {
  const connected = (currentContext() as { address?: string } | undefined)?.address;
  return connected || process.env.NODUS_ADDRESS || readSession()?.address;
}

/**
 * Connects this process to the cluster (init() as a driver, unless it already is one or runs in a worker) and
 * opens a Redis connection for the services keys. Throws a ClusterError naming what to start when there is none.
 */
export function serviceLink(): Promise<{ redis: Redis; keys: ServiceKeys; address: string }> {
  // A process that moved to another cluster (shutdown, then init elsewhere) needs a new link.
  const connected = (currentContext() as { address?: string } | undefined)?.address;
  if (link && connected && linkAddress !== connected) {
    void closeServiceLink();
  }
  linkAddress = connected;
  link ??= (async () => {
    const address = clusterAddress();
    if (!currentContext()) await init({ address: address ?? 'auto', logToDriver: true });
    const addr = clusterAddress() ?? '';
    const redis = connect(addr, { name: 'nodus:serve' });
    redis.on('error', () => undefined);
    return { redis, keys: new ServiceKeys(process.env.NODUS_NAMESPACE || undefined), address: addr };
  })();
  link.catch(() => (link = undefined));
  return link;
}

/** The cluster's secret that signs the gateway's user header; undefined when no gateway has made one yet. */
export async function clusterSecret(): Promise<string | undefined> {
  const { redis, keys } = await serviceLink();
  return (await redis.get(keys.secret)) ?? undefined;
}

/** Closes the link's Redis connection (a short-lived process, like the CLI, that is done with the cluster). */
export async function closeServiceLink(): Promise<void> {
  const current = link;
  link = undefined;
  if (current) (await current.catch(() => undefined))?.redis.disconnect();
}
