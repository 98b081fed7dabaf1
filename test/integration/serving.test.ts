import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import WebSocket from 'ws';
import { CoreContext } from '../../runtime/internal/context';
import { entryPoint, freePort, spawnGateway, stopProcess, type StartedProcess } from '../../runtime/internal/launcher';
import { invokeApp, listApps, registerApp, streamApp, unregisterApp } from '../../serving/apps';
import { directHolder, LLMTask, releaseHolder } from '../../serving';
import { ImageChatTask } from '../../services/image_chat/task';
import { ensureTinyModels } from '../../scripts/models/tiny';
import { useCluster } from '../helpers/cluster';
import { CookieJar, curlPost } from '../helpers/services';

ensureTinyModels();
const run = promisify(execFile);
const cluster = useCluster({ nodes: 1, cpus: 2 });
const root = join(__dirname, '..', '..');
let imageUrl: string;
let dir: string;

beforeAll(async () => {
  const png = await sharp({ create: { width: 40, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
  imageUrl = `data:image/png;base64,${png.toString('base64')}`;
  dir = mkdtempSync(join(tmpdir(), 'nodus-serving-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("the seed's image chat app registers (deploying its encoder and LLM with progress), answers, and is listed with its hosts", async () => {
  const progress: string[] = [];
  const app = await registerApp(join(root, 'services/image_chat/app.ts'), { alias: 'chat', progress: (m) => progress.push(m) });
  expect(app).toMatchObject({ alias: 'chat', state: 'ready', streaming: false });
  expect(progress.join('\n')).toMatch(/starting encoder host[\s\S]*ready on node-\w+ \(cpu\)/);
  expect(progress.join('\n')).toMatch(/starting llm host/);
  const request = { prompt: 'What is in this picture?', imageUrl };
  const first = (await invokeApp('chat', request)) as { response: string };
  expect(typeof first.response).toBe('string');
  expect(first.response.length).toBeGreaterThan(0);
  // Greedy decoding: the same question gets the same answer.
  expect(await invokeApp('chat', request)).toEqual(first);
  const { apps, deployments } = await listApps();
  expect(apps.map((a) => a.alias)).toContain('chat');
  expect(deployments.map((d) => d.kind).sort()).toEqual(['encoder', 'llm']);
  for (const d of deployments) expect(d.hosts[0]).toMatchObject({ device: 'cpu', node: cluster.agents[0].nodeId });
  await unregisterApp('chat');
  expect((await listApps()).deployments).toHaveLength(0);
});

test('embeddings go from the encoder host to the LLM host as refs: the composite never reads the tensor bytes', async () => {
  const task = new ImageChatTask('tiny-vlm');
  await task.ensureInit();
  const embeddingIds: string[] = [];
  const invoke = task.imageEncoder.invoke.bind(task.imageEncoder);
  jest.spyOn(task.imageEncoder, 'invoke').mockImplementation(async (input) => {
    const out = await invoke(input);
    embeddingIds.push(...out.embeddings.map((r) => r.id));
    return out;
  });
  const fetched: string[] = [];
  const get = CoreContext.prototype.get;
  const spy = jest.spyOn(CoreContext.prototype, 'get').mockImplementation(function (this: CoreContext, refs: unknown, timeout: number | undefined) {
    for (const r of [refs].flat()) if (r && typeof r === 'object' && 'id' in r) fetched.push((r as { id: string }).id);
    return get.call(this, refs, timeout);
  });
  try {
    const out = await task.call({ prompt: 'Describe it.', imageUrl });
    expect(typeof out.response).toBe('string');
  } finally {
    spy.mockRestore();
  }
  expect(embeddingIds).toHaveLength(1);
  expect(fetched.filter((id) => embeddingIds.includes(id))).toEqual([]);
  // A driver that called unit tasks directly lets go of their deployments.
  expect((await releaseHolder(directHolder())).length).toBe(2);
});

test('two apps share one encoder deployment; it is torn down when the last app using it unregisters', async () => {
  await registerApp(join(root, 'services/encoder_sharing/embed_app.ts'), { alias: 'embed' });
  await registerApp(join(root, 'services/encoder_sharing/chat_app.ts'), { alias: 'chat2' });
  const encoders = () => listApps().then((l) => l.deployments.filter((d) => d.kind === 'encoder'));
  expect(await encoders()).toHaveLength(1);
  expect((await encoders())[0].holders).toHaveLength(2);
  expect(await invokeApp('embed', { imageUrls: [imageUrl, imageUrl] })).toEqual({ shapes: [[16, 64], [16, 64]] });
  await unregisterApp('embed');
  expect((await encoders())[0].holders).toHaveLength(1);
  expect(((await invokeApp('chat2', { prompt: 'Still there?', imageUrl })) as { response: string }).response).toEqual(expect.any(String));
  await unregisterApp('chat2');
  expect(await encoders()).toHaveLength(0);
});

test('a streaming app yields the tokens of the same answer as a plain call', async () => {
  await registerApp(join(root, 'services/chat_stream/app.ts'), { alias: 'stream' });
  try {
    const items: { text: string }[] = [];
    for await (const item of streamApp('stream', { prompt: 'Tell me a story', maxTokens: 12 })) items.push(item as { text: string });
    expect(items.length).toBeGreaterThan(1);
    const whole = await new LLMTask({ modelId: 'tiny-vlm' }).call({ prompt: 'Tell me a story', maxTokens: 12 });
    expect(items.map((i) => i.text).join('')).toBe(whole.response);
  } finally {
    await unregisterApp('stream');
    await releaseHolder(directHolder());
  }
});

test('bad input gets clear errors and the hosts stay up: an invalid data URL, an unknown model, an app that does not load', async () => {
  await registerApp(join(root, 'services/image_chat/app.ts'), { alias: 'chat3' });
  try {
    await expect(invokeApp('chat3', { prompt: 'x', imageUrl: 'data:image/png;base64,@@@' })).rejects.toThrow(/base64|data URL/i);
    await expect(invokeApp('chat3', { prompt: 'x' })).rejects.toThrow(/imageUrl/);
    expect(((await invokeApp('chat3', { prompt: 'Fine now?', imageUrl })) as { response: string }).response).toEqual(expect.any(String));
  } finally {
    await unregisterApp('chat3');
  }
  const unknown = join(dir, 'unknown_model.ts');
  writeFileSync(unknown, `import { LLMTask } from '${join(root, 'serving')}';\nexport const config = { tasks: { llm: new LLMTask({ modelId: 'no-such-model' }) } };\nexport async function serve(r: { prompt: string }) { return config.tasks.llm.call(r); }\n`);
  await expect(registerApp(unknown, { alias: 'unknown' })).rejects.toThrow(/no-such-model[\s\S]*tiny-vlm|npm run models/);
  const broken = join(dir, 'broken.ts');
  writeFileSync(broken, 'export const config = ;\n');
  await expect(registerApp(broken, { alias: 'broken' })).rejects.toThrow(/could not be loaded|Could not register/);
  expect((await listApps()).apps).toHaveLength(0);
});

test('nodus app register, invoke, list and unregister from the command line', async () => {
  const env = { ...process.env, NODUS_ADDRESS: cluster.address };
  const cli = (...args: string[]) => run(process.execPath, [entryPoint('cli'), ...args], { env, cwd: root, timeout: 120_000 });
  const reg = await cli('app', 'register', 'services/image_chat/app.ts', '--alias', 'clichat');
  expect(reg.stdout).toMatch(/starting encoder host[\s\S]*Registered clichat \(app-\w+\): 2 deployments/);
  const out = JSON.parse((await cli('app', 'invoke', 'clichat', JSON.stringify({ prompt: 'What is in this picture?', imageUrl }))).stdout);
  expect(out).toEqual({ response: expect.any(String) });
  const list = (await cli('app', 'list')).stdout;
  expect(list).toMatch(/clichat .* ready/);
  expect(list).toMatch(/device cpu/);
  const bad = await cli('app', 'invoke', 'nope', '{}').catch((e: { stderr: string }) => e);
  expect((bad as { stderr: string }).stderr).toMatch(/No app 'nope' is registered[\s\S]*clichat/);
  expect((await cli('app', 'unregister', 'clichat')).stdout).toMatch(/tore down [\s\S]*Unregistered clichat/);
});

describe('through the gateway', () => {
  let gateway: StartedProcess;
  let gw: string;
  let jar: CookieJar;

  beforeAll(async () => {
    const port = await freePort();
    gateway = await spawnGateway({ address: cluster.address, attached: true, logFile: join(dir, 'gateway.log'), port, sessionDir: dir });
    gw = `http://127.0.0.1:${port}`;
    jar = new CookieJar();
    await curlPost(`${gw}/api/login`, '{"name": "admin", "password": "admin"}', jar);
  });

  afterAll(async () => {
    await stopProcess(gateway.pid, 3000);
  });

  test('apps register, invoke (JSON and NDJSON), list and unregister over HTTP; unit tasks answer on /tasks/invoke and WS /session', async () => {
    const post = (path: string, body: unknown) => fetch(`${gw}${path}`, { method: 'POST', headers: { cookie: jar.header(), 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const reg = await post('/app/register', { source: join(root, 'services/chat_stream/app.ts'), alias: 'gwstream' });
    if (reg.status !== 200) throw new Error(await reg.text());
    expect(((await reg.json()) as { progress: string[] }).progress.join('\n')).toMatch(/llm host 1 of 1 ready/);
    const streamed = await post('/app/invoke/gwstream', { prompt: 'Hi', maxTokens: 6 });
    expect(streamed.headers.get('content-type')).toMatch(/ndjson/);
    const lines = (await streamed.text()).trim().split('\n').map((l) => JSON.parse(l) as { text: string });
    expect(lines.length).toBeGreaterThan(1);
    const listed = (await (await fetch(`${gw}/app/list`, { headers: { cookie: jar.header() } })).json()) as { apps: { alias: string }[] };
    expect(listed.apps.map((a) => a.alias)).toEqual(['gwstream']);

    // The gateway calls the unit task directly: it holds the LLM deployment the app deployed too.
    const direct = await post('/tasks/invoke', { task: { kind: 'llm', modelId: 'tiny-vlm' }, input: { prompt: 'Hi', maxTokens: 6 } });
    expect(direct.status).toBe(200);
    const { response } = (await direct.json()) as { response: string };
    expect(lines.map((l) => l.text).join('')).toBe(response);

    const ws = new WebSocket(`${gw.replace('http', 'ws')}/session`, { headers: { cookie: jar.header() } });
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    const answers: unknown[] = [];
    const done = new Promise<void>((r) => ws.on('message', (m) => (answers.push(JSON.parse(String(m))), answers.length === 1 && r())));
    ws.send(JSON.stringify({ id: 7, task: { kind: 'llm', modelId: 'tiny-vlm' }, input: { prompt: 'Hi', maxTokens: 6 } }));
    await done;
    ws.close();
    expect(answers[0]).toEqual({ id: 7, output: { response, tokens: expect.any(Number), finishReason: expect.any(String) } });
    const refused = new WebSocket(`${gw.replace('http', 'ws')}/session`);
    await expect(new Promise((r, j) => refused.once('open', r).once('error', j))).rejects.toThrow(/401/);

    expect((await post('/app/unregister/gwstream', {})).status).toBe(200);
  });
});
