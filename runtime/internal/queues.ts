/** @module BullMQ queues by name, each made once on a shared connection. */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

export class Queues {
  private readonly byName = new Map<string, Queue>();

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
  ) {}

  get(name: string): Queue {
    let q = this.byName.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.connection, prefix: this.prefix });
      q.on('error', () => undefined);
      this.byName.set(name, q);
    }
    return q;
  }

  async close(): Promise<void> {
    await Promise.all([...this.byName.values()].map((q) => q.close().catch(() => undefined)));
  }
}
