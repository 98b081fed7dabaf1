/**
 * @module Deployed apps in Redis: the desired state (written by deploys and deletes) and the controller's state of each,
 * read together for `nodus serve status`. Plain functions over a Redis connection, shared by the CLI and the ingress.
 */
import type { Redis } from 'ioredis';
import { ConfigError } from '../../runtime';
import { DEPLOY_PROTOCOL_VERSION, type AppRecord, type AppSpec, type AppState, type DeployKeys, type IngressInfo } from '../../runtime/protocol/deploy';

/** An app as `nodus serve status` shows it: what was asked for and where the controller has got to. */
export interface AppView extends AppRecord {
  state: AppState | undefined;
}

function parse<T>(json: string | null | undefined): T | undefined {
  return json ? (JSON.parse(json) as T) : undefined;
}

export async function readApp(redis: Redis, keys: DeployKeys, name: string): Promise<AppRecord | undefined> {
  return parse<AppRecord>(await redis.hget(keys.apps, name));
}

export async function readState(redis: Redis, keys: DeployKeys, name: string): Promise<AppState | undefined> {
  return parse<AppState>(await redis.hget(keys.state, name));
}

/** Every deployed app with its state, by name. */
export async function listApps(redis: Redis, keys: DeployKeys): Promise<AppView[]> {
  const [apps, states] = await Promise.all([redis.hgetall(keys.apps), redis.hgetall(keys.state)]);
  return Object.values(apps)
    .map((json) => {
      const rec = JSON.parse(json) as AppRecord;
      return { ...rec, state: parse<AppState>(states[rec.name]) };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Records a deploy of these apps (each one's generation bumped, so the controller rolls its replicas) and tells the
 * ingress. A route prefix another app already has is refused. Resolves to the records written.
 */
export async function submitApps(redis: Redis, keys: DeployKeys, specs: AppSpec[]): Promise<AppRecord[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    await redis.watch(keys.apps);
    const current = await redis.hgetall(keys.apps);
    const others = Object.values(current).map((j) => JSON.parse(j) as AppRecord);
    const now = Date.now();
    const written: AppRecord[] = [];
    for (const spec of specs) {
      const taken = others.find((o) => o.name !== spec.name && !o.deleting && o.routePrefix === spec.routePrefix);
      if (taken) {
        await redis.unwatch();
        throw new ConfigError(`The route prefix ${spec.routePrefix} belongs to app ${taken.name}: give ${spec.name} another with --route-prefix, or delete ${taken.name} first (nodus serve delete ${taken.name}).`);
      }
      const prev = parse<AppRecord>(current[spec.name]);
      written.push({ v: DEPLOY_PROTOCOL_VERSION, ...spec, generation: (prev?.generation ?? 0) + 1, createdAt: prev && !prev.deleting ? prev.createdAt : now, updatedAt: now });
    }
    const tx = redis.multi();
    for (const rec of written) tx.hset(keys.apps, rec.name, JSON.stringify(rec));
    // exec() answers null when another deploy changed the apps meanwhile: read again and retry.
    if (await tx.exec()) {
      for (const rec of written) await redis.publish(keys.changed, rec.name);
      return written;
    }
  }
  throw new ConfigError('Other deploys kept changing the apps at the same time; try again.');
}

/** Asks for an app to go: the controller drains and stops its replicas, then forgets it. False when there is no such app. */
export async function deleteApp(redis: Redis, keys: DeployKeys, name: string): Promise<boolean> {
  const rec = await readApp(redis, keys, name);
  if (!rec) return false;
  await redis.hset(keys.apps, name, JSON.stringify({ ...rec, deleting: true, generation: rec.generation + 1, updatedAt: Date.now() }));
  await redis.publish(keys.changed, name);
  return true;
}

/** The ingress that runs the cluster's deployments, if one is up. */
export async function readIngress(redis: Redis, keys: DeployKeys): Promise<IngressInfo | undefined> {
  return parse<IngressInfo>(await redis.get(keys.ingress));
}
