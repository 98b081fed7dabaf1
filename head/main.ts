/** @module Entry point of the head process (started by `nodus start --head`, init() and the tests). */
import { Keys } from '../runtime/protocol';
import { createLogger } from '../runtime/internal/logger';
import { Lifecycle, entryArgs } from '../runtime/internal/lifecycle';
import type { RedisServerOptions } from '../runtime/internal/launcher';
import { Head } from './head';
import { RedisSupervisor } from './redis-supervisor';

async function main(): Promise<void> {
  const args = entryArgs({ 'node-timeout-ms': { type: 'string' }, 'driver-timeout-ms': { type: 'string' }, redis: { type: 'string' }, 'metrics-port': { type: 'string' }, 'metrics-host': { type: 'string' } });
  const logger = createLogger('nodus-head');
  const address = String(args.address);
  const life = new Lifecycle({ name: 'head', logger, address, attached: !!args.attached });
  const num = (v: unknown) => (v === undefined ? undefined : Number(v));
  // The head owns the Redis it was asked to start: it starts it again when it dies, and stops it last.
  const restarted: { head?: Head } = {};
  if (args.redis) {
    supervisor = new RedisSupervisor(JSON.parse(String(args.redis)) as Omit<RedisServerOptions, 'detached'>, logger, (r) => {
      void restarted.head?.recordRedisRestart(r).catch(() => undefined);
    });
    life.onStop(() => supervisor!.stop());
    await supervisor.start();
  }
  const head = new Head({
    address,
    keys: new Keys(args.namespace ? String(args.namespace) : undefined),
    nodeTimeoutMs: num(args['node-timeout-ms'] ?? process.env.NODUS_NODE_TIMEOUT_MS),
    driverTimeoutMs: num(args['driver-timeout-ms'] ?? process.env.NODUS_DRIVER_TIMEOUT_MS),
    metricsPort: num(args['metrics-port'] ?? process.env.NODUS_METRICS_PORT),
    metricsHost: args['metrics-host'] ? String(args['metrics-host']) : undefined,
    logger,
  });
  restarted.head = head;
  for (const c of head.connections) life.watch(c);
  life.onStop(() => head.stop());
  const info = await head.start();
  life.ready({ ...info, redisPid: supervisor?.pid, redisPidFile: supervisor?.pidFile });
}

let supervisor: RedisSupervisor | undefined;

main().catch(async (err) => {
  await supervisor?.stop(1000).catch(() => undefined);
  console.error(`nodus head failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
