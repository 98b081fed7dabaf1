/** @module Formats `nodus status` for a terminal. */
import { readClusterStatus, type ClusterStatus } from '../runtime/internal/cluster-status';
import type { Resources } from '../runtime/protocol';

export const clusterStatus = (address: string) => readClusterStatus(address, process.env.NODUS_NAMESPACE || undefined);

function fmt(r: Resources): string {
  const keys = Object.keys(r).sort();
  // Memory is in bytes: shown in GiB.
  return keys.length ? keys.map((k) => (k === 'memory' ? `memory ${(r[k] / 2 ** 30).toFixed(1)} GiB` : `${k} ${r[k]}`)).join(', ') : '-';
}

function ago(ms: number | undefined): string {
  if (!ms) return '-';
  const s = (Date.now() - ms) / 1000;
  return s < 60 ? `${s.toFixed(1)}s ago` : `${Math.round(s / 60)}m ago`;
}

export function formatStatus(s: ClusterStatus): string {
  const lines: string[] = [];
  lines.push(`Cluster ${s.address}`);
  lines.push(s.head ? `Head: ${s.head.alive ? 'alive' : 'not responding'} (pid ${s.head.pid} on ${s.head.host}, last beat ${ago(s.head.lastBeat)})` : 'Head: none has started on this Redis');
  if (s.head?.metricsUrl) lines.push(`Metrics: ${s.head.metricsUrl} (Prometheus)`);
  if (s.head?.redisRestarts) {
    lines.push(`Redis: restarted by the head ${s.head.redisRestarts} time${s.head.redisRestarts > 1 ? 's' : ''}, last ${ago(s.head.redisLastRestart)} (${s.head.redisLastExit ?? 'it died'})`);
  }
  const alive = s.nodes.filter((n) => n.state === 'alive').length;
  lines.push('', `Nodes: ${alive} alive, ${s.nodes.length - alive} dead`);
  for (const n of s.nodes) {
    const store = n.store && n.storeUsed !== undefined ? `; object store ${mib(n.storeUsed)} of ${mib(n.store.capacity)}` : '';
    const what = n.state === 'alive' ? `free ${fmt(n.free)} of ${fmt(n.total)}; ${n.workers} workers, ${n.running} running${store}` : `dead ${ago(n.diedAt)} (${n.deathReason ?? 'unknown'})`;
    const labels = n.labels && Object.keys(n.labels).length ? `  labels ${Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(',')}` : '';
    lines.push(`  ${n.id}${n.isHeadNode ? ' (head)' : ''}  ${n.state.padEnd(5)}  ${n.host} pid ${n.pid}  ${what}${labels}`);
  }
  lines.push('', `Resources: ${fmt(s.free)} free of ${fmt(s.total)}`);
  lines.push('', `Drivers: ${s.drivers.length}`);
  for (const d of s.drivers) lines.push(`  ${d.id}  ${d.host} pid ${d.pid}, since ${ago(d.startedAt)}${d.job ? `  (the driver of job ${d.job})` : ''}`);
  const queued = s.tasks.reduce((a, t) => a + t.queued, 0);
  const running = s.tasks.reduce((a, t) => a + t.running, 0);
  // Counted in queue jobs: tasks submitted in bulk share a job (a bundle), which counts once.
  lines.push('', `Task jobs: ${queued} queued, ${running} running`);
  // A constrained queue (node affinity, labels, a placement group's bundle) shows its constraint after '@'.
  for (const t of s.tasks.filter((t) => t.queued || t.running)) lines.push(`  {${fmt(t.demand)}}${t.shape.includes('@') ? ` ${t.shape.slice(t.shape.indexOf('@'))}` : ''}: ${t.queued} queued, ${t.running} running`);
  const aliveActors = s.actors.filter((a) => a.state !== 'dead').length;
  lines.push('', `Actors: ${aliveActors} not dead, ${s.actors.length - aliveActors} dead`);
  for (const a of s.actors) {
    lines.push(`  ${a.cls}${a.name ? ` '${a.namespace}/${a.name}'` : ''}  ${a.id}  ${a.state}  node ${a.node || '-'}  restarts ${a.restarts}${a.detached ? '  detached' : ''}`);
  }
  if (s.modelHosts.length) {
    lines.push('', `Model hosts: ${s.modelHosts.length}`);
    for (const h of s.modelHosts) lines.push(`  ${h.replica}  ${h.modelId}  device ${h.device}  node ${h.node}  pid ${h.pid}`);
  }
  if (s.placementGroups.length) {
    lines.push('', `Placement groups: ${s.placementGroups.length}`);
    for (const g of s.placementGroups) {
      const bundles = g.bundles.map((b, i) => `{${fmt(b)}}@${g.nodes[i] || '-'}`).join(' ');
      lines.push(`  ${g.id}${g.name ? ` '${g.name}'` : ''}  ${g.state}  ${g.strategy}  ${bundles}${g.infeasible ? `  infeasible: ${g.infeasible}` : ''}`);
    }
  }
  if (s.infeasible.length) {
    lines.push('', 'Infeasible demand (no node could ever run these; add a node that has the resources):');
    for (const i of s.infeasible) lines.push(`  {${fmt(i.demand)}}${i.task ? ` ${i.task}` : ''}: ${i.waiting ?? '?'} waiting since ${ago(i.since)}`);
  }
  return lines.join('\n');
}

function mib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
