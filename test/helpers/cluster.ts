/** @module startCluster(): a real cluster for integration tests — redis-server on a free port, a head and node agents as processes. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Redis } from 'ioredis';
import { init, shutdown } from '../../runtime';
import { freePort, spawnAgent, spawnHead, startRedisServer, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import type { Resources } from '../../runtime/protocol';

export interface ClusterSpec {
  /** Node agents to start. @default 2 */
  nodes?: number;
  /** CPUs of each node. @default 2 */
  cpus?: number;
  /** Resources per node, overriding cpus: one entry per node. */
  nodeResources?: Resources[];
  /** Labels per node (`--labels`), by index. */
  nodeLabels?: (Record<string, string> | undefined)[];
  nodeTimeoutMs?: number;
  driverTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface TestCluster {
  address: string;
  dir: string;
  redisProcess: StartedProcess;
  head: StartedProcess;
  agents: (StartedProcess & { nodeId: string })[];
  /** A plain client on the cluster's Redis, to look at keys. */
  redis: Redis;
  addNode(resources: Resources, index?: number, labels?: Record<string, string>): Promise<StartedProcess & { nodeId: string }>;
  stop(): Promise<void>;
}

/** Like Ray's ray_start_cluster fixture: head + node agents as real processes, torn down by stop(). */
export async function startCluster(spec: ClusterSpec = {}): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'nodus-test-'));
  const port = await freePort();
  const redisProcess = await startRedisServer({ port, dir, detached: false });
  const address = redisProcess.address;
  const env = { NODUS_SESSION_DIR: dir, ...spec.env };
  const head = await spawnHead({ address, attached: true, logFile: join(dir, 'head.log'), nodeTimeoutMs: spec.nodeTimeoutMs, driverTimeoutMs: spec.driverTimeoutMs, env });
  const agents: TestCluster['agents'] = [];
  // agents[i] is the node started with resources[i], whichever comes up first.
  const addNode = async (resources: Resources, index = agents.length, labels?: Record<string, string>) => {
    const a = await spawnAgent({ address, attached: true, logFile: join(dir, `agent-${index}.log`), resources, headNode: index === 0, env, labels });
    agents[index] = a;
    return a;
  };
  const resources = spec.nodeResources ?? Array.from({ length: spec.nodes ?? 2 }, () => ({ CPU: spec.cpus ?? 2 }));
  await Promise.all(resources.map((r, i) => addNode(r, i, spec.nodeLabels?.[i])));
  const redis = new Redis(address, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  return {
    address,
    dir,
    redisProcess,
    head,
    agents,
    redis,
    addNode,
    stop: async () => {
      redis.disconnect();
      await Promise.all([...agents.map((a) => stopProcess(a.pid, 3000)), stopProcess(head.pid, 3000)]);
      await stopProcess(redisProcess.pid, 3000);
      // NODUS_KEEP_TEST_LOGS=1 keeps the cluster's folder (head and agent logs) for a look after a failure.
      if (!process.env.NODUS_KEEP_TEST_LOGS) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A cluster for a whole test file, this file's driver connected to it: started in beforeAll, stopped in
 * afterAll. The returned object is filled in when beforeAll has run.
 */
export function useCluster(spec: ClusterSpec & { logToDriver?: boolean } = {}): TestCluster {
  const cluster = {} as TestCluster;
  beforeAll(async () => {
    Object.assign(cluster, await startCluster(spec));
    await init({ address: cluster.address, logToDriver: spec.logToDriver ?? false });
  });
  afterAll(async () => {
    await shutdown();
    await cluster.stop?.();
  });
  return cluster;
}

/** Runs the garbage collector so FinalizationRegistry callbacks can fire. */
export async function collectGarbage(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Polls until `check` returns true, failing with `what` after `timeoutMs`. */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting until ${what}`);
}

export { isRunning as processAlive } from '../../runtime/internal/launcher';
