/** @module The local cluster init() starts when given no address: Redis, a head and node agents, tied to this process. */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { resolveNodeResources } from '../options';
import type { Resources } from '../protocol';
import { freePort, spawnAgent, spawnHead, startRedisServer, stopProcess } from './launcher';
import { sessionDir } from './session';

export interface LocalClusterOptions {
  numCpus?: number;
  numGpus?: number;
  resources?: Resources;
  /** Node agents to start (each with the resources above). @default 1 */
  nodes?: number;
  namespace?: string;
}

export interface LocalCluster {
  address: string;
  nodeIds: string[];
  stop(): Promise<void>;
}

export async function startLocalCluster(o: LocalClusterOptions = {}): Promise<LocalCluster> {
  const resources = resolveNodeResources({ numCpus: o.numCpus, numGpus: o.numGpus, resources: o.resources }, cpus().length);
  const port = await freePort();
  const dir = join(sessionDir(), `local-${port}`);
  const redis = await startRedisServer({ port, dir, detached: false });
  const pids: number[] = [];
  try {
    // The head kills this redis-server when it exits, which it does when this process dies.
    const head = await spawnHead({ address: redis.address, attached: true, logFile: join(dir, 'head.log'), ownRedisPid: redis.pid, namespace: o.namespace });
    pids.push(head.pid);
    const nodeIds: string[] = [];
    for (let i = 0; i < (o.nodes ?? 1); i++) {
      const agent = await spawnAgent({ address: redis.address, attached: true, logFile: join(dir, `agent-${i}.log`), resources, headNode: i === 0, namespace: o.namespace });
      pids.push(agent.pid);
      nodeIds.push(agent.nodeId);
    }
    return {
      address: redis.address,
      nodeIds,
      stop: async () => {
        await Promise.all(pids.reverse().map((pid) => stopProcess(pid)));
        await stopProcess(redis.pid);
      },
    };
  } catch (err) {
    for (const pid of pids) await stopProcess(pid, 1000);
    await stopProcess(redis.pid, 1000);
    throw err;
  }
}
