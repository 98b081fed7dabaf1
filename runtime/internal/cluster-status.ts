/** @module Reads the cluster's state from Redis: what `nodus status` prints. */
import { Queue } from 'bullmq';
import { ServingKeys, type HostInfo } from '../protocol/serving';
import { Keys, type ActorRecord, type DriverInfo, type HeadInfo, type NodeInfo, type PlacementGroupRecord, type Resources } from '../protocol';
import { storeKeys } from './local-store';
import { connect, redact, waitForRedis } from './redis';

export interface ClusterStatus {
  address: string;
  head: (Partial<HeadInfo> & { alive: boolean; lastBeat?: number; redisRestarts?: number; redisLastRestart?: number; redisLastExit?: string }) | null;
  /** storeUsed: bytes in the node's object store, when it has one. */
  nodes: (NodeInfo & { lastHeartbeat?: number; storeUsed?: number })[];
  total: Resources;
  free: Resources;
  drivers: DriverInfo[];
  tasks: { shape: string; demand: Resources; queued: number; running: number }[];
  actors: { id: string; cls: string; name: string; namespace: string; node: string; state: string; restarts: number; detached: boolean; demand: Resources }[];
  infeasible: { shape: string; demand: Resources; waiting?: number; task?: string; since: number }[];
  /** Model hosts of model serving, with the device each runs on. */
  modelHosts: HostInfo[];
  /** Placement groups: state, strategy, bundles and the node holding each ('' while none does). */
  placementGroups: Pick<PlacementGroupRecord, 'id' | 'name' | 'strategy' | 'state' | 'bundles' | 'nodes' | 'infeasible' | 'createdAt'>[];
}

function add(into: Resources, r: Resources): void {
  for (const [k, v] of Object.entries(r)) into[k] = (into[k] ?? 0) + v;
}

export async function readClusterStatus(address: string, namespace?: string): Promise<ClusterStatus> {
  const keys = new Keys(namespace);
  const redis = connect(address, { name: 'nodus:status' });
  redis.on('error', () => undefined);
  try {
    await waitForRedis(redis, address, 5000);
    const [headRaw, nodesRaw, hbRaw, driversRaw, shapesRaw, infeasibleRaw] = await Promise.all([
      redis.hgetall(keys.head),
      redis.hvals(keys.nodes),
      redis.zrange(keys.nodeHeartbeats, 0, -1, 'WITHSCORES'),
      redis.hvals(keys.drivers),
      redis.hgetall(keys.shapes),
      redis.hgetall(keys.infeasible),
    ]);
    const hb = new Map<string, number>();
    for (let i = 0; i < hbRaw.length; i += 2) hb.set(hbRaw[i], Number(hbRaw[i + 1]));
    const nodes = nodesRaw.map((s) => ({ ...(JSON.parse(s) as NodeInfo), lastHeartbeat: undefined as number | undefined, storeUsed: undefined as number | undefined }));
    for (const n of nodes) n.lastHeartbeat = hb.get(n.id);
    // Bytes in each alive node's object store (its own counter in Redis).
    const withStore = nodes.filter((n) => n.state === 'alive' && n.store);
    if (withStore.length) {
      const used = await redis.mget(...withStore.map((n) => storeKeys.used(keys.prefix, n.store!.id)));
      withStore.forEach((n, i) => (n.storeUsed = Number(used[i]) || 0));
    }
    nodes.sort((a, b) => Number(b.state === 'alive') - Number(a.state === 'alive') || a.startedAt - b.startedAt);
    const total: Resources = {};
    const free: Resources = {};
    for (const n of nodes.filter((n) => n.state === 'alive')) {
      add(total, n.total);
      add(free, n.free);
    }
    const tasks: ClusterStatus['tasks'] = [];
    for (const [shape, raw] of Object.entries(shapesRaw)) {
      if (!shape.startsWith('task.')) continue;
      const q = new Queue(shape, { connection: redis, prefix: keys.bullPrefix });
      const counts = await q.getJobCounts('waiting', 'active', 'prioritized', 'delayed');
      tasks.push({ shape, demand: JSON.parse(raw) as Resources, queued: counts.waiting + counts.prioritized + counts.delayed, running: counts.active });
      await q.close();
    }
    const actors: ClusterStatus['actors'] = [];
    for (const id of await redis.smembers(keys.actors)) {
      const a = (await redis.hgetall(keys.actor(id))) as unknown as ActorRecord;
      if (!a.id) continue;
      actors.push({ id, cls: a.cls, name: a.name, namespace: a.namespace, node: a.node, state: a.state, restarts: Number(a.restarts), detached: a.detached === '1', demand: JSON.parse(a.demand) as Resources });
    }
    const modelHosts = Object.values(await redis.hgetall(new ServingKeys(namespace).hosts)).map((raw) => JSON.parse(raw) as HostInfo);
    const placementGroups = (await redis.hvals(keys.placementGroups))
      .map((raw) => JSON.parse(raw) as PlacementGroupRecord)
      .sort((a, b) => a.createdAt - b.createdAt)
      .map(({ id, name, strategy, state, bundles, nodes, infeasible, createdAt }) => ({ id, name, strategy, state, bundles, nodes, infeasible, createdAt }));
    const beat = Number(headRaw.beat ?? 0);
    const head = headRaw.startedAt
      ? {
          pid: Number(headRaw.pid),
          host: headRaw.host,
          startedAt: Number(headRaw.startedAt),
          lastBeat: beat,
          alive: !!headRaw.pid && Date.now() - beat < 5000,
          // Restarts of the Redis the head supervises (nodus start --head); none for a --redis-url Redis.
          redisRestarts: Number(headRaw.redisRestarts ?? 0),
          redisLastRestart: headRaw.redisLastRestart ? Number(headRaw.redisLastRestart) : undefined,
          redisLastExit: headRaw.redisLastExit,
          metricsUrl: headRaw.metricsUrl,
        }
      : null;
    return {
      address: redact(address),
      head,
      nodes,
      total,
      free,
      drivers: driversRaw.map((s) => JSON.parse(s) as DriverInfo),
      tasks,
      actors,
      modelHosts,
      placementGroups,
      infeasible: Object.entries(infeasibleRaw).map(([shape, raw]) => ({ shape, ...(JSON.parse(raw) as { demand: Resources; since: number }) })),
    };
  } finally {
    redis.disconnect();
  }
}
