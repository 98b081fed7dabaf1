/**
 * @module The jobs a node runs: it takes pending jobs that fit (those without resources only on the head node), runs
 * each entrypoint as a driver process in a process group of its own, writes what it prints to the job's log, records
 * its status and exit code, stops it on request, and ends what its drivers owned once it is gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { releaseDriver } from '../runtime/internal/driver-end';
import { appendJobOutput, readJob, setJobStatus } from '../runtime/internal/job-store';
import type { CommandClient } from '../runtime/internal/object-store';
import { fits } from '../runtime/internal/policy';
import { sessionDir } from '../runtime/internal/session';
import type { DriverInfo, Keys, NodeInfo, Resources, RuntimeEnvDescriptor } from '../runtime/protocol';
import { JOB_STOP_GRACE_MS, JOBS_PROTOCOL_VERSION, JobKeys, type JobInfo, type JobMessage } from '../runtime/protocol/jobs';
import { coalescing } from '../runtime/internal/coalesce';
import { driverEnv } from './driver-env';

export interface JobSupervisorOptions {
  redis: CommandClient;
  keys: Keys;
  address: string;
  /** The node's current id (a node declared dead joins again under a new one). */
  nodeId(): string;
  /** This is the head's node: jobs that ask for no resources run here. */
  headNode: boolean;
  /** The node's resources: a job whose demand exceeds them is never taken here. */
  total: Resources;
  logger: Logger;
  /** Takes a demand from the node's free resources; false when it does not fit now. */
  reserve(demand: Resources): boolean;
  release(demand: Resources): void;
  queue(name: string): Queue;
  /** Makes a runtime env ready on this node (the node's env cache): its working dir unpacked, its packages installed. */
  prepare(env: RuntimeEnvDescriptor): Promise<{ dir?: string }>;
}

/** A job this node took. */
interface Running {
  job: JobInfo;
  /** The node id it runs under. */
  node: string;
  demand: Resources;
  child: ChildProcess | undefined;
  /** Why it is being stopped: a stop request, or this node leaving. */
  stopping: 'requested' | 'node' | undefined;
  killTimer: NodeJS.Timeout | undefined;
  /** Output not yet written to the log, and the write under way (kept in order). */
  out: { stream: 'stdout' | 'stderr'; text: string }[];
  writing: Promise<void>;
  /** An empty folder made for a job without a working dir, removed at its end. */
  scratch: string | undefined;
  /** Its working dir in the node's env cache (kept there while the driver runs). */
  dir: string | undefined;
}

/** How often the node looks for pending jobs and missed stop requests without being told (pub/sub is not durable). */
const POLL_MS = 1000;

export class JobSupervisor {
  private readonly jobKeys: JobKeys;
  private readonly running = new Map<string, Running>();
  private timer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(private readonly o: JobSupervisorOptions) {
    this.jobKeys = new JobKeys(o.keys.prefix);
  }

  /** The channel whose messages go to onMessage(). */
  get channel(): string {
    return this.jobKeys.channel;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.poll();
      void this.sweepStops().catch((err) => this.o.logger.debug({ err: String(err) }, 'job stop sweep failed'));
    }, POLL_MS);
    this.poll();
  }

  onMessage(raw: string): void {
    let msg: JobMessage;
    try {
      msg = JSON.parse(raw) as JobMessage;
    } catch {
      return;
    }
    if (msg.type === 'submitted') this.poll();
    else if (msg.type === 'stop') this.stop(msg.id, 'requested');
  }

  /** Looks for pending jobs (one look at a time; a call meanwhile makes it look once more). */
  poll(): void {
    if (!this.closing) this.look();
  }

  private readonly look = coalescing(
    () => this.takePending(),
    (err) => this.o.logger.debug({ err: String(err) }, 'looking for pending jobs failed'),
  );

  private async takePending(): Promise<void> {
    const ids = await this.o.redis.zrange(this.jobKeys.pending, 0, 99);
    let headAlive: boolean | undefined;
    for (const id of ids) {
      if (this.closing) return;
      const raw = await this.o.redis.hget(this.jobKeys.job(id), 'demand');
      if (raw === null) {
        await this.o.redis.zrem(this.jobKeys.pending, id); // expired or deleted
        continue;
      }
      const demand = JSON.parse(raw) as Resources;
      if (!fits(demand, this.o.total)) continue;
      // As in Ray, a driver that asks for nothing runs on the head's node; any node takes it when the head has none.
      if (!Object.values(demand).some((v) => v > 0) && !this.o.headNode) {
        headAlive ??= await this.headNodeAlive();
        if (headAlive) continue;
      }
      if (!this.o.reserve(demand)) continue;
      // Whoever removes it from the pending set owns it (another node, or a stop).
      if (!(await this.o.redis.zrem(this.jobKeys.pending, id))) {
        this.o.release(demand);
        continue;
      }
      // Not waited for: setting up its env can take minutes (npm ci), and other jobs may start meanwhile.
      void this.run(id, demand).catch((err) => this.o.logger.error({ job: id, err: String(err) }, 'could not run a job'));
    }
  }

  private async headNodeAlive(): Promise<boolean> {
    const nodes = (await this.o.redis.hvals(this.o.keys.nodes)).map((s) => JSON.parse(s) as NodeInfo);
    return nodes.some((n) => n.isHeadNode && n.state === 'alive');
  }

  /** Starts the driver of a job this node took. */
  private async run(id: string, demand: Resources): Promise<void> {
    const node = this.o.nodeId();
    // Named first, so that the head fails the job should this node die before it starts.
    await this.o.redis.hset(this.jobKeys.job(id), 'node', node);
    const job = await readJob(this.o.redis, this.jobKeys, id);
    if (!job) return this.o.release(demand);
    const run: Running = { job, node, demand, child: undefined, stopping: undefined, killTimer: undefined, out: [], writing: Promise.resolve(), scratch: undefined, dir: undefined };
    this.running.set(id, run);
    const v = Number((await this.o.redis.hget(this.jobKeys.job(id), 'v')) ?? 0);
    let cwd: string;
    try {
      if (v !== JOBS_PROTOCOL_VERSION) throw new Error(`its record is of jobs protocol ${v} and this node speaks ${JOBS_PROTOCOL_VERSION}: submit it with the nodus version the cluster runs`);
      // Fetched and unpacked (npm ci too) the first time this node sees this working dir; at once after that.
      run.dir = job.runtimeEnv ? (await this.o.prepare(job.runtimeEnv)).dir : undefined;
      cwd = run.dir ?? (run.scratch = join(sessionDir(), 'jobs', id));
      mkdirSync(cwd, { recursive: true });
    } catch (err) {
      // The env cache's errors name the node and the step already.
      return this.finish(run, 'failed', { message: `its runtime env could not be set up: ${(err as Error).message}` });
    }
    if (this.closing) return this.finish(run, 'failed', { message: `its node ${node} stopped before the job started` });
    if (job.stopRequested || run.stopping) return this.finish(run, 'stopped', { message: 'stopped before it started' });
    const env = driverEnv({ address: this.o.address, namespace: this.o.keys.prefix, jobId: id, runtimeEnv: job.runtimeEnv, dir: run.dir });
    // A process group of its own: a stop reaches the shell, the driver and whatever they started.
    const child = spawn('/bin/sh', ['-c', job.entrypoint], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    run.child = child;
    for (const stream of ['stdout', 'stderr'] as const) {
      child[stream]!.setEncoding('utf8');
      child[stream]!.on('data', (text: string) => this.output(run, stream, text));
    }
    const closed = new Promise<void>((r) => child.once('close', () => r()));
    child.once('error', (err) => {
      // spawn failed (no /bin/sh?): there is no process to wait for.
      if (!child.pid) void this.finish(run, 'failed', { message: `could not start its entrypoint on node ${node}: ${err.message}` });
    });
    if (!child.pid) return;
    child.once('exit', (code, signal) => void this.exited(run, code, signal, closed));
    await setJobStatus(this.o.redis, this.jobKeys, id, 'running', { node, pid: child.pid });
    this.o.logger.info({ job: id, pid: child.pid, entrypoint: job.entrypoint }, 'job started');
    // Asked to stop while it started.
    if (run.stopping) this.kill(run);
    else if (this.closing) this.stop(id, 'node');
    else if (await this.o.redis.hget(this.jobKeys.job(id), 'stopRequested')) this.stop(id, 'requested');
  }

  private output(run: Running, stream: 'stdout' | 'stderr', text: string): void {
    const first = !run.out.length;
    run.out.push({ stream, text });
    // One pipeline per tick, chained so that the log keeps the order it was printed in.
    if (first) setImmediate(() => this.flush(run));
  }

  private flush(run: Running): Promise<void> {
    const batch = run.out.splice(0);
    run.writing = run.writing.then(() => appendJobOutput(this.o.redis, this.jobKeys, run.job.id, batch)).catch((err) => this.o.logger.warn({ job: run.job.id, err: String(err) }, 'could not write job output'));
    return run.writing;
  }

  /** The entrypoint's process exited: end its group, then record the end. */
  private async exited(run: Running, code: number | null, signal: NodeJS.Signals | null, closed: Promise<void>): Promise<void> {
    const pid = run.child!.pid!;
    // What it left running in its group holds its output open: wait a moment, then end them too.
    const wait = (ms: number) => Promise.race([closed, new Promise((r) => setTimeout(r, ms))]);
    await wait(500);
    if (groupAlive(pid)) {
      signalGroup(pid, 'SIGTERM');
      await wait(run.stopping ? 200 : JOB_STOP_GRACE_MS);
      signalGroup(pid, 'SIGKILL');
      await wait(500);
    }
    clearTimeout(run.killTimer);
    const exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
    const how = signal ? `was ended by ${signal}` : `exited with code ${code}`;
    if (run.stopping === 'requested') return this.finish(run, 'stopped', { exitCode, message: `stopped on request; the entrypoint ${how}` });
    if (run.stopping === 'node') return this.finish(run, 'failed', { exitCode, message: `its node ${run.node} stopped while the job ran; the entrypoint ${how}` });
    if (code === 0) return this.finish(run, 'succeeded', { exitCode });
    return this.finish(run, 'failed', { exitCode, message: `the entrypoint ${how}` });
  }

  /** Writes the last output, ends what its drivers owned, records the end and gives the resources back. */
  private async finish(run: Running, status: 'succeeded' | 'failed' | 'stopped', c: { exitCode?: number; message?: string }): Promise<void> {
    const { id } = run.job;
    try {
      await this.flush(run);
      await this.releaseDrivers(id);
      await setJobStatus(this.o.redis, this.jobKeys, id, status, { ...c, onlyNode: run.node });
      this.o.logger.info({ job: id, status, ...c }, 'job ended');
    } catch (err) {
      this.o.logger.warn({ job: id, err: String(err) }, 'could not record the end of a job');
    } finally {
      this.running.delete(id);
      if (run.scratch) rmSync(run.scratch, { recursive: true, force: true });
      this.o.release(run.demand);
    }
  }

  /** The job's drivers are gone with its process group: end their tasks, actors and objects now, not when the head notices. */
  private async releaseDrivers(jobId: string): Promise<void> {
    const drivers = Object.entries(await this.o.redis.hgetall(this.o.keys.drivers));
    const ctx = { redis: this.o.redis, keys: this.o.keys, queue: (name: string) => this.o.queue(name) };
    for (const [driverId, raw] of drivers) {
      let info: DriverInfo;
      try {
        info = JSON.parse(raw) as DriverInfo;
      } catch {
        continue;
      }
      if (info.job !== jobId) continue;
      const ended = await releaseDriver(ctx, driverId, `its job ${jobId} ended`);
      this.o.logger.info({ job: jobId, driver: driverId, ...ended }, "ended what the job's driver owned");
    }
  }

  /** SIGTERM to the driver's process group; SIGKILL after the grace period. */
  stop(id: string, why: 'requested' | 'node'): void {
    const run = this.running.get(id);
    if (!run || run.stopping) return;
    run.stopping = why;
    // Not started yet: run() sees it once it has.
    if (run.child?.pid) this.kill(run);
  }

  private kill(run: Running): void {
    const pid = run.child!.pid!;
    this.o.logger.info({ job: run.job.id, pid, why: run.stopping }, 'stopping job');
    signalGroup(pid, 'SIGTERM');
    run.killTimer = setTimeout(() => signalGroup(pid, 'SIGKILL'), run.stopping === 'node' ? 1500 : JOB_STOP_GRACE_MS);
  }

  /** True while a driver runs in `dir` (the env cache keeps it). */
  usesDir(dir: string): boolean {
    return [...this.running.values()].some((r) => r.dir === dir);
  }

  /** Stop requests whose message this node missed. */
  private async sweepStops(): Promise<void> {
    const runs = [...this.running.values()].filter((r) => !r.stopping);
    if (!runs.length) return;
    const pipe = this.o.redis.pipeline();
    for (const r of runs) pipe.hget(this.jobKeys.job(r.job.id), 'stopRequested');
    const res = (await pipe.exec()) ?? [];
    res.forEach(([, v], i) => v && this.stop(runs[i].job.id, 'requested'));
  }

  /**
   * This node leaves (it stops, or rejoins as a new node): its jobs fail, naming it, and their drivers are stopped.
   * The ends are recorded first: a stop is cut short after a few seconds, and the record must not say running.
   */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.timer);
    const runs = [...this.running.values()];
    await Promise.all(
      runs.map((r) =>
        setJobStatus(this.o.redis, this.jobKeys, r.job.id, 'failed', { message: `its node ${r.node} stopped while the job ran`, onlyNode: r.node }).catch(() => undefined),
      ),
    );
    for (const r of runs) this.stop(r.job.id, 'node');
    // A driver that ignores SIGTERM is killed within the grace period above.
    const deadline = Date.now() + 2000;
    while (this.running.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is gone */
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}
