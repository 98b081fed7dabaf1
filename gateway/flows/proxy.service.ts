/** @module The proxy to registered services: forwards a user's request with a signed user header, and nowhere else. */
import { ForbiddenException, GatewayTimeoutException, Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import { USER_HEADER, signUser } from '../../runtime/protocol/services';
import type { AuthUser } from '../auth/decorators';
import { rawBodyOf } from '../common/body';
import { GatewayContext } from '../common/context';
import { ServiceUnreachableError, registeredOrigin } from './registry';

/** How long a service may take to answer (a form, or a launch). */
const PROXY_TIMEOUT_MS = 30_000;
/** Request headers passed on; the rest (cookies, API keys, any USER_HEADER a client made up) stay here. */
const PASS_HEADERS = ['accept', 'accept-language', 'content-type', 'user-agent'];

/** Forwards to registered services only; the gateway is not an open proxy. */
@Injectable()
export class ProxyService {
  constructor(private readonly gw: GatewayContext) {}

  /** Forwards `req` (under `/-/host/port`) to the registered service at host:port and copies its answer to `res`. */
  async forward(req: Request, res: Response, host: string, port: string, user: AuthUser): Promise<void> {
    const origin = await registeredOrigin(this.gw.redis, this.gw.keys, host, port);
    if (!origin) {
      throw new ForbiddenException(`${host}:${port} is not a registered service; register it with POST /flow/register or \`nodus register <url>\`.`);
    }
    // The path after /-/host/port, query included, taken raw so that nothing is decoded twice.
    const rest = /^\/-\/[^/?]+\/[^/?]+(.*)$/.exec(req.originalUrl)?.[1] ?? '';
    // Appended, not resolved: resolving `//other.host/x` against the origin would leave it.
    const target = new URL(`${origin}${rest.startsWith('/') ? rest : `/${rest}`}`);
    if (target.origin !== origin) throw new ForbiddenException(`${req.originalUrl} does not stay within the registered service at ${origin}.`);
    const headers: Record<string, string> = {};
    for (const h of PASS_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    headers[USER_HEADER] = signUser(this.gw.secret, { user: user.name, admin: user.admin, iat: Date.now() });
    headers['x-forwarded-for'] = req.ip ?? '';
    headers['x-forwarded-host'] = req.headers.host ?? '';
    let body: Buffer | undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const { raw, json } = rawBodyOf(req);
      body = raw;
      // curl -d sends JSON as a form; the service is told what it is.
      if (json) headers['content-type'] = 'application/json';
    }
    let upstream: globalThis.Response;
    try {
      upstream = await fetch(target, { method: req.method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(PROXY_TIMEOUT_MS) });
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new GatewayTimeoutException(`The service at ${origin} did not answer within ${PROXY_TIMEOUT_MS / 1000} s.`);
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new ServiceUnreachableError(`The service at ${origin} is unreachable (${why}); is it running? Its flows stay registered.`);
    }
    const payload = Buffer.from(await upstream.arrayBuffer());
    res.status(upstream.status);
    for (const h of ['content-type', 'cache-control', 'location']) {
      const v = upstream.headers.get(h);
      if (v) res.setHeader(h, v);
    }
    res.end(payload);
  }
}
