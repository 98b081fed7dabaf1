/** @module The one exception filter: every error becomes `{ statusCode, error, message }` with the right status, never a stack. */
import { STATUS_CODES } from 'node:http';
import { randomBytes } from 'node:crypto';
import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { NodusError } from '../../runtime/errors';
import { HttpError } from './errors';

/** HTTP status of each NodusError code; any other code is a 500. */
const CODE_STATUS: Record<string, number> = {
  CONFIG: 400,
  CONFIG_ERROR: 400,
  SERIALIZATION: 400,
  TASK_CANCELLED: 409,
  OBJECT_LOST: 410,
  SERVICE_UNREACHABLE: 502,
  WORKER_CRASHED: 502,
  ACTOR_DIED: 502,
  // A node could not set up the runtime env a task or replica needs (fetch, unpack, npm ci): an upstream failure.
  RUNTIME_ENV: 502,
  CLUSTER: 503,
  NOT_INITIALIZED: 503,
  OBJECT_STORE_FULL: 503,
  GET_TIMEOUT: 504,
};

/** ioredis's ways of saying the connection is down. */
const REDIS_DOWN = /MaxRetriesPerRequest|Connection is closed|ECONNREFUSED|ECONNRESET|Stream isn't writeable|ETIMEDOUT/;

/** What an error looks like on the wire. */
export interface HttpErrorBody {
  statusCode: number;
  error: string;
  message: string;
  [field: string]: unknown;
}

/** Turns any thrown value into a status, a body and headers; logs what the client must not see. */
export function toHttpError(err: unknown, logger?: Logger): { status: number; body: HttpErrorBody; headers: Record<string, string> } {
  let status = 500;
  let message: string;
  let fields: Record<string, unknown> = {};
  let headers: Record<string, string> = {};
  if (err instanceof HttpException) {
    status = err.getStatus();
    const r = err.getResponse();
    if (typeof r === 'string') message = r;
    else {
      const { message: m, statusCode: _s, error: _e, ...rest } = r as Record<string, unknown>;
      message = Array.isArray(m) ? m.join('; ') : String(m ?? STATUS_CODES[status]);
      fields = rest;
    }
    if (err instanceof HttpError) {
      headers = err.extra.headers ?? {};
      fields = { ...fields, ...err.extra.fields };
    }
  } else if (err instanceof NodusError) {
    status = CODE_STATUS[err.code] ?? 500;
    // NodusError messages are written for users (they say what to do) and carry no secrets.
    message = err.message;
    if (status >= 500) logger?.warn({ code: err.code, err: err.message }, 'request failed');
  } else if (err instanceof Error && REDIS_DOWN.test(`${err.name} ${err.message}`)) {
    status = 503;
    message = "The cluster's Redis is unreachable; try again when it is back (see `nodus status`).";
    logger?.warn({ err: err.message }, 'request failed: Redis unreachable');
  } else {
    const errorId = randomBytes(4).toString('hex');
    message = `Internal error ${errorId}; the gateway's log has the details.`;
    fields = { errorId };
    logger?.error({ errorId, err }, 'request failed');
  }
  return { status, body: { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message, ...fields }, headers };
}

/** Catches everything a controller, guard or middleware throws. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const req = host.switchToHttp().getRequest<Request>();
    const { status, body, headers } = toHttpError(exception, this.logger);
    if (res.headersSent) {
      // An event stream or a proxied answer already under way: all that is left is to end it.
      this.logger.warn({ url: req.originalUrl, err: body.message }, 'error after the answer had started');
      res.end();
      return;
    }
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.status(status).json(body);
  }
}
