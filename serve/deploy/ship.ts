/**
 * @module A deploy's runtime envs, on the deploying machine: each app's working dir shipped to the cluster (once per
 * content, as tasks' are) and its module turned into a path relative to it, so that replicas on any node run the
 * shipped copy. Inside a job (NODUS_RUNTIME_ENV set) the job's env is every app's default.
 */
import { realpathSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { RuntimeEnvs, envModulePath, inheritedEnv } from '../../runtime/internal/runtime-env';
import { Keys } from '../../runtime/protocol';
import type { AppSpec } from '../../runtime/protocol/deploy';
import type { ResolvedDeployment } from './config';

/** What shipping an app's working dir took (absent: the app has none of its own). */
export interface ShippedApp {
  spec: AppSpec;
  shipped?: { workingDir: string; files: number; bytes: number; uploaded: boolean };
}

/**
 * Ships the runtime envs of resolved deployments and answers what to record: `runtimeEnv` the env's descriptor, and the
 * module relative to its working dir when it lies inside (a module outside, in an inherited env, keeps its path).
 *
 * @example
 * const [{ spec }] = await shipApps(redis, 'nodus', [resolveDeployment({ import: 'app.ts', runtimeEnv: { workingDir: '.' } }, process.cwd())]);
 * await submitApps(redis, keys, [spec]);
 */
export async function shipApps(redis: Redis, prefix: string, deployments: ResolvedDeployment[], env: NodeJS.ProcessEnv = process.env): Promise<ShippedApp[]> {
  const envs = new RuntimeEnvs(redis, new Keys(prefix), undefined, inheritedEnv(env));
  const out: ShippedApp[] = [];
  for (const d of deployments) {
    const { envOptions, ...spec } = d;
    const ready = await envs.resolve(envOptions);
    if (!ready?.root) {
      // No working dir travels: replicas run from the deploying folder, as the app would standalone.
      out.push({ spec: { ...spec, cwd: process.cwd(), ...(ready ? { runtimeEnv: ready.desc } : {}) } });
      continue;
    }
    let module = spec.module;
    try {
      module = realpathSync(module);
    } catch {
      // resolveDeployment found it a moment ago; as it is, then.
    }
    const app: ShippedApp = { spec: { ...spec, module: envModulePath(module, ready.root), runtimeEnv: ready.desc } };
    if (envOptions?.workingDir && ready.shipped) app.shipped = { workingDir: envOptions.workingDir, files: ready.shipped.files, bytes: ready.shipped.pkgBytes, uploaded: ready.shipped.uploaded };
    out.push(app);
  }
  return out;
}
