/** @module Our decode loop against transformers.js on the same tiny folder: greedy decoding must give the same token ids, for text and for an image. */
import { basename, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer, RawImage, Tensor, env, ones, type PreTrainedModel } from '@huggingface/transformers';
import { ensureTinyModels } from '../../scripts/models/tiny';
import { CausalLM } from '../../serving/models/llm';
import { openSession } from '../../serving/models/session';

const TOKENS = 24;
let dir: string;
let llm: CausalLM;
let hf: PreTrainedModel;

beforeAll(async () => {
  dir = ensureTinyModels();
  // Local folder only: nothing is fetched, nothing is cached elsewhere.
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useFSCache = false;
  env.localModelPath = dirname(dir) + '/';
  llm = await CausalLM.load(dir, 'cpu');
  hf = await AutoModelForImageTextToText.from_pretrained(basename(dir), { dtype: 'fp32', device: 'cpu' });
});
afterAll(async () => {
  await llm?.release();
  await hf?.dispose();
});

async function ours(ids: number[], imageEmbeds?: Float32Array[]): Promise<number[]> {
  const out: number[] = [];
  for await (const { token } of llm.generate(ids, { maxTokens: TOKENS, ignoreEos: true, imageEmbeds })) out.push(token);
  return out;
}

/** transformers.js's greedy generate; eos_token_id null so that both run the full length. */
async function theirs(ids: number[], extra: Record<string, unknown> = {}): Promise<number[]> {
  const input_ids = new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);
  const out = (await hf.generate({ input_ids, attention_mask: ones([1, ids.length]), max_new_tokens: TOKENS, do_sample: false, eos_token_id: null, ...extra } as never)) as Tensor;
  return (out.tolist()[0] as bigint[]).slice(ids.length).map(Number);
}

test('transformers.js loads the tiny folder as llava and its tokenizer and chat template give our ids', async () => {
  expect(hf.constructor.name).toBe('LlavaForConditionalGeneration');
  const tokenizer = await AutoTokenizer.from_pretrained(basename(dir));
  const text = 'Hello there, the world! héllo ✓';
  expect(tokenizer.encode(text)).toEqual(llm.tokenizer.encode(text));
  const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What is this?' }] }];
  const rendered = tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }) as string;
  expect(llm.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(rendered);
});

test('greedy generate gives the same token ids as transformers.js for a text prompt', async () => {
  const ids = llm.tokenizer.encode('USER: Tell me about the world, in a few words.\nASSISTANT:');
  const got = await ours(ids);
  expect(got).toHaveLength(TOKENS);
  // A model stuck on one token would hide a broken cache or position: this one moves.
  expect(new Set(got).size).toBeGreaterThan(TOKENS / 2);
  expect(got).toEqual(await theirs(ids));
});

test('greedy generate with an image gives the same token ids as transformers.js from the same pixel_values', async () => {
  // A deterministic 40×48 picture, preprocessed once by transformers.js (resize, crop to 32×32, rescale, normalize).
  const [w, h] = [40, 48];
  const rgb = Uint8ClampedArray.from({ length: w * h * 3 }, (_, i) => (i * 37 + (i % 7) * 11) % 256);
  const processor = await AutoImageProcessor.from_pretrained(basename(dir));
  const { pixel_values } = (await processor(new RawImage(rgb, w, h, 3))) as { pixel_values: Tensor };
  expect(pixel_values.dims).toEqual([1, 3, 32, 32]);

  // Our side runs the vision encoder as the encoder host would, and hands its rows to the LLM.
  const { session: vision } = await openSession(join(dir, 'onnx', 'vision_encoder.onnx'), 'cpu');
  const { image_features } = await vision.run({ pixel_values: new ort.Tensor('float32', pixel_values.data as Float32Array, pixel_values.dims) });
  await vision.release();

  const messages = [{ role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What is in the picture?' }] }];
  const ids = llm.encodePrompt(messages);
  expect(ids.filter((id) => id === llm.tokenizer.imageTokenId)).toHaveLength(16);
  const got = await ours(ids, [image_features.data as Float32Array]);
  expect(got).toHaveLength(TOKENS);
  expect(new Set(got).size).toBeGreaterThan(TOKENS / 2);
  expect(got).toEqual(await theirs(ids, { pixel_values }));
  // The image matters: the same prompt with other image rows goes elsewhere.
  expect(await ours(ids, [new Float32Array((image_features.data as Float32Array).length)])).not.toEqual(got);
});
