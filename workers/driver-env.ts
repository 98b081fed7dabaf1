/** @module The environment a job's driver process starts with: the cluster's address, the job's runtime environment, and this node's nodus and tsx. */
import { mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { distRoot } from '../runtime/internal/launcher';
import { sessionDir } from '../runtime/internal/session';
import { JOB_ID_VAR, RUNTIME_ENV_VAR, type JobRuntimeEnv } from '../runtime/protocol/jobs';

/** Root of the nodus package this node runs (its package.json's `main` is the runtime the driver gets as `nodus`). */
function packageRoot(): string {
  return dirname(distRoot());
}

let nodePathDir: string | undefined;

/**
 * A folder holding one entry, `nodus`, a link to this node's package: on NODE_PATH, it lets shipped code that
 * imports 'nodus' (CommonJS, and TypeScript run by tsx) get the runtime the node runs, with nothing installed.
 */
function nodusModuleDir(): string {
  if (nodePathDir) return nodePathDir;
  const dir = join(sessionDir(), 'jobs', 'node_path');
  const link = join(dir, 'nodus');
  mkdirSync(dir, { recursive: true });
  let current = '';
  try {
    current = readlinkSync(link);
  } catch {
    /* not made yet */
  }
  if (current !== packageRoot()) {
    // Another node agent of this machine may be making the same link (EEXIST): its link is as good as ours.
    rmSync(link, { force: true });
    try {
      symlinkSync(packageRoot(), link, 'dir');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return (nodePathDir = dir);
}

/** The folder npm put tsx's command in: on PATH, an entrypoint can say `tsx main.ts` on any node. */
function tsxBinDir(): string {
  // <node_modules>/tsx/package.json → <node_modules>/.bin
  return join(dirname(dirname(require.resolve('tsx/package.json'))), '.bin');
}

function prepend(dir: string, list: string | undefined): string {
  return list ? `${dir}${delimiter}${list}` : dir;
}

/**
 * The driver's environment: this node agent's, the job's `env`, then what nodus sets — NODUS_ADDRESS (init() joins
 * the cluster), NODUS_RUNTIME_ENV (init()'s default runtime environment), NODUS_JOB_ID (its DriverInfo names the job),
 * and `nodus` and `tsx` resolvable without an install.
 */
export function driverEnv(o: { address: string; namespace: string; jobId: string; runtimeEnv: JobRuntimeEnv }): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env, ...o.runtimeEnv.env };
  return {
    ...base,
    NODUS_ADDRESS: o.address,
    NODUS_NAMESPACE: o.namespace,
    [RUNTIME_ENV_VAR]: JSON.stringify(o.runtimeEnv),
    [JOB_ID_VAR]: o.jobId,
    PATH: prepend(tsxBinDir(), base.PATH),
    NODE_PATH: prepend(nodusModuleDir(), base.NODE_PATH),
  };
}
