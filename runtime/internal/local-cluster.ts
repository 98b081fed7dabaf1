/** @module The local cluster init() starts when given no address: Redis, a head and node agents, tied to this process. */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { resolveNodeResources } from '../options';
import type { Resources } from '../protocol';
import { findRedisServer, freePort, redisAddress, spawnAgent, spawnHead, stopProcess } from './launcher';
import { sessionDir } from './session';

export interface LocalClusterOptions {
  numCpus?: number;
  numGpus?: number;
  resources?: Resources;
  /** Node agents to start (each with the resources above). @default 1 */
  nodes?: number;
  namespace?: string;
  /** Environment of the cluster's processes, over this process's (e.g. NODUS_TASK_EVENTS=0). */
  env?: NodeJS.ProcessEnv;
}

export interface LocalCluster {
  address: string;
  nodeIds: string[];
  stop(): Promise<void>;
}

export async function startLocalCluster(o: LocalClusterOptions = {}): Promise<LocalCluster> {
  const resources = resolveNodeResources({ numCpus: o.numCpus, numGpus: o.numGpus, resources: o.resources }, cpus().length);
  findRedisServer(); // says how to install it, before anything starts
  const port = await freePort();
  const dir = join(sessionDir(), `local-${port}`);
  const address = redisAddress({ port });
  // The head starts Redis, starts it again if it dies, and stops it when it exits (as it does when this process dies).
  const head = await spawnHead({ address, attached: true, logFile: join(dir, 'head.log'), redis: { port, dir }, namespace: o.namespace, env: o.env });
  const pids: number[] = [];
  try {
    const nodeIds: string[] = [];
    for (let i = 0; i < (o.nodes ?? 1); i++) {
      const agent = await spawnAgent({ address, attached: true, logFile: join(dir, `agent-${i}.log`), resources, headNode: i === 0, namespace: o.namespace, env: o.env });
      pids.push(agent.pid);
      nodeIds.push(agent.nodeId);
    }
    return {
      address,
      nodeIds,
      stop: async () => {
        await Promise.all(pids.reverse().map((pid) => stopProcess(pid)));
        await stopProcess(head.pid);
      },
    };
  } catch (err) {
    for (const pid of pids) await stopProcess(pid, 1000);
    await stopProcess(head.pid, 2000);
    throw err;
  }
}
