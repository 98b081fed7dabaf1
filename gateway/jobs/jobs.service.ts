/**
 * @module Jobs for the gateway: submissions checked like the CLI's (the working dir already uploaded), records read from
 * Redis (any gateway answers), logs streamed as Server-Sent Events, stops asked of the node that runs the driver.
 */
import { BadRequestException, Injectable, NotFoundException, type OnModuleDestroy } from '@nestjs/common';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { checkFeasible } from '../../jobs/client';
import { resolveEntrypoint, resolveJobDemand } from '../../jobs/options';
import { createJob, followJobLog, listJobRecords, readJob, requestJobStop } from '../../runtime/internal/job-store';
import { connect } from '../../runtime/internal/redis';
import { withCommands } from '../../runtime/protocol/commands';
import { JOB_STATUSES, JobKeys, isFinalJobStatus, type JobInfo, type JobStatus } from '../../runtime/protocol/jobs';
import { Keys, type RuntimeEnvDescriptor } from '../../runtime/protocol';
import { resolveRuntimeEnv } from '../../runtime/options';
import { RuntimeEnvError } from '../../runtime/errors';
import { packageStored, unpackTo } from '../../runtime/internal/packaging';
import { envKey, shipWorkingDir } from '../../runtime/internal/runtime-env';
import type { AuthUser } from '../auth/decorators';
import { parseWith, rawBodyOf } from '../common/body';
import { GatewayContext } from '../common/context';
import { HttpError } from '../common/errors';
import { openEventStream, resumeFrom } from '../common/sse';

/** `GET /api/jobs`'s query, as given (strings). */
export interface JobsQuery {
  status?: string;
  limit?: string;
}

const HASH = z.string().regex(/^[0-9a-f]{16,64}$/, 'must be a content hash as POST /api/jobs/packages answered it');
const SubmitBody = z.strictObject({
  entrypoint: z.union([z.string(), z.array(z.string())]),
  // The working dir as POST /api/jobs/packages stored it (pkg, lock), and variables.
  runtimeEnv: z.strictObject({ pkg: HASH.optional(), lock: HASH.optional(), mods: HASH.optional(), env: z.record(z.string(), z.string()).optional() }).optional(),
  numCpus: z.number().nonnegative().optional(),
  numGpus: z.number().nonnegative().optional(),
  resources: z.record(z.string(), z.number().nonnegative()).optional(),
});

/** A comment line this often keeps proxies and browsers from closing a quiet stream. */
const PING_MS = 3000;

@Injectable()
export class JobsService implements OnModuleDestroy {
  private readonly keys: JobKeys;
  /** The runtime's keys: where working dirs are stored. */
  private readonly runtimeKeys: Keys;
  /** The open log streams' connections: each holds a blocking XREAD (jobs are few, and so are their open logs). */
  private readonly open = new Set<Redis>();

  constructor(private readonly gw: GatewayContext) {
    this.keys = new JobKeys(gw.keys.prefix);
    this.runtimeKeys = new Keys(gw.keys.prefix);
  }

  onModuleDestroy(): void {
    for (const r of this.open) r.disconnect();
    this.open.clear();
  }

  async submit(body: unknown, user: AuthUser) {
    const b = parseWith(SubmitBody, body);
    const entrypoint = resolveEntrypoint(b.entrypoint);
    const demand = resolveJobDemand(b);
    const runtimeEnv = await this.runtimeEnv(b.runtimeEnv);
    await checkFeasible(this.gw.redis, this.keys, this.gw.options.address, { demand });
    const job = await createJob(this.gw.redis, this.keys, { entrypoint, runtimeEnv, demand, owner: user.name });
    return { jobId: job.id, status: job.status, job: `/api/jobs/${job.id}`, logs: `/api/jobs/${job.id}/logs` };
  }

  /** The descriptor of a submission's runtime env: its packages must be in the cluster already. */
  private async runtimeEnv(given: z.infer<typeof SubmitBody>['runtimeEnv']): Promise<RuntimeEnvDescriptor | undefined> {
    if (!given) return undefined;
    const vars = resolveRuntimeEnv({ env: given.env ?? {} })!.env;
    for (const hash of [given.pkg, given.mods]) {
      if (hash && !(await packageStored(this.gw.redis, this.runtimeKeys, hash))) {
        throw new BadRequestException(`The cluster holds no package ${hash}; upload the working dir first with POST /api/jobs/packages (a .tar.gz body).`);
      }
    }
    const base = { vars, ...(given.pkg ? { pkg: given.pkg } : {}), ...(given.lock ? { lock: given.lock } : {}), ...(given.mods ? { mods: given.mods } : {}) };
    if (!base.pkg && !Object.keys(vars).length) return undefined;
    return { key: envKey(base), ...base };
  }

  /**
   * Stores a working dir sent as a gzipped tar, as `submitJob` ships a folder: unpacked here, scanned (.gitignore
   * respected, the size limit applied) and stored once per content. Answers what POST /api/jobs takes as `runtimeEnv`.
   */
  async upload(req: Request): Promise<{ runtimeEnv: { pkg: string; lock?: string }; files: number; bytes: number; uploaded: boolean }> {
    const { raw } = rawBodyOf(req);
    if (!raw.length) throw new BadRequestException('Send the working dir as a .tar.gz body, e.g. `tar czf - -C app . | curl --data-binary @- -H "content-type: application/gzip" ...`.');
    if (raw[0] !== 0x1f || raw[1] !== 0x8b) throw new BadRequestException('The body is not gzip: send the working dir as a .tar.gz (tar czf).');
    const tmp = mkdtempSync(join(tmpdir(), 'nodus-job-upload-'));
    try {
      const dir = join(tmp, 'dir');
      try {
        await unpackTo(raw, dir);
      } catch (err) {
        throw new BadRequestException(`The body is not a .tar.gz that unpacks (${(err as Error).message}).`);
      }
      // The package's own problems (too big, unreadable entries) are the client's to fix: 400, not the filter's 502.
      const shipped = await shipWorkingDir(this.gw.redis, this.runtimeKeys, { workingDir: dir, env: {} }).catch((err: unknown) => {
        throw err instanceof RuntimeEnvError ? new BadRequestException(err.message) : err;
      });
      return { runtimeEnv: { pkg: shipped.pkg, ...(shipped.lock ? { lock: shipped.lock } : {}) }, files: shipped.files, bytes: shipped.pkgBytes, uploaded: shipped.uploaded };
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  async list(query: JobsQuery): Promise<{ jobs: JobInfo[] }> {
    const limit = query.limit === undefined || query.limit === '' ? 100 : Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new BadRequestException(`limit must be an integer from 1 to 1000, got ${JSON.stringify(query.limit)}.`);
    const status = (query.status ?? '').split(',').map((s) => s.trim()).filter(Boolean) as JobStatus[];
    for (const s of status) if (!JOB_STATUSES.includes(s)) throw new BadRequestException(`status must be one or more of ${JOB_STATUSES.join(', ')} (comma-separated), got '${s}'.`);
    return { jobs: await listJobRecords(this.gw.redis, this.keys, { status, limit }) };
  }

  async get(id: string): Promise<JobInfo> {
    const job = await readJob(this.gw.redis, this.keys, id);
    if (!job) throw new NotFoundException(`No job ${id} (jobs are kept 7 days after they end); GET /api/jobs lists them.`);
    return job;
  }

  async stop(id: string): Promise<JobInfo> {
    const job = await this.get(id);
    if (isFinalJobStatus(job.status)) throw new HttpError(409, `Job ${id} has ended already (${job.status}); there is nothing to stop.`, { fields: { jobId: id, status: job.status } });
    return (await requestJobStop(withCommands(this.gw.redis), this.keys, id)) ?? job;
  }

  async logs(req: Request, res: Response, id: string, lastEventId: string | undefined): Promise<void> {
    const after = resumeFrom(lastEventId);
    await this.get(id);
    openEventStream(req, res);
    const blocking = connect(this.gw.options.address, { name: 'nodus:gateway-job-log', blocking: true });
    blocking.on('error', () => undefined);
    this.open.add(blocking);
    const abort = new AbortController();
    const ping = setInterval(() => res.write(': ping\n\n'), PING_MS);
    const end = () => {
      abort.abort();
      clearInterval(ping);
      this.open.delete(blocking);
      blocking.disconnect();
    };
    res.on('close', end);
    let eof = false;
    try {
      for await (const e of followJobLog(this.gw.redis, blocking, this.keys, id, after, abort.signal)) {
        res.write(`id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify({ kind: e.kind, data: e.data, at: e.at })}\n\n`);
        eof = e.kind === 'status' && isFinalJobStatus((e.data as { status?: string }).status);
      }
      // Ended (or, resumed after its final status, nothing more to say).
      eof ||= isFinalJobStatus((await readJob(this.gw.redis, this.keys, id))?.status);
    } catch (err) {
      if (!abort.signal.aborted) this.gw.logger.warn({ job: id, err: (err as Error).message }, 'job log stream ended early');
    } finally {
      if (eof && !res.writableEnded) res.write('event: eof\ndata: {}\n\n');
      end();
      res.end();
    }
  }
}
