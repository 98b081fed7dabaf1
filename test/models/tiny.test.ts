/** @module The tiny model generator: same bytes every run, and a folder that ONNX Runtime and the tokenizer load in the Hugging Face layout. */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { ensureTinyModels, makeTinyVlm } from '../../scripts/models/tiny';

const root = mkdtempSync(join(tmpdir(), 'nodus-tiny-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function files(dir: string, sub = ''): string[] {
  return readdirSync(join(dir, sub), { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(dir, join(sub, e.name)) : [join(sub, e.name)]))
    .sort();
}

test('two builds with the same seed write byte-identical folders, and another seed other weights', () => {
  const a = makeTinyVlm(join(root, 'a'));
  const b = makeTinyVlm(join(root, 'b'));
  const c = makeTinyVlm(join(root, 'c'), { seed: 1 });
  expect(files(a.dir)).toEqual(files(b.dir));
  for (const f of files(a.dir)) expect(readFileSync(join(b.dir, f)).equals(readFileSync(join(a.dir, f)))).toBe(true);
  expect(readFileSync(join(c.dir, 'onnx/decoder_model_merged.onnx')).equals(readFileSync(join(a.dir, 'onnx/decoder_model_merged.onnx')))).toBe(false);
  expect(a.files.map((f) => f.path).sort()).toEqual(files(a.dir));
});

test('the folder has the Hugging Face ONNX layout of a llava model, and every file loads', async () => {
  const { dir } = makeTinyVlm(join(root, 'layout'));
  expect(files(dir)).toEqual([
    'config.json', 'generation_config.json', 'onnx/decoder_model_merged.onnx', 'onnx/embed_tokens.onnx', 'onnx/vision_encoder.onnx',
    'preprocessor_config.json', 'processor_config.json', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json',
  ]);
  const json = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
  const config = json('config.json');
  expect(config.model_type).toBe('llava');
  expect(config.text_config.model_type).toBe('llama');
  const { hidden_size: hidden, vocab_size: vocab, num_attention_heads: heads, head_dim: headDim } = config.text_config;
  expect(json('tokenizer_config.json').chat_template).toContain('add_generation_prompt');
  const tokenizer = new Tokenizer(json('tokenizer.json'), json('tokenizer_config.json'));
  expect(tokenizer.token_to_id('<image>')).toBe(config.image_token_index);
  expect(tokenizer.get_vocab(true).size).toBe(vocab);

  const open = (name: string) => ort.InferenceSession.create(join(dir, 'onnx', `${name}.onnx`));
  const vision = await open('vision_encoder');
  expect([vision.inputNames, vision.outputNames]).toEqual([['pixel_values'], ['image_features']]);
  const size = json('preprocessor_config.json').crop_size.height;
  const { image_features: features } = await vision.run({ pixel_values: new ort.Tensor('float32', new Float32Array(2 * 3 * size * size).fill(0.5), [2, 3, size, size]) });
  expect(features.dims).toEqual([2, config.image_seq_length, hidden]);

  const embed = await open('embed_tokens');
  expect([embed.inputNames, embed.outputNames]).toEqual([['input_ids'], ['inputs_embeds']]);
  const { inputs_embeds: embeds } = await embed.run({ input_ids: new ort.Tensor('int64', BigInt64Array.of(1n, 5n, 6n), [1, 3]) });
  expect(embeds.dims).toEqual([1, 3, hidden]);

  const decoder = await open('decoder_model_merged');
  const layers = config.text_config.num_hidden_layers;
  const cache = (prefix: string) => Array.from({ length: layers }, (_, i) => [`${prefix}.${i}.key`, `${prefix}.${i}.value`]).flat();
  expect(decoder.inputNames).toEqual(['inputs_embeds', 'attention_mask', 'position_ids', ...cache('past_key_values')]);
  expect(decoder.outputNames).toEqual(['logits', ...cache('present')]);
  const feeds: Record<string, ort.Tensor> = {
    inputs_embeds: embeds,
    attention_mask: new ort.Tensor('int64', BigInt64Array.of(1n, 1n, 1n), [1, 3]),
    position_ids: new ort.Tensor('int64', BigInt64Array.of(0n, 1n, 2n), [1, 3]),
  };
  for (const name of cache('past_key_values')) feeds[name] = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]);
  const out = await decoder.run(feeds);
  expect(out.logits.dims).toEqual([1, 3, vocab]);
  // A real cache: the present holds the past plus the new positions.
  expect(out['present.0.key'].dims).toEqual([1, heads, 3, headDim]);
});

test('ensureTinyModels builds tiny-vlm under NODUS_MODEL_DIR once and then reuses it', () => {
  const before = process.env.NODUS_MODEL_DIR;
  process.env.NODUS_MODEL_DIR = join(root, 'models');
  try {
    const dir = ensureTinyModels();
    expect(dir).toBe(join(root, 'models', 'tiny-vlm'));
    const made = statSync(join(dir, 'onnx/decoder_model_merged.onnx')).mtimeMs;
    expect(ensureTinyModels()).toBe(dir);
    expect(statSync(join(dir, 'onnx/decoder_model_merged.onnx')).mtimeMs).toBe(made);
    expect(readdirSync(join(root, 'models'))).toEqual(['tiny-vlm']);
  } finally {
    if (before === undefined) delete process.env.NODUS_MODEL_DIR;
    else process.env.NODUS_MODEL_DIR = before;
  }
});
