/** @module `nodus job`: submit a job (and follow its log until it ends), show its status, its log, stop it, list jobs. */
import { InvalidArgumentError, type Command } from 'commander';
import { NodusError } from '../runtime/errors';
import { getJob, jobLogs, listJobs, stopJob, submitJob, waitForJob, type JobInfo, type JobStatus } from '../jobs';
import { JOB_STATUSES } from '../runtime/protocol/jobs';

const ADDRESS_HELP = 'Redis address of the cluster (default: NODUS_ADDRESS, or the cluster started here)';

function collect(v: string, all: string[]): string[] {
  return [...all, v];
}

function number(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number >= 0.');
  return n;
}

function json(v: string): Record<string, number> {
  try {
    return JSON.parse(v) as Record<string, number>;
  } catch {
    throw new InvalidArgumentError(`must be JSON, e.g. '{"accel": 1}'.`);
  }
}

/** `--env K=V` pairs as an object. */
export function parseEnvPairs(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new NodusError(`--env takes NAME=value, got '${pair}'; e.g. --env LOG_LEVEL=debug.`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

const time = (ms: number | undefined) => (ms ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

function summary(job: JobInfo): string {
  const exit = job.exitCode !== undefined ? ` (exit code ${job.exitCode})` : '';
  return `Job ${job.id}: ${job.status}${exit}${job.message ? `: ${job.message}` : ''}`;
}

function printJob(job: JobInfo): void {
  console.log(summary(job));
  console.log(`  entrypoint:  ${job.entrypoint}`);
  if (job.workingDir) console.log(`  working dir: ${job.workingDir}${job.runtimeEnv?.pkg ? `  (shipped as package ${job.runtimeEnv.pkg})` : ''}`);
  if (Object.keys(job.resources).length) console.log(`  resources:   ${JSON.stringify(job.resources)}`);
  console.log(`  node:        ${job.node ?? '-'}${job.pid ? `  (driver pid ${job.pid})` : ''}`);
  console.log(`  owner:       ${job.owner}`);
  const took = job.endedAt && job.startedAt ? `  (ran ${((job.endedAt - job.startedAt) / 1000).toFixed(1)} s)` : '';
  console.log(`  created ${time(job.createdAt)}  started ${time(job.startedAt)}  ended ${time(job.endedAt)}${took}`);
}

/** The exit code of a CLI that waited for a job: the job's own (1 for an end without one). */
function exitCodeOf(job: JobInfo): number {
  return job.status === 'succeeded' ? 0 : job.exitCode || 1;
}

/** Prints a job's log as it is written until the job ends; status changes go to stderr when `statuses`. */
async function follow(id: string, address: string | undefined, o: { statuses: boolean }): Promise<void> {
  for await (const e of jobLogs(id, { address, follow: true })) {
    if (e.kind === 'status') {
      if (o.statuses && e.status === 'running') console.error(`nodus: job ${id} is running on ${e.node ?? 'a node'}`);
    } else process[e.kind].write(e.text);
  }
}

/**
 * Adds `nodus job submit|status|logs|stop|list` to the CLI.
 *
 * @example
 * addJobCommands(program);   // then: nodus job submit --working-dir . -- npx tsx main.ts
 */
export function addJobCommands(program: Command): void {
  const job = program.command('job').description("Jobs (Ray's job API): run a driver on the cluster, follow its log, stop it");

  job
    .command('submit')
    .description('Run an entrypoint as a driver process on the cluster (the head node, or a node with --resources); its log streams here until it ends, and this command exits with its exit code')
    .usage('[options] -- <entrypoint...>')
    .argument('<entrypoint...>', 'the command, after --, e.g. -- npx tsx main.ts')
    .option('--address <url>', ADDRESS_HELP)
    .option('--working-dir <dir>', 'a folder shipped to the node: the driver runs there, and its tasks run its code on every node')
    .option('--env <NAME=value>', 'an environment variable of the driver and its tasks; repeatable', collect, [])
    .option('--num-cpus <n>', 'CPUs the driver holds on its node (default 0)', number)
    .option('--num-gpus <n>', 'GPUs the driver holds on its node (default 0)', number)
    .option('--resources <json>', `custom resources the driver holds, e.g. '{"accel": 1}'`, json)
    .option('--no-wait', 'return once the job is submitted, without following its log')
    .action(async (entrypoint: string[], o: { address?: string; workingDir?: string; env: string[]; numCpus?: number; numGpus?: number; resources?: Record<string, number>; wait: boolean }) => {
      const submitted = await submitJob({
        entrypoint: entrypoint.length === 1 ? entrypoint[0] : entrypoint,
        runtimeEnv: o.workingDir || o.env.length ? { workingDir: o.workingDir, env: parseEnvPairs(o.env) } : undefined,
        numCpus: o.numCpus,
        numGpus: o.numGpus,
        resources: o.resources,
        address: o.address,
      });
      const { shipped } = submitted;
      const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
      if (shipped) console.error(`nodus: working dir ${o.workingDir}: ${shipped.files} files, ${kib(shipped.bytes)}${shipped.uploaded ? ' shipped to the cluster' : ', in the cluster already'}`);
      console.error(`nodus: job ${submitted.id} submitted`);
      if (!o.wait) {
        console.log(submitted.id);
        return;
      }
      // Ctrl-C stops following, not the job (as Ray's CLI does).
      process.once('SIGINT', () => {
        console.error(`\nnodus: stopped following; job ${submitted.id} keeps running. \`npx nodus job stop ${submitted.id}\` stops it.`);
        process.exit(130);
      });
      await follow(submitted.id, o.address, { statuses: true });
      const done = await waitForJob(submitted.id, { address: o.address });
      console.error(`nodus: ${summary(done)}`);
      process.exitCode = exitCodeOf(done);
    });

  job
    .command('status')
    .description("A job's status, exit code, node, times and message")
    .argument('<jobId>')
    .option('--address <url>', ADDRESS_HELP)
    .option('--json', 'print JSON')
    .action(async (id: string, o: { address?: string; json?: boolean }) => {
      const found = await getJob(id, { address: o.address });
      if (o.json) console.log(JSON.stringify(found, null, 2));
      else printJob(found);
    });

  job
    .command('logs')
    .description("What a job's driver printed (stdout and stderr, each to its own); --follow goes on until the job ends")
    .argument('<jobId>')
    .option('--address <url>', ADDRESS_HELP)
    .option('--follow', 'print new output as it comes, until the job ends')
    .action(async (id: string, o: { address?: string; follow?: boolean }) => {
      if (o.follow) return follow(id, o.address, { statuses: false });
      for await (const e of jobLogs(id, { address: o.address })) if (e.kind !== 'status') process[e.kind].write(e.text);
    });

  job
    .command('stop')
    .description('Stop a job: its driver gets SIGTERM (SIGKILL 3 s later) and its tasks and actors end with it; waits until it has stopped')
    .argument('<jobId>')
    .option('--address <url>', ADDRESS_HELP)
    .option('--no-wait', 'return once the stop is asked for')
    .action(async (id: string, o: { address?: string; wait: boolean }) => {
      const asked = await stopJob(id, { address: o.address });
      const done = o.wait ? await waitForJob(id, { address: o.address, timeout: 30_000 }) : asked;
      console.log(summary(done));
    });

  job
    .command('list')
    .description('Jobs, newest first')
    .option('--address <url>', ADDRESS_HELP)
    .option('--status <statuses>', `only these, comma-separated: ${JOB_STATUSES.join(', ')}`)
    .option('--limit <n>', 'at most this many', (v) => Math.max(1, Math.floor(number(v))), 100)
    .option('--json', 'print JSON')
    .action(async (o: { address?: string; status?: string; limit: number; json?: boolean }) => {
      const status = o.status?.split(',').map((s) => s.trim()).filter(Boolean) as JobStatus[] | undefined;
      const jobs = await listJobs({ address: o.address, status, limit: o.limit });
      if (o.json) return console.log(JSON.stringify(jobs, null, 2));
      if (!jobs.length) return console.log('No jobs. Submit one with `npx nodus job submit --working-dir . -- npx tsx main.ts`.');
      for (const j of jobs) {
        const exit = j.exitCode !== undefined ? ` exit ${j.exitCode}` : '';
        console.log(`${j.id}  ${j.status.padEnd(9)}${exit}  ${j.node ?? '-'}  ${time(j.createdAt)}  ${j.entrypoint}`);
      }
    });
}
