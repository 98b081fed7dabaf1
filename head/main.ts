/** @module Entry point of the head process (started by `nodus start --head`, init() and the tests). */
import { Keys } from '../runtime/protocol';
import { createLogger } from '../runtime/internal/logger';
import { announceReady, entryArgs, onSignals } from '../runtime/internal/process-args';
import { Head } from './head';

async function main(): Promise<void> {
  const args = entryArgs({ 'node-timeout-ms': { type: 'string' }, 'driver-timeout-ms': { type: 'string' }, 'own-redis-pid': { type: 'string' } });
  const logger = createLogger('nodus-head');
  const num = (v: unknown) => (v === undefined ? undefined : Number(v));
  const head = new Head({
    address: String(args.address),
    keys: new Keys(args.namespace ? String(args.namespace) : undefined),
    nodeTimeoutMs: num(args['node-timeout-ms'] ?? process.env.NODUS_NODE_TIMEOUT_MS),
    driverTimeoutMs: num(args['driver-timeout-ms'] ?? process.env.NODUS_DRIVER_TIMEOUT_MS),
    logger,
  });
  const ownRedis = num(args['own-redis-pid']);
  const stop = async () => {
    await head.stop().catch(() => undefined);
    if (ownRedis) {
      try {
        process.kill(ownRedis, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
    process.exit(0);
  };
  onSignals(stop);
  const info = await head.start();
  announceReady({ ...info }, !!args.attached, stop);
}

main().catch((err) => {
  console.error(`nodus head failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
