/**
 * @module The Moleculer side of the 1:1 actor-call peer: a broker in its own process (as a nodus actor
 * lives in its own worker process) serving one action over the Redis transporter. Forked by the benchmark
 * with the Redis address as its argument; says `ready` over IPC and stops when its parent disconnects.
 */
import { ServiceBroker } from 'moleculer';

async function main(): Promise<void> {
  const address = process.argv[2];
  if (!address) throw new Error('usage: moleculer-server.js redis://host:port');
  const broker = new ServiceBroker({ nodeID: `bench-server-${process.pid}`, transporter: address, logger: false });
  broker.createService({
    name: 'bench',
    actions: {
      smallValue() {
        return 'ok';
      },
    },
  });
  await broker.start();
  process.on('disconnect', () => {
    broker.stop().finally(() => process.exit(0));
  });
  process.send?.('ready');
}

main().catch((err) => {
  console.error('moleculer bench server failed:', err);
  process.exit(1);
});
