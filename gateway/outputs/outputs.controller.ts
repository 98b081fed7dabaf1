/** @module Routes over executions: status, event stream, main and stdio events, cancel, and the timeline. */
import { Controller, Delete, Get, Headers, Param, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { MAIN_KINDS, STDIO_KINDS } from '../../runtime/protocol/services';
import { CurrentUser, type AuthUser } from '../auth/decorators';
import { OutputsService, type TimelineQuery } from './outputs.service';
import { StreamService } from './stream.service';

/** `/outputs/...` and `/timeline`. */
@Controller()
export class OutputsController {
  constructor(
    private readonly outputs: OutputsService,
    private readonly streams: StreamService,
  ) {}

  @Get('outputs/status/:fid')
  status(@Param('fid') fid: string, @CurrentUser() user: AuthUser) {
    return this.outputs.status(fid, user);
  }

  /** Server-sent events; resumes after the `Last-Event-ID` header (or `?lastEventId=`). */
  @Get('outputs/stream/:fid')
  stream(
    @Param('fid') fid: string,
    @CurrentUser() user: AuthUser,
    @Req() req: Request,
    @Res() res: Response,
    @Headers('last-event-id') header?: string,
    @Query('lastEventId') query?: string,
  ): Promise<void> {
    return this.streams.stream(req, res, fid, user, header ?? query);
  }

  @Get('outputs/main/:fid')
  main(@Param('fid') fid: string, @CurrentUser() user: AuthUser) {
    return this.outputs.events(fid, user, MAIN_KINDS);
  }

  @Get('outputs/stdio/:fid')
  stdio(@Param('fid') fid: string, @CurrentUser() user: AuthUser) {
    return this.outputs.events(fid, user, STDIO_KINDS);
  }

  /** Cancels a running execution: `{ fid, status }` within 2 s; 409 if it had ended. */
  @Delete('outputs/:fid')
  cancel(@Param('fid') fid: string, @CurrentUser() user: AuthUser) {
    return this.outputs.cancel(fid, user);
  }

  /** `?q=` words in summary, fid or flow; `?status=running,finished`; `?offset=&limit=` (default 0, 20). */
  @Get('timeline')
  timeline(@CurrentUser() user: AuthUser, @Query() query: TimelineQuery) {
    return this.outputs.timeline(user, query);
  }
}
