/** @module Routes of jobs: `POST /api/jobs`, `GET /api/jobs`, `GET /api/jobs/{id}`, `GET /api/jobs/{id}/logs` (SSE), `POST /api/jobs/{id}/stop`. */
import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AdminOnly, CurrentUser, type AuthUser } from '../auth/decorators';
import { JobsService, type JobsQuery } from './jobs.service';

// A job runs any command on the cluster's nodes, so every route is for admins (Ray's job API is open to anyone who
// reaches it: CVE-2023-48022).
@AdminOnly()
@Controller('api/jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  /**
   * `{ entrypoint, runtimeEnv?: { pkg?, lock?, env? }, numCpus?, numGpus?, resources? }` → 201 `{ jobId, job, logs,
   * status }`. `pkg` and `lock` are what POST /api/jobs/packages answered; without them the driver runs in an empty folder.
   */
  @Post()
  @HttpCode(201)
  async submit(@Body() body: unknown, @CurrentUser() user: AuthUser, @Res({ passthrough: true }) res: Response) {
    const submitted = await this.jobs.submit(body, user);
    res.setHeader('Location', submitted.job);
    return submitted;
  }

  /**
   * A working dir as a gzipped tar body (`tar czf - -C app .`), stored in the cluster once per content: 201
   * `{ runtimeEnv: { pkg, lock? }, files, bytes, uploaded }`, whose `runtimeEnv` POST /api/jobs takes (with `env` added).
   */
  @Post('packages')
  @HttpCode(201)
  upload(@Req() req: Request) {
    return this.jobs.upload(req);
  }

  /** `?status=running,pending&limit=`: newest first. */
  @Get()
  list(@Query() query: JobsQuery) {
    return this.jobs.list(query);
  }

  @Get(':id')
  get(@Param('id') id: string) {
    return this.jobs.get(id);
  }

  /**
   * The job's log as Server-Sent Events until it ends: `stdout` and `stderr` events (data: `{ kind, data: text, at }`),
   * `status` events (data: `{ kind, data: { status, exitCode?, message? }, at }`), then `eof`. Last-Event-ID resumes.
   */
  @Get(':id/logs')
  logs(@Param('id') id: string, @Req() req: Request, @Res() res: Response, @Headers('last-event-id') header?: string, @Query('lastEventId') query?: string): Promise<void> {
    return this.jobs.logs(req, res, id, header ?? query);
  }

  /** Asks for the stop: 200 with the job as it is then (it turns `stopped` once its driver is gone); 409 if it had ended. */
  @Post(':id/stop')
  @HttpCode(200)
  stop(@Param('id') id: string) {
    return this.jobs.stop(id);
  }
}
