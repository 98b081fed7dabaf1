/** @module A node agent's metrics: its node's resources (total and free) and its worker processes, read when a snapshot is taken. */
import { Gauge } from 'prom-client';
import { processRegistry } from '../runtime/internal/metrics';
import type { Resources } from '../runtime/protocol';

/** What the gauges read from the agent at each snapshot. */
export interface NodeView {
  node: string;
  total: Resources;
  free: Resources;
  workers: number;
  actors: number;
}

/** Registers the node's gauges; `view` is called at each snapshot, so nothing is counted on the hot path. */
export function nodeMetrics(view: () => NodeView): void {
  const registers = [processRegistry()];
  new Gauge({
    name: 'nodus_node_resources',
    help: "A node's resources: its total and what is free now.",
    labelNames: ['node', 'resource', 'kind'],
    registers,
    collect() {
      const v = view();
      this.reset();
      for (const [r, n] of Object.entries(v.total)) {
        this.set({ node: v.node, resource: r, kind: 'total' }, n);
        // Below zero for a moment after a waiting task takes its lent CPU back: none is free then.
        this.set({ node: v.node, resource: r, kind: 'free' }, Math.max(0, v.free[r] ?? 0));
      }
    },
  });
  new Gauge({
    name: 'nodus_worker_processes',
    help: 'Worker processes of a node: task workers (pool) and actor processes.',
    labelNames: ['node', 'kind'],
    registers,
    collect() {
      const v = view();
      this.reset();
      this.set({ node: v.node, kind: 'task' }, v.workers);
      this.set({ node: v.node, kind: 'actor' }, v.actors);
    },
  });
}
