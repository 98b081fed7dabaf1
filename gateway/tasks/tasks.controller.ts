/** @module Routes of the task platform: `/api/tasks`, `/api/tasks/{slug}`, `/api/tasks/{slug}/runs`, `/api/runs...`. */
import { Body, Controller, Delete, Get, Headers, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { CurrentUser, type AuthUser } from '../auth/decorators';
import { TasksService, type RunsQuery } from './tasks.service';

@Controller('api')
export class TasksController {
  constructor(private readonly tasks: TasksService) {}

  /** Every registered task: slug, name, description, version, JSON Schemas of parameters and results, resources. */
  @Get('tasks')
  list() {
    return this.tasks.list();
  }

  @Get('tasks/:slug')
  describe(@Param('slug') slug: string) {
    return this.tasks.describe(slug);
  }

  /** `{ parameters }` → 202 `{ runId }`; 422 with `errors` per field; `Idempotency-Key` makes a retried POST return the same run. */
  @Post('tasks/:slug/runs')
  @HttpCode(202)
  async start(
    @Param('slug') slug: string,
    @Body() body: unknown,
    @CurrentUser() user: AuthUser,
    @Res({ passthrough: true }) res: Response,
    @Headers('idempotency-key') idempotencyKey?: string,
  ) {
    const started = await this.tasks.start(slug, body, user, idempotencyKey);
    res.setHeader('Location', started.run);
    if (started.replayed) res.setHeader('Idempotent-Replayed', 'true');
    return started;
  }

  /** `?task=&status=queued,running&limit=&cursor=`: newest first; `nextCursor` pages on. */
  @Get('runs')
  runs(@CurrentUser() user: AuthUser, @Query() query: RunsQuery) {
    return this.tasks.runs(user, query);
  }

  @Get('runs/:id')
  run(@Param('id') id: string, @CurrentUser() user: AuthUser) {
    return this.tasks.run(id, user);
  }

  /** The run's events as Server-Sent Events: the same stream as `/outputs/stream/{id}` (Last-Event-ID resumes). */
  @Get('runs/:id/events')
  events(
    @Param('id') id: string,
    @CurrentUser() user: AuthUser,
    @Req() req: Request,
    @Res() res: Response,
    @Headers('last-event-id') header?: string,
    @Query('lastEventId') query?: string,
  ): Promise<void> {
    return this.tasks.events(req, res, id, user, header ?? query);
  }

  /** Cancels a queued or running run: `{ runId, status }` within 2 s; 409 if it had ended. */
  @Delete('runs/:id')
  cancel(@Param('id') id: string, @CurrentUser() user: AuthUser) {
    return this.tasks.cancel(id, user);
  }
}
