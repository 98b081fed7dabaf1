/**
 * @module An app's routing table in the ingress: its replicas with their ongoing requests, least-loaded first; a bounded
 * queue when every replica has maxOngoingRequests; and the numbers autoscaling reads.
 */
import type { ActorHandle } from '../../runtime';
import type { DeploymentConfig, ReplicaState } from '../../runtime/protocol/deploy';
import type { Replica } from './replica';

/** A replica as the router sees it. */
export interface RoutedReplica {
  name: string;
  generation: number;
  handle: ActorHandle<Replica>;
  state: ReplicaState;
  /** Requests given to it and not yet answered (streams until they end). */
  ongoing: number;
  /** Set when a call found it dead: it takes nothing more. */
  dead: boolean;
  /** Its loopback port, when it runs on the ingress's machine: requests go there directly (see direct.ts). */
  direct?: number;
}

/** No replica could take the request and the queue is full (or waited too long): 503 with Retry-After. */
export class OverloadedError extends Error {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super(message);
  }
}

/** How long a request may wait in the queue for a replica before it is answered 503. */
export const QUEUE_TIMEOUT_MS = 30_000;

interface Waiter {
  resolve(r: RoutedReplica): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** One app's replicas and queue. The controller adds, drains and removes replicas; the ingress acquires and releases them. */
export class AppRouter {
  readonly replicas = new Map<string, RoutedReplica>();
  private readonly queue: Waiter[] = [];
  /** Called whenever a replica is released: the controller waits on this to see a draining replica empty. */
  onIdle: (r: RoutedReplica) => void = () => undefined;

  constructor(
    readonly name: string,
    public routePrefix: string,
    public config: DeploymentConfig,
  ) {}

  /** Requests waiting for a replica. */
  get queued(): number {
    return this.queue.length;
  }

  /** Ongoing requests over every replica still in routing, plus the queue: the demand autoscaling reads. */
  get demand(): number {
    let n = this.queue.length;
    for (const r of this.replicas.values()) if (r.state === 'running' && !r.dead) n += r.ongoing;
    return n;
  }

  /** Replicas that take requests. */
  running(): RoutedReplica[] {
    return [...this.replicas.values()].filter((r) => r.state === 'running' && !r.dead);
  }

  /** Puts a replica into routing (ready) and lets queued requests at it. */
  add(r: RoutedReplica): void {
    this.replicas.set(r.name, r);
    this.dispatch();
  }

  /** Takes a replica out of routing; requests it has go on until they end. */
  drain(name: string): void {
    const r = this.replicas.get(name);
    if (r) r.state = 'draining';
  }

  remove(name: string): void {
    this.replicas.delete(name);
  }

  /**
   * A replica for one request, the least loaded of those under maxOngoingRequests (ties: the first in random order, so
   * equal replicas share the load); when all are full, a place in the queue; when that is full, OverloadedError.
   */
  acquire(exclude?: Set<string>): Promise<RoutedReplica> {
    const r = this.pick(exclude);
    if (r) {
      r.ongoing++;
      return Promise.resolve(r);
    }
    if (this.queue.length >= this.config.maxQueuedRequests) {
      return Promise.reject(new OverloadedError(`App ${this.name} is at capacity (${this.running().length} replicas × ${this.config.maxOngoingRequests} ongoing requests, ${this.queue.length} queued): retry later.`, 1));
    }
    return new Promise<RoutedReplica>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(new OverloadedError(`No replica of app ${this.name} took the request within ${QUEUE_TIMEOUT_MS / 1000} s (${this.running().length} running): retry later.`, 5));
        }, QUEUE_TIMEOUT_MS),
      };
      this.queue.push(waiter);
    });
  }

  /** A request on `r` ended: its place goes to the next queued request. */
  release(r: RoutedReplica): void {
    r.ongoing--;
    this.dispatch();
    if (r.ongoing === 0) this.onIdle(r);
  }

  /** Marks a replica dead (a call found its actor gone): nothing more is routed to it. */
  markDead(name: string): void {
    const r = this.replicas.get(name);
    if (r) r.dead = true;
  }

  /** Fails every queued request (the app is going away). */
  failQueued(message: string): void {
    for (const w of this.queue.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new OverloadedError(message, 5));
    }
  }

  private pick(exclude?: Set<string>): RoutedReplica | undefined {
    let best: RoutedReplica | undefined;
    let ties = 0;
    for (const r of this.replicas.values()) {
      if (r.state !== 'running' || r.dead || r.ongoing >= this.config.maxOngoingRequests || exclude?.has(r.name)) continue;
      if (!best || r.ongoing < best.ongoing) {
        best = r;
        ties = 1;
      } else if (r.ongoing === best.ongoing && Math.random() < 1 / ++ties) best = r;
    }
    return best;
  }

  private dispatch(): void {
    while (this.queue.length) {
      const r = this.pick();
      if (!r) return;
      const w = this.queue.shift()!;
      clearTimeout(w.timer);
      r.ongoing++;
      w.resolve(r);
    }
  }
}
