/**
 * @module The benchmark's agentic-services section: launch latency through the gateway, event latency from
 * tracer to SSE client, aggregate events/s to many SSE clients (every event delivered once, in order), and the
 * gateway's memory per open stream. Its own local cluster, services in this process, the gateway as a process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createParser } from 'eventsource-parser';
import { Redis } from 'ioredis';
import { init, shutdown } from '../../runtime';
import { freePort, spawnGateway, stopProcess } from '../../runtime/internal/launcher';
import { startLocalCluster } from '../../runtime/internal/local-cluster';
import { ServiceKeys } from '../../runtime/protocol/services';
import { ServeAPI, forms as F, Launch } from '../../serve';
import { closeServiceLink } from '../../serve/cluster';
import { createExecution } from '../../serve/store';
import { percentile, median, fmt, type Settings } from './measure';
import { MiB, rssBytes } from './procmem';

export interface ServicesFigures {
  launch: { p50: number; p99: number; n: number };
  eventLatency: { p50: number; p99: number; n: number };
  aggregate: { executions: number; clients: number; produced: number; delivered: number; seconds: number; deliveredPerSec: number; inOrderOnce: boolean };
  gatewayBytesPerStream: number;
  notes: string[];
}

const entry = (name: string) => `${join(__dirname, 'services-entry')}:${name}`;

/** One SSE client: resolves when eof arrives, with the events' receive times and ids. */
async function follow(url: string, cookie: string, onEvent?: (kind: string, data: unknown, at: number) => void): Promise<{ ids: string[]; kinds: string[] }> {
  const res = await fetch(url, { headers: { cookie } });
  const ids: string[] = [];
  const kinds: string[] = [];
  let eof = false;
  const parser = createParser({
    onEvent: (e) => {
      if (e.event === 'eof') return void (eof = true);
      const ev = JSON.parse(e.data) as { kind: string; data: unknown; at: number };
      ids.push(e.id ?? '');
      kinds.push(ev.kind);
      onEvent?.(ev.kind, ev.data, ev.at);
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    if (eof) break;
  }
  return { ids, kinds };
}

function increasing(ids: string[]): boolean {
  for (let i = 1; i < ids.length; i++) {
    const [a, b] = [ids[i - 1].split('-').map(Number), ids[i].split('-').map(Number)];
    if (!(b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]))) return false;
  }
  return true;
}

export async function servicesSection(s: Settings): Promise<ServicesFigures> {
  const notes: string[] = [];
  const cluster = await startLocalCluster({ numCpus: cpus().length });
  const dir = mkdtempSync(join(tmpdir(), 'nodus-bench-svc-'));
  const redis = new Redis(cluster.address, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  await init({ address: cluster.address, logToDriver: false });
  const api = new ServeAPI({ title: 'bench' });
  const model = F.Model(F.InputNumber({ name: 'n', value: 1 }), F.InputNumber({ name: 'gapMs', value: 0 }), F.Submit('Go'));
  api.enter({ path: '/paced', summary: 'paced', model }, (req, inputs) => Launch(req, entry('paced'), { n: Number(inputs.n), gapMs: Number(inputs.gapMs) }));
  const service = await api.listen({ port: 0 });
  const port = await freePort();
  const gateway = await spawnGateway({ address: cluster.address, attached: true, logFile: join(dir, 'gateway.log'), port, register: [`http://127.0.0.1:${service.port}/openapi.json`], sessionDir: dir });
  const gw = `http://127.0.0.1:${port}`;
  try {
    const login = await fetch(`${gw}/api/login`, { method: 'POST', body: '{"name": "admin", "password": "admin"}' });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
    const launch = async (n: number, gapMs: number) => {
      const res = await fetch(`${gw}/-/127.0.0.1/${service.port}/-/paced`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ n, gapMs }) });
      return ((await res.json()) as { fid: string }).fid;
    };

    // Launch latency: POST through the gateway until the stream says `running` (a runner actor is a new process).
    const launches = s.quick ? 8 : 30;
    await follow(`${gw}/outputs/stream/${await launch(1, 0)}`, cookie); // warm-up
    const launchMs: number[] = [];
    for (let i = 0; i < launches; i++) {
      const t0 = performance.now();
      const fid = await launch(1, 0);
      let running = 0;
      await follow(`${gw}/outputs/stream/${fid}`, cookie, (kind, data) => {
        if (kind === 'status' && (data as { status: string }).status === 'running' && !running) running = performance.now();
      });
      launchMs.push(running - t0);
    }
    console.log(`  launch → running: p50 ${fmt(median(launchMs))} ms, p99 ${fmt(percentile(launchMs, 99))} ms (${launches} launches)`);

    // Event latency: paced events (one every 5 ms), from the tracer's write to this SSE client.
    const latencies: number[] = [];
    const paced = s.quick ? 200 : 1000;
    await follow(`${gw}/outputs/stream/${await launch(paced, 5)}`, cookie, (kind, _data, at) => {
      if (kind === 'markdown') latencies.push(Date.now() - at);
    });
    console.log(`  event latency (tracer.markdown → SSE client): p50 ${fmt(median(latencies))} ms, p99 ${fmt(percentile(latencies, 99))} ms (${latencies.length} events)`);

    // Aggregate: executions emitting as fast as they can, each followed by several clients.
    const executions = s.quick ? 4 : 20;
    const perExec = s.quick ? 500 : 2000;
    const clientsEach = 10;
    const fids = await Promise.all(Array.from({ length: executions }, () => launch(perExec, 0)));
    const t0 = performance.now();
    const runs = await Promise.all(fids.flatMap((fid) => Array.from({ length: clientsEach }, () => follow(`${gw}/outputs/stream/${fid}`, cookie))));
    const seconds = (performance.now() - t0) / 1000;
    const delivered = runs.reduce((a, r) => a + r.kinds.filter((k) => k === 'markdown').length, 0);
    const inOrderOnce = runs.every((r) => increasing(r.ids) && r.kinds.filter((k) => k === 'markdown').length === perExec);
    const aggregate = { executions, clients: executions * clientsEach, produced: executions * perExec, delivered, seconds, deliveredPerSec: delivered / seconds, inOrderOnce };
    console.log(`  aggregate: ${executions} executions × ${perExec} events to ${aggregate.clients} SSE clients: ${fmt(aggregate.deliveredPerSec)} events/s delivered (${fmt(aggregate.produced / seconds)} produced/s), every event once and in order: ${inOrderOnce ? 'yes' : 'NO'}`);

    // Gateway memory per open stream: streams held open on executions that never end.
    const streams = s.quick ? 100 : 500;
    const keys = new ServiceKeys();
    const idle = Array.from({ length: streams }, (_, i) => `bench-idle-${i}`);
    for (const fid of idle) await createExecution(redis, keys, { fid, owner: 'admin', flow: '', summary: 'idle', entry: '', inputs: {}, service: '' });
    await new Promise((r) => setTimeout(r, 500));
    const before = rssBytes(gateway.pid) ?? 0;
    const aborts = idle.map(() => new AbortController());
    const open = await Promise.all(idle.map((fid, i) => fetch(`${gw}/outputs/stream/${fid}`, { headers: { cookie }, signal: aborts[i].signal })));
    await new Promise((r) => setTimeout(r, 1500));
    const after = rssBytes(gateway.pid) ?? 0;
    for (const a of aborts) a.abort();
    void open;
    const perStream = Math.max(0, (after - before) / streams);
    console.log(`  gateway memory: ${fmt(before / MiB)} MiB, with ${streams} open streams ${fmt(after / MiB)} MiB: ${fmt(perStream / 1024)} KiB per stream`);
    notes.push(
      `Aggregate: ${executions} concurrent executions (the throughput entrypoint, not my_service's 1–3 s tasks, which would measure the tasks) each followed by ${clientsEach} clients; ` +
        'the issue\'s 200 concurrent executions would be 200 runner processes, beyond this 2-core, 24 GiB machine.',
      'kodosumi by design: its spooler polls every 0.25 s (event latency ~125 ms on average) and keeps each execution in a SQLite file.',
    );
    return {
      launch: { p50: median(launchMs), p99: percentile(launchMs, 99), n: launches },
      eventLatency: { p50: median(latencies), p99: percentile(latencies, 99), n: latencies.length },
      aggregate,
      gatewayBytesPerStream: perStream,
      notes,
    };
  } finally {
    await stopProcess(gateway.pid, 3000);
    await service.close();
    await closeServiceLink();
    await shutdown();
    redis.disconnect();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The section as printed at the end of a full run. */
export function printServices(f: ServicesFigures): void {
  console.log('\nAgentic services:');
  console.log('| measure | nodus | kodosumi (by design) |');
  console.log('|---|---|---|');
  console.log(`| launch → running (POST through the gateway) | p50 ${fmt(f.launch.p50)} ms, p99 ${fmt(f.launch.p99)} ms | a Ray actor start |`);
  console.log(`| event latency, tracer → SSE client | p50 ${fmt(f.eventLatency.p50)} ms, p99 ${fmt(f.eventLatency.p99)} ms | spooler polls every 250 ms |`);
  console.log(`| events/s to ${f.aggregate.clients} SSE clients (${f.aggregate.executions} executions) | ${fmt(f.aggregate.deliveredPerSec)} delivered/s, once and in order: ${f.aggregate.inOrderOnce ? 'yes' : 'no'} | — |`);
  console.log(`| gateway memory per open SSE stream | ${fmt(f.gatewayBytesPerStream / 1024)} KiB | — |`);
  for (const n of f.notes) console.log(`- ${n}`);
}
