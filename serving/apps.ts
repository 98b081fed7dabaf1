/**
 * @module Apps: register (load the module in an app actor, deploy the unit tasks it uses — shared with other apps —
 * and wait until their models are loaded), invoke, list and unregister (the last app using a deployment tears it down).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError, get, getActor, kill, type ActorHandle } from '../runtime';
import { SERVING_NAMESPACE, SERVING_PROTOCOL_VERSION, ServingKeys, type AppRecord } from '../runtime/protocol/serving';
import { serviceLink } from '../serve/cluster';
import { AppHostActor, type AppHost } from './app-host';
import { ensureDeployment, listDeployments, releaseDeployment } from './deployments';

async function link() {
  const { redis } = await serviceLink();
  return { redis, keys: new ServingKeys(process.env.NODUS_NAMESPACE || undefined) };
}

/** The app registered under this id or alias; a ConfigError listing the registered ones otherwise. */
export async function findApp(idOrAlias: string): Promise<AppRecord> {
  const { redis, keys } = await link();
  const id = (await redis.hget(keys.aliases, idOrAlias)) ?? idOrAlias;
  const raw = await redis.hget(keys.apps, id);
  if (raw) return JSON.parse(raw) as AppRecord;
  const known = (await redis.hvals(keys.apps)).map((r) => JSON.parse(r) as AppRecord).map((a) => `${a.alias} (${a.id})`);
  throw new ConfigError(`No app '${idOrAlias}' is registered. ${known.length ? `Registered: ${known.join(', ')}.` : 'None is.'} Register one with \`nodus app register path/to/app.ts --alias NAME\`.`);
}

/**
 * Registers an app: its module is loaded in an app actor, the unit tasks it uses are deployed (or shared where an
 * equal one is deployed already) and their models loaded. `progress` hears each step.
 *
 * @example
 * const app = await registerApp('services/image_chat/app.ts', { alias: 'chat', progress: console.log });
 */
export async function registerApp(source: string, o: { alias?: string; progress?: (message: string) => void } = {}): Promise<AppRecord> {
  const progress = o.progress ?? (() => undefined);
  const file = resolve(source);
  if (!existsSync(file)) throw new ConfigError(`No app module at ${file}. Give the path of a module that exports config and serve (e.g. services/image_chat/app.ts).`);
  const { redis, keys } = await link();
  const id = `app-${randomBytes(4).toString('hex')}`;
  const alias = o.alias ?? basename(dirname(file));
  if (await redis.hget(keys.aliases, alias)) throw new ConfigError(`The alias '${alias}' is taken; unregister that app first (nodus app unregister ${alias}) or choose another with --alias.`);
  progress(`loading ${file}`);
  const actor = AppHostActor.options({ name: id, namespace: SERVING_NAMESPACE, lifetime: 'detached' }).remote(file);
  let described: Awaited<ReturnType<AppHost['describe']>>;
  try {
    described = await get(actor.describe.remote());
  } catch (err) {
    await kill(actor).catch(() => undefined);
    throw new ConfigError(`Could not register ${file}: ${(err as Error).message}`, { cause: err });
  }
  const record: AppRecord = { v: SERVING_PROTOCOL_VERSION, id, alias, source: file, state: 'deploying', deployments: [], actor: id, streaming: described.streaming, createdAt: Date.now() };
  await redis.multi().hset(keys.apps, id, JSON.stringify(record)).hset(keys.aliases, alias, id).exec();
  progress(`app ${alias} (${id}) uses ${described.units.length} unit task${described.units.length === 1 ? '' : 's'}`);
  try {
    for (const unit of described.units) {
      const d = await ensureDeployment(unit, id, progress);
      if (!record.deployments.includes(d.key)) record.deployments.push(d.key);
    }
    record.state = 'ready';
    progress(`app ${alias} is ready: nodus app invoke ${alias} '<json>'`);
  } catch (err) {
    record.state = 'failed';
    record.error = (err as Error).message;
  }
  await redis.hset(keys.apps, id, JSON.stringify(record));
  if (record.state === 'failed') {
    await unregisterApp(id).catch(() => undefined);
    throw new ConfigError(`Could not deploy app ${alias}: ${record.error}`);
  }
  return record;
}

/** Unregisters an app: its actor stops, and deployments no other app holds are torn down. */
export async function unregisterApp(idOrAlias: string, progress: (m: string) => void = () => undefined): Promise<AppRecord> {
  const app = await findApp(idOrAlias);
  const { redis, keys } = await link();
  await kill(await getActor<AppHost>(app.actor, { namespace: SERVING_NAMESPACE })).catch(() => undefined);
  for (const key of app.deployments) {
    if (await releaseDeployment(key, app.id)) progress(`tore down ${key} (no app uses it any more)`);
    else progress(`kept ${key} (other apps use it)`);
  }
  await redis.multi().hdel(keys.apps, app.id).hdel(keys.aliases, app.alias).exec();
  return app;
}

/** Registered apps with their deployments and where each host runs. */
export async function listApps() {
  const { redis, keys } = await link();
  const apps = (await redis.hvals(keys.apps)).map((r) => JSON.parse(r) as AppRecord);
  const deployments = await listDeployments();
  return { apps, deployments };
}

async function appActor(idOrAlias: string): Promise<{ app: AppRecord; actor: ActorHandle<AppHost> }> {
  const app = await findApp(idOrAlias);
  if (app.state !== 'ready') throw new ConfigError(`App ${app.alias} is ${app.state}${app.error ? `: ${app.error}` : ''}.`);
  return { app, actor: await getActor<AppHost>(app.actor, { namespace: SERVING_NAMESPACE }) };
}

/** Runs the app's serve(request) and resolves to its result. */
export async function invokeApp(idOrAlias: string, request: unknown): Promise<unknown> {
  const { actor } = await appActor(idOrAlias);
  return ((await get(actor.invoke.remote(request))) as { result: unknown }).result;
}

/** Streams what the app's serve(request) yields (an async generator), item by item. */
export async function* streamApp(idOrAlias: string, request: unknown): AsyncGenerator<unknown> {
  const { actor } = await appActor(idOrAlias);
  for await (const ref of actor.stream.remote(request)) yield await get(ref);
}
