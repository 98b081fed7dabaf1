/**
 * @module How panel pages are sent: the security headers every page carries (the Content-Security-Policy first), and
 * errors as pages rather than JSON.
 */
import { Catch, Injectable, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { GatewayContext } from '../common/context';
import { toHttpError } from '../common/error.filter';
import type { SafeHtml } from './html';
import { errorPage, type Visitor } from './views';

/**
 * Scripts only from the gateway's own files (no inline script, no eval), styles only from its stylesheet, no plugins,
 * no frames around or inside, forms post only here, and the page talks only to the gateway.
 */
export const PANEL_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

/** Sends a page with the panel's security headers; pages are per user, so nothing caches them. */
export function sendPage(res: Response, status: number, page: SafeHtml): void {
  res.status(status);
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Content-Security-Policy', PANEL_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-store');
  res.end(page.value);
}

/** A 303 (after a POST: the browser follows with a GET). */
export function redirect(res: Response, to: string): void {
  res.status(303).setHeader('Location', to);
  res.setHeader('Cache-Control', 'no-store');
  res.end();
}

const TITLES: Record<number, string> = {
  400: 'That request was not right',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Conflict',
  413: 'Too large',
  429: 'Too many attempts',
  502: 'The service did not answer',
  503: 'Unavailable',
  504: 'The service took too long',
};

/** An error as a page: the same status and message the JSON API would give (stacks stay in the log). */
export function sendError(res: Response, err: unknown, logger: Logger | undefined, visitor?: Visitor): void {
  const { status, body, headers } = toHttpError(err, logger);
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  sendPage(res, status, errorPage({ status, title: TITLES[status] ?? 'Something went wrong', message: body.message, visitor }));
}

/** The panel controllers' filter: whatever a page handler throws becomes an error page. */
@Injectable()
@Catch()
export class PanelErrorFilter implements ExceptionFilter {
  constructor(private readonly gw: GatewayContext) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    sendError(host.switchToHttp().getResponse<Response>(), exception, this.gw.logger);
  }
}
