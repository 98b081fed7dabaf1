/**
 * @module What the panel's pages need besides rendering: the visitor and their CSRF token, the gateway's own
 * services (flows, outputs), the health of registered services, and calls to a flow's service as the proxy makes them.
 */
import { GatewayTimeoutException, Injectable, NotFoundException, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Request } from 'express';
import { USER_HEADER, signUser } from '../../runtime/protocol/services';
import { AuthService, SESSION_COOKIE } from '../auth/auth.service';
import type { AuthUser } from '../auth/decorators';
import { GatewayContext } from '../common/context';
import { FlowsService } from '../flows/flows.service';
import { ServiceUnreachableError, registeredOrigin } from '../flows/registry';
import { OutputsService } from '../outputs/outputs.service';
import { CSRF_FIELD, checkCsrf, csrfToken } from './csrf';
import type { Health, Visitor } from './views';

/** How long a form or a launch may take, as through the proxy. */
const CALL_TIMEOUT_MS = 30_000;
/** A health check is a quick look: a service slower than this is shown as not answering. */
const HEALTH_TIMEOUT_MS = 1500;
/** Health is looked up again at most this often per URL: every admin page view would otherwise knock on every service. */
const HEALTH_TTL_MS = 5000;

/** What a service answered: its status and JSON body (or text, when it was not JSON). */
export interface ServiceAnswer {
  status: number;
  body: unknown;
}

/** Cookies as cookie-parser leaves them on the request. */
export function cookiesOf(req: Request): Record<string, string | undefined> {
  return (req as Request & { cookies?: Record<string, string> }).cookies ?? {};
}

/** The panel's view of the gateway: who is visiting, and the flows and executions they may see. */
@Injectable()
export class PanelService implements OnModuleInit {
  /** The gateway's own services, found by class: their modules do not export them, and a second instance would run their timers twice. */
  flows!: FlowsService;
  outputs!: OutputsService;
  private readonly health = new Map<string, { at: number; health: Promise<Health> }>();

  constructor(
    readonly gw: GatewayContext,
    readonly auth: AuthService,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    this.flows = this.moduleRef.get(FlowsService, { strict: false });
    this.outputs = this.moduleRef.get(OutputsService, { strict: false });
  }

  /** The logged-in visitor with their session's CSRF token, or undefined (not logged in, or the session expired). */
  async visitor(req: Request): Promise<Visitor | undefined> {
    const user = await this.auth.userOf(req);
    if (!user) return undefined;
    return { user, csrf: csrfToken(this.gw.secret, 'session', cookiesOf(req)[SESSION_COOKIE] ?? '') };
  }

  /** True when a POSTed panel form carries this session's token. */
  formIsGenuine(req: Request): boolean {
    const body = (req.body ?? {}) as Record<string, unknown>;
    return checkCsrf(this.gw.secret, 'session', cookiesOf(req)[SESSION_COOKIE], body[CSRF_FIELD]);
  }

  /** Health of each URL (a GET that answers 2xx within HEALTH_TIMEOUT_MS), looked up in parallel and kept briefly. */
  async healthOf(urls: string[]): Promise<Map<string, Health>> {
    const now = Date.now();
    const unique = [...new Set(urls)];
    for (const url of unique) {
      const cached = this.health.get(url);
      if (!cached || now - cached.at > HEALTH_TTL_MS) this.health.set(url, { at: now, health: check(url) });
    }
    // The map would otherwise keep URLs unregistered long ago.
    for (const [url, c] of this.health) if (now - c.at > 10 * HEALTH_TTL_MS) this.health.delete(url);
    const results = await Promise.all(unique.map(async (url) => [url, await this.health.get(url)!.health] as const));
    return new Map(results);
  }

  /**
   * Calls a flow's service at `proxyPath` (`/-/{host}/{port}/{path}`) for `user`, as the proxy does (registered services
   * only, the path kept within the service, the signed user header), and returns its answer instead of copying it to a
   * response: the panel turns it into a page.
   */
  async callFlow(user: AuthUser, req: Request, proxyPath: string, method: 'GET' | 'POST', form?: URLSearchParams): Promise<ServiceAnswer> {
    const m = /^\/-\/([^/?]+)\/([^/?]+)(.*)$/.exec(proxyPath);
    if (!m) throw new NotFoundException(`${proxyPath} is not a flow's address (/-/host/port/path); the flows page lists them.`);
    const [, host, port, rest] = m;
    const origin = await registeredOrigin(this.gw.redis, this.gw.keys, decodeURIComponent(host), decodeURIComponent(port));
    if (!origin) throw new NotFoundException(`No registered service answers at ${proxyPath}; the flows page lists the flows there are.`);
    const target = new URL(`${origin}${rest.startsWith('/') ? rest : `/${rest}`}`);
    if (target.origin !== origin) throw new NotFoundException(`${proxyPath} does not stay within the registered service at ${origin}.`);
    const headers: Record<string, string> = {
      accept: 'application/json',
      [USER_HEADER]: signUser(this.gw.secret, { user: user.name, admin: user.admin, iat: Date.now() }),
      'x-forwarded-for': req.ip ?? '',
      'x-forwarded-host': req.headers.host ?? '',
    };
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    let res: Response;
    try {
      res = await fetch(target, { method, headers, body: form?.toString(), redirect: 'manual', signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new GatewayTimeoutException(`The service at ${origin} did not answer within ${CALL_TIMEOUT_MS / 1000} s; try again later.`);
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ServiceUnreachableError(`The service at ${origin} is unreachable (${cause?.code ?? cause?.message ?? (err as Error).message}); is it running?`);
    }
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: kept as text for the message.
    }
    return { status: res.status, body };
  }
}

async function check(url: string): Promise<Health> {
  const t0 = Date.now();
  try {
    const res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
    await res.body?.cancel().catch(() => undefined);
    const ms = Date.now() - t0;
    return res.ok ? { ok: true, ms } : { ok: false, ms, error: `answered ${res.status}` };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return { ok: false, ms: Date.now() - t0, error: (err as Error).name === 'TimeoutError' ? `no answer within ${HEALTH_TIMEOUT_MS} ms` : (cause?.code ?? (err as Error).message) };
  }
}
