/** @module What every part of one gateway shares: its options, its Redis connection, the cluster's keys and secret, its logger. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { MetricsPusher } from '../../runtime/internal/metrics';
import { connect, waitForRedis } from '../../runtime/internal/redis';
import { ServiceKeys } from '../../runtime/protocol/services';
import type { ResolvedGatewayOptions } from '../config';

/**
 * One gateway's shared state, made by startGateway before the Nest application and closed after it, so that a failed
 * start releases it too. Providers inject it by class.
 */
export class GatewayContext {
  /** Pushes this process's metrics (its Redis round trips, and what the driver in it counts) for the head's /metrics. */
  private readonly metrics: MetricsPusher;

  constructor(
    readonly options: ResolvedGatewayOptions,
    readonly redis: Redis,
    readonly keys: ServiceKeys,
    /** The cluster's random secret: signs session tokens and the user header services trust. */
    readonly secret: string,
    readonly logger: Logger,
  ) {
    this.metrics = new MetricsPusher(redis, keys.prefix, `gateway:${process.pid}`).start();
  }

  /** Connects to the cluster's Redis (fails with a ClusterError saying what to start) and reads or makes the secret. */
  static async open(options: ResolvedGatewayOptions, logger: Logger): Promise<GatewayContext> {
    const redis = connect(options.address, { name: 'nodus:gateway' });
    // ioredis reconnects by itself; requests fail meanwhile and the exception filter answers 503.
    let warned = 0;
    redis.on('error', (err: Error) => {
      if (Date.now() - warned > 10_000) logger.warn({ err: err.message }, "the cluster's Redis is unreachable; retrying");
      warned = Date.now();
    });
    try {
      await waitForRedis(redis, options.address);
      const keys = new ServiceKeys(options.namespace);
      // One secret per cluster, made by whichever gateway (or service) comes first; never a constant.
      await redis.set(keys.secret, randomBytes(32).toString('hex'), 'NX');
      const secret = await redis.get(keys.secret);
      if (!secret) throw new Error(`the cluster secret ${keys.secret} vanished right after it was set`);
      return new GatewayContext(options, redis, keys, secret, logger);
    } catch (err) {
      redis.disconnect();
      throw err;
    }
  }

  /** Closes the connection; gives up waiting for a Redis that is gone. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.metrics.stop(), new Promise((r) => (timer = setTimeout(r, 500)))]);
    clearTimeout(timer);
    await Promise.race([this.redis.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 1000)))]);
    clearTimeout(timer);
    this.redis.disconnect();
  }
}
