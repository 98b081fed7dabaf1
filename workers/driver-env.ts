/** @module The environment a job's driver process starts with: the cluster's address, the job's runtime env, and tsx. */
import { delimiter, dirname, join } from 'node:path';
import type { RuntimeEnvDescriptor } from '../runtime/protocol';
import { JOB_ID_VAR } from '../runtime/protocol/jobs';

/** The folder npm put tsx's command in: on PATH, an entrypoint can say `tsx main.ts` on any node. */
function tsxBinDir(): string {
  // <node_modules>/tsx/package.json → <node_modules>/.bin
  return join(dirname(dirname(require.resolve('tsx/package.json'))), '.bin');
}

/**
 * The driver's environment: this node agent's (its own runtime-env settings left out), the job's variables, then what
 * nodus sets — NODUS_ADDRESS (init() joins the cluster), NODUS_RUNTIME_ENV and NODUS_ENV_DIR (the env it runs in, as a
 * worker of that env gets them: init() makes it the env of every task and actor it starts), NODUS_JOB_ID (its
 * DriverInfo names the job) — and the working dir's installed commands and tsx on PATH.
 */
export function driverEnv(o: { address: string; namespace: string; jobId: string; runtimeEnv: RuntimeEnvDescriptor | undefined; dir: string | undefined }): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...o.runtimeEnv?.vars };
  delete env.NODUS_RUNTIME_ENV;
  delete env.NODUS_ENV_DIR;
  const path = [...(o.dir ? [join(o.dir, 'node_modules', '.bin')] : []), tsxBinDir(), ...(env.PATH ? [env.PATH] : [])].join(delimiter);
  return {
    ...env,
    NODUS_ADDRESS: o.address,
    NODUS_NAMESPACE: o.namespace,
    [JOB_ID_VAR]: o.jobId,
    ...(o.runtimeEnv ? { NODUS_RUNTIME_ENV: JSON.stringify(o.runtimeEnv) } : {}),
    ...(o.runtimeEnv && o.dir ? { NODUS_ENV_DIR: o.dir } : {}),
    PATH: path,
  };
}
