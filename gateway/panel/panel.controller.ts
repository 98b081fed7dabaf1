/**
 * @module The panel's routes: pages for people, beside the JSON API. Every route is @Public to the global guard
 * because a page redirects to /login where the API would answer 401; each one checks the visitor itself, and every
 * state-changing form carries a CSRF token that is checked before anything else.
 */
import { Controller, ForbiddenException, Get, Injectable, NotFoundException, Param, Post, Query, Req, Res, UseFilters, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import type { EntryMeta, FormElement } from '../../runtime/protocol/services';
import { SESSION_COOKIE } from '../auth/auth.service';
import { Public } from '../auth/decorators';
import { toHttpError } from '../common/error.filter';
import { ServiceUnreachableError } from '../flows/registry';
import { assets } from './assets';
import { clusterLive, clusterPage, readClusterView } from './cluster-view';
import { CSRF_FIELD, LOGIN_CSRF_COOKIE, checkCsrf, csrfToken, newLoginNonce } from './csrf';
import { html } from './html';
import { PanelService, cookiesOf, type ServiceAnswer } from './panel.service';
import { PanelErrorFilter, redirect, sendError, sendPage } from './respond';
import { curlCommand, flowsPage, inputsPage, loginPage, routesPage, statusPage, timelinePage, type Visitor } from './views';

const INPUTS_ROUTES = ['inputs/-/:host/:port', 'inputs/-/:host/:port/*rest'];
/** How long a login form stays good. */
const LOGIN_FORM_MS = 2 * 3600 * 1000;
const ROUTE_NOTICES: Record<string, string> = {
  registered: 'Registered. Its flows are on the Flows page.',
  unregistered: 'Unregistered. Its flows are gone from the Flows page.',
  refreshed: 'Every service was asked again for its flows.',
};

/** A query or form value as one string ('' when absent or repeated). */
function one(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** Where to go after login: a path on this gateway only, never `//other.host` (an open redirect). */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[^\s\\]*$/.test(next) ? next : '/';
}

/** The flow's proxy path of a `/inputs/-/...` request, raw as the browser sent it (nothing decoded twice). */
function flowPath(req: Request): string {
  return req.originalUrl.split('?')[0].slice('/inputs'.length);
}

/** The `{ meta, elements }` a flow's GET answers, or a 502 saying the service answered something else. */
function asForm(answer: ServiceAnswer, path: string): { meta: EntryMeta; elements: FormElement[] } {
  const b = answer.body as { meta?: Partial<EntryMeta>; elements?: unknown } | null;
  if (answer.status === 200 && b && typeof b === 'object' && b.meta && typeof b.meta.summary === 'string' && Array.isArray(b.elements)) {
    const m = b.meta;
    const meta: EntryMeta = {
      summary: m.summary!,
      description: one(m.description),
      tags: Array.isArray(m.tags) ? m.tags.map(String) : [],
      version: one(m.version),
      author: one(m.author),
      organization: one(m.organization),
      ...(m.deprecated ? { deprecated: true } : {}),
    };
    // Elements of unknown kinds are drawn as nothing (form.ts); anything not an object is dropped here.
    return { meta, elements: (b.elements as unknown[]).filter((e): e is FormElement => typeof e === 'object' && e !== null && typeof (e as { type?: unknown }).type === 'string') };
  }
  if (answer.status === 404) throw new NotFoundException(`The service has no entry point at ${path}; the flows page lists those there are.`);
  throw new ServiceUnreachableError(`The service at ${path} did not answer with a form (status ${answer.status}); is it a nodus service's entry point?`);
}

/** The messages of a service's `{ errors }` answer, if that is what it is. */
function errorsOf(body: unknown): Record<string, string[]> | undefined {
  const e = (body as { errors?: unknown } | null)?.errors;
  if (!e || typeof e !== 'object' || Array.isArray(e)) return undefined;
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, [v].flat().map(String)]));
}

function failureMessage(answer: ServiceAnswer): string {
  const b = answer.body as { error?: unknown; errorId?: unknown } | string | null;
  const said = typeof b === 'string' ? b.slice(0, 300) : typeof b?.error === 'string' ? b.error : '';
  const id = typeof b === 'object' && typeof b?.errorId === 'string' ? ` (error id ${b.errorId}: the service's log has the details)` : '';
  return `The service answered ${answer.status}${said ? `: ${said}` : ''}${id}. Change the inputs, or try again later.`;
}

/** The posted fields but the token, in order, repeated names kept (a multiple select). */
function postedFields(body: unknown): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (!body || typeof body !== 'object') return out;
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (k === CSRF_FIELD) continue;
    out[k] = Array.isArray(v) ? v.map(String) : String(v);
  }
  return out;
}

/** The panel's pages and its assets. */
@Public()
@UseFilters(PanelErrorFilter)
@Controller()
export class PanelController {
  constructor(private readonly panel: PanelService) {}

  /** The visitor, or undefined after redirecting to /login (which comes back here). */
  private async visitorOrLogin(req: Request, res: Response): Promise<Visitor | undefined> {
    const v = await this.panel.visitor(req);
    if (!v) redirect(res, `/login?next=${encodeURIComponent(req.originalUrl)}`);
    return v;
  }

  /** The random value a login form's token is bound to: the one the browser has, else a new one. */
  private loginNonce(req: Request, res: Response): string {
    const have = cookiesOf(req)[LOGIN_CSRF_COOKIE];
    if (have && /^[\w-]{20,}$/.test(have)) return have;
    const nonce = newLoginNonce();
    res.cookie(LOGIN_CSRF_COOKIE, nonce, { httpOnly: true, sameSite: 'strict', path: '/login', maxAge: LOGIN_FORM_MS, secure: req.secure });
    return nonce;
  }

  private sendLogin(req: Request, res: Response, status: number, o: { next: string; name?: string; error?: string; notice?: string }): void {
    const csrf = csrfToken(this.panel.gw.secret, 'login', this.loginNonce(req, res));
    sendPage(res, status, loginPage({ csrf, ...o }));
  }

  @Get('login')
  async loginForm(@Req() req: Request, @Res() res: Response, @Query('next') next?: unknown, @Query('out') out?: unknown): Promise<void> {
    const target = safeNext(next);
    if (await this.panel.visitor(req)) return redirect(res, target);
    this.sendLogin(req, res, 200, { next: target, notice: out ? 'You are logged out.' : next ? 'Log in to continue.' : undefined });
  }

  @Post('login')
  async login(@Req() req: Request, @Res() res: Response): Promise<void> {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const next = safeNext(body.next);
    const name = one(body.name);
    const password = one(body.password);
    if (!checkCsrf(this.panel.gw.secret, 'login', cookiesOf(req)[LOGIN_CSRF_COOKIE], body[CSRF_FIELD])) {
      return this.sendLogin(req, res, 403, { next, name, error: 'This login form has expired or came from elsewhere; log in again here.' });
    }
    if (!name || !password) return this.sendLogin(req, res, 400, { next, name, error: 'Enter your user name and your password.' });
    try {
      const { token, expiresAt } = await this.panel.auth.login(name, password, req.ip ?? req.socket.remoteAddress ?? 'unknown');
      // The same cookie /api/login sets; it expires with the session.
      res.cookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'lax', path: '/', expires: new Date(expiresAt), secure: req.secure });
      res.clearCookie(LOGIN_CSRF_COOKIE, { httpOnly: true, sameSite: 'strict', path: '/login' });
      redirect(res, next);
    } catch (err) {
      // 401 says "Wrong user name or password." whichever was wrong; 429 says when to try again.
      const { status, body: e, headers } = toHttpError(err, this.panel.gw.logger);
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      this.sendLogin(req, res, status, { next, name, error: e.message });
    }
  }

  /** Ends the session. A POST with the session's token: another site must not be able to log the user out. */
  @Post('logout')
  logout(@Req() req: Request, @Res() res: Response): void {
    if (cookiesOf(req)[SESSION_COOKIE] && !this.panel.formIsGenuine(req)) throw new ForbiddenException('This logout did not come from the panel; use its Log out button.');
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', path: '/' });
    redirect(res, '/login?out=1');
  }

  @Get()
  async flows(@Req() req: Request, @Res() res: Response, @Query('q') q?: unknown, @Query('tag') tag?: unknown): Promise<void> {
    const v = await this.visitorOrLogin(req, res);
    if (!v) return;
    const query = { q: one(q).trim(), tag: one(tag).trim() };
    const all = await this.panel.flows.list({});
    const flows = query.q || query.tag ? await this.panel.flows.list(query) : all;
    const tags = new Map<string, string>();
    for (const f of all) for (const t of f.tags) if (!tags.has(t.toLowerCase())) tags.set(t.toLowerCase(), t);
    const health = v.user.admin ? await this.panel.healthOf(all.map((f) => f.source)) : new Map();
    const matching = new Set(flows.map((f) => f.uid));
    sendPage(res, 200, flowsPage({ visitor: v, all, matching, tags: [...tags.values()].sort((a, b) => a.localeCompare(b)), ...query, health }));
  }

  @Get(INPUTS_ROUTES)
  async form(@Req() req: Request, @Res() res: Response): Promise<void> {
    const v = await this.visitorOrLogin(req, res);
    if (!v) return;
    const path = flowPath(req);
    const { meta, elements } = asForm(await this.panel.callFlow(v.user, req, path, 'GET'), path);
    sendPage(res, 200, inputsPage({ visitor: v, meta, elements, form: { action: `/inputs${path}`, csrf: v.csrf, cancelHref: '/' } }));
  }

  /**
   * Posts the form to the flow's service. A launch goes to its status page; `{ errors }` shows the form again with the
   * messages beside their fields and what was typed kept.
   */
  @Post(INPUTS_ROUTES)
  async submit(@Req() req: Request, @Res() res: Response): Promise<void> {
    const v = await this.visitorOrLogin(req, res);
    if (!v) return;
    if (!this.panel.formIsGenuine(req)) {
      throw new ForbiddenException('This form did not come from your current panel session (it may have changed since the page was loaded); reload the page and submit again.');
    }
    const path = flowPath(req);
    const posted = postedFields(req.body);
    const params = new URLSearchParams();
    for (const [k, val] of Object.entries(posted)) for (const x of [val].flat()) params.append(k, x);
    const answer = await this.panel.callFlow(v.user, req, path, 'POST', params);
    const fid = (answer.body as { fid?: unknown } | null)?.fid;
    if (answer.status < 300 && typeof fid === 'string') return redirect(res, `/status/${encodeURIComponent(fid)}`);

    const { meta, elements } = asForm(await this.panel.callFlow(v.user, req, path, 'GET'), path);
    const ok = answer.status < 300;
    const errors = ok ? errorsOf(answer.body) : { _global_: [failureMessage(answer)] };
    // A handler may answer something other than a launch or errors: shown as it came.
    const notice =
      ok && !errors ? html`<section class="card notice" role="status"><h2>The service answered</h2><pre class="json">${JSON.stringify(answer.body, null, 2)}</pre></section>` : undefined;
    const status = ok ? (errors ? 422 : 200) : answer.status >= 500 ? 502 : 400;
    sendPage(res, status, inputsPage({ visitor: v, meta, elements, notice, form: { action: `/inputs${path}`, csrf: v.csrf, cancelHref: '/', values: posted, errors } }));
  }

  @Get('status/:fid')
  async status(@Param('fid') fid: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const v = await this.visitorOrLogin(req, res);
    if (!v) return;
    const exec = await this.panel.outputs.status(fid, v.user);
    const flowUrl = (await this.panel.flows.list({})).find((f) => f.uid === exec.flow)?.url;
    const origin = `${req.protocol}://${req.headers.host ?? 'localhost:3370'}`;
    sendPage(res, 200, statusPage({ visitor: v, exec, flowUrl, curl: curlCommand(origin, flowUrl, exec.inputs) }));
  }

  private async admin(req: Request, res: Response): Promise<Visitor | undefined> {
    const v = await this.visitorOrLogin(req, res);
    if (v && !v.user.admin) throw new ForbiddenException(`Only admins manage routes, and ${v.user.name} is not one.`);
    return v;
  }

  private async sendRoutes(res: Response, v: Visitor, status: number, o: { url?: string; error?: string; notice?: string } = {}): Promise<void> {
    const sources = await this.panel.flows.sources();
    const health = await this.panel.healthOf(sources.map((s) => s.url));
    sendPage(res, status, routesPage({ visitor: v, sources, health, ...o }));
  }

  @Get('admin/routes')
  async routes(@Req() req: Request, @Res() res: Response, @Query('done') done?: unknown): Promise<void> {
    const v = await this.admin(req, res);
    if (v) await this.sendRoutes(res, v, 200, { notice: ROUTE_NOTICES[one(done)] });
  }

  /** Checks what every routes form needs: an admin, and this session's token. */
  private async adminForm(req: Request, res: Response): Promise<Visitor | undefined> {
    const v = await this.admin(req, res);
    if (v && !this.panel.formIsGenuine(req)) throw new ForbiddenException('This form did not come from your current panel session; reload the page and try again.');
    return v;
  }

  @Post('admin/routes/register')
  async register(@Req() req: Request, @Res() res: Response): Promise<void> {
    const v = await this.adminForm(req, res);
    if (!v) return;
    const url = one((req.body as Record<string, unknown> | undefined)?.url).trim();
    try {
      await this.panel.flows.register(url);
    } catch (err) {
      // The page is fine, the URL is not: 422 whatever the reason (unreachable, not a service, not a URL).
      const { body } = toHttpError(err, this.panel.gw.logger);
      return this.sendRoutes(res, v, 422, { url, error: body.message });
    }
    redirect(res, '/admin/routes?done=registered');
  }

  @Post('admin/routes/unregister')
  async unregister(@Req() req: Request, @Res() res: Response): Promise<void> {
    const v = await this.adminForm(req, res);
    if (!v) return;
    await this.panel.flows.unregister(one((req.body as Record<string, unknown> | undefined)?.url));
    redirect(res, '/admin/routes?done=unregistered');
  }

  @Post('admin/routes/refresh')
  async refresh(@Req() req: Request, @Res() res: Response): Promise<void> {
    const v = await this.adminForm(req, res);
    if (!v) return;
    await this.panel.flows.refresh();
    redirect(res, '/admin/routes?done=refreshed');
  }

  /** The cluster's state (admins); `?part=live` is the part cluster.js swaps in on each refresh. */
  @Get('cluster')
  async cluster(@Req() req: Request, @Res() res: Response, @Query('part') part?: unknown): Promise<void> {
    const v = await this.visitorOrLogin(req, res);
    if (!v) return;
    if (!v.user.admin) throw new ForbiddenException(`Only admins see the cluster page, and ${v.user.name} is not one.`);
    const view = await readClusterView(this.panel.gw.redis, this.panel.gw.keys.prefix);
    if (part === 'live') {
      res.setHeader('Content-Type', 'text/html; charset=utf-8');
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.end(clusterLive(view).value);
      return;
    }
    sendPage(res, 200, clusterPage({ visitor: v, view }));
  }

  /** The panel's scripts, stylesheet and icon; cached for good when asked for by their current hash. */
  @Get('panel/assets/:name')
  asset(@Param('name') name: string, @Query('v') v: unknown, @Res() res: Response): void {
    const a = assets().get(name);
    if (!a) throw new NotFoundException(`No panel asset ${name}.`);
    res.setHeader('Content-Type', a.type);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Cache-Control', v === a.hash ? 'public, max-age=31536000, immutable' : 'no-cache');
    res.end(a.body);
  }
}

/**
 * `GET /timeline` is also the JSON API; a browser navigating there asks for HTML first and gets the page. A middleware,
 * not a route, so that which controller registers first does not decide.
 */
@Injectable()
export class TimelinePage implements NestMiddleware {
  constructor(private readonly panel: PanelService) {}

  async use(req: Request, res: Response, next: NextFunction): Promise<void> {
    if (req.accepts(['json', 'html']) !== 'html') return next();
    let v: Visitor | undefined;
    try {
      v = await this.panel.visitor(req);
      if (!v) return redirect(res, `/login?next=${encodeURIComponent(req.originalUrl)}`);
      const q = one(req.query.q).trim();
      const status = one(req.query.status).trim();
      const page = await this.panel.outputs.timeline(v.user, { q, status, offset: one(req.query.offset), limit: '20' });
      sendPage(res, 200, timelinePage({ visitor: v, page, q, status }));
    } catch (err) {
      sendError(res, err, this.panel.gw.logger, v);
    }
  }
}
