/** @module Routes of registered flows (list, register, unregister, refresh) and the proxy to their services. */
import { All, Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { Flow, RegisteredSource } from '../../runtime/protocol/services';
import { AdminOnly, CurrentUser, type AuthUser } from '../auth/decorators';
import { parseWith } from '../common/body';
import { FlowsService } from './flows.service';
import { ProxyService } from './proxy.service';

const UrlBody = z.object({ url: z.string().min(1) });

/** `/flow`: list (any user), register, unregister, refresh and sources (admins). */
@Controller('flow')
export class FlowsController {
  constructor(private readonly flows: FlowsService) {}

  /** Registered entry points; `?q=` words to search, `?tag=` a tag. */
  @Get()
  list(@Query('q') q?: string, @Query('tag') tag?: string): Promise<Flow[]> {
    return this.flows.list({ q, tag });
  }

  /** Every registered source with its flows and last refresh error. */
  @AdminOnly()
  @Get('sources')
  sources(): Promise<RegisteredSource[]> {
    return this.flows.sources();
  }

  /** `{ url }`: an openapi.json or a /-/routes listing. Answers the source with the flows found; 502 if unreachable. */
  @AdminOnly()
  @Post('register')
  @HttpCode(200)
  register(@Body() body: unknown): Promise<RegisteredSource> {
    return this.flows.register(parseWith(UrlBody, body).url);
  }

  /** `{ url }` in the body (or `?url=`, for clients that send no body with DELETE). */
  @AdminOnly()
  @Delete('register')
  unregister(@Body() body: unknown, @Query('url') url?: string) {
    return this.flows.unregister(url ?? parseWith(UrlBody, body).url);
  }

  @AdminOnly()
  @Post('refresh')
  @HttpCode(200)
  refresh(): Promise<RegisteredSource[]> {
    return this.flows.refresh();
  }
}

/** `/-/{host}/{port}/...` to the registered service at host:port. */
@Controller()
export class ProxyController {
  constructor(private readonly proxy: ProxyService) {}

  @All(['-/:host/:port', '-/:host/:port/*rest'])
  forward(@Param('host') host: string, @Param('port') port: string, @CurrentUser() user: AuthUser, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.proxy.forward(req, res, host, port, user);
  }
}
