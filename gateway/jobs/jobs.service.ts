/**
 * @module Jobs for the gateway: submissions checked like the CLI's (the working dir already uploaded), records read from
 * Redis (any gateway answers), logs streamed as Server-Sent Events, stops asked of the node that runs the driver.
 */
import { BadRequestException, Injectable, NotFoundException, type OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { checkFeasible } from '../../jobs/client';
import { resolveEntrypoint, resolveEnvVars, resolveJobDemand } from '../../jobs/options';
import { createJob, followJobLog, listJobRecords, readJob, requestJobStop } from '../../runtime/internal/job-store';
import { connect } from '../../runtime/internal/redis';
import { withCommands } from '../../runtime/protocol/commands';
import { JOB_STATUSES, JobKeys, isFinalJobStatus, type JobInfo, type JobRuntimeEnv, type JobStatus } from '../../runtime/protocol/jobs';
import type { AuthUser } from '../auth/decorators';
import { parseWith } from '../common/body';
import { GatewayContext } from '../common/context';
import { HttpError } from '../common/errors';

/** `GET /api/jobs`'s query, as given (strings). */
export interface JobsQuery {
  status?: string;
  limit?: string;
}

const SubmitBody = z.strictObject({
  entrypoint: z.union([z.string(), z.array(z.string())]),
  runtimeEnv: z.looseObject({ workingDir: z.string().optional(), env: z.record(z.string(), z.string()).optional() }).optional(),
  numCpus: z.number().nonnegative().optional(),
  numGpus: z.number().nonnegative().optional(),
  resources: z.record(z.string(), z.number().nonnegative()).optional(),
});

/** A comment line this often keeps proxies and browsers from closing a quiet stream. */
const PING_MS = 3000;
const STREAM_ID = /^\d+(-\d+)?$/;

@Injectable()
export class JobsService implements OnModuleDestroy {
  private readonly keys: JobKeys;
  /** The open log streams' connections: each holds a blocking XREAD (jobs are few, and so are their open logs). */
  private readonly open = new Set<Redis>();

  constructor(private readonly gw: GatewayContext) {
    this.keys = new JobKeys(gw.keys.prefix);
  }

  onModuleDestroy(): void {
    for (const r of this.open) r.disconnect();
    this.open.clear();
  }

  async submit(body: unknown, user: AuthUser) {
    const b = parseWith(SubmitBody, body);
    const entrypoint = resolveEntrypoint(b.entrypoint);
    const demand = resolveJobDemand(b);
    const runtimeEnv: JobRuntimeEnv = { ...b.runtimeEnv, ...(b.runtimeEnv?.env ? { env: resolveEnvVars('runtimeEnv.env', b.runtimeEnv.env) } : {}) };
    await checkFeasible(this.gw.redis, this.keys, this.gw.options.address, { demand });
    const job = await createJob(this.gw.redis, this.keys, { entrypoint, runtimeEnv, demand, owner: user.name });
    return { jobId: job.id, status: job.status, job: `/api/jobs/${job.id}`, logs: `/api/jobs/${job.id}/logs` };
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
    const after = lastEventId?.trim() || '0';
    if (!STREAM_ID.test(after)) throw new BadRequestException(`Last-Event-ID must be an event id such as 1700000000000-0, got '${after}'.`);
    await this.get(id);
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    req.socket.setNoDelay(true);
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
