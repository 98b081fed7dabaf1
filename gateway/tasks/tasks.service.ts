/**
 * @module The task platform for the user who asks: discovery from Redis (any gateway answers it), runs started with the
 * parameters checked against the registered schema, and runs read, listed, streamed and cancelled as executions.
 */
import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { isFinal, type ExecStatus } from '../../runtime/protocol/services';
import { readExecution } from '../../serve/store';
import { EXEC_STATUS, RUN_STATUS, type RunStatus } from '../../tasks/protocol';
import { ParametersError, TaskNotFoundError, findTask, listTasks, taskVersions, validateParameters } from '../../tasks/registry';
import { IdempotencyConflictError, listRuns, readRun, startRun } from '../../tasks/runs';
import type { AuthUser } from '../auth/decorators';
import { parseWith } from '../common/body';
import { GatewayContext } from '../common/context';
import { HttpError } from '../common/errors';
import { OutputsService } from '../outputs/outputs.service';
import { StreamService } from '../outputs/stream.service';

/** `GET /api/runs`'s query, as given (strings). */
export interface RunsQuery {
  task?: string;
  status?: string;
  limit?: string;
  cursor?: string;
}

const StartBody = z.strictObject({ parameters: z.record(z.string(), z.unknown()).optional() });
const RUN_STATUSES: readonly RunStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
/** Printable, and short enough for a Redis key: what clients send as idempotency keys (UUIDs and the like). */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

@Injectable()
export class TasksService {
  constructor(
    private readonly gw: GatewayContext,
    private readonly modules: ModuleRef,
  ) {}

  private async task(slug: string) {
    try {
      return await findTask(this.gw.redis, this.gw.keys, slug);
    } catch (err) {
      if (err instanceof TaskNotFoundError) throw new NotFoundException(err.message);
      throw err;
    }
  }

  async list() {
    return { tasks: await listTasks(this.gw.redis, this.gw.keys) };
  }

  async describe(slug: string) {
    const task = await this.task(slug);
    return { ...task, versions: await taskVersions(this.gw.redis, this.gw.keys, task.slug) };
  }

  async start(slug: string, body: unknown, user: AuthUser, idempotencyKey: string | undefined) {
    const task = await this.task(slug);
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new BadRequestException('Idempotency-Key must be 1 to 200 printable ASCII characters without spaces, e.g. a UUID.');
    }
    const { parameters } = parseWith(StartBody, body);
    try {
      const checked = validateParameters(task, parameters ?? {});
      const { runId, replayed } = await startRun(this.gw.redis, this.gw.keys, { task, parameters: checked, owner: user.name, idempotencyKey });
      return { runId, replayed, run: `/api/runs/${runId}`, events: `/api/runs/${runId}/events` };
    } catch (err) {
      if (err instanceof ParametersError) throw new HttpError(422, err.message, { fields: { errors: err.errors } });
      if (err instanceof IdempotencyConflictError) throw new HttpError(409, err.message);
      throw err;
    }
  }

  /** The run if `user` may see it (its owner and admins may); anyone else is told it does not exist. */
  async run(runId: string, user: AuthUser) {
    const run = await readRun(this.gw.redis, this.gw.keys, runId);
    if (!run || (run.owner !== user.name && !user.admin)) throw new NotFoundException(`No run ${runId} (it may have expired); GET /api/runs lists yours.`);
    return run;
  }

  async runs(user: AuthUser, query: RunsQuery) {
    const limit = query.limit === undefined || query.limit === '' ? 20 : Number(query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new BadRequestException(`limit must be an integer from 1 to 200, got ${JSON.stringify(query.limit)}.`);
    const status = (query.status ?? '').split(',').map((s) => s.trim()).filter(Boolean) as RunStatus[];
    for (const s of status) if (!RUN_STATUSES.includes(s)) throw new BadRequestException(`status must be one or more of ${RUN_STATUSES.join(', ')} (comma-separated), got '${s}'.`);
    const task = query.task ? (await this.task(query.task)).slug : undefined;
    return listRuns(this.gw.redis, this.gw.keys, { user: user.name, admin: user.admin, task, status, limit, cursor: query.cursor || undefined });
  }

  async events(req: Request, res: Response, runId: string, user: AuthUser, lastEventId: string | undefined): Promise<void> {
    await this.isRun(runId);
    // The outputs module's stream: one Redis reader per gateway for every open stream, runs and executions alike.
    return this.modules.get(StreamService, { strict: false }).stream(req, res, runId, user, lastEventId);
  }

  async cancel(runId: string, user: AuthUser): Promise<{ runId: string; status: RunStatus }> {
    const run = await this.run(runId, user);
    if (isFinal(EXEC_STATUS[run.status])) {
      throw new HttpError(409, `Run ${runId} has ended already (${run.status}); there is nothing to cancel.`, { fields: { runId, status: run.status } });
    }
    // As for any execution: the runner is asked (it cancels the task, stopping its worker), then killed if it is slow.
    const { status } = await this.modules.get(OutputsService, { strict: false }).cancel(runId, user);
    return { runId, status: RUN_STATUS[status as ExecStatus] };
  }

  private async isRun(runId: string): Promise<void> {
    const rec = await readExecution(this.gw.redis, this.gw.keys, runId);
    if (!rec || !(rec as { task?: string }).task) throw new NotFoundException(`No run ${runId} (it may have expired); GET /api/runs lists yours.`);
  }
}
