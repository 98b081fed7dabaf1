/**
 * @module Entry point of the gateway process (`nodus gateway`, `nodus start --gateway`):
 * `node dist/gateway/main.js --address URL [--port N] [--host H] [--register URL]... [--admin-password P] [--namespace NS]
 * [--session-dir DIR] [--attached]`; the admin password may come in NODUS_ADMIN_PASSWORD instead (out of `ps`).
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../runtime/internal/logger';
import { announceReady, onSignals } from '../runtime/internal/process-args';
import { readSession } from '../runtime/internal/session';
import { startGateway, type Gateway } from './gateway';

/** A stop must end the process even when Redis is gone and closing waits on it. */
const STOP_WITHIN_MS = 4500;

async function main(): Promise<void> {
  // Parsed here rather than with entryArgs: --register may be given several times.
  const { values: args } = parseArgs({
    options: {
      address: { type: 'string' },
      namespace: { type: 'string' },
      attached: { type: 'boolean' },
      port: { type: 'string' },
      host: { type: 'string' },
      register: { type: 'string', multiple: true },
      'admin-password': { type: 'string' },
      'session-dir': { type: 'string' },
    },
    strict: true,
  });
  const logger = createLogger('nodus-gateway');
  // A signal may come while the gateway is still starting: then there is nothing to close yet.
  const running: { gateway?: Gateway } = {};
  const stop = async () => {
    setTimeout(() => process.exit(0), STOP_WITHIN_MS).unref();
    await running.gateway?.close().catch(() => undefined);
    process.exit(0);
  };
  onSignals(stop);
  const address = !args.address || args.address === 'auto' ? (process.env.NODUS_ADDRESS ?? readSession()?.address) : args.address;
  const gateway = await startGateway(
    {
      address: address as string,
      namespace: args.namespace ?? process.env.NODUS_NAMESPACE,
      port: args.port === undefined ? undefined : Number(args.port),
      host: args.host,
      register: args.register,
      // The environment keeps the password out of `ps`.
      adminPassword: args['admin-password'] ?? (process.env.NODUS_ADMIN_PASSWORD || undefined),
      sessionDir: args['session-dir'],
    },
    { logger },
  );
  running.gateway = gateway;
  logger.info(`gateway listening on ${gateway.url}`);
  // generatedPassword: the file, for `nodus start` to show the password once.
  const info = { port: gateway.port, host: gateway.host, url: gateway.url, ...(gateway.generatedPasswordFile ? { generatedPassword: gateway.generatedPasswordFile } : {}) };
  announceReady(info, !!args.attached, stop);
}

main().catch((err) => {
  console.error(`nodus gateway failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
