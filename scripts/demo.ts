/**
 * @module `npm start`: a local two-node cluster counts primes with remote tasks, with a progress bar, then shows how the work
 * split; then agentic services through the gateway, model serving, and a deploy (serve replicas, a job: demo-deploy.ts).
 */
import { cpus } from 'node:os';
import { SingleBar, Presets } from 'cli-progress';
import { get, init, put, shutdown, wait } from '../runtime';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createParser } from 'eventsource-parser';
import { startLocalCluster } from '../runtime/internal/local-cluster';
import { freePort, portInUse, spawnGateway, stopProcess } from '../runtime/internal/launcher';
import sharp from 'sharp';
import { app as myService } from '../services/my_service/app';
import { invokeApp, registerApp, unregisterApp } from '../serving/apps';
import { ensureTinyModels } from './models/tiny';
import { closeServiceLink } from '../serve/cluster';
import { countPrimes, sumOf } from '../services/demo/primes';
import { listObjects } from '../runtime/state';
import { deployDemo } from './demo-deploy';

const LIMIT = Number(process.env.DEMO_LIMIT ?? 12_000_000);
const CHUNKS = 96;

/** A 64 MiB array through the node's shared-memory store: put, where it is, get, and tasks on both nodes reading it. */
async function largeObjectsDemo(): Promise<void> {
  const values = new Float64Array(8 * 1024 * 1024).map((_, i) => i % 1000);
  console.log(`\nLarge objects: a ${values.byteLength / 2 ** 20} MiB Float64Array through the object store.`);
  let t = performance.now();
  const ref = await put(values);
  const putMs = performance.now() - t;
  const where = (await listObjects({ limit: 100_000 })).find((o) => o.objectId === ref.id);
  console.log(`$ put(values)  ${putMs.toFixed(0)} ms: ${where?.location ?? '?'} ${where?.store ?? ''} (shared memory of its node); Redis holds where it is and its reference count`);
  t = performance.now();
  const back = await get(ref);
  console.log(`$ get(ref)     ${(performance.now() - t).toFixed(0)} ms: a ${back.constructor.name} of ${back.length.toLocaleString()} numbers, read with one copy`);
  const sums = await get([sumOf.options({ schedulingStrategy: 'SPREAD' }).remote(ref), sumOf.options({ schedulingStrategy: 'SPREAD' }).remote(ref)]);
  for (const s of sums) console.log(`  summed by a task on ${s.node} (worker pid ${s.pid}): ${s.sum.toLocaleString()}`);
}

async function main(): Promise<void> {
  const perNode = Math.max(1, cpus().length);
  // my_service's tasks take 1 to 3 s each in the seed; here a tenth of that, so the demo ends in seconds.
  process.env.NODUS_DEMO_TASK_MS ??= '100';
  console.log(`Starting a local cluster: Redis, a head and 2 node agents with ${perNode} CPUs each...`);
  const cluster = await startLocalCluster({ nodes: 2, numCpus: perNode });
  await init({ address: cluster.address, logToDriver: true });
  console.log(`Cluster up at ${cluster.address} with nodes ${cluster.nodeIds.join(', ')}.`);
  console.log(`Counting the primes below ${LIMIT.toLocaleString()} in ${CHUNKS} remote tasks...\n`);
  const t0 = Date.now();
  const step = Math.ceil(LIMIT / CHUNKS);
  let pending: ReturnType<typeof countPrimes.remote>[] = [];
  for (let lo = 0; lo < LIMIT; lo += step) pending.push(countPrimes.remote(lo, Math.min(lo + step, LIMIT)));
  const bar = new SingleBar({ format: '  {bar} {percentage}% | {value}/{total} tasks | {duration_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 250 }, Presets.shades_classic);
  bar.start(pending.length, 0);
  const results: Awaited<ReturnType<typeof countPrimes.remote>>[] = [];
  while (pending.length) {
    const [ready, rest] = await wait(pending, { numReturns: 1 });
    results.push(...(await get(ready)));
    pending = rest;
    bar.increment(ready.length);
  }
  bar.stop();
  const seconds = (Date.now() - t0) / 1000;
  const total = results.reduce((a, r) => a + r.count, 0);
  console.log(`\nThere are ${total.toLocaleString()} primes below ${LIMIT.toLocaleString()} (found in ${seconds.toFixed(2)} s).\n`);
  console.log('How the work split across nodes:');
  const byNode = new Map<string, { tasks: number; numbers: number; pids: Set<number> }>();
  for (const r of results) {
    const n = byNode.get(r.node) ?? { tasks: 0, numbers: 0, pids: new Set<number>() };
    n.tasks++;
    n.numbers += r.hi - r.lo;
    n.pids.add(r.pid);
    byNode.set(r.node, n);
  }
  for (const [node, n] of [...byNode].sort()) {
    console.log(`  ${node}: ${String(n.tasks).padStart(3)} tasks (${((100 * n.tasks) / results.length).toFixed(0)}%), ${n.numbers.toLocaleString()} numbers, on worker pids ${[...n.pids].join(', ')}`);
  }
  await largeObjectsDemo();
  await servicesDemo(cluster.address);
  await servingDemo();
  const deploy = await deployDemo(cluster.address);
  if (KEEP) keptStops.push(deploy.stop);
  else await deploy.stop();
  if (KEEP) {
    console.log(`\nThe panel: ${keptPanel}/ (admin / admin). my_service is registered, and runs as 2 replicas at ${deploy.url}/my_service; everything stays up until Ctrl-C.`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    for (const stop of keptStops) await stop();
  }
  await closeServiceLink();
  await shutdown();
  await cluster.stop();
}

/** The model-serving part: the seed's image chat app on the tiny model, registered, asked about a picture, unregistered. */
async function servingDemo(): Promise<void> {
  const dir = ensureTinyModels();
  console.log(`\nModel serving: the image chat app on the tiny model in ${dir} (npm run models).`);
  const app = await registerApp(join(__dirname, '..', '..', 'services', 'image_chat', 'app.ts'), { alias: 'chat', progress: (m) => console.log(`  ${m}`) });
  const png = await sharp({ create: { width: 40, height: 48, channels: 3, background: { r: 240, g: 200, b: 40 } } }).png().toBuffer();
  const request = { prompt: 'What is in this picture?', imageUrl: `data:image/png;base64,${png.toString('base64')}` };
  console.log(`$ npx nodus app invoke chat '{"prompt": "${request.prompt}", "imageUrl": "data:image/png;base64,..."}'`);
  const out = (await invokeApp('chat', request)) as { response: string };
  // The tiny model's weights are random: its answer is gibberish, made the way a real model's would be.
  console.log(`  ${JSON.stringify(out)}`);
  await unregisterApp(app.id);
}

/**
 * The agentic-services part: my_service on :8005 (or a free port), a gateway on :3370 (or a free port) with it
 * registered, then the seed's two curl requests, byte for byte, and the execution's events as they stream.
 */
/** `npm start -- --keep`: leave the cluster, the gateway (with its panel) and my_service running until Ctrl-C. */
const KEEP = process.argv.includes('--keep');
const keptStops: (() => Promise<void>)[] = [];

async function servicesDemo(address: string): Promise<void> {
  const servicePort = (await portInUse(8005)) ? await freePort() : 8005;
  const service = await myService.listen({ port: servicePort });
  const gatewayPort = (await portInUse(3370)) ? await freePort() : 3370;
  const dir = mkdtempSync(join(tmpdir(), 'nodus-demo-'));
  const gateway = await spawnGateway({ address, attached: true, logFile: join(dir, 'gateway.log'), port: gatewayPort, register: [`http://localhost:${servicePort}/openapi.json`], sessionDir: dir });
  const gw = `http://localhost:${gatewayPort}`;
  try {
    console.log(`\nAgentic services: my_service at ${service.url}, the gateway at ${gw} with it registered.`);
    // curl -b cookie -c cookie -X POST -d '{"name": "admin", "password": "admin"}' http://localhost:3370/api/login
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    console.log(`$ curl -b cookie -c cookie -X POST -d '{"name": "admin", "password": "admin"}' ${gw}/api/login`);
    const login = await fetch(`${gw}/api/login`, { method: 'POST', headers: form, body: '{"name": "admin", "password": "admin"}' });
    console.log(`  ${login.status} ${await login.text()}`);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
    // curl -b cookie -c cookie -X POST -d '{"tasks": 100}' http://localhost:3370/-/localhost/8005/-/
    const path = `/-/localhost/${servicePort}/-/`;
    console.log(`$ curl -b cookie -c cookie -X POST -d '{"tasks": 100}' ${gw}${path}`);
    const launched = await fetch(`${gw}${path}`, { method: 'POST', headers: { ...form, cookie }, body: '{"tasks": 100}' });
    const body = (await launched.json()) as { fid: string };
    console.log(`  ${launched.status} ${JSON.stringify(body)}`);
    console.log(`\nThe execution's events, as they stream from ${gw}/outputs/stream/${body.fid}:`);
    const stream = await fetch(`${gw}/outputs/stream/${body.fid}`, { headers: { cookie } });
    const parser = createParser({
      onEvent: (e) => {
        if (e.event === 'eof') return;
        const ev = JSON.parse(e.data) as { kind: string; data: unknown };
        const text = ev.kind === 'status' ? `status ${(ev.data as { status: string }).status}` : ev.kind === 'final' ? `final result: ${(ev.data as unknown[]).length} results` : `${ev.kind}: ${String(typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data)).slice(0, 110)}`;
        console.log(`  [${e.id}] ${text.trimEnd()}`);
      },
    });
    const decoder = new TextDecoder();
    for await (const chunk of stream.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
    if (!KEEP) console.log(`\nTo keep it all running with the panel: npm start -- --keep. On a cluster of your own: npx nodus start --head (its gateway is on :3370), npx tsx services/my_service/app.ts, then npx nodus register http://localhost:8005/openapi.json.`);
  } finally {
    const stop = async () => {
      await stopProcess(gateway.pid, 3000);
      await service.close();
      rmSync(dir, { recursive: true, force: true });
    };
    if (KEEP) keptStops.push(stop);
    else await stop();
  }
  if (KEEP) keptPanel = gw;
}

let keptPanel = '';

main().then(() => process.exit(0), async (err) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
