/** @module Routes of model-serving apps (`/app/...`) and unit tasks (`/tasks/...`, `/task/scale`). */
import { Body, Controller, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { AdminOnly } from '../auth/decorators';
import { parseWith } from '../common/body';
import { AppsService } from './apps.service';

const RegisterBody = z.object({ source: z.string().min(1), alias: z.string().min(1).optional() });
const ScaleBody = z.object({ deployment: z.string().min(1), replicas: z.number().int().min(1) });
const TaskBody = z.object({ task: z.object({ kind: z.enum(['encoder', 'llm']), modelId: z.string() }).passthrough(), input: z.unknown() });

@Controller()
export class AppsController {
  constructor(private readonly apps: AppsService) {}

  /**
   * `{ source, alias? }`: registers the app module (a path on the gateway's machine). With `Accept: text/event-stream`
   * the progress streams as SSE (`progress` events, then `done` or `error`); otherwise the answer lists it at the end.
   */
  @AdminOnly()
  @Post('app/register')
  async register(@Body() body: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    const { source, alias } = parseWith(RegisterBody, body);
    if (!String(req.headers.accept ?? '').includes('text/event-stream')) {
      const steps: string[] = [];
      const app = await this.apps.register(source, alias, (m) => steps.push(m));
      res.status(200).json({ app, progress: steps });
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    try {
      send('done', await this.apps.register(source, alias, (m) => send('progress', { message: m })));
    } catch (err) {
      send('error', { message: (err as Error).message });
    }
    res.end();
  }

  /** Invokes an app: its result as JSON, or, for an app whose serve streams, one JSON line per item (NDJSON). */
  @Post('app/invoke/:id')
  async invoke(@Param('id') id: string, @Body() body: unknown, @Res() res: Response): Promise<void> {
    if (!(await this.apps.isStreaming(id))) {
      res.status(200).json(await this.apps.invoke(id, body));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
    try {
      for await (const item of this.apps.stream(id, body)) res.write(`${JSON.stringify(item)}\n`);
    } catch (err) {
      res.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
    }
    res.end();
  }

  @Get('app/list')
  list() {
    return this.apps.list();
  }

  @AdminOnly()
  @Post('app/unregister/:id')
  @HttpCode(200)
  async unregister(@Param('id') id: string) {
    const steps: string[] = [];
    const app = await this.apps.unregister(id, (m) => steps.push(m));
    return { app, progress: steps };
  }

  /** `{ task: { kind, modelId, ...options }, input }`: a unit task invoked directly; ObjectRefs come back as `{ ref: id }`. */
  @Post('tasks/invoke')
  @HttpCode(200)
  invokeTask(@Body() body: unknown) {
    const { task, input } = parseWith(TaskBody, body);
    return this.apps.invokeTask(task as never, input);
  }

  @Get('tasks/list')
  tasks() {
    return this.apps.tasks();
  }

  @AdminOnly()
  @Post('task/scale')
  @HttpCode(200)
  scale(@Body() body: unknown) {
    const { deployment, replicas } = parseWith(ScaleBody, body);
    return this.apps.scale(deployment, replicas);
  }
}
