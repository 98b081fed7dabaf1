/**
 * @module Entry point of the gateway process (`nodus gateway`, `nodus start --gateway`):
 * `node dist/gateway/main.js --address URL [--port N] [--host H] [--register URL]... [--admin-password P] [--namespace NS]
 * [--session-dir DIR] [--attached]`; the admin password may come in NODUS_ADMIN_PASSWORD instead (out of `ps`).
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../runtime/internal/logger';
import { Lifecycle } from '../runtime/internal/lifecycle';
import { readSession } from '../runtime/internal/session';
import { startGateway } from './gateway';

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
  const address = !args.address || args.address === 'auto' ? (process.env.NODUS_ADDRESS || readSession()?.address) : args.address;
  const life = new Lifecycle({ name: 'gateway', logger, address: String(address), attached: !!args.attached });
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
  life.watch(gateway.redis);
  life.onStop(() => gateway.close());
  logger.info(`gateway listening on ${gateway.url}`);
  // generatedPassword: the file, for `nodus start` to show the password once.
  life.ready({ port: gateway.port, host: gateway.host, url: gateway.url, ...(gateway.generatedPasswordFile ? { generatedPassword: gateway.generatedPasswordFile } : {}) });
}

main().catch((err) => {
  console.error(`nodus gateway failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
