/**
 * @module The panel's pages as server-rendered HTML: the layout, login, flows, a flow's form, an execution's live page,
 * the timeline, the routes of services, and error pages. Every value is escaped by the `html` template; scripts are
 * files (see assets.ts), so the pages run under `script-src 'self'`.
 */
import type { EntryMeta, ExecStatus, Flow, FormElement, RegisteredSource } from '../../runtime/protocol/services';
import type { AuthUser } from '../auth/decorators';
import type { ExecutionStatus, TimelineItem, TimelinePage } from '../outputs/outputs.service';
import { assetUrl } from './assets';
import { CSRF_FIELD } from './csrf';
import { renderForm, type FormView } from './form';
import { SafeHtml, html } from './html';

/** What the layout needs to know of the visitor. */
export interface Visitor {
  user: AuthUser;
  /** The session's CSRF token, for the logout form. */
  csrf: string;
}

/** Whether a service answered its health check, and how fast. */
export interface Health {
  ok: boolean;
  ms: number;
  /** Why not, when not. */
  error?: string;
}

type Nav = 'flows' | 'timeline' | 'routes' | 'cluster' | undefined;

const STATUSES: readonly ExecStatus[] = ['starting', 'running', 'finished', 'error', 'cancelled'];

/** `1.2 s`, `3 min 4 s`, `2 h 5 min`. */
export function formatDuration(ms: number): string {
  if (ms < 0 || !Number.isFinite(ms)) return '—';
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A time as UTC text; the page's script shows it in the reader's own zone. */
function time(ms: number | null): SafeHtml {
  if (!ms) return html`<span class="muted">—</span>`;
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')} UTC</time>`;
}

function badge(status: string): SafeHtml {
  return html`<span class="${`badge status-${STATUSES.includes(status as ExecStatus) ? status : 'unknown'}`}">${status}</span>`;
}

/** The page around every view: header with navigation and logout, a skip link, the stylesheet and the page's scripts. */
export function layout(o: { title: string; visitor?: Visitor; nav?: Nav; body: SafeHtml; scripts?: string[]; wide?: boolean }): SafeHtml {
  const link = (href: string, label: string, key: Nav) => html`<a href="${href}"${key === o.nav ? html` aria-current="page"` : ''}>${label}</a>`;
  const v = o.visitor;
  const header = v
    ? html`<header class="topbar"><div class="topbar-inner">
<a class="brand" href="/"><span class="logo" aria-hidden="true"></span>nodus</a>
<nav aria-label="Main">${link('/', 'Flows', 'flows')}${link('/timeline', 'Timeline', 'timeline')}${v.user.admin ? html`${link('/admin/routes', 'Routes', 'routes')}${link('/cluster', 'Cluster', 'cluster')}` : ''}</nav>
<div class="who"><span class="user">${v.user.name}${v.user.admin ? html` <span class="pill">admin</span>` : ''}</span>
<form method="post" action="/logout"><input type="hidden" name="${CSRF_FIELD}" value="${v.csrf}"><button type="submit" class="linkish">Log out</button></form></div>
</div></header>`
    : html``;
  const scripts = ['panel.js', ...(o.scripts ?? [])];
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · nodus</title>
<link rel="icon" href="${assetUrl('favicon.svg')}">
<link rel="stylesheet" href="${assetUrl('panel.css')}">
${scripts.map((s) => html`<script src="${assetUrl(s)}" defer></script>\n`)}</head>
<body>
<a class="skip" href="#main">Skip to content</a>
${header}
<main id="main" tabindex="-1"${o.wide ? html` class="wide"` : ''}>
${o.body}
</main>
</body>
</html>
`;
}

/** `/login`: name and password; `error` says what went wrong without saying which of the two. */
export function loginPage(o: { csrf: string; next: string; name?: string; error?: string; notice?: string }): SafeHtml {
  const body = html`<div class="login-wrap"><section class="card login" aria-labelledby="login-title">
<div class="brand big"><span class="logo" aria-hidden="true"></span>nodus</div>
<h1 id="login-title">Log in</h1>
${o.notice ? html`<p class="notice" role="status">${o.notice}</p>` : ''}
${o.error ? html`<p class="alert" role="alert" id="login-error">${o.error}</p>` : ''}
<form method="post" action="/login" class="stack">
<input type="hidden" name="${CSRF_FIELD}" value="${o.csrf}">
<input type="hidden" name="next" value="${o.next}">
<div class="field"><label for="login-name">User name</label><input id="login-name" name="name" autocomplete="username" required${o.name ? '' : html` autofocus`} value="${o.name ?? ''}"${o.error ? html` aria-describedby="login-error"` : ''}></div>
<div class="field"><label for="login-password">Password</label><input id="login-password" name="password" type="password" autocomplete="current-password" required${o.name ? html` autofocus` : ''}></div>
<button type="submit" class="button primary wide">Log in</button>
</form></section></div>`;
  return layout({ title: 'Log in', body });
}

function healthBadge(h: Health | undefined): SafeHtml {
  if (!h) return html``;
  return h.ok
    ? html`<span class="health ok">answers · ${h.ms} ms</span>`
    : html`<span class="health down" title="${h.error ?? ''}">not answering</span>`;
}

function flowCard(f: Flow, admin: boolean, health: Map<string, Health>, shown: boolean): SafeHtml {
  const text = [f.summary, f.description, f.author, f.organization, f.url, ...f.tags].join(' ').toLowerCase();
  const meta: [string, string][] = [
    ['Author', f.author],
    ['Version', f.version],
    ['Organization', f.organization],
  ].filter(([, v]) => v) as [string, string][];
  const tags = f.tags.map((t) => t.toLowerCase()).join('\n');
  return html`<li class="card flow" data-search="${text}" data-tags="${tags}"${shown ? '' : html` hidden`}>
<div class="flow-head"><h2><a href="${`/inputs${f.url}`}">${f.summary}</a></h2>${f.deprecated ? html`<span class="pill warn">deprecated</span>` : ''}</div>
${f.description ? html`<p class="desc">${f.description}</p>` : html`<p class="desc muted">No description.</p>`}
${f.tags.length ? html`<ul class="tags" aria-label="Tags">${f.tags.map((t) => html`<li><a class="tag" href="${`/?tag=${encodeURIComponent(t)}`}">${t}</a></li>`)}</ul>` : ''}
${meta.length ? html`<dl class="meta">${meta.map(([k, v]) => html`<div><dt>${k}</dt><dd>${v}</dd></div>`)}</dl>` : ''}
${admin ? html`<p class="source">${healthBadge(health.get(f.source))} <code>${f.source}</code></p>` : ''}
</li>`;
}

/**
 * `/`: the registered flows as cards, a search box and a tag filter; admins see each one's source and its health.
 * Every flow is in the page and those not matching are hidden, so that flows.js can filter as the user types.
 */
export function flowsPage(o: { visitor: Visitor; all: Flow[]; matching: Set<string>; tags: string[]; q: string; tag: string; health: Map<string, Health> }): SafeHtml {
  const admin = o.visitor.user.admin;
  const shown = o.all.filter((f) => o.matching.has(f.uid)).length;
  const empty = !o.all.length
    ? html`<div class="empty"><h2>No flows registered yet</h2><p>${admin ? html`Register a service on the <a href="/admin/routes">Routes</a> page, or start the cluster with <code>--register http://host:port/openapi.json</code>.` : 'Ask an admin to register a service.'}</p></div>`
    : html`<div class="empty" id="no-match"${shown ? html` hidden` : ''}><h2>No flows match</h2><p><a href="/">Show all flows</a></p></div>`;
  const body = html`<div class="page-head"><div><h1>Flows</h1><p class="muted">${o.all.length} registered ${o.all.length === 1 ? 'entry point' : 'entry points'} · <span id="shown-count">${shown}</span> shown</p></div></div>
<form class="filters" role="search" method="get" action="/" id="flow-filters">
<div class="field grow"><label for="q">Search</label><input type="search" id="q" name="q" value="${o.q}" placeholder="Words in the name, description, tags, author…"></div>
<div class="field"><label for="tag">Tag</label><select id="tag" name="tag"><option value="">All tags</option>${o.tags.map((t) => html`<option${new SafeHtml(t.toLowerCase() === o.tag.toLowerCase() ? ' selected' : '')} value="${t.toLowerCase()}">${t}</option>`)}</select></div>
<div class="field end"><button type="submit" class="button">Search</button></div>
</form>
${o.all.length ? html`<ul class="cards" id="flows">${o.all.map((f) => flowCard(f, admin, o.health, o.matching.has(f.uid)))}</ul>` : ''}
${empty}
<div class="visually-hidden" id="announcer" role="status" aria-live="polite"></div>`;
  return layout({ title: 'Flows', visitor: o.visitor, nav: 'flows', body, scripts: ['flows.js'] });
}

/** `/inputs/-/...`: a flow's form, with the service's messages after a POST that did not pass. */
export function inputsPage(o: { visitor: Visitor; meta: EntryMeta; elements: readonly FormElement[]; form: FormView; notice?: SafeHtml }): SafeHtml {
  const m = o.meta;
  const facts = [m.version && `version ${m.version}`, m.author, m.organization].filter(Boolean) as string[];
  const body = html`<nav class="crumbs" aria-label="Breadcrumb"><a href="/">Flows</a><span aria-hidden="true">/</span><span aria-current="page">${m.summary}</span></nav>
<div class="page-head"><div><h1>${m.summary}</h1>${m.description ? html`<p class="lead">${m.description}</p>` : ''}
${facts.length || m.tags.length ? html`<p class="muted facts">${facts.join(' · ')}${m.tags.map((t) => html` <a class="tag" href="${`/?tag=${encodeURIComponent(t)}`}">${t}</a>`)}</p>` : ''}</div></div>
${o.notice ?? ''}
<section class="card form-card" aria-label="Inputs">${renderForm(o.elements, o.form)}</section>`;
  return layout({ title: m.summary, visitor: o.visitor, nav: 'flows', body });
}

/** The curl command that launches the same execution again (after logging in with the same cookie file). */
export function curlCommand(origin: string, flowUrl: string | undefined, inputs: unknown): string {
  const json = JSON.stringify(inputs ?? {}).replace(/'/g, `'\\''`);
  const target = flowUrl ? `${origin}${flowUrl}` : `${origin}/-/<host>/<port>/<path>`;
  return [
    `curl -b cookie -c cookie -X POST -d '{"name": "<user>", "password": "<password>"}' ${origin}/api/login`,
    `curl -b cookie -c cookie -X POST -d '${json}' ${target}`,
  ].join('\n');
}

/** `/status/{fid}`: the live page of one execution; status.js fills it from the event stream. */
export function statusPage(o: { visitor: Visitor; exec: ExecutionStatus; curl: string; flowUrl?: string }): SafeHtml {
  const e = o.exec;
  const data = {
    'data-fid': e.fid,
    'data-status': e.status,
    'data-created': String(e.createdAt),
    'data-started': e.startedAt === null ? '' : String(e.startedAt),
    'data-ended': e.endedAt === null ? '' : String(e.endedAt),
    // The server's time now: the page's stopwatch runs on the server's clock, not the reader's.
    'data-now': String(Date.now()),
  };
  const attrs = new SafeHtml(Object.entries(data).map(([k, v]) => html` ${new SafeHtml(k)}="${v}"`.value).join(''));
  const running = e.status === 'starting' || e.status === 'running';
  const body = html`<nav class="crumbs" aria-label="Breadcrumb"><a href="/timeline">Timeline</a><span aria-hidden="true">/</span><span aria-current="page">${e.fid}</span></nav>
<div class="exec-head" id="exec"${attrs}>
<div class="exec-title"><h1>${e.summary || 'Execution'}</h1>
<p class="exec-meta">${badge(e.status)} <span class="elapsed" id="elapsed" title="Elapsed time">${e.endedAt ? formatDuration(e.endedAt - (e.startedAt ?? e.createdAt)) : '…'}</span>
<span class="muted">started ${time(e.startedAt ?? e.createdAt)} by ${e.owner}</span>${o.flowUrl ? html` <a class="muted" href="${`/inputs${o.flowUrl}`}">run again</a>` : ''}</p></div>
<div class="exec-actions"><button type="button" class="button" id="copy-curl" aria-describedby="curl-hint">Copy as curl</button>
<button type="button" class="button danger" id="cancel"${running ? '' : html` hidden`}>Cancel</button></div>
</div>
<div class="visually-hidden" id="announcer" role="status" aria-live="polite" aria-atomic="true"></div>
<p class="copied" id="curl-hint" role="status" aria-live="polite"></p>
<div class="progress" id="progress" hidden><label for="progress-bar" id="progress-label">Progress</label><progress id="progress-bar" max="1" value="0"></progress><span id="progress-text" class="muted"></span></div>
<div class="alert" id="exec-error" role="alert"${e.error ? '' : html` hidden`}>${e.error ?? ''}</div>
<section class="card result" id="result-section" aria-labelledby="result-title" hidden><h2 id="result-title">Result</h2><pre id="result" tabindex="0"></pre></section>
<div class="tabs" role="tablist" aria-label="Execution output">
<button type="button" role="tab" id="tab-output" aria-controls="panel-output" aria-selected="true">Output <span class="count" id="count-output">0</span></button>
<button type="button" role="tab" id="tab-stdio" aria-controls="panel-stdio" aria-selected="false" tabindex="-1">stdout / stderr <span class="count" id="count-stdio">0</span></button>
<button type="button" role="tab" id="tab-inputs" aria-controls="panel-inputs" aria-selected="false" tabindex="-1">Inputs</button>
</div>
<section class="card tabpanel" role="tabpanel" id="panel-output" aria-labelledby="tab-output" tabindex="0"><div class="events" id="events"><p class="muted waiting" id="waiting">Waiting for events…</p></div></section>
<section class="card tabpanel" role="tabpanel" id="panel-stdio" aria-labelledby="tab-stdio" tabindex="0" hidden><pre class="stdio" id="stdio"></pre></section>
<section class="card tabpanel" role="tabpanel" id="panel-inputs" aria-labelledby="tab-inputs" tabindex="0" hidden>
<h2>Inputs</h2><pre class="json">${JSON.stringify(e.inputs, null, 2)}</pre>
<h2>Run it with curl</h2><pre class="json" id="curl">${o.curl}</pre></section>
<dialog id="cancel-dialog" aria-labelledby="cancel-title" aria-describedby="cancel-text">
<h2 id="cancel-title">Cancel this execution?</h2><p id="cancel-text">It stops, and so do the tasks it started. This cannot be undone.</p>
<div class="actions"><button type="button" class="button" id="cancel-no" autofocus>Keep running</button><button type="button" class="button danger" id="cancel-yes">Cancel execution</button></div>
</dialog>
<noscript><p class="alert">This page shows events live with JavaScript; without it, read <a href="${`/outputs/main/${e.fid}`}">the events as JSON</a>.</p></noscript>`;
  return layout({ title: e.summary || e.fid, visitor: o.visitor, body, scripts: ['marked.js', 'purify.js', 'status.js'], wide: true });
}

/** One timeline row; timeline.js updates the ones still running. */
function timelineRow(r: TimelineItem, admin: boolean, now: number): SafeHtml {
  const start = r.startedAt ?? r.createdAt;
  const duration = r.endedAt ? formatDuration(r.endedAt - start) : r.status === 'running' ? formatDuration(now - start) : '—';
  return html`<tr data-fid="${r.fid}" data-status="${r.status}" data-start="${String(start)}" data-end="${r.endedAt ? String(r.endedAt) : ''}">
<td class="st">${badge(r.status)}</td>
<td><a href="${`/status/${encodeURIComponent(r.fid)}`}">${r.summary || r.flow || 'Execution'}</a>${r.error ? html`<div class="row-error">${r.error}</div>` : ''}</td>
<td>${time(start)}</td>
<td class="dur">${duration}</td>
<td><code>${r.fid}</code></td>${admin ? html`<td>${r.owner}</td>` : ''}
</tr>`;
}

/** `/timeline`: the user's executions (an admin's: everyone's), newest first, with search, a status filter and pages. */
export function timelinePage(o: { visitor: Visitor; page: TimelinePage; q: string; status: string }): SafeHtml {
  const admin = o.visitor.user.admin;
  const { items, total, offset, limit } = o.page;
  const query = (off: number) => {
    const p = new URLSearchParams();
    if (o.q) p.set('q', o.q);
    if (o.status) p.set('status', o.status);
    if (off) p.set('offset', String(off));
    const s = p.toString();
    return `/timeline${s ? `?${s}` : ''}`;
  };
  const now = Date.now();
  const from = total ? offset + 1 : 0;
  const to = offset + items.length;
  const body = html`<div class="page-head"><div><h1>Timeline</h1><p class="muted">${admin ? 'Every execution' : 'Your executions'}, newest first</p></div></div>
<form class="filters" role="search" method="get" action="/timeline">
<div class="field grow"><label for="tq">Search</label><input type="search" id="tq" name="q" value="${o.q}" placeholder="Words in the flow, summary or fid…"></div>
<div class="field"><label for="tstatus">Status</label><select id="tstatus" name="status"><option value="">Any status</option>${STATUSES.map((s) => html`<option${new SafeHtml(s === o.status ? ' selected' : '')} value="${s}">${s}</option>`)}</select></div>
<div class="field end"><button type="submit" class="button">Filter</button></div>
</form>
${items.length
  ? html`<div class="card table-card"><table class="table" id="timeline" data-q="${o.q}" data-status="${o.status}" data-offset="${String(offset)}" data-limit="${String(limit)}">
<caption class="visually-hidden">${admin ? 'Executions' : 'Your executions'}, newest first</caption>
<thead><tr><th scope="col">Status</th><th scope="col">Flow</th><th scope="col">Started</th><th scope="col">Duration</th><th scope="col">fid</th>${admin ? html`<th scope="col">User</th>` : ''}</tr></thead>
<tbody>${items.map((r) => timelineRow(r, admin, now))}</tbody></table></div>`
  : html`<div class="empty"><h2>${o.q || o.status ? 'No executions match' : 'No executions yet'}</h2><p>${o.q || o.status ? html`<a href="/timeline">Show all</a>` : html`Start one from the <a href="/">flows</a>.`}</p></div>`}
<nav class="pager" aria-label="Pages">
${offset > 0 ? html`<a class="button" href="${query(Math.max(0, offset - limit))}" rel="prev">Newer</a>` : html`<span></span>`}
<span class="muted" id="page-range">${from}–${to} of ${total}</span>
${to < total ? html`<a class="button" href="${query(offset + limit)}" rel="next">Older</a>` : html`<span></span>`}
</nav>
<div class="visually-hidden" id="announcer" role="status" aria-live="polite"></div>`;
  return layout({ title: 'Timeline', visitor: o.visitor, nav: 'timeline', body, scripts: ['timeline.js'], wide: true });
}

/** `/admin/routes`: registered service URLs with their health and flow count; register, refresh, unregister. */
export function routesPage(o: { visitor: Visitor; sources: RegisteredSource[]; health: Map<string, Health>; url?: string; error?: string; notice?: string }): SafeHtml {
  const csrf = html`<input type="hidden" name="${CSRF_FIELD}" value="${o.visitor.csrf}">`;
  const rows = o.sources
    .sort((a, b) => a.url.localeCompare(b.url))
    .map(
      (s) => html`<tr>
<td><code>${s.url}</code>${s.error ? html`<div class="row-error">Last refresh: ${s.error}</div>` : ''}</td>
<td>${healthBadge(o.health.get(s.url))}</td>
<td class="num">${s.flows.length}</td>
<td>${time(s.refreshedAt)}</td>
<td><form method="post" action="/admin/routes/unregister" class="inline">${csrf}<input type="hidden" name="url" value="${s.url}"><button type="submit" class="button small danger-outline" aria-label="${`Unregister ${s.url}`}">Unregister</button></form></td>
</tr>`,
    );
  const body = html`<div class="page-head"><div><h1>Routes</h1><p class="muted">Services the gateway proxies to, by the URL they were registered with</p></div>
<form method="post" action="/admin/routes/refresh">${csrf}<button type="submit" class="button">Refresh all</button></form></div>
${o.notice ? html`<p class="notice" role="status">${o.notice}</p>` : ''}
<section class="card" aria-labelledby="register-title"><h2 id="register-title">Register a service</h2>
<form method="post" action="/admin/routes/register" class="filters">${csrf}
<div class="field grow${o.error ? ' invalid' : ''}"><label for="route-url">openapi.json or /-/routes URL</label>
<input id="route-url" name="url" type="url" required placeholder="http://localhost:8005/openapi.json" value="${o.url ?? ''}"${o.error ? html` aria-invalid="true" aria-describedby="route-error"` : ''}>
${o.error ? html`<p class="field-error" id="route-error" role="alert">${o.error}</p>` : ''}</div>
<div class="field end"><button type="submit" class="button primary">Register</button></div>
</form></section>
${rows.length
  ? html`<div class="card table-card"><table class="table" id="routes"><caption class="visually-hidden">Registered services</caption>
<thead><tr><th scope="col">URL</th><th scope="col">Health</th><th scope="col" class="num">Flows</th><th scope="col">Refreshed</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
<tbody>${rows}</tbody></table></div>`
  : html`<div class="empty"><h2>No services registered</h2><p>Register one above.</p></div>`}`;
  return layout({ title: 'Routes', visitor: o.visitor, nav: 'routes', body });
}

/** An error page: what happened and where to go from here. */
export function errorPage(o: { status: number; title: string; message: string; visitor?: Visitor }): SafeHtml {
  const body = html`<div class="empty error-page"><p class="code">${String(o.status)}</p><h1>${o.title}</h1><p>${o.message}</p><p><a class="button" href="/">Back to the flows</a></p></div>`;
  return layout({ title: o.title, visitor: o.visitor, body });
}
