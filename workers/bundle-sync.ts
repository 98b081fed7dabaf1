/** @module A node's side of placement: which constrained queues it takes from, and the placement-group bundles it holds (reserved when the head asks, opened when it commits, released when it lets go). */
import type { Logger } from 'pino';
import type { CommandClient } from '../runtime/internal/object-store';
import { bundleKey, isConstrained, matchLabels, type BundleEntry, type Keys, type QueueConstraint } from '../runtime/protocol';
import type { Pools } from './pools';

/**
 * Whether this node takes from queue `queue`, and from which pool: a plain queue from the node's; a node
 * affinity's only on that node; a labels queue where the labels match; a bundle's on the node holding that
 * bundle, once committed, from the bundle's pool. undefined: not this node's queue.
 */
export function queueTarget(queue: string, rawConstraint: string | undefined, me: { nodeId: string; labels?: Record<string, string>; pools: Pools }): { pool: string } | undefined {
  if (!isConstrained(queue)) return { pool: '' };
  // A constrained queue whose constraint is not written yet: it is looked at again with the next new queue.
  if (!rawConstraint) return undefined;
  const c = JSON.parse(rawConstraint) as QueueConstraint;
  if (c.pg !== undefined) {
    const key = bundleKey(c.pg, c.bundle ?? 0);
    return me.pools.bundles.get(key)?.committed ? { pool: key } : undefined;
  }
  if (c.node && c.node !== me.nodeId) return undefined;
  return matchLabels(c.labels, me.labels) ? { pool: '' } : undefined;
}

export interface BundleSyncOptions {
  redis: CommandClient;
  keys: Keys;
  pools: Pools;
  nodeId(): string;
  logger: Logger;
  /** Bundles were committed (their queues may open) or released (theirs close). */
  onChange(released: string[]): void;
}

/**
 * Brings the bundles this node holds in line with what the head asks (Keys.nodeBundles): reserves new
 * ones if their resources are free now and answers the head either way (two-phase: the head commits a
 * group only when every bundle is reserved, else asks the nodes to let go), marks committed ones, and
 * releases those the head no longer asks for. Called on the head's message and with each heartbeat.
 */
export class BundleSync {
  private running: Promise<void> = Promise.resolve();

  constructor(private readonly o: BundleSyncOptions) {}

  sync(): Promise<void> {
    this.running = this.running.then(() => this.once()).catch((err) => this.o.logger.warn({ err: String(err) }, 'could not sync placement-group bundles'));
    return this.running;
  }

  private async once(): Promise<void> {
    const { redis, keys, pools } = this.o;
    const node = this.o.nodeId();
    const wanted = new Map(Object.entries(await redis.hgetall(keys.nodeBundles(node))).map(([k, v]) => [k, JSON.parse(v) as BundleEntry]));
    const released: string[] = [];
    for (const key of [...pools.bundles.keys()]) {
      if (wanted.has(key)) continue;
      pools.release(key);
      released.push(key);
    }
    let changed = released.length > 0;
    const replies: [string, string, string][] = [];
    for (const [key, entry] of wanted) {
      const held = pools.bundles.get(key);
      if (!held) {
        const [pg, index] = splitKey(key);
        replies.push([pg, index, `${pools.reserve(key, entry.demand) ? 'ok' : 'no'}:${node}`]);
      } else if (entry.committed && !held.committed) {
        held.committed = true;
        changed = true;
      }
    }
    if (replies.length) {
      const pipe = redis.pipeline();
      for (const [pg, index, answer] of replies) pipe.hset(keys.bundleReplies(pg), index, answer);
      pipe.publish(keys.placementChannel, 'reply');
      await pipe.exec();
    }
    if (changed) {
      if (released.length) this.o.logger.info({ released }, 'released placement-group bundles');
      this.o.onChange(released);
    }
  }
}

/** `<pg>-<index>` → [pg, index]. */
function splitKey(key: string): [string, string] {
  const i = key.lastIndexOf('-');
  return [key.slice(0, i), key.slice(i + 1)];
}
