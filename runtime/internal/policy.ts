/** @module The scheduling policy: which demands fit where. Pure functions shared by the head, node agents and drivers, so it lives in runtime/, which all of them import (never the reverse). */
import type { NodeInfo, Resources } from '../protocol';

/** True when every resource in `demand` is available in `available`. */
export function fits(demand: Resources, available: Resources): boolean {
  for (const [k, v] of Object.entries(demand)) {
    if (v > 0 && (available[k] ?? 0) + 1e-9 < v) return false;
  }
  return true;
}

/** Subtracts a demand from free resources, or throws if that would oversubscribe. */
export function take(free: Resources, demand: Resources): Resources {
  if (!fits(demand, free)) throw new Error(`oversubscription: ${JSON.stringify(demand)} does not fit ${JSON.stringify(free)}`);
  const out = { ...free };
  for (const [k, v] of Object.entries(demand)) if (v > 0) out[k] = round((out[k] ?? 0) - v);
  return out;
}

/** Takes a demand back that was lent out meanwhile: free resources may go below zero until work ends. */
export function reclaim(free: Resources, demand: Resources): Resources {
  const out = { ...free };
  for (const [k, v] of Object.entries(demand)) if (v > 0) out[k] = round((out[k] ?? 0) - v);
  return out;
}

/** Gives a demand back to free resources, never above the node's total. */
export function give(free: Resources, demand: Resources, total: Resources): Resources {
  const out = { ...free };
  for (const [k, v] of Object.entries(demand)) if (v > 0) out[k] = Math.min(total[k] ?? 0, round((out[k] ?? 0) + v));
  return out;
}

// Fractional resources (0.5 CPU) would otherwise drift with float error.
function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}

/** A demand is feasible when some alive node could run it if it were idle. */
export function isFeasible(demand: Resources, nodes: Pick<NodeInfo, 'state' | 'total'>[]): boolean {
  return nodes.some((n) => n.state === 'alive' && fits(demand, n.total));
}

/** The alive node whose totals come closest to a demand, to say in a warning what the cluster has. */
export function largestNode(nodes: Pick<NodeInfo, 'state' | 'total'>[]): Resources | undefined {
  let best: Resources | undefined;
  for (const n of nodes) if (n.state === 'alive' && (!best || (n.total.CPU ?? 0) > (best.CPU ?? 0))) best = n.total;
  return best;
}

/**
 * Order in which a node agent offers its free resources to the queues of each shape.
 * Larger demands go first: small tasks arrive often and would otherwise keep a
 * node's resources too fragmented for a large task ever to start.
 */
export function dispatchOrder<T extends { demand: Resources }>(shapes: T[]): T[] {
  const weight = (d: Resources) => Object.values(d).reduce((a, b) => a + b, 0);
  return [...shapes].sort((a, b) => weight(b.demand) - weight(a.demand));
}
