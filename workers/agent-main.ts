/** @module Entry point of a node agent process (`nodus worker join`, the head's node, init() and the tests). */
import { cpus } from 'node:os';
import { Keys } from '../runtime/protocol';
import { createLogger } from '../runtime/internal/logger';
import { Lifecycle, entryArgs } from '../runtime/internal/lifecycle';
import { resolveNodeLabels, resolveNodeResources } from '../runtime/options';
import { NodeAgent } from './node-agent';

async function main(): Promise<void> {
  const args = entryArgs({ resources: { type: 'string' }, labels: { type: 'string' }, 'head-node': { type: 'boolean' } });
  const logger = createLogger('nodus-agent');
  const address = String(args.address);
  const life = new Lifecycle({ name: 'node agent', logger, address, attached: !!args.attached });
  const resources = args.resources ? JSON.parse(String(args.resources)) : resolveNodeResources({}, cpus().length);
  const agent = new NodeAgent({
    address,
    keys: new Keys(args.namespace ? String(args.namespace) : undefined),
    resources,
    headNode: !!args['head-node'],
    labels: resolveNodeLabels(args.labels ? JSON.parse(String(args.labels)) : undefined),
    logger,
    heartbeatMs: process.env.NODUS_HEARTBEAT_MS ? Number(process.env.NODUS_HEARTBEAT_MS) : undefined,
    lockDurationMs: process.env.NODUS_LOCK_MS ? Number(process.env.NODUS_LOCK_MS) : undefined,
  });
  for (const c of agent.connections) life.watch(c);
  life.onStop(() => agent.stop());
  const info = await agent.start();
  life.ready({ nodeId: info.id, resources: info.total });
}

main().catch((err) => {
  console.error(`nodus node agent failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
