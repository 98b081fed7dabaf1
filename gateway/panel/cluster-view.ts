/**
 * @module The panel's cluster page (admins): nodes with their resources and usage, actors, recent tasks and failures,
 * placement groups and the object store, read through the state API and refreshed in place by cluster.js.
 */
import type { Redis } from 'ioredis';
import { StateReader, type ActorInfo, type NodeStateInfo, type TaskInfo } from '../../runtime/internal/state-reader';
import type { PlacementGroupInfo } from '../../runtime/protocol/state';
import type { Resources } from '../../runtime/protocol';
import { SafeHtml, html } from './html';
import { formatDuration, layout, type Visitor } from './views';

/** What the page shows, read at once. */
export interface ClusterView {
  nodes: NodeStateInfo[];
  actors: ActorInfo[];
  tasks: TaskInfo[];
  failures: TaskInfo[];
  running: number;
  groups: PlacementGroupInfo[];
  store: { objects: number; bytes: number; complete: boolean };
  at: number;
}

const RECENT_TASKS = 25;
const RECENT_FAILURES = 20;
const ACTORS_SHOWN = 50;

/** Reads the cluster's state for the page. */
export async function readClusterView(redis: Redis, prefix: string): Promise<ClusterView> {
  const r = new StateReader(redis, prefix);
  const [nodes, actors, tasks, groups, store] = await Promise.all([r.listNodes({ limit: 1000 }), r.listActors({ limit: ACTORS_SHOWN }), r.allTasks(), r.listPlacementGroups({ limit: 100 }), r.objectStoreUsage()]);
  return {
    nodes,
    actors,
    tasks: tasks.slice(0, RECENT_TASKS),
    failures: tasks.filter((t) => t.state === 'FAILED').sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0)).slice(0, RECENT_FAILURES),
    running: tasks.filter((t) => t.state === 'RUNNING').length,
    groups,
    store,
    at: Date.now(),
  };
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function fmtRes(r: Resources): string {
  const keys = Object.keys(r).sort();
  return keys.length ? keys.map((k) => `${k} ${r[k]}`).join(', ') : '—';
}

function clock(ms: number | null): SafeHtml {
  if (!ms) return html`<span class="muted">—</span>`;
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}">${iso.slice(11, 19)} UTC</time>`;
}

function state(s: string): SafeHtml {
  return html`<span class="${`badge state-${s.toLowerCase()}`}">${s.toLowerCase()}</span>`;
}

/** Each resource's use as a bar: used of total. */
function usage(n: NodeStateInfo): SafeHtml {
  if (n.state !== 'ALIVE') return html`<span class="muted">${n.deathReason ?? 'dead'}</span>`;
  return html`${Object.keys(n.total)
    .sort()
    .map((k) => {
      const total = n.total[k];
      const used = Math.max(0, total - (n.free[k] ?? 0));
      const pct = total ? Math.round((used / total) * 100) : 0;
      return html`<div class="usage"><span class="usage-name">${k}</span><meter min="0" max="${String(total)}" value="${String(used)}" title="${`${used} of ${total} in use`}"></meter><span class="usage-num">${`${used} / ${total}`} (${String(pct)}%)</span></div>`;
    })}`;
}

function section(id: string, title: string, count: string, body: SafeHtml): SafeHtml {
  return html`<section class="card table-card cluster-section" id="${id}" aria-labelledby="${`${id}-title`}"><h2 id="${`${id}-title`}">${title} <span class="count">${count}</span></h2>${body}</section>`;
}

function none(text: string): SafeHtml {
  return html`<p class="muted none">${text}</p>`;
}

/** The part of the page that cluster.js replaces on each refresh. */
export function clusterLive(v: ClusterView): SafeHtml {
  const alive = v.nodes.filter((n) => n.state === 'ALIVE');
  const total: Resources = {};
  const free: Resources = {};
  for (const n of alive) {
    for (const [k, x] of Object.entries(n.total)) total[k] = (total[k] ?? 0) + x;
    for (const [k, x] of Object.entries(n.free)) free[k] = (free[k] ?? 0) + x;
  }
  const facts: [string, string][] = [
    ['Nodes', `${alive.length} alive${v.nodes.length > alive.length ? `, ${v.nodes.length - alive.length} dead` : ''}`],
    ['CPUs free', `${free.CPU ?? 0} of ${total.CPU ?? 0}`],
    ['Tasks running', String(v.running)],
    ['Recent failures', String(v.failures.length)],
    ['Actors alive', String(v.actors.filter((a) => a.state === 'ALIVE').length)],
    ['Object store', `${v.store.complete ? '' : '≥ '}${v.store.objects} objects, ${bytes(v.store.bytes)}`],
  ];
  const nodes = v.nodes.length
    ? html`<table class="table" id="nodes-table"><thead><tr><th scope="col">Node</th><th scope="col">State</th><th scope="col">Host</th><th scope="col">Usage</th><th scope="col" class="num">Workers</th><th scope="col" class="num">Running</th></tr></thead>
<tbody>${v.nodes.map((n) => html`<tr data-node="${n.nodeId}"><td><code>${n.nodeId}</code>${n.isHeadNode ? html` <span class="pill">head</span>` : ''}</td><td>${state(n.state)}</td><td>${n.host} <span class="muted">pid ${String(n.pid)}</span></td><td>${usage(n)}</td><td class="num">${String(n.workers)}</td><td class="num">${String(n.running)}</td></tr>`)}</tbody></table>`
    : none('No node has joined. Start one with npx nodus worker join.');
  const failures = v.failures.length
    ? html`<table class="table" id="failures-table"><thead><tr><th scope="col">Task</th><th scope="col">Failed at</th><th scope="col">Error</th><th scope="col">Where</th></tr></thead>
<tbody>${v.failures.map((t) => html`<tr data-task="${t.taskId}"><td>${t.name} <code>${t.taskId}</code></td><td>${clock(t.endedAt)}</td><td class="row-error">${t.error ? `${t.error.name}: ${t.error.message}` : ''}</td><td><code>${t.node || '—'}</code> <span class="muted">${t.worker}</span></td></tr>`)}</tbody></table>`
    : none('No task failed in the task event window.');
  const tasks = v.tasks.length
    ? html`<table class="table" id="tasks-table"><thead><tr><th scope="col">Task</th><th scope="col">State</th><th scope="col">Submitted</th><th scope="col" class="num">Duration</th><th scope="col">Node</th></tr></thead>
<tbody>${v.tasks.map((t) => html`<tr data-task="${t.taskId}"><td>${t.name} <code>${t.taskId}</code></td><td>${state(t.state)}</td><td>${clock(t.submittedAt)}</td><td class="dur">${t.durationMs === null ? '—' : formatDuration(t.durationMs)}</td><td><code>${t.node || '—'}</code></td></tr>`)}</tbody></table>`
    : none('No tasks in the task event window.');
  const actors = v.actors.length
    ? html`<table class="table" id="actors-table"><thead><tr><th scope="col">Actor</th><th scope="col">State</th><th scope="col">Node</th><th scope="col" class="num">Restarts</th><th scope="col">Resources</th></tr></thead>
<tbody>${v.actors.map((a) => html`<tr data-actor="${a.actorId}"><td>${a.className}${a.name ? html` <span class="pill">${a.namespace}/${a.name}</span>` : ''} <code>${a.actorId}</code>${a.deathCause ? html`<div class="row-error">${a.deathCause}</div>` : ''}</td><td>${state(a.state)}</td><td><code>${a.node || '—'}</code></td><td class="num">${String(a.restarts)}</td><td>${fmtRes(a.resources)}</td></tr>`)}</tbody></table>`
    : none('No actors.');
  const groups = v.groups.length
    ? html`<table class="table" id="groups-table"><thead><tr><th scope="col">Group</th><th scope="col">Strategy</th><th scope="col">State</th><th scope="col">Bundles</th></tr></thead>
<tbody>${v.groups.map((g) => html`<tr><td>${g.name || html`<span class="muted">unnamed</span>`} <code>${g.id}</code>${g.reason ? html`<div class="row-error">${g.reason}</div>` : ''}</td><td>${g.strategy}</td><td>${state(g.state)}</td><td>${g.bundles.map((b, i) => html`<div>#${String(i)} {${fmtRes(b.resources)}} on <code>${b.node || '—'}</code></div>`)}</td></tr>`)}</tbody></table>`
    : none('No placement groups.');
  return html`<div id="cluster-live" data-at="${String(v.at)}">
<dl class="cluster-facts">${facts.map(([k, x]) => html`<div class="card"><dt>${k}</dt><dd>${x}</dd></div>`)}</dl>
${section('nodes', 'Nodes', String(v.nodes.length), nodes)}
${section('failures', 'Recent failures', String(v.failures.length), failures)}
${section('tasks', 'Recent tasks', String(v.tasks.length), tasks)}
${section('actors', 'Actors', String(v.actors.length), actors)}
${section('groups', 'Placement groups', String(v.groups.length), groups)}
</div>`;
}

/** `/cluster`: the live view of the cluster. */
export function clusterPage(o: { visitor: Visitor; view: ClusterView }): SafeHtml {
  const body = html`<div class="page-head"><div><h1>Cluster</h1><p class="muted">Nodes, tasks, actors and objects, refreshed every few seconds · <span id="cluster-updated">updated ${clock(o.view.at)}</span></p></div></div>
${clusterLive(o.view)}
<div class="visually-hidden" id="announcer" role="status" aria-live="polite"></div>`;
  return layout({ title: 'Cluster', visitor: o.visitor, nav: 'cluster', body, scripts: ['cluster.js'], wide: true });
}
