/** @module Where a placement group's bundles go: a pure function of the strategy and the nodes' free resources, used by the head to place groups and by drivers to warn about groups no node set could hold. */
import type { PlacementStrategy, Resources } from '../protocol';
import { fits, take } from './policy';

/**
 * Places the bundles of a group on nodes, as its strategy asks: PACK (as few nodes as fit), SPREAD (as many
 * as fit), STRICT_PACK (one node), STRICT_SPREAD (a node each). `fixed` keeps the bundles already held (a
 * group placed again after a node died); null when these nodes cannot hold the rest.
 */
export function planBundles(bundles: Resources[], strategy: PlacementStrategy, fixed: string[], nodes: { id: string; free: Resources }[]): string[] | null {
  const free = new Map(nodes.map((n) => [n.id, { ...n.free }]));
  const plan = bundles.map((_, i) => fixed[i] ?? '');
  const missing = plan.map((n, i) => (n ? -1 : i)).filter((i) => i >= 0);
  const used = (id: string) => plan.filter((n) => n === id).length;
  const put = (i: number, id: string) => {
    free.set(id, take(free.get(id)!, bundles[i]));
    plan[i] = id;
  };
  const ids = nodes.map((n) => n.id).filter((id) => free.has(id));
  /** All the missing bundles on one node: the first that holds them all (one already used first). */
  const onOne = (candidates: string[]) => {
    const sum: Resources = {};
    for (const i of missing) for (const [k, v] of Object.entries(bundles[i])) sum[k] = (sum[k] ?? 0) + v;
    return candidates.find((id) => fits(sum, free.get(id)!));
  };
  if (strategy === 'STRICT_PACK' || strategy === 'PACK') {
    const held = [...new Set(plan.filter(Boolean))];
    const one = onOne(strategy === 'STRICT_PACK' && held.length ? held : [...held, ...ids.filter((id) => !held.includes(id))]);
    if (one) {
      for (const i of missing) put(i, one);
      return plan;
    }
    if (strategy === 'STRICT_PACK') return null;
  }
  for (const i of missing) {
    const fitting = ids.filter((id) => fits(bundles[i], free.get(id)!));
    let pick: string | undefined;
    if (strategy === 'PACK') pick = fitting.find((id) => used(id) > 0) ?? fitting[0];
    else if (strategy === 'STRICT_SPREAD') pick = fitting.find((id) => used(id) === 0);
    else pick = [...fitting].sort((a, b) => used(a) - used(b))[0];
    if (!pick) return null;
    put(i, pick);
  }
  return plan;
}
