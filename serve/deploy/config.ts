/** @module Options of a serve deployment (CLI flags and serve.yaml alike) and the one function that checks and resolves them. */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../runtime';
import { rejectUnknownKeys, resolveResources, resolveRuntimeEnv, type ResolvedRuntimeEnv, type RuntimeEnv } from '../../runtime/options';
import type { AppSpec, DeploymentConfig } from '../../runtime/protocol/deploy';

/** One app to deploy: what serves, where it is routed, how many replicas, and what each holds. */
export interface DeploymentOptions {
  /** The module that serves, `path/to/app.ts` or `path/to/app.ts:export`: a ServeAPI, an express app or a `(req, res)` handler. */
  import: string;
  /** The app's name. @default the module's folder name (`services/my_service/app.ts` → `my_service`) */
  name?: string;
  /** Path prefix the ingress routes to it. @default `/${name}` */
  routePrefix?: string;
  /** Replicas (a fixed count; with autoscaling, the start count). @default 1, or minReplicas when autoscaling */
  replicas?: number;
  /** Autoscaling's lower bound; giving minReplicas or maxReplicas turns autoscaling on. @default replicas */
  minReplicas?: number;
  /** Autoscaling's upper bound. @default replicas */
  maxReplicas?: number;
  /** Autoscaling aims at this many ongoing requests per replica (Ray Serve's target_ongoing_requests). @default 2 (or maxOngoingRequests when lower) */
  targetOngoingRequests?: number;
  /** Requests one replica is given at once; more wait in the app's queue. @default 5 */
  maxOngoingRequests?: number;
  /** Requests waiting for a replica; more are answered 503 with Retry-After. @default 100 */
  maxQueuedRequests?: number;
  /** Seconds demand must stay above the replicas before one is added. @default 2 */
  upscaleDelayS?: number;
  /** Seconds demand must stay below the replicas before one is removed. @default 60 */
  downscaleDelayS?: number;
  /** Seconds a replica being removed may take to finish its requests. @default 20 */
  gracefulShutdownTimeoutS?: number;
  /** CPUs each replica holds. @default 0 (an HTTP handler mostly waits; give 1 to a CPU-bound one) */
  numCpus?: number;
  /** GPUs each replica holds. @default 0 */
  numGpus?: number;
  /** Custom resources each replica holds, e.g. `{ accel: 1 }`. @default {} */
  resources?: Record<string, number>;
  /**
   * The replicas' runtime env: `workingDir` (relative to the current directory, or to the serve.yaml's folder) is
   * shipped to the cluster and the module, which must lie inside it, runs from each node's copy; `env` sets variables;
   * `excludes` leaves files out. @default none (inside a job: the job's env): the module must sit at its path on every node
   */
  runtimeEnv?: RuntimeEnv;
}

/** A deployment resolved on the deploying machine: what will be recorded, and the runtime env still to ship (shipApps). */
export interface ResolvedDeployment extends AppSpec {
  /** The runtime env asked for, working dir absolute; shipApps turns it into `runtimeEnv`. */
  envOptions?: ResolvedRuntimeEnv;
}

const OPTION_KEYS = [
  'import',
  'name',
  'routePrefix',
  'replicas',
  'minReplicas',
  'maxReplicas',
  'targetOngoingRequests',
  'maxOngoingRequests',
  'maxQueuedRequests',
  'upscaleDelayS',
  'downscaleDelayS',
  'gracefulShutdownTimeoutS',
  'numCpus',
  'numGpus',
  'resources',
  'runtimeEnv',
] as const;

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const PREFIX = /^\/[A-Za-z0-9._~\-/]*$/;
const EXTENSIONS = ['', '.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '/index.ts', '/index.js'];

function count(what: string, v: unknown, min: number, integer = true): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new ConfigError(`${what} must be ${integer ? 'a whole number' : 'a number'} >= ${min}, got ${JSON.stringify(v)}.`);
  }
  return v;
}

/** The module file of an import spec (relative to `base`), or a ConfigError naming where it looked. */
function moduleOf(spec: string, base: string): { module: string; exportName?: string } {
  // `path:export`, but not a Windows drive letter.
  const at = spec.lastIndexOf(':');
  const [path, exportName] = at > 1 ? [spec.slice(0, at), spec.slice(at + 1) || undefined] : [spec, undefined];
  const abs = isAbsolute(path) ? path : resolve(base, path);
  for (const ext of EXTENSIONS) {
    const f = abs + ext;
    if (existsSync(f) && statSync(f).isFile()) return { module: f, exportName };
  }
  throw new ConfigError(`No module ${path} (looked for ${abs} with ${EXTENSIONS.filter(Boolean).join(', ')}): give the path of the file that exports the app, e.g. services/my_service/app.ts.`);
}

/**
 * Checks a deployment's options and resolves them to what the controller keeps (an AppSpec): defaults applied, seconds
 * turned into ms, ranges and cross-field rules checked, unknown names refused with the valid ones. `base` is the folder
 * a relative `import` is found from.
 *
 * @example
 * resolveDeployment({ import: 'services/my_service/app.ts', replicas: 2 }, process.cwd());
 * // { name: 'my_service', routePrefix: '/my_service', module: '/…/services/my_service/app.ts', config: { replicas: 2, … } }
 */
export function resolveDeployment(o: DeploymentOptions, base: string): ResolvedDeployment {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ConfigError('A deployment is an object of options, like { import: "services/my_service/app.ts", replicas: 2 }.');
  rejectUnknownKeys('deployment', o, OPTION_KEYS);
  if (typeof o.import !== 'string' || !o.import) throw new ConfigError('A deployment needs `import`: the module that exports the app, e.g. services/my_service/app.ts.');
  const env = o.runtimeEnv;
  // A relative working dir is found from `base` (the serve.yaml's folder), like `import`.
  const given = env && typeof env === 'object' && typeof env.workingDir === 'string' && env.workingDir ? { ...env, workingDir: resolve(base, env.workingDir) } : env;
  const envOptions = resolveRuntimeEnv(given, 'runtimeEnv');
  const workingDir = envOptions?.workingDir;
  if (workingDir && (!existsSync(workingDir) || !statSync(workingDir).isDirectory())) throw new ConfigError(`runtimeEnv.workingDir ${workingDir} is not a folder: give the folder that holds the app's code.`);
  // The module is found from `base`, or else inside the working dir (`serve run app.ts --working-dir services/my_service`).
  const inside = (f: string) => !workingDir || realpathSync(f).startsWith(realpathSync(workingDir) + sep);
  let found: ReturnType<typeof moduleOf>;
  try {
    found = moduleOf(o.import, base);
    if (!inside(found.module) && !isAbsolute(o.import)) {
      try {
        found = moduleOf(o.import, workingDir!);
      } catch {
        // Not in the working dir either: the error below says what to do.
      }
    }
  } catch (err) {
    if (!workingDir || isAbsolute(o.import)) throw err;
    found = moduleOf(o.import, workingDir);
  }
  const { module, exportName } = found;
  if (!inside(module)) {
    throw new ConfigError(`The module ${module} is outside runtimeEnv.workingDir ${workingDir}: replicas run the shipped copy of the working dir, so give a working dir that holds the module (or none, to import it from its path on every node).`);
  }
  const name = o.name ?? basename(dirname(module));
  if (typeof name !== 'string' || !NAME.test(name)) throw new ConfigError(`name must match ${NAME} (letters, digits, _ . -), got ${JSON.stringify(name)}; name the app with --name.`);
  const routePrefix = (o.routePrefix ?? `/${name}`).replace(/(.)\/+$/, '$1');
  if (typeof routePrefix !== 'string' || !PREFIX.test(routePrefix) || routePrefix.startsWith('/-')) {
    throw new ConfigError(`routePrefix is a path of plain segments starting with '/' (and not '/-', which is the ingress's own), like '/my_service'; got ${JSON.stringify(o.routePrefix)}.`);
  }
  const autoscaling = o.minReplicas !== undefined || o.maxReplicas !== undefined;
  const replicas = count('replicas', o.replicas ?? o.minReplicas ?? 1, autoscaling ? 0 : 1);
  const minReplicas = count('minReplicas', o.minReplicas ?? (autoscaling ? Math.min(1, replicas) : replicas), 0);
  const maxReplicas = count('maxReplicas', o.maxReplicas ?? Math.max(replicas, minReplicas), 1);
  if (minReplicas > maxReplicas) throw new ConfigError(`minReplicas (${minReplicas}) is above maxReplicas (${maxReplicas}): raise maxReplicas or lower minReplicas.`);
  if (replicas < minReplicas || replicas > maxReplicas) throw new ConfigError(`replicas (${replicas}) must lie between minReplicas (${minReplicas}) and maxReplicas (${maxReplicas}).`);
  if (minReplicas === 0) throw new ConfigError('minReplicas 0 (scale to zero) is not supported yet: give minReplicas 1 or more.');
  const maxOngoingRequests = count('maxOngoingRequests', o.maxOngoingRequests ?? 5, 1);
  const targetOngoingRequests = count('targetOngoingRequests', o.targetOngoingRequests ?? Math.min(2, maxOngoingRequests), 0.1, false);
  if (targetOngoingRequests > maxOngoingRequests) {
    throw new ConfigError(`targetOngoingRequests (${targetOngoingRequests}) is above maxOngoingRequests (${maxOngoingRequests}), so autoscaling could never reach it: lower it or raise maxOngoingRequests.`);
  }
  const seconds = (what: string, v: number | undefined, dflt: number) => Math.round(count(what, v ?? dflt, 0, false) * 1000);
  const config: DeploymentConfig = {
    replicas,
    minReplicas,
    maxReplicas,
    targetOngoingRequests,
    maxOngoingRequests,
    maxQueuedRequests: count('maxQueuedRequests', o.maxQueuedRequests ?? 100, 0),
    upscaleDelayMs: seconds('upscaleDelayS', o.upscaleDelayS, 2),
    downscaleDelayMs: seconds('downscaleDelayS', o.downscaleDelayS, 60),
    gracefulShutdownTimeoutMs: seconds('gracefulShutdownTimeoutS', o.gracefulShutdownTimeoutS, 20),
    numCpus: count('numCpus', o.numCpus ?? 0, 0, false),
    numGpus: count('numGpus', o.numGpus ?? 0, 0, false),
    resources: resolveResources('resources', o.resources),
  };
  return { name, routePrefix, module, ...(exportName ? { export: exportName } : {}), config, ...(envOptions ? { envOptions } : {}) };
}

/**
 * The apps of a serve.yaml: `applications:`, a list of deployments (the options above, camelCase), each resolved with
 * relative imports found from the file's folder. Two apps with one name or one route prefix are refused.
 *
 * @example
 * // serve.yaml
 * // applications:
 * //   - name: my_service
 * //     import: services/my_service/app.ts
 * //     minReplicas: 1
 * //     maxReplicas: 4
 * //     runtimeEnv: { workingDir: services, env: { LOG_LEVEL: debug } }
 * readServeYaml('serve.yaml');
 */
export function readServeYaml(file: string): ResolvedDeployment[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): give the path of a serve.yaml.`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid YAML: ${(err as Error).message}`);
  }
  const apps = (doc as { applications?: unknown } | null)?.applications;
  if (typeof doc !== 'object' || doc === null || !Array.isArray(apps) || !apps.length) {
    throw new ConfigError(`${file} needs a list under \`applications:\`, e.g.\napplications:\n  - name: my_service\n    import: services/my_service/app.ts\n    replicas: 2`);
  }
  rejectUnknownKeys('serve.yaml top-level', doc, ['applications']);
  const specs = apps.map((a, i) => {
    try {
      return resolveDeployment(a as DeploymentOptions, dirname(resolve(file)));
    } catch (err) {
      throw new ConfigError(`${file}, applications[${i}]: ${(err as Error).message}`);
    }
  });
  checkDistinct(specs);
  return specs;
}

/** Two apps of one deploy may not share a name or a route prefix. */
export function checkDistinct(specs: AppSpec[]): void {
  for (const [i, a] of specs.entries()) {
    for (const b of specs.slice(i + 1)) {
      if (a.name === b.name) throw new ConfigError(`Two apps are named ${a.name}: give each its own name.`);
      if (a.routePrefix === b.routePrefix) throw new ConfigError(`${a.name} and ${b.name} both have the route prefix ${a.routePrefix}: give each its own.`);
    }
  }
}
