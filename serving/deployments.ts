/**
 * @module Deployments of unit tasks: the model hosts (actors) of one unit-task configuration, shared by every app and
 * driver that uses an equal unit task, reference-counted, torn down when the last holder lets go. Model hosts are
 * actors like any other: placement is the runtime's.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ConfigError, get, getActor, kill, type ActorHandle } from '../runtime';
import { SERVING_NAMESPACE, SERVING_PROTOCOL_VERSION, ServingKeys, type Deployment, type HostInfo, type UnitKind } from '../runtime/protocol/serving';
import { serviceLink } from '../serve/cluster';
import { EncoderHostActor, type EncoderHost } from './hosts/encoder-host';
import { LLMHostActor, type LLMHost } from './hosts/llm-host';

/** What a unit task needs deployed. */
export interface UnitSpec {
  kind: UnitKind;
  config: Record<string, unknown>;
  numGpus: number;
  numCpus: number;
  replicas: number;
}

export type HostHandle = ActorHandle<EncoderHost> | ActorHandle<LLMHost>;

/** Equal unit tasks (same kind, config and resources) share a deployment: its key is made from them. */
export function deploymentKey(spec: Pick<UnitSpec, 'kind' | 'config' | 'numGpus' | 'numCpus'>): string {
  const canonical = JSON.stringify([spec.kind, sortKeys(spec.config), spec.numGpus, spec.numCpus]);
  return `${spec.kind}-${createHash('sha256').update(canonical).digest('hex').slice(0, 10)}`;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

async function link(): Promise<{ redis: Redis; keys: ServingKeys }> {
  const { redis } = await serviceLink();
  return { redis, keys: new ServingKeys(process.env.NODUS_NAMESPACE || undefined) };
}

/** Runs `fn` holding the deployment's lock, so that two apps registering at once create its hosts once. */
async function locked<T>(redis: Redis, keys: ServingKeys, key: string, fn: () => Promise<T>): Promise<T> {
  const token = `${process.pid}-${Math.random()}`;
  for (let i = 0; ; i++) {
    if ((await redis.set(keys.lock(key), token, 'PX', 120_000, 'NX')) === 'OK') break;
    if (i > 2400) throw new ConfigError(`Deployment ${key} stayed locked for 2 minutes; another registration may have died holding it (the lock expires by itself).`);
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    return await fn();
  } finally {
    if ((await redis.get(keys.lock(key))) === token) await redis.del(keys.lock(key));
  }
}

export async function readDeployment(key: string): Promise<Deployment | undefined> {
  const { redis, keys } = await link();
  const raw = await redis.hget(keys.deployments, key);
  return raw ? (JSON.parse(raw) as Deployment) : undefined;
}

export async function listDeployments(): Promise<(Deployment & { hosts: HostInfo[] })[]> {
  const { redis, keys } = await link();
  const [deps, hosts] = await Promise.all([redis.hvals(keys.deployments), redis.hgetall(keys.hosts)]);
  return deps.map((raw) => {
    const d = JSON.parse(raw) as Deployment;
    return { ...d, hosts: d.replicas.map((r) => hosts[r]).filter(Boolean).map((h) => JSON.parse(h) as HostInfo) };
  });
}

function startReplica(spec: UnitSpec, name: string): HostHandle {
  const opts = { name, namespace: SERVING_NAMESPACE, lifetime: 'detached' as const, numGpus: spec.numGpus, numCpus: spec.numCpus };
  // A host cannot see whether it was given GPUs: say which device to ask onnxruntime for.
  const config = { device: spec.numGpus > 0 ? 'cuda' : 'cpu', ...spec.config };
  return spec.kind === 'encoder' ? EncoderHostActor.options(opts).remote(config as never) : LLMHostActor.options(opts).remote(config as never);
}

/** Waits until a replica's model is loaded and records where it runs; a load error is the deployment's error. */
async function awaitReplica(redis: Redis, keys: ServingKeys, key: string, name: string, handle: HostHandle): Promise<HostInfo> {
  const info = (await get((handle as ActorHandle<EncoderHost>).ready.remote())) as Omit<HostInfo, 'deployment' | 'replica'>;
  const host: HostInfo = { deployment: key, replica: name, modelId: info.modelId, device: info.device, node: info.node, pid: info.pid };
  await redis.hset(keys.hosts, name, JSON.stringify(host));
  return host;
}

/**
 * Makes sure the unit task's deployment exists with live replicas, and adds `holder` to it. Creates the model hosts
 * when it is new (or replicas are gone) and waits until their models are loaded; `progress` hears each step.
 */
export async function ensureDeployment(spec: UnitSpec, holder: string, progress: (message: string) => void = () => undefined): Promise<Deployment> {
  const { redis, keys } = await link();
  const key = deploymentKey(spec);
  return locked(redis, keys, key, async () => {
    const raw = await redis.hget(keys.deployments, key);
    const d: Deployment = raw
      ? (JSON.parse(raw) as Deployment)
      : { v: SERVING_PROTOCOL_VERSION, key, kind: spec.kind, config: spec.config, numGpus: spec.numGpus, numCpus: spec.numCpus, replicas: [], holders: [], createdAt: Date.now() };
    if (raw) progress(`${key} (${spec.kind} ${String(spec.config.modelId)}) is deployed already: shared`);
    const want = Math.max(d.replicas.length, spec.replicas);
    const names = Array.from({ length: want }, (_, i) => `${key}-${i}`);
    await Promise.all(
      names.map(async (name, i) => {
        const existing = await getActor(name, { namespace: SERVING_NAMESPACE }).catch(() => undefined);
        if (existing) return;
        progress(`starting ${spec.kind} host ${i + 1} of ${want} for ${String(spec.config.modelId)} (${spec.numGpus ? `${spec.numGpus} GPU` : 'CPU'})`);
        const h = startReplica(spec, name);
        try {
          const info = await awaitReplica(redis, keys, key, name, h);
          progress(`${spec.kind} host ${i + 1} of ${want} ready on ${info.node} (${info.device})`);
        } catch (err) {
          await kill(h as ActorHandle<EncoderHost>).catch(() => undefined);
          throw new ConfigError(`The ${spec.kind} host for model '${String(spec.config.modelId)}' could not start: ${(err as Error).message}`, { cause: err });
        }
      }),
    );
    d.replicas = names;
    if (!d.holders.includes(holder)) d.holders.push(holder);
    await redis.hset(keys.deployments, key, JSON.stringify(d));
    return d;
  });
}

/** Lets go of a deployment; the last holder's release tears its hosts down. Resolves to whether it was torn down. */
export async function releaseDeployment(key: string, holder: string): Promise<boolean> {
  const { redis, keys } = await link();
  return locked(redis, keys, key, async () => {
    const raw = await redis.hget(keys.deployments, key);
    if (!raw) return false;
    const d = JSON.parse(raw) as Deployment;
    d.holders = d.holders.filter((h) => h !== holder);
    if (d.holders.length) {
      await redis.hset(keys.deployments, key, JSON.stringify(d));
      return false;
    }
    await Promise.all(d.replicas.map(async (name) => kill(await getActor(name, { namespace: SERVING_NAMESPACE })).catch(() => undefined)));
    await redis.multi().hdel(keys.deployments, key).hdel(keys.hosts, ...d.replicas).exec();
    return true;
  });
}

/** Lets go of every deployment `holder` holds (a driver done with the unit tasks it called directly). */
export async function releaseHolder(holder: string): Promise<string[]> {
  const torn: string[] = [];
  for (const d of await listDeployments()) if (d.holders.includes(holder) && (await releaseDeployment(d.key, holder))) torn.push(d.key);
  return torn;
}

/** Changes a deployment's number of replicas (new ones start and load their model before this resolves). */
export async function scaleDeployment(key: string, replicas: number, progress?: (m: string) => void): Promise<Deployment> {
  if (!Number.isInteger(replicas) || replicas < 1) throw new ConfigError(`replicas must be a whole number >= 1, got ${replicas}.`);
  const d = await readDeployment(key);
  if (!d) throw new ConfigError(`No deployment ${key}; see \`nodus app list\` or GET /tasks/list.`);
  const { redis, keys } = await link();
  if (replicas > d.replicas.length) {
    for (const holder of d.holders.slice(0, 1)) await ensureDeployment({ kind: d.kind, config: d.config, numGpus: d.numGpus, numCpus: d.numCpus, replicas }, holder, progress);
    return (await readDeployment(key))!;
  }
  return locked(redis, keys, key, async () => {
    const gone = d.replicas.slice(replicas);
    await Promise.all(gone.map(async (name) => kill(await getActor(name, { namespace: SERVING_NAMESPACE })).catch(() => undefined)));
    d.replicas = d.replicas.slice(0, replicas);
    await redis.multi().hset(keys.deployments, key, JSON.stringify(d)).hdel(keys.hosts, ...gone).exec();
    return d;
  });
}

/** Handles of a deployment's replicas, cached per process (and looked up again after a failure). */
const handles = new Map<string, { at: number; list: HostHandle[] }>();

export async function replicaHandles(key: string, fresh = false): Promise<HostHandle[]> {
  const cached = handles.get(key);
  if (cached && !fresh && Date.now() - cached.at < 10_000) return cached.list;
  const d = await readDeployment(key);
  if (!d) return [];
  const list = (await Promise.all(d.replicas.map((n) => getActor(n, { namespace: SERVING_NAMESPACE }).catch(() => undefined)))).filter((h): h is HostHandle => !!h);
  handles.set(key, { at: Date.now(), list });
  return list;
}
