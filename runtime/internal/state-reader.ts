/**
 * @module Reads the cluster's state for the state API, `nodus list|get|logs|summary` and the panel's cluster page:
 * tasks folded from their events, actors from their records, objects from the store, nodes, placement groups, and
 * the logs the agents kept. Reads only; nothing here is on a hot path.
 */
import type { Redis } from 'ioredis';
import { ConfigError } from '../errors';
import { Keys, ValueTag, type ActorRecord, type NodeInfo, type PlacementGroupRecord, type Resources } from '../protocol';
import { EventKind, STATE_VERSION, StateKeys, parseEvents, type PlacementGroupInfo, type TaskEvent } from '../protocol/state';
import { diedFailure } from './actor-lifecycle';
import { parseRecord, storeKeys } from './local-store';

export type TaskState = 'PENDING' | 'RUNNING' | 'FINISHED' | 'FAILED';
export type TaskEventName = 'SUBMITTED' | 'RUNNING' | 'FINISHED' | 'FAILED' | 'RETRIED';

/** A task as its events tell it. */
export interface TaskInfo {
  taskId: string;
  /** The function's name ('?' when its submission fell out of the event window). */
  name: string;
  state: TaskState;
  /** The node and worker process that ran it last ('' before it ran). */
  node: string;
  worker: string;
  pid: number;
  /** Which run this is: 1, then 2 after a retry, ... */
  attempt: number;
  /** The driver (or actor) its results belong to. */
  owner: string;
  /** Its resource shape, e.g. `CPU1`. */
  shape: string;
  submittedAt: number | null;
  startedAt: number | null;
  endedAt: number | null;
  /** From start to end of its last run, when it ended. */
  durationMs: number | null;
  /** Why it failed, when it did. */
  error: { name: string; message: string } | null;
  /** Its events in order. */
  events: { event: TaskEventName; at: number; node?: string; worker?: string; detail?: string }[];
}

export interface ActorInfo {
  actorId: string;
  className: string;
  name: string;
  namespace: string;
  state: 'PENDING' | 'ALIVE' | 'RESTARTING' | 'DEAD';
  node: string;
  pid: number;
  restarts: number;
  detached: boolean;
  resources: Resources;
  /** Why it is dead, when it is. */
  deathCause: string | null;
  createdAt: number;
}

export interface ObjectInfo {
  objectId: string;
  /** References held on it across the cluster. */
  refCount: number;
  /** The driver (or actor) that owns it: it dies with its owner. */
  owner: string;
  sizeBytes: number;
  /** Where its bytes are: in Redis, or in a node's object store (shared memory, or its spill folder on disk). */
  location: 'redis' | 'node store' | 'spilled';
  /** The node store holding it (`<agent pid>-<id>`), when it is in one. */
  store?: string;
}

export interface NodeStateInfo {
  nodeId: string;
  state: 'ALIVE' | 'DEAD';
  host: string;
  pid: number;
  isHeadNode: boolean;
  total: Resources;
  free: Resources;
  workers: number;
  running: number;
  startedAt: number;
  diedAt: number | null;
  deathReason: string | null;
}

/** One row of `summary tasks`: a function's tasks by state. */
export interface TaskSummaryRow {
  name: string;
  total: number;
  byState: Record<TaskState, number>;
}

/** Field = value (or != value) conditions, compared as text and case-insensitively. */
export type StateFilter = [string, '=' | '!=', string];

export interface ListQuery {
  filters?: StateFilter[];
  /** @default 100 */
  limit?: number;
}

const EVENT_NAMES: TaskEventName[] = ['SUBMITTED', 'RUNNING', 'FINISHED', 'FAILED', 'RETRIED'];
/** Events at the same millisecond from different processes: this is their order. */
const RANK = [0, 1, 3, 3, 2];

/** The fields each kind of row can be filtered on. */
export const FILTER_FIELDS = {
  tasks: ['taskId', 'name', 'state', 'node', 'worker', 'pid', 'attempt', 'owner', 'shape'],
  actors: ['actorId', 'className', 'name', 'namespace', 'state', 'node', 'pid', 'restarts', 'detached'],
  objects: ['objectId', 'refCount', 'owner', 'sizeBytes'],
  nodes: ['nodeId', 'state', 'host', 'pid', 'isHeadNode'],
  'placement-groups': ['id', 'name', 'strategy', 'state'],
} as const;

export type StateKind = keyof typeof FILTER_FIELDS;

/** Parses `state=RUNNING` / `name!=square` as the CLI takes them. */
export function parseFilter(text: string): StateFilter {
  const m = /^([A-Za-z]+)\s*(!=|=)\s*(.*)$/.exec(text.trim());
  if (!m) throw new ConfigError(`--filter takes field=value or field!=value, e.g. --filter state=RUNNING; got '${text}'.`);
  return [m[1], m[2] as '=' | '!=', m[3]];
}

/** Keeps the rows that pass every filter; a filter on a field the rows do not have is an error naming those they have. */
export function applyFilters<T extends object>(kind: StateKind, rows: T[], filters: StateFilter[] = []): T[] {
  const valid = FILTER_FIELDS[kind] as readonly string[];
  for (const [field] of filters) {
    if (!valid.includes(field)) {
      const near = valid.find((v) => v.toLowerCase() === field.toLowerCase());
      throw new ConfigError(`${kind} cannot be filtered on '${field}'.${near ? ` Did you mean '${near}'?` : ''} Fields: ${valid.join(', ')}.`);
    }
  }
  return rows.filter((r) =>
    filters.every(([field, op, value]) => {
      const same = String((r as Record<string, unknown>)[field] ?? '').toLowerCase() === value.toLowerCase();
      return op === '=' ? same : !same;
    }),
  );
}

function limitOf(q: ListQuery | undefined): number {
  const limit = q?.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1) throw new ConfigError(`limit must be a whole number >= 1, got ${JSON.stringify(limit)}.`);
  return limit;
}

/** Reads the state of the cluster whose keys are under `prefix`, on a connection it is given (and does not close). */
export class StateReader {
  private readonly keys: Keys;
  private readonly state: StateKeys;

  constructor(
    private readonly redis: Redis,
    prefix?: string,
  ) {
    this.keys = new Keys(prefix);
    this.state = new StateKeys(prefix);
  }

  /** Every task in the event window, newest first. */
  async allTasks(): Promise<TaskInfo[]> {
    const tasks = new Map<string, TaskInfo & { order: [number, number][] }>();
    let start = '-';
    for (;;) {
      const entries = await this.redis.xrangeBuffer(this.state.taskEvents, start, '+', 'COUNT', 500);
      for (const [, fields] of entries) {
        let v = 0;
        let body: Buffer | undefined;
        for (let i = 0; i < fields.length; i += 2) {
          const f = fields[i].toString();
          if (f === 'v') v = Number(fields[i + 1].toString());
          else if (f === 'e') body = fields[i + 1];
        }
        if (v !== STATE_VERSION || !body) continue;
        for (const e of parseEvents(body.toString('utf8'))) foldEvent(tasks, e);
      }
      if (entries.length < 500) break;
      start = `(${entries[entries.length - 1][0].toString()}`;
    }
    const out = [...tasks.values()].map(finishTask);
    out.sort((a, b) => (b.submittedAt ?? b.startedAt ?? 0) - (a.submittedAt ?? a.startedAt ?? 0));
    return out;
  }

  async listTasks(q?: ListQuery): Promise<TaskInfo[]> {
    return applyFilters('tasks', await this.allTasks(), q?.filters).slice(0, limitOf(q));
  }

  async getTask(id: string): Promise<TaskInfo | undefined> {
    return (await this.allTasks()).find((t) => t.taskId === id);
  }

  /** Tasks in the window grouped by function and state, the busiest functions first. */
  async summarizeTasks(): Promise<TaskSummaryRow[]> {
    const rows = new Map<string, TaskSummaryRow>();
    for (const t of await this.allTasks()) {
      let row = rows.get(t.name);
      if (!row) rows.set(t.name, (row = { name: t.name, total: 0, byState: { PENDING: 0, RUNNING: 0, FINISHED: 0, FAILED: 0 } }));
      row.total++;
      row.byState[t.state]++;
    }
    return [...rows.values()].sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
  }

  async allActors(): Promise<ActorInfo[]> {
    const ids = await this.redis.smembers(this.keys.actors);
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.actor(id));
    const recs = ((await pipe.exec()) ?? []).map(([, r]) => r as ActorRecord);
    const out: ActorInfo[] = [];
    for (const [i, a] of recs.entries()) {
      if (!a?.id) continue;
      let deathCause: string | null = null;
      if (a.state === 'dead') {
        try {
          const f = diedFailure(ids[i], a.cause ?? '');
          deathCause = `${f.name}: ${f.message}`;
        } catch {
          deathCause = 'unknown';
        }
      }
      out.push({
        actorId: ids[i],
        className: a.cls,
        name: a.name,
        namespace: a.namespace,
        state: a.state.toUpperCase() as ActorInfo['state'],
        node: a.node,
        pid: Number(a.pid) || 0,
        restarts: Number(a.restarts) || 0,
        detached: a.detached === '1',
        resources: safeJson(a.demand, {}),
        deathCause,
        createdAt: Number(a.createdAt) || 0,
      });
    }
    return out.sort((a, b) => b.createdAt - a.createdAt);
  }

  async listActors(q?: ListQuery): Promise<ActorInfo[]> {
    return applyFilters('actors', await this.allActors(), q?.filters).slice(0, limitOf(q));
  }

  async getActor(id: string): Promise<ActorInfo | undefined> {
    return (await this.allActors()).find((a) => a.actorId === id);
  }

  async listNodes(q?: ListQuery): Promise<NodeStateInfo[]> {
    const nodes = (await this.redis.hvals(this.keys.nodes)).map((s) => JSON.parse(s) as NodeInfo);
    nodes.sort((a, b) => Number(b.state === 'alive') - Number(a.state === 'alive') || a.startedAt - b.startedAt);
    const rows = nodes.map(
      (n): NodeStateInfo => ({
        nodeId: n.id,
        state: n.state === 'alive' ? 'ALIVE' : 'DEAD',
        host: n.host,
        pid: n.pid,
        isHeadNode: !!n.isHeadNode,
        total: n.total,
        free: n.free,
        workers: n.workers,
        running: n.running,
        startedAt: n.startedAt,
        diedAt: n.diedAt ?? null,
        deathReason: n.deathReason ?? null,
      }),
    );
    return applyFilters('nodes', rows, q?.filters).slice(0, limitOf(q));
  }

  /**
   * Objects in the store (found by SCAN, so in no particular order): their references, owner and size. Filters apply
   * to what the scan found up to `limit`.
   */
  async listObjects(q?: ListQuery): Promise<ObjectInfo[]> {
    const limit = limitOf(q);
    const out: ObjectInfo[] = [];
    const metaPrefix = this.keys.meta('');
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${metaPrefix}*`, 'COUNT', 1000);
      cursor = next;
      const ids = keys.map((k) => k.slice(metaPrefix.length)).filter((id) => id && !id.includes(':'));
      if (!ids.length) continue;
      const pipe = this.redis.pipeline();
      for (const id of ids) pipe.hmget(this.keys.meta(id), 'rc', 'own', 'ch').strlen(this.keys.value(id)).getrange(this.keys.value(id), 0, 0);
      const res = ((await pipe.exec()) ?? []).map(([, r]) => r);
      const rows: (ObjectInfo & { chunks: number })[] = ids.map((id, i) => {
        const [rc, own, ch] = res[3 * i] as (string | null)[];
        return { objectId: id, refCount: Number(rc) || 0, owner: own ?? '', sizeBytes: Number(res[3 * i + 1]) || 0, location: 'redis', chunks: Number(ch) || 0 };
      });
      // A node store's object: Redis has the record of where it is, with its size.
      const stored = rows.filter((_, i) => res[3 * i + 2] === String.fromCharCode(ValueTag.Stored));
      if (stored.length) {
        const records = await this.redis.mgetBuffer(...stored.map((r) => this.keys.value(r.objectId)));
        stored.forEach((r, i) => {
          const head = records[i];
          if (!head) return;
          const rec = parseRecord(head);
          Object.assign(r, { sizeBytes: rec.size, location: rec.spilled ? 'spilled' : 'node store', store: rec.store });
        });
      }
      // A chunked value's head is small: its chunks hold the bytes.
      const chunked = rows.filter((r) => r.chunks > 0);
      if (chunked.length) {
        const p2 = this.redis.pipeline();
        for (const r of chunked) for (let c = 0; c < r.chunks; c++) p2.strlen(this.keys.chunk(r.objectId, c));
        const lens = ((await p2.exec()) ?? []).map(([, n]) => Number(n) || 0);
        let k = 0;
        for (const r of chunked) for (let c = 0; c < r.chunks; c++) r.sizeBytes += lens[k++];
      }
      out.push(...applyFilters('objects', rows.map(({ chunks: _chunks, ...o }) => o), q?.filters));
    } while (cursor !== '0' && out.length < limit);
    return out.slice(0, limit);
  }

  /**
   * Objects in the store and the bytes of their values, counted by SCAN over at most `maxKeys` keys (`complete` false
   * when it stopped there: a page that refreshes every few seconds must not walk a store of millions each time).
   */
  async objectStoreUsage(maxKeys = 50_000): Promise<{ objects: number; bytes: number; complete: boolean }> {
    let objects = 0;
    let bytes = 0;
    let seen = 0;
    let cursor = '0';
    const valuePrefix = this.keys.value('');
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', `${valuePrefix}*`, 'COUNT', 2000);
      cursor = next;
      seen += found.length;
      if (!found.length) continue;
      const pipe = this.redis.pipeline();
      for (const k of found) pipe.strlen(k);
      for (const [, n] of (await pipe.exec()) ?? []) bytes += Number(n) || 0;
      // Objects in node stores: their records are short; the stores' counters hold their bytes (added below).
      // A chunked value is one object: its head key, not its chunks (v:<id>:<i>).
      objects += found.filter((k) => !k.slice(valuePrefix.length).includes(':')).length;
    } while (cursor !== '0' && seen < maxKeys);
    const stores = Object.values(await this.redis.hgetall(this.keys.nodes))
      .map((raw) => safeJson<NodeInfo | null>(raw, null))
      .filter((n): n is NodeInfo => !!n && n.state === 'alive' && !!n.store)
      .map((n) => storeKeys.used(this.keys.prefix, n.store!.id));
    if (stores.length) bytes += (await this.redis.mget(...stores)).reduce((n, v) => n + (Number(v) || 0), 0);
    return { objects, bytes, complete: cursor === '0' };
  }

  /** Placement groups as their manager recorded them (Keys.placementGroups). */
  async listPlacementGroups(q?: ListQuery): Promise<PlacementGroupInfo[]> {
    const rows = Object.values(await this.redis.hgetall(this.keys.placementGroups))
      .map((raw) => safeJson<PlacementGroupRecord | null>(raw, null))
      .filter((g): g is PlacementGroupRecord => !!g)
      .map(groupInfo)
      .sort((a, b) => b.createdAt - a.createdAt);
    return applyFilters('placement-groups', rows, q?.filters).slice(0, limitOf(q));
  }

  /** The last lines a task or an actor printed, from `from` on (for --follow): each `{ stream, text }`. */
  async logs(kind: 'task' | 'actor', id: string, from = 0): Promise<{ lines: { stream: 'stdout' | 'stderr'; text: string }[]; next: number }> {
    const key = kind === 'task' ? this.state.taskLog(id) : this.state.actorLog(id);
    const raw = await this.redis.lrange(key, from, -1);
    return { lines: raw.map((l) => ({ stream: l[0] === 'E' ? 'stderr' : 'stdout', text: l.slice(1) })), next: from + raw.length };
  }
}

function safeJson<T>(raw: string | undefined, dflt: T): T {
  try {
    return raw ? (JSON.parse(raw) as T) : dflt;
  } catch {
    return dflt;
  }
}

function foldEvent(tasks: Map<string, TaskInfo & { order: [number, number][] }>, [id, kind, at, d]: TaskEvent): void {
  let t = tasks.get(id);
  if (!t) {
    t = { taskId: id, name: '?', state: 'PENDING', node: '', worker: '', pid: 0, attempt: 0, owner: '', shape: '', submittedAt: null, startedAt: null, endedAt: null, durationMs: null, error: null, events: [], order: [] };
    tasks.set(id, t);
  }
  const event = EVENT_NAMES[kind] ?? 'SUBMITTED';
  const e: TaskInfo['events'][number] = { event, at };
  switch (kind) {
    case EventKind.Submitted:
      [t.name, t.owner, t.shape] = d;
      t.submittedAt = at;
      break;
    case EventKind.Running:
      e.node = String(d[0]);
      e.worker = String(d[1]);
      if (d[4] !== undefined && t.name === '?') t.name = String(d[4]);
      break;
    case EventKind.Finished:
      e.node = String(d[0]);
      e.worker = String(d[1]);
      break;
    case EventKind.Failed:
      e.node = String(d[0]);
      e.worker = String(d[1]);
      e.detail = `${String(d[2])}: ${String(d[3])}`;
      break;
    case EventKind.Retried:
      e.node = String(d[0]);
      e.worker = String(d[1]);
      e.detail = String(d[2]);
      break;
  }
  t.events.push(e);
  t.order.push([at, RANK[kind] ?? 0]);
  // Kept for the last run's fields below.
  (e as { raw?: string[] }).raw = d;
}

function finishTask(t: TaskInfo & { order: [number, number][] }): TaskInfo {
  const idx = t.events.map((_, i) => i).sort((a, b) => t.order[a][0] - t.order[b][0] || t.order[a][1] - t.order[b][1] || a - b);
  const events = idx.map((i) => t.events[i]);
  const { order: _order, ...out } = t;
  out.events = events;
  for (const e of events) {
    const raw = (e as { raw?: string[] }).raw ?? [];
    delete (e as { raw?: unknown }).raw;
    switch (e.event) {
      case 'RUNNING':
        out.state = 'RUNNING';
        out.node = e.node ?? '';
        out.worker = e.worker ?? '';
        out.pid = Number(raw[2]) || 0;
        out.attempt = Number(raw[3]) || out.attempt + 1;
        out.startedAt = e.at;
        out.endedAt = null;
        out.error = null;
        break;
      case 'FINISHED':
      case 'FAILED':
        out.state = e.event;
        out.node ||= e.node ?? '';
        out.worker ||= e.worker ?? '';
        out.endedAt = e.at;
        out.error = e.event === 'FAILED' ? { name: String(raw[2]), message: String(raw[3]) } : null;
        break;
      case 'RETRIED':
        out.state = 'PENDING';
        break;
      default:
        if (out.state !== 'RUNNING') out.state = 'PENDING';
    }
  }
  // A submission seen after its run (clocks of two machines apart): the run decides.
  const last = events.filter((e) => e.event !== 'SUBMITTED').pop();
  if (last && out.state === 'PENDING' && last.event !== 'RETRIED') out.state = last.event === 'RUNNING' ? 'RUNNING' : (last.event as TaskState);
  out.durationMs = out.startedAt !== null && out.endedAt !== null ? out.endedAt - out.startedAt : null;
  return out;
}

/** A placement group as the state API shows it: each bundle with the node holding it; pending with no way to fit, infeasible. */
function groupInfo(g: PlacementGroupRecord): PlacementGroupInfo {
  return {
    id: g.id,
    name: g.name,
    strategy: g.strategy,
    state: g.state === 'PENDING' && g.infeasible ? 'INFEASIBLE' : g.state,
    bundles: g.bundles.map((resources, i) => ({ resources, node: g.nodes[i] ?? '' })),
    createdAt: g.createdAt,
    ...(g.infeasible ? { reason: g.infeasible } : {}),
  };
}
