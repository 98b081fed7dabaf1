/** @module Scheduling strategies on the submitting side: which queue a task's or actor's job goes to (SPREAD round-robin, node affinity, labels, a placement group's bundle), and the constraint each such queue carries for the node agents. */
import type { SerializedFailure } from '../errors';
import { actorFailure, endActor } from './actor-lifecycle';
import { failureBytes } from './object-store';
import { baseQueue, matchLabels, queueFor, type NodeInfo, type Placement, type QueueConstraint } from '../protocol';
import { fits } from './policy';
import { settleWith, type ProcessState, type QueuedJob } from './tasks';

/**
 * Jobs wait in queues, and node agents pull from those that fit them; a placement is a queue only some
 * agents take from (Ray's scheduling strategies, in pull form). Labels and bundles name their queue at
 * submission. SPREAD and node affinity need the alive nodes, so they are routed when the batch is sent.
 */
export class Strategies {
  /** Constraints of the queues this process has put jobs in, registered with each new queue (see Keys.placements). */
  private readonly constraints = new Map<string, QueueConstraint>();
  private spreadNext = 0;
  private readonly bundleNext = new Map<string, number>();

  constructor(private readonly state: ProcessState) {}

  /** Sets a job's queue and placement at submission. `bundleChoices`: the bundles to round-robin over (bundleIndex -1). */
  place(q: QueuedJob, placement: Placement | undefined, bundleChoices?: number[]): void {
    if (!placement) return;
    if (placement.kind === 'bundle' && bundleChoices && bundleChoices.length > 1) {
      const n = this.bundleNext.get(placement.pg) ?? 0;
      this.bundleNext.set(placement.pg, n + 1);
      placement = { ...placement, bundle: bundleChoices[n % bundleChoices.length] };
    }
    q.placement = placement;
    this.setQueue(q, placement.kind === 'spread' || placement.kind === 'node' ? queueFor(q.queue, placement.labels ? { kind: 'labels', labels: placement.labels } : undefined) : queueFor(q.queue, placement));
  }

  /** True when some job of a batch needs the alive nodes to be routed. */
  needsNodes(jobs: QueuedJob[]): boolean {
    return jobs.some((q) => q.placement?.kind === 'spread' || q.placement?.kind === 'node');
  }

  /**
   * Routes SPREAD jobs round-robin over the alive nodes that could run them, and node-affinity jobs to
   * their node's queue. A hard affinity to a node that is dead (or too small) fails; a soft one stays in
   * the general queue. Returns the jobs that failed, with why.
   */
  route(jobs: QueuedJob[], nodes: NodeInfo[]): { job: QueuedJob; failure: SerializedFailure }[] {
    const failed: { job: QueuedJob; failure: SerializedFailure }[] = [];
    const alive = nodes.filter((n) => n.state === 'alive').sort((a, b) => a.id.localeCompare(b.id));
    for (const q of jobs) {
      const p = q.placement;
      if (p?.kind === 'spread') {
        const fit = alive.filter((n) => fits(q.demand, n.total) && matchLabels(p.labels, n.labels));
        // None fits: it waits in its queue and is reported infeasible like any other.
        if (fit.length) this.setQueue(q, queueFor(baseQueue(q.queue), { kind: 'node', node: fit[this.spreadNext++ % fit.length].id, soft: true, labels: p.labels }));
      } else if (p?.kind === 'node') {
        const node = nodes.find((n) => n.id === p.node);
        const why = !node
          ? 'is not in the cluster'
          : node.state !== 'alive'
            ? 'is dead'
            : !fits(q.demand, node.total)
              ? `is too small for it (it has ${JSON.stringify(node.total)}, it needs ${JSON.stringify(q.demand)})`
              : !matchLabels(p.labels, node.labels)
                ? `does not have the labels ${JSON.stringify(p.labels)}`
                : '';
        if (!why) this.setQueue(q, queueFor(baseQueue(q.queue), p));
        else if (!p.soft) failed.push({ job: q, failure: unschedulable(q, p.node, why) });
      }
    }
    return failed;
  }

  /** The constraint of a queue this process put jobs in, if it has one. */
  constraintOf(queue: string): QueueConstraint | undefined {
    return this.constraints.get(queue);
  }

  /** The nodes that could take from a queue: null when that is not for the submitter to judge (a bundle's queue). */
  eligible(queue: string, nodes: NodeInfo[]): NodeInfo[] | null {
    const c = this.constraints.get(queue);
    if (!c) return nodes;
    if (c.pg !== undefined) return null;
    return nodes.filter((n) => (!c.node || n.id === c.node) && matchLabels(c.labels, n.labels));
  }

  private setQueue(q: QueuedJob, to: { queue: string; constraint?: QueueConstraint }): void {
    q.queue = to.queue;
    if (to.constraint) this.constraints.set(to.queue, to.constraint);
    // cancel() finds a task's job by its queue.
    const entry = this.state.pending.get(q.id);
    if (entry && q.queue.startsWith('task.')) entry.shape = q.queue.slice('task.'.length);
  }
}

/** The failure of a task (or actor) whose hard node affinity cannot be met. */
export function unschedulable(q: { name: string; queue: string }, node: string, why: string): SerializedFailure {
  const what = q.queue.startsWith('actor.') ? 'actor' : 'task';
  return {
    kind: 'unschedulable',
    task: q.name,
    name: 'TaskUnschedulableError',
    message:
      `${what} ${q.name} has schedulingStrategy { nodeId: '${node}', soft: false }, but that node ${why}. ` +
      'Pick an alive node (nodus status lists them), or use soft: true to run it elsewhere when that node cannot.',
  };
}

/** Ends a job that cannot be placed: the task fails with the reason, the actor is dead with it. */
export async function failPlacement(state: ProcessState, q: QueuedJob, failure: SerializedFailure): Promise<void> {
  if (q.queue.startsWith('actor.')) await endActor(state.redis, state.keys, q.id, 'dead', actorFailure(`actor ${q.name} (${q.id}) is dead: ${failure.message}`, failure), 0);
  else await settleWith(state, q.id, failureBytes(failure));
}
