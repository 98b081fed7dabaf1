/** @module A node's resources as pools: the node's own, and one per placement-group bundle it holds (set aside from the node's until released). */
import { fits, give, reclaim, take } from '../runtime/internal/policy';
import type { Resources } from '../runtime/protocol';

export interface Pool {
  free: Resources;
  total: Resources;
}

export interface BundlePool extends Pool {
  /** The head committed it (every bundle of its group is reserved): its queues are open only from then on. */
  committed: boolean;
}

/**
 * Work of a bundle's queues takes from the bundle's pool, other work from the node's. A bundle reserved
 * here is taken from the node's pool whole; released, what of it is free goes back at once, and what its
 * work still holds goes back to the node as that work ends.
 */
export class Pools {
  readonly node: Pool;
  readonly bundles = new Map<string, BundlePool>();

  constructor(total: Resources) {
    this.node = { free: { ...total }, total: { ...total } };
  }

  /** The pool of `key` ('' or a bundle no longer held: the node's). */
  of(key: string): Pool {
    return (key && this.bundles.get(key)) || this.node;
  }

  fits(key: string, demand: Resources): boolean {
    return fits(demand, this.of(key).free);
  }

  /** Takes a demand; if a waiting task took its lent CPU back meanwhile, the pool runs over for a moment (see reclaim). */
  take(key: string, demand: Resources): void {
    const p = this.of(key);
    p.free = fits(demand, p.free) ? take(p.free, demand) : reclaim(p.free, demand);
  }

  reclaim(key: string, demand: Resources): void {
    const p = this.of(key);
    p.free = reclaim(p.free, demand);
  }

  give(key: string, demand: Resources): void {
    const p = this.of(key);
    p.free = give(p.free, demand, p.total);
  }

  /** Sets a bundle aside from the node's free resources; false when they are not free now. */
  reserve(key: string, demand: Resources): boolean {
    if (this.bundles.has(key)) return true;
    if (!fits(demand, this.node.free)) return false;
    this.node.free = take(this.node.free, demand);
    this.bundles.set(key, { free: { ...demand }, total: { ...demand }, committed: false });
    return true;
  }

  /** Gives a bundle back: what of it is free returns now, the rest as its work ends (to the node's pool). */
  release(key: string): void {
    const b = this.bundles.get(key);
    if (!b) return;
    this.bundles.delete(key);
    const back = Object.fromEntries(Object.entries(b.free).filter(([, v]) => v > 0));
    this.node.free = give(this.node.free, back, this.node.total);
  }

  /** Everything free again (the node joins anew). */
  reset(): void {
    this.bundles.clear();
    this.node.free = { ...this.node.total };
  }
}
