/**
 * @module The deployments' controller (Ray Serve's ServeController), run by the ingress: it brings each app's replicas to
 * what was deployed — starts them, rolls them one at a time on a redeploy, replaces dead ones, scales them between
 * minReplicas and maxReplicas on ongoing requests — and keeps where it got to in Redis, so a restarted ingress adopts them.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { ActorDiedError, get, getActor, kill, type ActorHandle } from '../../runtime';
import { SHIPPED_WORKING_DIR, type RuntimeEnv, type ShippedPackage } from '../../runtime/options';
import type { RuntimeEnvDescriptor } from '../../runtime/protocol';
import { DEPLOY_NAMESPACE, type AppRecord, type AppState, type DeployKeys, type ReplicaRecord } from '../../runtime/protocol/deploy';
import { probeDirect } from './direct';
import { ReplicaActor, type Replica } from './replica';
import { AppRouter, type RoutedReplica } from './router';
import { readApp, readState } from './store';

/** A replica that has not loaded its app by then failed to start (no node with its resources, a module that hangs). */
const READY_TIMEOUT_MS = 120_000;
/** How often running replicas are pinged, and how long a ping may take before it counts as a miss. */
const HEALTH_PERIOD_MS = 2000;
const PING_TIMEOUT_MS = 5000;
/** Autoscaling samples demand this often and decides on the average of the last second. */
const SAMPLE_MS = 200;
const SAMPLES = 5;
/** A failed replacement of a dead replica is tried again after this long. */
const RETRY_MS = 2000;

/** The runtime env option of a replica: the deploy's env, its working dir already in the cluster (shipped by the CLI). */
function replicaEnv(d: RuntimeEnvDescriptor): RuntimeEnv {
  const env: RuntimeEnv & { [SHIPPED_WORKING_DIR]?: ShippedPackage } = { env: d.vars };
  if (d.pkg) env[SHIPPED_WORKING_DIR] = { pkg: d.pkg, ...(d.lock ? { lock: d.lock } : {}), ...(d.mods ? { mods: d.mods } : {}) };
  return env;
}

interface ScaleTrack {
  samples: number[];
  aboveSince?: number;
  belowSince?: number;
}

/** Runs every app's reconciliation and autoscaling; the ingress routes through its routers. */
export class Controller {
  /** App name → its router (only apps that are deployed and not being deleted). */
  readonly routers = new Map<string, AppRouter>();
  private readonly states = new Map<string, AppState>();
  private readonly loops = new Map<string, { running: boolean; dirty: boolean; done: Promise<void> }>();
  private readonly scale = new Map<string, ScaleTrack>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: DeployKeys,
    private readonly logger: Logger,
  ) {}

  /** Adopts what Redis holds and starts the periodic work (health checks, autoscaling, a resync for missed messages). */
  async start(): Promise<void> {
    const names = new Set([...(await this.redis.hkeys(this.keys.apps)), ...(await this.redis.hkeys(this.keys.state))]);
    // Routes come back before the ingress says it is ready: a restart does not answer 404 for deployed apps.
    await Promise.all([...names].map((name) => this.routerOf(name).catch((err: unknown) => this.logger.warn({ err, app: name }, 'serve: adopting failed'))));
    for (const name of names) this.reconcile(name);
    this.timers.push(setInterval(() => this.autoscale(), SAMPLE_MS));
    this.timers.push(setInterval(() => void this.healthCheck(), HEALTH_PERIOD_MS));
    this.timers.push(
      setInterval(() => {
        void this.redis.hkeys(this.keys.apps).then((names) => names.forEach((n) => !this.loops.get(n)?.running && this.reconcile(n)), () => undefined);
      }, 5000),
    );
  }

  /** Stops the controller's work; replicas are detached actors and live on for the next ingress to adopt. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const r of this.routers.values()) r.failQueued('The ingress is stopping: retry in a moment.');
  }

  /** The app whose route prefix is the longest one `path` starts with (at a segment boundary). */
  route(path: string): AppRouter | undefined {
    let best: AppRouter | undefined;
    for (const r of this.routers.values()) {
      const p = r.routePrefix;
      const hit = p === '/' || path === p || path.startsWith(`${p}/`) || path.startsWith(`${p}?`);
      if (hit && (!best || p.length > best.routePrefix.length)) best = r;
    }
    return best;
  }

  /** Route prefix → app name, Ray Serve's `/-/routes`. */
  routes(): Record<string, string> {
    return Object.fromEntries([...this.routers.values()].sort((a, b) => a.routePrefix.localeCompare(b.routePrefix)).map((r) => [r.routePrefix, r.name]));
  }

  /** A call found this replica's actor dead: out of routing now, replaced by the next pass. */
  replicaDied(app: string, name: string): void {
    this.routers.get(app)?.markDead(name);
    this.reconcile(app);
  }

  /** Brings `name` to its desired state, one pass at a time per app (a change during a pass runs another). */
  reconcile(name: string): Promise<void> {
    let loop = this.loops.get(name);
    if (!loop) {
      loop = { running: false, dirty: false, done: Promise.resolve() };
      this.loops.set(name, loop);
    }
    loop.dirty = true;
    if (loop.running || this.stopped) return loop.done;
    loop.running = true;
    const l = loop;
    l.done = (async () => {
      while (l.dirty && !this.stopped) {
        l.dirty = false;
        try {
          await this.pass(name);
        } catch (err) {
          this.logger.warn({ err, app: name }, 'serve: reconciling failed; trying again shortly');
          setTimeout(() => this.reconcile(name), RETRY_MS).unref();
        }
      }
      l.running = false;
    })();
    return l.done;
  }

  private async save(name: string, st: AppState): Promise<void> {
    st.updatedAt = Date.now();
    this.states.set(name, st);
    await this.redis.hset(this.keys.state, name, JSON.stringify(st));
  }

  private async pass(name: string): Promise<void> {
    const rec = await readApp(this.redis, this.keys, name);
    let st = this.states.get(name) ?? (await readState(this.redis, this.keys, name));
    if (!rec || rec.deleting) return this.teardown(name, rec, st);
    const router = (await this.routerOf(name))!;
    st = this.states.get(name) ?? st;
    router.routePrefix = rec.routePrefix;
    router.config = rec.config;
    const { minReplicas, maxReplicas, replicas } = rec.config;
    if (!st || st.generation !== rec.generation) {
      const clamp = (n: number) => Math.min(maxReplicas, Math.max(minReplicas, n));
      const target = minReplicas === maxReplicas || !st ? replicas : clamp(st.target || replicas);
      st = { generation: rec.generation, status: 'deploying', target, replicas: st?.replicas ?? [], updatedAt: Date.now() };
      await this.save(name, st);
      this.logger.info({ app: name, generation: rec.generation, target }, 'serve: deploying');
    } else if (st.status === 'failed') return; // a deploy that failed waits for the next deploy
    const state = st;
    // Dead replicas leave; the steps below start their replacements.
    for (const r of [...router.replicas.values()].filter((x) => x.dead)) {
      await kill(r.handle).catch(() => undefined);
      router.remove(r.name);
      state.replicas = state.replicas.filter((x) => x.name !== r.name);
      this.logger.warn({ app: name, replica: r.name }, 'serve: a replica died; replacing it');
    }
    const current = () => [...router.replicas.values()].filter((r) => r.generation === rec.generation && !r.dead && r.state !== 'draining');
    const failed = async (err: Error) => {
      if (state.status === 'deploying') {
        state.status = 'failed';
        state.message = err.message;
        await this.save(name, state);
        this.logger.error({ app: name, err }, 'serve: deploy failed');
        return true;
      }
      // A running app's replacement that failed is tried again.
      state.message = err.message;
      await this.save(name, state);
      throw err;
    };
    // A redeploy rolls: one new replica started and ready before one old one is drained and stopped.
    for (;;) {
      const old = [...router.replicas.values()].filter((r) => r.generation !== rec.generation && r.state !== 'draining');
      if (!old.length) break;
      if (current().length < state.target) {
        try {
          await this.startReplica(rec, state, router);
        } catch (err) {
          if (await failed(err as Error)) return;
        }
      }
      await this.stopReplica(router, state, old[0]);
    }
    // Scale to the target.
    const missing = state.target - current().length;
    if (missing > 0) {
      const results = await Promise.allSettled(Array.from({ length: missing }, () => this.startReplica(rec, state, router)));
      const err = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (err && (await failed(err.reason as Error))) return;
    } else if (missing < 0) {
      const extra = current()
        .sort((a, b) => a.ongoing - b.ongoing)
        .slice(0, -missing);
      await Promise.all(extra.map((r) => this.stopReplica(router, state, r)));
    }
    if (state.status !== 'running' || state.message) {
      state.status = 'running';
      delete state.message;
      this.logger.info({ app: name, replicas: current().length }, 'serve: running');
    }
    await this.save(name, state);
  }

  /** The app's router, made (with the replicas a previous ingress started adopted) when there is none yet. */
  private async routerOf(name: string): Promise<AppRouter | undefined> {
    const known = this.routers.get(name);
    if (known) return known;
    const rec = await readApp(this.redis, this.keys, name);
    if (!rec || rec.deleting) return undefined;
    const router = new AppRouter(name, rec.routePrefix, rec.config);
    this.routers.set(name, router);
    const st = await readState(this.redis, this.keys, name);
    if (st) {
      await this.adopt(router, st);
      this.states.set(name, st);
    }
    return router;
  }

  private async adopt(router: AppRouter, st: AppState): Promise<void> {
    const kept: ReplicaRecord[] = [];
    await Promise.all(
      st.replicas.map(async (r) => {
        const handle = await getActor<Replica>(r.name, { namespace: DEPLOY_NAMESPACE }).catch(() => undefined);
        if (!handle) return;
        const info = r.state === 'running' ? await get(handle.ready.remote(), { timeout: PING_TIMEOUT_MS }).catch(() => undefined) : undefined;
        if (!info) return void (await kill(handle).catch(() => undefined));
        const direct = await probeDirect(info, r.name);
        kept.push({ ...r, directPort: direct });
        router.add({ name: r.name, generation: r.generation, handle, state: 'running', ongoing: 0, dead: false, direct });
      }),
    );
    st.replicas = kept;
    this.logger.info({ app: router.name, adopted: kept.map((r) => r.name) }, 'serve: adopted replicas');
  }

  private async startReplica(rec: AppRecord, st: AppState, router: AppRouter): Promise<void> {
    const name = `${rec.name}-${rec.generation}-${randomBytes(3).toString('hex')}`;
    const { numCpus, numGpus, resources, maxOngoingRequests } = rec.config;
    const handle = ReplicaActor.options({
      name,
      namespace: DEPLOY_NAMESPACE,
      lifetime: 'detached',
      numCpus,
      numGpus,
      resources,
      // A streamed response holds a handle call and then a pull; pings come on top.
      maxConcurrency: 2 * maxOngoingRequests + 4,
      ...(rec.runtimeEnv ? { runtimeEnv: replicaEnv(rec.runtimeEnv) } : {}),
    }).remote({ app: rec.name, name, module: rec.module, ...(rec.export ? { export: rec.export } : {}), ...(rec.cwd ? { cwd: rec.cwd } : {}), routePrefix: rec.routePrefix });
    const record: ReplicaRecord = { name, generation: rec.generation, state: 'starting', startedAt: Date.now() };
    st.replicas.push(record);
    await this.save(rec.name, st);
    let direct: number | undefined;
    try {
      const info = await get(handle.ready.remote(), { timeout: READY_TIMEOUT_MS });
      Object.assign(record, { state: 'running', node: info.node, pid: info.pid });
      direct = await probeDirect(info, name);
      record.directPort = direct;
    } catch (err) {
      await kill(handle).catch(() => undefined);
      st.replicas = st.replicas.filter((r) => r !== record);
      await this.save(rec.name, st);
      const why = (err as Error).name === 'GetTimeoutError' ? `it did not load within ${READY_TIMEOUT_MS / 1000} s (is there a node with ${JSON.stringify({ numCpus, numGpus, ...resources })} free? see nodus status)` : (err as Error).message;
      throw new Error(`A replica of ${rec.name} could not start: ${why}`, { cause: err });
    }
    router.add({ name, generation: rec.generation, handle, state: 'running', ongoing: 0, dead: false, direct });
    await this.save(rec.name, st);
  }

  /** Takes a replica out of routing, lets its requests finish (up to the grace period), then stops it. */
  private async stopReplica(router: AppRouter, st: AppState, r: RoutedReplica): Promise<void> {
    router.drain(r.name);
    const record = st.replicas.find((x) => x.name === r.name);
    if (record) record.state = 'draining';
    await this.save(router.name, st);
    const deadline = Date.now() + router.config.gracefulShutdownTimeoutMs;
    while (r.ongoing > 0 && !r.dead && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    await kill(r.handle as ActorHandle<unknown>).catch(() => undefined);
    router.remove(r.name);
    st.replicas = st.replicas.filter((x) => x.name !== r.name);
    await this.save(router.name, st);
  }

  private async teardown(name: string, rec: AppRecord | undefined, st: AppState | undefined): Promise<void> {
    const router = this.routers.get(name);
    this.routers.delete(name);
    if (st) {
      st.status = 'deleting';
      await this.save(name, st);
    }
    if (router) {
      router.failQueued(`App ${name} is being deleted.`);
      await Promise.all([...router.replicas.values()].map((r) => this.stopReplica(router, st ?? { generation: 0, status: 'deleting', target: 0, replicas: [], updatedAt: 0 }, r)));
    }
    // Replicas recorded but not routed here (a previous ingress's, not adopted yet) go too.
    for (const r of st?.replicas ?? []) {
      const h = await getActor(r.name, { namespace: DEPLOY_NAMESPACE }).catch(() => undefined);
      if (h) await kill(h).catch(() => undefined);
    }
    this.states.delete(name);
    this.scale.delete(name);
    const now = await readApp(this.redis, this.keys, name);
    // A deploy of the same name that came meanwhile keeps its record.
    if (!now || (now.deleting && now.generation === rec?.generation)) await this.redis.multi().hdel(this.keys.apps, name).hdel(this.keys.state, name).exec();
    else await this.redis.hdel(this.keys.state, name);
    if (rec?.deleting) this.logger.info({ app: name }, 'serve: deleted');
  }

  /** Ray Serve's autoscaling: replicas = ongoing requests (with the queued) ÷ target, held for the up/down delay. */
  private autoscale(): void {
    const now = Date.now();
    for (const [name, router] of this.routers) {
      const { minReplicas, maxReplicas, targetOngoingRequests, upscaleDelayMs, downscaleDelayMs } = router.config;
      const st = this.states.get(name);
      if (minReplicas === maxReplicas || !st || st.status !== 'running') continue;
      let t = this.scale.get(name);
      if (!t) this.scale.set(name, (t = { samples: [] }));
      t.samples.push(router.demand);
      if (t.samples.length > SAMPLES) t.samples.shift();
      const avg = t.samples.reduce((a, b) => a + b, 0) / t.samples.length;
      const desired = Math.min(maxReplicas, Math.max(minReplicas, Math.ceil(avg / targetOngoingRequests)));
      if (desired > st.target) {
        t.belowSince = undefined;
        t.aboveSince ??= now;
        if (now - t.aboveSince < upscaleDelayMs) continue;
      } else if (desired < st.target) {
        t.aboveSince = undefined;
        t.belowSince ??= now;
        if (now - t.belowSince < downscaleDelayMs) continue;
      } else {
        t.aboveSince = t.belowSince = undefined;
        continue;
      }
      this.logger.info({ app: name, from: st.target, to: desired, ongoing: avg }, 'serve: autoscaling');
      t.aboveSince = t.belowSince = undefined;
      st.target = desired;
      void this.save(name, st).catch(() => undefined);
      this.reconcile(name);
    }
  }

  /** Pings every running replica; one whose actor is dead is replaced. */
  private async healthCheck(): Promise<void> {
    for (const [name, router] of this.routers) {
      for (const r of router.running()) {
        get(r.handle.ping.remote(), { timeout: PING_TIMEOUT_MS }).catch((err: unknown) => {
          if (err instanceof ActorDiedError && !this.stopped) this.replicaDied(name, r.name);
        });
      }
    }
  }
}
