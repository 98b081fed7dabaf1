/** @module Placement groups: reserve a gang of resources (bundles) across nodes, all or none, and run tasks and actors in them. */
import { randomBytes } from 'node:crypto';
import { ConfigError } from './errors';
import type { CoreContext } from './internal/context';
import { requireContext } from './internal/global';
import { createGroup, newGroupRecord, removeGroup, waitReady } from './internal/placement-groups';
import { rejectUnknownKeys } from './options';
import { PLACEMENT_STRATEGIES, type PlacementStrategy, type Resources } from './protocol';

/** Options of placementGroup(). */
export interface PlacementGroupOptions {
  /** PACK: as few nodes as fit; SPREAD: as many as fit; STRICT_PACK: one node; STRICT_SPREAD: a different node per bundle. @default 'PACK' */
  strategy?: PlacementStrategy;
  /** Shown in `nodus status` and errors. @default none */
  name?: string;
}

const RESOURCE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/**
 * A placement group: its bundles are reserved on nodes (all of them, or none yet). Tasks and actors run in
 * a bundle with `.options({ placementGroup: pg, bundleIndex })`. It can be passed to tasks and actors.
 *
 * @example
 * const pg = placementGroup([{ CPU: 1 }, { CPU: 1 }], { strategy: 'STRICT_SPREAD' });
 * await pg.ready();
 * await get(work.options({ placementGroup: pg, bundleIndex: 1 }).remote());
 * await removePlacementGroup(pg);
 */
export class PlacementGroup {
  constructor(
    /** Unique in the cluster. */
    readonly id: string,
    readonly bundleSpecs: readonly Resources[],
    readonly strategy: PlacementStrategy,
    readonly name: string,
  ) {}

  /**
   * Resolves once every bundle is reserved. Rejects with GetTimeoutError after `timeout` ms (the group
   * stays pending), or when the group is removed first.
   */
  async ready(options: { timeout?: number } = {}): Promise<void> {
    rejectUnknownKeys('ready', options, ['timeout']);
    const ctx = requireContext('pg.ready()') as CoreContext;
    await (this.created ?? Promise.resolve());
    await waitReady(ctx, this.id, options.timeout);
  }

  /** The write of the group's record (in the process that made it). */
  declare private created?: Promise<void>;

  toJSON(): { id: string; bundleSpecs: readonly Resources[]; strategy: PlacementStrategy; name: string } {
    return { id: this.id, bundleSpecs: this.bundleSpecs, strategy: this.strategy, name: this.name };
  }
}

/**
 * Reserves bundles of resources across the cluster's nodes, atomically: the group holds all of them or
 * none. Returns at once; `await pg.ready()` waits for the reservation. A group that no set of alive nodes
 * could hold stays pending, warns, and is listed as infeasible by `nodus status`. When a node holding
 * bundles dies, they are reserved again elsewhere. The group lives until removePlacementGroup() or the
 * end of the driver that made it.
 *
 * @example
 * const pg = placementGroup([{ CPU: 1 }, { CPU: 1, GPU: 1 }], { strategy: 'PACK', name: 'trainer' });
 * await pg.ready();
 */
export function placementGroup(bundles: Resources[], options: PlacementGroupOptions = {}): PlacementGroup {
  rejectUnknownKeys('placementGroup', options, ['strategy', 'name']);
  const strategy = options.strategy ?? 'PACK';
  if (!PLACEMENT_STRATEGIES.includes(strategy)) throw new ConfigError(`strategy must be one of ${PLACEMENT_STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}.`);
  if (options.name !== undefined && (typeof options.name !== 'string' || !/^[\w.-]{1,100}$/.test(options.name))) {
    throw new ConfigError(`name must be letters, digits, '_', '.', '-', got ${JSON.stringify(options.name)}.`);
  }
  if (!Array.isArray(bundles) || !bundles.length) throw new ConfigError('placementGroup() takes a non-empty list of bundles, e.g. [{ CPU: 1 }, { CPU: 1, GPU: 1 }].');
  const specs = bundles.map((b, i) => {
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new ConfigError(`bundle ${i} must be an object of resource names to amounts, e.g. { CPU: 1 }.`);
    const entries = Object.entries(b);
    if (!entries.length || entries.every(([, v]) => v === 0)) throw new ConfigError(`bundle ${i} is empty: give it some resources, e.g. { CPU: 1 }.`);
    for (const [k, v] of entries) {
      if (!RESOURCE_NAME.test(k)) throw new ConfigError(`bundle ${i}: resource name '${k}' must match ${RESOURCE_NAME} (CPU, GPU, memory or a custom resource).`);
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ConfigError(`bundle ${i}: ${k} must be a number >= 0, got ${JSON.stringify(v)}.`);
    }
    return Object.fromEntries(entries.filter(([, v]) => v > 0)) as Resources;
  });
  const ctx = requireContext('placementGroup()') as CoreContext;
  const pg = new PlacementGroup(`pg${randomBytes(6).toString('hex')}`, specs, strategy, options.name ?? '');
  const created = createGroup(ctx, newGroupRecord(pg.id, specs, strategy, pg.name, ctx.ownerId));
  created.catch(() => undefined);
  Object.defineProperty(pg, 'created', { value: created });
  return pg;
}

/**
 * Removes a placement group: the actors in it are killed, its tasks cancelled (TaskCancelledError), and
 * its bundles' resources freed.
 *
 * @example
 * await removePlacementGroup(pg);
 */
export async function removePlacementGroup(pg: PlacementGroup): Promise<void> {
  if (!pg || typeof pg.id !== 'string') throw new ConfigError('removePlacementGroup() takes what placementGroup() returned.');
  const ctx = requireContext('removePlacementGroup()') as CoreContext;
  await removeGroup(ctx, pg.id);
}
