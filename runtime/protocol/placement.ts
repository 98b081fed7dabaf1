/** @module The wire contract of placement: queue constraints (node affinity, labels, placement-group bundles), placement-group records and the reservations the head asks nodes for. */
import { createHash } from 'node:crypto';

/** Named resource counts (the same as Resources in ./index, kept here so the two files do not import each other). */
type Resources = Record<string, number>;

/**
 * A label selector: each key must be on the node, with a value that matches. A value is matched
 * exactly, `!v` means any value but v (or none), `in(a,b)` one of the listed, `!in(a,b)` none of them.
 */
export type LabelSelector = Record<string, string>;

/** Where a task or an actor may run, as its options resolve it (JSON, it travels in actor records). */
export type Placement =
  | { kind: 'spread'; labels?: LabelSelector }
  | { kind: 'node'; node: string; soft: boolean; labels?: LabelSelector }
  | { kind: 'labels'; labels: LabelSelector }
  | { kind: 'bundle'; pg: string; bundle: number };

/**
 * What a constrained queue asks of the node agents that take from it. Only matching agents open the
 * queue: a node with that id, a node whose labels match, the node holding that bundle. `fallback` is the
 * queue a soft affinity's jobs move to when their node is dead.
 */
export interface QueueConstraint {
  node?: string;
  soft?: boolean;
  labels?: LabelSelector;
  pg?: string;
  bundle?: number;
  fallback?: string;
}

/** Separates a queue's shape from its constraint: `task.CPU1@node-ab12cd34`. */
export const CONSTRAINT_SEP = '@';

function hash(v: unknown): string {
  return createHash('sha1').update(JSON.stringify(v)).digest('hex').slice(0, 10);
}

/** A label selector with its keys in order, so equal selectors name one queue. */
function canonical(labels: LabelSelector): LabelSelector {
  return Object.fromEntries(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

/** The queue a constraint puts jobs of queue `base` (`task.<shape>` or `actor.<shape>`) in. */
export function constrainedQueue(base: string, c: QueueConstraint): string {
  if (c.pg !== undefined) return `${base}${CONSTRAINT_SEP}${c.pg}-${c.bundle}`;
  const l = c.labels && Object.keys(c.labels).length ? `l${hash(canonical(c.labels))}` : '';
  if (c.node) return `${base}${CONSTRAINT_SEP}${c.soft ? 'soft-' : ''}${c.node}${l ? `-${l}` : ''}`;
  return l ? `${base}${CONSTRAINT_SEP}${l}` : base;
}

/** The unconstrained queue of a (maybe constrained) queue name. */
export function baseQueue(queue: string): string {
  const i = queue.indexOf(CONSTRAINT_SEP);
  return i < 0 ? queue : queue.slice(0, i);
}

export function isConstrained(queue: string): boolean {
  return queue.includes(CONSTRAINT_SEP);
}

/** The queue a placement's jobs wait in while no node has been picked for them (the labels' queue, or the plain one). */
export function queueFor(base: string, p: Placement | undefined): { queue: string; constraint?: QueueConstraint } {
  if (!p || p.kind === 'spread') return withConstraint(base, p?.labels ? { labels: canonical(p.labels) } : undefined);
  if (p.kind === 'labels') return withConstraint(base, { labels: canonical(p.labels) });
  if (p.kind === 'bundle') return withConstraint(base, { pg: p.pg, bundle: p.bundle });
  if (!p.soft) return withConstraint(base, { node: p.node, labels: p.labels && canonical(p.labels) });
  // A soft affinity waits on its node's queue; should that node die, its jobs move to the fallback.
  const fallback = queueFor(base, p.labels ? { kind: 'labels', labels: p.labels } : undefined).queue;
  return withConstraint(base, { node: p.node, soft: true, labels: p.labels && canonical(p.labels), fallback });
}

/** The queue an actor is placed through again after its node died: SPREAD and soft affinity anywhere (within its labels), the rest as at first. */
export function replacementQueue(base: string, p: Placement): { queue: string; constraint?: QueueConstraint } {
  if (p.kind === 'spread' || (p.kind === 'node' && p.soft)) return queueFor(base, p.labels ? { kind: 'labels', labels: p.labels } : undefined);
  return queueFor(base, p);
}

function withConstraint(base: string, c: QueueConstraint | undefined): { queue: string; constraint?: QueueConstraint } {
  if (!c || (!c.node && c.pg === undefined && !(c.labels && Object.keys(c.labels).length))) return { queue: base };
  return { queue: constrainedQueue(base, c), constraint: c };
}

/** True when a node's labels satisfy a selector. */
export function matchLabels(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  for (const [k, want] of Object.entries(selector ?? {})) {
    const have = labels?.[k];
    const neg = want.startsWith('!');
    const body = neg ? want.slice(1) : want;
    const m = /^in\((.*)\)$/.exec(body);
    const hit = have !== undefined && (m ? m[1].split(',').map((s) => s.trim()).includes(have) : have === body);
    if (hit === neg) return false;
  }
  return true;
}

export type PlacementStrategy = 'PACK' | 'SPREAD' | 'STRICT_PACK' | 'STRICT_SPREAD';
export const PLACEMENT_STRATEGIES: readonly PlacementStrategy[] = ['PACK', 'SPREAD', 'STRICT_PACK', 'STRICT_SPREAD'];

/**
 * PENDING: waiting for room (or for nodes: infeasible says why); CREATED: every bundle reserved;
 * RESCHEDULING: a node holding bundles died and they are being reserved elsewhere; REMOVED: gone.
 */
export type PlacementGroupState = 'PENDING' | 'CREATED' | 'RESCHEDULING' | 'REMOVED';

/** A placement group's record (JSON in the `pgs` hash). */
export interface PlacementGroupRecord {
  id: string;
  name: string;
  strategy: PlacementStrategy;
  bundles: Resources[];
  /** The node holding each bundle, '' while it holds none. */
  nodes: string[];
  state: PlacementGroupState;
  /** The driver (or actor) that made it: it is removed with its creator. */
  owner: string;
  createdAt: number;
  /** Why it cannot be placed with the nodes alive now (infeasible), if so. */
  infeasible?: string;
  /** A reservation under way (two-phase): the node asked to hold each missing bundle ('' for the others), and since when. */
  prepared?: string[];
  preparedAt?: number;
}

/**
 * A bundle the head asked a node to hold (JSON in the node's bundles hash, field `<pg>-<index>`). The node
 * reserves it (prepare) and says so in the group's replies; the head commits it once every bundle of the
 * group is reserved; a node opens a bundle's queues only once it is committed.
 */
export interface BundleEntry {
  demand: Resources;
  committed: boolean;
}

export function bundleKey(pg: string, index: number): string {
  return `${pg}-${index}`;
}
