/** @module `nodus serve`: deploy apps as replicas behind the cluster's HTTP ingress (run, deploy, status, delete). */
import { join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { Redis } from 'ioredis';
import { NodusError } from '../runtime/errors';
import { freePort, portInUse, spawnIngress, type StartedProcess } from '../runtime/internal/launcher';
import { connect, redact, waitForRedis } from '../runtime/internal/redis';
import { addToSession, clusterDir, readSession } from '../runtime/internal/session';
import { DEFAULT_SERVE_PORT, DeployKeys, type AppRecord, type IngressInfo } from '../runtime/protocol/deploy';
import { checkDistinct, readServeYaml, resolveDeployment, type DeploymentOptions, type ResolvedDeployment } from '../serve/deploy/config';
import { shipApps } from '../serve/deploy/ship';
import { deleteApp, listApps, readIngress, submitApps, type AppView } from '../serve/deploy/store';
import { parseEnvPairs } from './cli-jobs';

const ADDRESS_HELP = 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)';
/** How long a deploy may take to have every replica ready. */
const DEPLOY_TIMEOUT_MS = 180_000;

function addressOf(given: string | undefined): string {
  const address = given || process.env.NODUS_ADDRESS || readSession()?.address;
  if (!address) throw new NodusError('No cluster found on this machine. Start one with `npx nodus start --head`, or pass --address redis://HOST:PORT (or set NODUS_ADDRESS).');
  return address;
}

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number >= 0.');
  return n;
}

function num(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number >= 0.');
  return n;
}

async function withDeploy<T>(address: string, fn: (redis: Redis, keys: DeployKeys) => Promise<T>): Promise<T> {
  const redis = connect(address, { name: 'nodus:cli:serve' });
  redis.on('error', () => undefined);
  try {
    await waitForRedis(redis, address, 5000);
    return await fn(redis, new DeployKeys(process.env.NODUS_NAMESPACE || undefined));
  } finally {
    redis.disconnect();
  }
}

/**
 * Starts the cluster's ingress on this machine (its log in the cluster's folder). The default port is 8000; when that is
 * taken and no port was asked for (a second cluster here), a free one: a named port that is taken is an error.
 */
export async function startIngressProcess(address: string, dir: string, o: { port?: number; host?: string }): Promise<StartedProcess & { url: string; info: Record<string, unknown> }> {
  const host = o.host ?? '127.0.0.1';
  let port = o.port ?? DEFAULT_SERVE_PORT;
  if (await portInUse(port, host)) {
    if (o.port !== undefined) throw new NodusError(`Port ${port} is in use, so the serve ingress cannot listen there: choose another with --serve-port ${await freePort()}, or --no-serve.`);
    port = await freePort();
    console.log(`Port ${DEFAULT_SERVE_PORT} is taken (another cluster's ingress?): this ingress listens on ${port}.`);
  }
  const p = await spawnIngress({ address, attached: false, logFile: join(dir, 'serve.log'), port, host });
  const url = String(p.info.url);
  console.log(`Started the serve ingress (pid ${p.pid}) at ${url}; log: ${join(dir, 'serve.log')}`);
  return { ...p, url };
}

/** The cluster's ingress, started here when none runs. */
async function ensureIngress(redis: Redis, keys: DeployKeys, address: string, o: { servePort?: number; serveHost?: string }): Promise<IngressInfo> {
  const running = await readIngress(redis, keys);
  if (running) return running;
  const p = await startIngressProcess(address, clusterDir(address), { port: o.servePort, host: o.serveHost });
  addToSession(address, [{ role: 'serve', pid: p.pid, address, startedAt: Date.now() }]);
  return (await readIngress(redis, keys)) ?? { pid: p.pid, host: String(p.info.host), port: Number(p.info.port), url: p.url, hostname: '', startedAt: Date.now() };
}

function collect(v: string, all: string[]): string[] {
  return [...all, v];
}

function json(v: string): Record<string, number> {
  try {
    return JSON.parse(v) as Record<string, number>;
  } catch {
    throw new InvalidArgumentError(`must be JSON, e.g. '{"accel": 1}'.`);
  }
}

const kib = (n: number) => (n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`);

/** Ships the apps' working dirs (once per content) and records the deploy; says what was shipped. */
async function shipAndSubmit(redis: Redis, keys: DeployKeys, deployments: ResolvedDeployment[]): Promise<AppRecord[]> {
  const shipped = await shipApps(redis, keys.prefix, deployments);
  const said = new Set<string>();
  for (const { shipped: s } of shipped) {
    if (!s || said.has(s.workingDir)) continue;
    said.add(s.workingDir);
    console.log(`Working dir ${s.workingDir}: ${s.files} files, ${kib(s.bytes)}${s.uploaded ? ' shipped to the cluster' : ', in the cluster already'}`);
  }
  return submitApps(redis, keys, shipped.map((a) => a.spec));
}

function summary(a: AppView): string {
  const st = a.state;
  const running = st?.replicas.filter((r) => r.state === 'running').length ?? 0;
  const scaling = a.config.minReplicas === a.config.maxReplicas ? '' : ` (autoscaling ${a.config.minReplicas}-${a.config.maxReplicas}, target ${a.config.targetOngoingRequests} ongoing/replica)`;
  const status = a.deleting ? 'deleting' : st && st.generation === a.generation ? st.status : 'deploying';
  return `${a.name}  ${a.routePrefix}  ${status}  ${running}/${st?.target ?? a.config.replicas} replicas${scaling}${st?.message ? `  — ${st.message}` : ''}`;
}

/** Waits until every app of `recs` runs its generation with all its replicas, printing each change; throws when one fails. */
async function waitDeployed(redis: Redis, keys: DeployKeys, recs: AppRecord[]): Promise<AppView[]> {
  const deadline = Date.now() + DEPLOY_TIMEOUT_MS;
  const last = new Map<string, string>();
  for (;;) {
    const apps = (await listApps(redis, keys)).filter((a) => recs.some((r) => r.name === a.name));
    let done = true;
    for (const rec of recs) {
      const a = apps.find((x) => x.name === rec.name);
      if (!a || a.generation !== rec.generation) throw new NodusError(`${rec.name} was deployed again or deleted meanwhile; see nodus serve status.`);
      const line = summary(a);
      if (last.get(a.name) !== line) console.log(`  ${line}`);
      last.set(a.name, line);
      const st = a.state;
      if (st?.generation === a.generation && st.status === 'failed') throw new NodusError(`${a.name} failed to deploy: ${st.message ?? 'see the ingress log'}`);
      const settled = st?.generation === a.generation && st.status === 'running' && st.replicas.every((r) => r.generation === a.generation && r.state === 'running');
      if (!settled) done = false;
    }
    if (done) return apps;
    if (Date.now() > deadline) throw new NodusError(`The deploy did not finish within ${DEPLOY_TIMEOUT_MS / 1000} s; see nodus serve status and the ingress's log (serve.log in the cluster's folder).`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** What `serve run` takes: a deployment's options as flags (the module is the argument), and where to reach the cluster. */
type RunFlags = Pick<
  DeploymentOptions,
  'name' | 'routePrefix' | 'replicas' | 'minReplicas' | 'maxReplicas' | 'targetOngoingRequests' | 'maxOngoingRequests' | 'maxQueuedRequests' | 'numCpus' | 'numGpus' | 'resources'
> & {
  workingDir?: string;
  env: string[];
  exclude: string[];
  address?: string;
  servePort?: number;
  serveHost?: string;
  detach?: boolean;
};

/** Adds `nodus serve run|deploy|status|delete` to the CLI. */
export function addServeCommands(program: Command): void {
  const serve = program.command('serve').description('Serve deployments: apps as replica actors behind the HTTP ingress (:8000)');

  serve
    .command('run')
    .description('Deploy one app (a ServeAPI, express app or (req, res) handler module) and follow it until Ctrl-C, which deletes it (--detach leaves it deployed)')
    .argument('<module>', 'the module that exports the app, e.g. services/my_service/app.ts (module:export names the export)')
    .option('--name <name>', "the app's name (default: the module's folder name)")
    .option('--route-prefix <path>', 'path prefix the ingress routes to it (default: /<name>)')
    .option('--replicas <n>', 'replicas (default 1)', int)
    .option('--min-replicas <n>', 'autoscale from this many replicas', int)
    .option('--max-replicas <n>', 'autoscale up to this many replicas', int)
    .option('--target-ongoing-requests <n>', 'autoscaling aims at this many ongoing requests per replica (default 2)', num)
    .option('--max-ongoing-requests <n>', 'requests one replica is given at once (default 5)', int)
    .option('--max-queued-requests <n>', 'requests that may wait for a replica before 503 (default 100)', int)
    .option('--num-cpus <n>', 'CPUs each replica holds (default 0)', num)
    .option('--num-gpus <n>', 'GPUs each replica holds (default 0)', num)
    .option('--resources <json>', `custom resources each replica holds, e.g. '{"accel": 1}'`, json)
    .option('--working-dir <dir>', "a folder shipped to the cluster: the replicas run the module from each node's copy of it (default: inside a job, the job's)")
    .option('--env <NAME=value>', "an environment variable of the replicas; repeatable", collect, [])
    .option('--exclude <pattern>', 'leave files matching this .gitignore pattern out of the working dir; repeatable', collect, [])
    .option('--address <url>', ADDRESS_HELP)
    .option('--serve-port <port>', `port of the ingress, when this command starts one (default ${DEFAULT_SERVE_PORT})`, int)
    .option('--serve-host <address>', 'address the ingress listens on, when this command starts one (default 127.0.0.1)')
    .option('--detach', 'return once the app is running and leave it deployed')
    .action(async (module: string, o: RunFlags) => {
      const opts: DeploymentOptions = { import: module };
      for (const k of ['name', 'routePrefix', 'replicas', 'minReplicas', 'maxReplicas', 'targetOngoingRequests', 'maxOngoingRequests', 'maxQueuedRequests', 'numCpus', 'numGpus', 'resources'] as const) {
        if (o[k] !== undefined) (opts as unknown as Record<string, unknown>)[k] = o[k];
      }
      if (o.workingDir || o.env.length || o.exclude.length) {
        opts.runtimeEnv = { ...(o.workingDir ? { workingDir: o.workingDir } : {}), env: parseEnvPairs(o.env), ...(o.exclude.length ? { excludes: o.exclude } : {}) };
      }
      const spec = resolveDeployment(opts, process.cwd());
      const address = addressOf(o.address);
      await withDeploy(address, async (redis, keys) => {
        const ingress = await ensureIngress(redis, keys, address, o);
        const [rec] = await shipAndSubmit(redis, keys, [spec]);
        console.log(`Deploying ${rec.name} (generation ${rec.generation}) from ${rec.module}${rec.runtimeEnv?.pkg ? ' in the shipped working dir' : ''}:`);
        await waitDeployed(redis, keys, [rec]);
        console.log(`${rec.name} is running at ${ingress.url}${rec.routePrefix === '/' ? '/' : rec.routePrefix}  (routes: ${ingress.url}/-/routes)`);
        if (o.detach) return;
        console.log('Following it; Ctrl-C deletes it (nodus serve run --detach leaves it deployed).');
        await new Promise<void>((done) => {
          let last = '';
          const timer = setInterval(() => {
            void listApps(redis, keys).then((apps) => {
              const a = apps.find((x) => x.name === rec.name);
              const line = a ? summary(a) : `${rec.name} is gone (deleted elsewhere)`;
              if (line !== last) console.log(`  ${line}`);
              last = line;
              if (!a) finish();
            }, () => undefined);
          }, 1000);
          const finish = () => {
            clearInterval(timer);
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
            done();
          };
          const onSignal = () => {
            clearInterval(timer);
            console.log(`Deleting ${rec.name}...`);
            void (async () => {
              await deleteApp(redis, keys, rec.name);
              // Within the 5 s every process of ours takes to exit; a replica still finishing requests goes on its own.
              const until = Date.now() + 4000;
              while (Date.now() < until && (await redis.hexists(keys.apps, rec.name))) await new Promise((r) => setTimeout(r, 200));
              const gone = !(await redis.hexists(keys.apps, rec.name));
              console.log(gone ? `Deleted ${rec.name}.` : `${rec.name} is being deleted (its replicas are finishing their requests); see nodus serve status.`);
            })().finally(finish);
          };
          process.once('SIGINT', onSignal);
          process.once('SIGTERM', onSignal);
        });
      });
    });

  serve
    .command('deploy')
    .description('Deploy every app of a serve.yaml (applications: name, import, routePrefix, replicas or min/maxReplicas, resources...) and wait until they run')
    .argument('<file>', 'the serve.yaml')
    .option('--address <url>', ADDRESS_HELP)
    .option('--serve-port <port>', `port of the ingress, when this command starts one (default ${DEFAULT_SERVE_PORT})`, int)
    .option('--serve-host <address>', 'address the ingress listens on, when this command starts one (default 127.0.0.1)')
    .action(async (file: string, o: { address?: string; servePort?: number; serveHost?: string }) => {
      const specs = readServeYaml(resolve(file));
      checkDistinct(specs);
      const address = addressOf(o.address);
      await withDeploy(address, async (redis, keys) => {
        const ingress = await ensureIngress(redis, keys, address, o);
        const recs = await shipAndSubmit(redis, keys, specs);
        console.log(`Deploying ${recs.map((r) => `${r.name} (generation ${r.generation})`).join(', ')}:`);
        await waitDeployed(redis, keys, recs);
        for (const r of recs) console.log(`${r.name} is running at ${ingress.url}${r.routePrefix === '/' ? '/' : r.routePrefix}`);
        console.log(`Register them all with the gateway: npx nodus register ${ingress.url}/-/routes`);
      });
    });

  serve
    .command('status')
    .description('The ingress, and every deployed app: route, status, replicas (node and pid of each)')
    .option('--address <url>', ADDRESS_HELP)
    .option('--json', 'print JSON')
    .action(async (o: { address?: string; json?: boolean }) => {
      const address = addressOf(o.address);
      await withDeploy(address, async (redis, keys) => {
        const [ingress, apps] = await Promise.all([readIngress(redis, keys), listApps(redis, keys)]);
        if (o.json) return console.log(JSON.stringify({ ingress: ingress ?? null, apps }, null, 2));
        console.log(ingress ? `Ingress: ${ingress.url} (pid ${ingress.pid} on ${ingress.hostname}); routes: ${ingress.url}/-/routes` : `Ingress: none running for ${redact(address)} (nodus serve run starts one).`);
        if (!apps.length) return console.log('No apps deployed. Deploy one with `npx nodus serve run services/my_service/app.ts`.');
        for (const a of apps) {
          console.log(summary(a));
          if (a.runtimeEnv) console.log(`  runtime env ${a.runtimeEnv.key}${a.runtimeEnv.pkg ? ` (working dir shipped as package ${a.runtimeEnv.pkg.slice(0, 12)}; module ${a.module})` : ''}`);
          for (const r of a.state?.replicas ?? []) {
            const via = r.state === 'starting' ? '' : r.directPort ? `  requests to 127.0.0.1:${r.directPort}` : '  requests by actor calls';
            console.log(`  ${r.name}  ${r.state}${r.node ? `  node ${r.node}` : ''}${r.pid ? `  pid ${r.pid}` : ''}${via}`);
          }
        }
      });
    });

  serve
    .command('delete')
    .description('Delete a deployed app: its replicas finish their requests and stop')
    .argument('<name>', 'the app')
    .option('--address <url>', ADDRESS_HELP)
    .action(async (name: string, o: { address?: string }) => {
      await withDeploy(addressOf(o.address), async (redis, keys) => {
        if (!(await deleteApp(redis, keys, name))) {
          const names = (await listApps(redis, keys)).map((a) => a.name);
          throw new NodusError(`No app ${name} is deployed; deployed: ${names.join(', ') || 'none'}.`);
        }
        const ingress = await readIngress(redis, keys);
        if (!ingress) return console.log(`${name} will be deleted when an ingress runs (none does now).`);
        const until = Date.now() + 30_000;
        while (Date.now() < until && (await redis.hexists(keys.apps, name))) await new Promise((r) => setTimeout(r, 200));
        console.log((await redis.hexists(keys.apps, name)) ? `${name} is being deleted (its replicas are finishing their requests).` : `Deleted ${name}.`);
      });
    });
}
