/**
 * @module nodus/state: the state API — what runs in the cluster and what ran there lately: tasks (from their events,
 * kept for a bounded window), actors, objects, nodes, placement groups, a summary of tasks, and what tasks and actors
 * printed. The same as `nodus list|get|summary|logs`.
 */
import type { Redis } from 'ioredis';
import { ConfigError, NotInitializedError } from './errors';
import { currentContext } from './internal/global';
import { connect, waitForRedis } from './internal/redis';
import { StateReader, type ActorInfo, type ListQuery, type NodeStateInfo, type ObjectInfo, type StateFilter, type TaskInfo, type TaskSummaryRow } from './internal/state-reader';
import { rejectUnknownKeys } from './options';
import type { PlacementGroupInfo } from './protocol/state';

export type { ActorInfo, NodeStateInfo, ObjectInfo, StateFilter, TaskInfo, TaskState, TaskSummaryRow } from './internal/state-reader';
export type { PlacementGroupInfo, PlacementGroupState } from './protocol/state';

/** Which cluster to read: the one this process joined with init(), or another by address. */
export interface StateOptions {
  /** A cluster's Redis address; without it, the cluster init() joined. */
  address?: string;
  /** Its key prefix. @default 'nodus' (or the namespace init() was given) */
  namespace?: string;
}

/** What to list, of rows of type `Row`. */
export interface ListOptions<Row> extends StateOptions {
  /** Rows whose fields equal these (compared as text, case-insensitively), e.g. `{ state: 'FAILED' }`. */
  filter?: { [K in keyof Row]?: string | number | boolean };
  /** Conditions as Ray writes them, `[['state', '!=', 'FINISHED']]`; with `filter`, both apply. */
  filters?: StateFilter[];
  /** @default 100 */
  limit?: number;
}

const LIST_KEYS = ['address', 'namespace', 'filter', 'filters', 'limit'];

async function withReader<T>(what: string, o: StateOptions & object, valid: string[], fn: (r: StateReader) => Promise<T>): Promise<T> {
  rejectUnknownKeys(what, o, valid);
  if (o.address) {
    const redis = connect(o.address, { name: 'nodus:state' });
    redis.on('error', () => undefined);
    try {
      await waitForRedis(redis, o.address, 5000);
      return await fn(new StateReader(redis, o.namespace));
    } finally {
      redis.disconnect();
    }
  }
  // Read structurally: the context may be another copy of the package's (a worker's user module).
  const ctx = currentContext() as unknown as { redis?: Redis; keys?: { prefix: string }; isClosed?: boolean } | undefined;
  if (!ctx?.redis || ctx.isClosed) throw new NotInitializedError(`${what}() needs a cluster: call \`await init()\` first, or pass { address: 'redis://HOST:PORT' }.`);
  return fn(new StateReader(ctx.redis, o.namespace ?? ctx.keys?.prefix));
}

function query<Row>(o: ListOptions<Row>): ListQuery {
  const filters: StateFilter[] = [...(o.filters ?? []), ...Object.entries(o.filter ?? {}).map(([k, v]): StateFilter => [k, '=', String(v)])];
  return { filters, limit: o.limit };
}

/**
 * Tasks of the event window (submitted, running, finished, failed; newest first), with where they ran and why they failed.
 *
 * @example
 * const failed = await listTasks({ filter: { state: 'FAILED' } });
 * console.log(failed[0].name, failed[0].error?.message, failed[0].node, failed[0].worker);
 */
export function listTasks(o: ListOptions<TaskInfo> = {}): Promise<TaskInfo[]> {
  return withReader('listTasks', o, LIST_KEYS, (r) => r.listTasks(query(o)));
}

/**
 * One task by id (a ref's `id`), with its events; undefined when it is not in the event window.
 *
 * @example
 * const t = await getTask(ref.id);   // { state: 'FINISHED', node, worker, durationMs, events: [...] }
 */
export function getTask(id: string, o: StateOptions = {}): Promise<TaskInfo | undefined> {
  return withReader('getTask', o, ['address', 'namespace'], (r) => r.getTask(id));
}

/**
 * Tasks of the event window grouped by function, counted by state.
 *
 * @example
 * for (const row of await summarizeTasks()) console.log(row.name, row.byState.FAILED);
 */
export function summarizeTasks(o: StateOptions = {}): Promise<TaskSummaryRow[]> {
  return withReader('summarizeTasks', o, ['address', 'namespace'], (r) => r.summarizeTasks());
}

/**
 * Actors, newest first: class, name, state (PENDING, ALIVE, RESTARTING, DEAD), node, restarts, why dead.
 *
 * @example
 * const alive = await listActors({ filter: { state: 'ALIVE', className: 'Counter' } });
 */
export function listActors(o: ListOptions<ActorInfo> = {}): Promise<ActorInfo[]> {
  return withReader('listActors', o, LIST_KEYS, (r) => r.listActors(query(o)));
}

/**
 * One actor by id (a handle's `actorId`).
 *
 * @example
 * const a = await getActorInfo(handle.actorId);   // { state: 'ALIVE', node, pid, restarts, ... }
 */
export function getActorInfo(id: string, o: StateOptions = {}): Promise<ActorInfo | undefined> {
  return withReader('getActorInfo', o, ['address', 'namespace'], (r) => r.getActor(id));
}

/**
 * Objects in the store: references held on each, its owner and size.
 *
 * @example
 * const mine = await listObjects({ filter: { owner: driverId } });
 */
export function listObjects(o: ListOptions<ObjectInfo> = {}): Promise<ObjectInfo[]> {
  return withReader('listObjects', o, LIST_KEYS, (r) => r.listObjects(query(o)));
}

/**
 * Nodes, alive first: resources total and free, workers, running tasks, why dead.
 *
 * @example
 * const alive = await listNodes({ filter: { state: 'ALIVE' } });
 */
export function listNodes(o: ListOptions<NodeStateInfo> = {}): Promise<NodeStateInfo[]> {
  return withReader('listNodes', o, LIST_KEYS, (r) => r.listNodes(query(o)));
}

/**
 * Placement groups: strategy, state, bundles and where each is placed.
 *
 * @example
 * const pending = await listPlacementGroups({ filter: { state: 'PENDING' } });
 */
export function listPlacementGroups(o: ListOptions<PlacementGroupInfo> = {}): Promise<PlacementGroupInfo[]> {
  return withReader('listPlacementGroups', o, LIST_KEYS, (r) => r.listPlacementGroups(query(o)));
}

/**
 * What a task or an actor printed (the last 1000 lines, kept as long as task events), stdout and stderr in order.
 *
 * @example
 * for (const line of await getLogs({ task: ref.id })) console.log(line.text);
 */
export async function getLogs(of: { task: string } | { actor: string }, o: StateOptions = {}): Promise<{ stream: 'stdout' | 'stderr'; text: string }[]> {
  const task = (of as { task?: string }).task;
  const actor = (of as { actor?: string }).actor;
  if (!task === !actor) throw new ConfigError('getLogs() takes { task: id } or { actor: id }.');
  return withReader('getLogs', o, ['address', 'namespace'], async (r) => (await r.logs(task ? 'task' : 'actor', (task ?? actor)!)).lines);
}
