/**
 * @module Entry point of the ingress process (`nodus start --head`, `nodus serve run` when none runs):
 * `node dist/serve/deploy/ingress-main.js --address URL [--port N] [--host H] [--namespace NS] [--attached]`.
 */
import { createLogger } from '../../runtime/internal/logger';
import { Lifecycle, entryArgs } from '../../runtime/internal/lifecycle';
import { readSession } from '../../runtime/internal/session';
import { startIngress } from './ingress';

async function main(): Promise<void> {
  const args = entryArgs({ port: { type: 'string' }, host: { type: 'string' } });
  const logger = createLogger('nodus-serve');
  const address = !args.address || args.address === 'auto' ? (process.env.NODUS_ADDRESS || readSession()?.address) : String(args.address);
  const life = new Lifecycle({ name: 'ingress', logger, address: String(address), attached: !!args.attached });
  const ingress = await startIngress(
    {
      address: String(address),
      namespace: typeof args.namespace === 'string' ? args.namespace : process.env.NODUS_NAMESPACE,
      port: args.port === undefined ? undefined : Number(args.port),
      host: typeof args.host === 'string' ? args.host : undefined,
    },
    { logger },
  );
  life.watch(ingress.redis);
  life.onStop(() => ingress.close());
  life.ready({ port: ingress.port, host: ingress.host, url: ingress.url });
}

main().catch((err) => {
  console.error(`nodus ingress failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
