/** @module The LLM runtime on the tiny model: tokenizer and chat template, sampling, prefill and batched decode steps, generate's ends. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../runtime/errors';
import { ensureTinyModels } from '../../scripts/models/tiny';
import { readModelFolder, resolveModelDir } from '../../serving/models/folder';
import { CausalLM, type GenerateOptions, type Sequence } from '../../serving/models/llm';
import { createSampler, greedy } from '../../serving/models/sampling';
import { generateAll } from '../helpers/models';

let llm: CausalLM;
beforeAll(async () => {
  llm = await CausalLM.load(ensureTinyModels(), 'cpu');
});
afterAll(() => llm?.release());

const run = (input: Parameters<CausalLM['generate']>[0], options: GenerateOptions) => generateAll(llm, input, options);

const PROMPT = 'Hello there, the world!';

describe('model folders', () => {
  const root = mkdtempSync(join(tmpdir(), 'nodus-models-'));
  const before = process.env.NODUS_MODEL_DIR;
  beforeAll(() => {
    process.env.NODUS_MODEL_DIR = root;
    for (const name of ['beta', 'alpha']) {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, 'config.json'), '{"model_type": "llama"}');
    }
    writeFileSync(join(root, 'beta', 'tokenizer_config.json'), '{"bos_token": ');
  });
  afterAll(() => {
    if (before === undefined) delete process.env.NODUS_MODEL_DIR;
    else process.env.NODUS_MODEL_DIR = before;
    rmSync(root, { recursive: true, force: true });
  });

  test('a name resolves under NODUS_MODEL_DIR and a path resolves as given', () => {
    expect(resolveModelDir('alpha')).toBe(join(root, 'alpha'));
    expect(resolveModelDir(join(root, 'beta'))).toBe(join(root, 'beta'));
  });

  test('an unknown model id fails with the models there and how to make the tiny one', () => {
    expect(() => resolveModelDir('gamma')).toThrow(ConfigError);
    expect(() => resolveModelDir('gamma')).toThrow(new RegExp(`unknown model 'gamma'.*Models in ${root} \\(NODUS_MODEL_DIR\\): alpha, beta\\. Run \`npm run models\``));
  });

  test('a missing or broken file fails saying which and what to do', () => {
    expect(() => readModelFolder('alpha')).toThrow(/has no tokenizer_config.json; .*re-export the model/);
    expect(() => readModelFolder('beta')).toThrow(/tokenizer_config.json is not valid JSON/);
  });
});

describe('tokenizer', () => {
  test('text encodes with <s> first and decodes back to the same string, multi-byte characters included', () => {
    const text = 'Hello there, the world! héllo ✓ 日本';
    const ids = llm.tokenizer.encode(text);
    expect(ids[0]).toBe(llm.tokenizer.bosTokenId);
    expect(llm.tokenizer.decode(ids)).toBe(text);
    expect(llm.tokenizer.decode(ids, { skipSpecialTokens: false })).toBe(`<s>${text}`);
    expect(llm.tokenizer.encode(text, { addSpecialTokens: false })).toEqual(ids.slice(1));
  });

  test('the special tokens are known: end of sequence, and the image token repeated once per image row', () => {
    const tok = llm.tokenizer;
    expect(tok.eosTokenIds).toEqual([tok.tokenId('</s>')]);
    expect(tok.imageToken).toBe('<image>');
    expect(tok.imageTokensPerImage).toBe(16);
    const ids = tok.encode('a<image>b', { addSpecialTokens: false });
    expect(ids.filter((id) => id === tok.imageTokenId)).toHaveLength(16);
    expect(ids).toHaveLength(18);
  });

  test('the chat template renders text and image parts in llava format, with the generation prompt when asked', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What is this?' }] },
      { role: 'assistant', content: 'A cat.' },
      { role: 'user', content: 'Sure?' },
    ];
    expect(llm.tokenizer.applyChatTemplate(messages)).toBe('<s>Be brief.\nUSER: <image>\nWhat is this?\nASSISTANT: A cat.</s>\nUSER: Sure?\n');
    expect(llm.tokenizer.applyChatTemplate(messages.slice(3), { addGenerationPrompt: true })).toBe('<s>USER: Sure?\nASSISTANT:');
  });

  test('streamed text adds up to the decoded text even when a character spans several tokens', () => {
    const ids = llm.tokenizer.encode('日本 ✓ héllo, the end', { addSpecialTokens: false });
    const stream = llm.tokenizer.streamDecoder();
    const pieces = ids.map((id) => stream.push(id));
    expect(pieces.join('') + stream.flush()).toBe('日本 ✓ héllo, the end');
    // 日 is three bytes, three byte-level tokens: the first two give no text yet.
    expect(pieces.slice(0, 3)).toEqual(['', '', '日']);
  });
});

describe('sampling', () => {
  test('greedy picks the largest logit, and temperature 0 means greedy', () => {
    const logits = new Float32Array([0.5, 3, -1, 3]);
    expect(greedy(logits)).toBe(1);
    expect(createSampler({ temperature: 0, seed: 5 })(logits)).toBe(1);
  });

  test('sampling options out of range fail with what is valid', () => {
    expect(() => createSampler({ temperature: -1 })).toThrow(/temperature must be a number >= 0/);
    expect(() => createSampler({ temperature: 1, topP: 0 })).toThrow(/topP must be in \(0, 1\]/);
  });

  test('top-p samples only from the most likely tokens that reach the mass', () => {
    // Probabilities 0.33, 0.30, then 0.12 three times: 0.6 of the mass takes the first two.
    const logits = new Float32Array([2, 1.9, 1, 1, 1]);
    const seen = (topP: number) => {
      const pick = createSampler({ temperature: 1, topP, seed: 3 });
      return [...new Set(Array.from({ length: 300 }, () => pick(logits)))].sort();
    };
    expect(seen(0.6)).toEqual([0, 1]);
    expect(seen(1)).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('generate', () => {
  test('greedy generation gives the same tokens every time', async () => {
    const a = await run(PROMPT, { maxTokens: 20, ignoreEos: true });
    const b = await run(PROMPT, { maxTokens: 20, ignoreEos: true });
    expect(a.tokens).toHaveLength(20);
    expect(b).toEqual(a);
    expect(a.text).toBe(llm.tokenizer.decode(a.tokens));
  });

  test('seeded sampling repeats for a seed and differs across seeds', async () => {
    const options = { maxTokens: 20, ignoreEos: true, temperature: 1, topP: 0.95 };
    const a = await run(PROMPT, { ...options, seed: 1 });
    const again = await run(PROMPT, { ...options, seed: 1 });
    const other = await run(PROMPT, { ...options, seed: 2 });
    expect(again.tokens).toEqual(a.tokens);
    expect(other.tokens).not.toEqual(a.tokens);
  });

  test('chat messages go through the chat template with the generation prompt', async () => {
    const messages = [{ role: 'user', content: 'Hi' }];
    const viaIds = await run(llm.tokenizer.encode('<s>USER: Hi\nASSISTANT:', { addSpecialTokens: false }), { maxTokens: 8, ignoreEos: true });
    expect(await run(messages, { maxTokens: 8, ignoreEos: true })).toEqual(viaIds);
  });

  test('maxTokens, a stop token and a stop string end generation; stop text stays out of the output', async () => {
    const full = await run(PROMPT, { maxTokens: 24, ignoreEos: true });
    expect(full.tokens).toHaveLength(24);

    // A stop token is yielded last, with no text of its own.
    const stopAt = full.tokens.findIndex((t, i) => i >= 5 && full.tokens.indexOf(t) === i);
    const byToken = await run(PROMPT, { maxTokens: 24, ignoreEos: true, stop: [full.tokens[stopAt]] });
    expect(byToken.tokens).toEqual(full.tokens.slice(0, stopAt + 1));
    expect(byToken.text).toBe(llm.tokenizer.decode(full.tokens.slice(0, stopAt)));

    const stop = full.text.slice(full.text.length / 2, full.text.length / 2 + 2);
    const byText = await run(PROMPT, { maxTokens: 24, ignoreEos: true, stop: [stop] });
    expect(byText.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
    expect(byText.tokens.length).toBeLessThan(24);
    expect(full.tokens.slice(0, byText.tokens.length)).toEqual(byText.tokens);

    // Random weights rarely pick </s>; pretend a token they do pick is the end of sequence.
    const tokenizer = llm.tokenizer as { eosTokenIds: number[] };
    const eos = tokenizer.eosTokenIds;
    tokenizer.eosTokenIds = [full.tokens[stopAt]];
    try {
      expect((await run(PROMPT, { maxTokens: 24 })).tokens).toEqual(full.tokens.slice(0, stopAt + 1));
      expect((await run(PROMPT, { maxTokens: 24, ignoreEos: true })).tokens).toEqual(full.tokens);
    } finally {
      tokenizer.eosTokenIds = eos;
    }
  });

  test('a prompt that does not fit the context fails with a clear error', async () => {
    const long = 'the '.repeat(llm.maxPositions);
    await expect(run(long, { maxTokens: 4 })).rejects.toThrow(ConfigError);
    await expect(run(long, { maxTokens: 4 })).rejects.toThrow(/the prompt has \d+ tokens but tiny-vlm's context is 256 \(max_position_embeddings\).*shorten the prompt/);
    const seq = llm.sequence(llm.tokenizer.encode(long));
    await expect(llm.prefill(seq)).rejects.toThrow(/takes at most 256/);
  });

  test('generation stops when the context is full', async () => {
    const prompt = llm.tokenizer.encode('the '.repeat(llm.maxPositions)).slice(0, llm.maxPositions - 3);
    expect((await run(prompt, { maxTokens: 50, ignoreEos: true })).tokens).toHaveLength(3);
  });
});

describe('prefill and step', () => {
  /** Runs one sequence alone: prefill, then `steps` greedy steps; the logits after each. */
  async function alone(prompt: number[], steps: number): Promise<Float32Array[]> {
    const seq = llm.sequence(prompt);
    const out = [await llm.prefill(seq)];
    for (let i = 0; i < steps; i++) {
      seq.append(greedy(out[i]));
      out.push((await llm.step([seq]))[0]);
    }
    return out;
  }

  function expectClose(a: Float32Array, b: Float32Array): void {
    expect(a.length).toBe(b.length);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeLessThan(1e-4);
  }

  test('a batched step gives each sequence its own logits while sequences of different lengths join and leave', async () => {
    const prompts = ['a', PROMPT, 'in the end it is what it is, or so they say', 'USER: hi'].map((p) => llm.tokenizer.encode(p));
    const joins = [0, 0, 2, 3]; // the step at which each one is prefilled
    const leaves = [5, 7, 7, 6]; // the step after which each one is done
    const expected = await Promise.all(prompts.map((p, i) => alone(p, leaves[i] - joins[i])));

    const seqs: (Sequence | undefined)[] = [];
    const got: Float32Array[][] = prompts.map(() => []);
    const batchSizes: number[] = [];
    for (let step = 0; step <= 7; step++) {
      const running = seqs.flatMap((s, i) => (s && leaves[i] >= step ? [i] : []));
      batchSizes.push(running.length);
      const logits = await llm.step(running.map((i) => seqs[i]!));
      running.forEach((i, k) => got[i].push(logits[k]));
      for (let i = 0; i < prompts.length; i++) {
        if (joins[i] === step) {
          seqs[i] = llm.sequence(prompts[i]);
          got[i].push(await llm.prefill(seqs[i]!));
        }
      }
      // Everyone still running appends its greedy token for the next step.
      seqs.forEach((s, i) => {
        if (s && leaves[i] > step) s.append(greedy(got[i].at(-1)!));
      });
    }
    expect(batchSizes).toEqual([0, 2, 2, 3, 4, 4, 3, 2]);
    prompts.forEach((_, i) => {
      expect(got[i]).toHaveLength(expected[i].length);
      got[i].forEach((logits, k) => expectClose(logits, expected[i][k]));
      expect(seqs[i]!.generated).toEqual(expected[i].slice(0, -1).map(greedy));
    });
  });

  test('image embeddings take the place of the image tokens, and a count that does not match is refused', async () => {
    const hidden = llm.hiddenSize;
    const rows = llm.tokenizer.imageTokensPerImage;
    const prompt = llm.tokenizer.encode('<s>USER: <image>\nWhat is it?\nASSISTANT:', { addSpecialTokens: false });
    const image = (v: number) => Float32Array.from({ length: rows * hidden }, (_, i) => Math.sin(i * v));
    const a = await llm.prefill(llm.sequence(prompt, { imageEmbeds: [image(1)] }));
    const b = await llm.prefill(llm.sequence(prompt, { imageEmbeds: [image(2)] }));
    expect(Array.from(a)).not.toEqual(Array.from(b));
    await expect(llm.prefill(llm.sequence(prompt))).rejects.toThrow(/the prompt has 16 image tokens but the image embeddings have 0 rows/);
    await expect(llm.prefill(llm.sequence(prompt, { imageEmbeds: [image(1), image(2)] }))).rejects.toThrow(/16 image tokens but the image embeddings have 32 rows/);
    await expect(llm.prefill(llm.sequence(prompt, { imageEmbeds: [new Float32Array(hidden + 1)] }))).rejects.toThrow(/not whole rows of hidden_size 64/);
  });

  test('step refuses sequences that are not prefilled or that lack exactly one new token', async () => {
    const seq = llm.sequence(llm.tokenizer.encode('hi'));
    await expect(llm.step([seq])).rejects.toThrow(/call prefill\(seq\) first/);
    await llm.prefill(seq);
    await expect(llm.step([seq])).rejects.toThrow(/exactly one new token per step/);
    seq.append(5);
    await expect(llm.step([seq, seq])).rejects.toThrow(/appears twice/);
    expect(await llm.step([seq])).toHaveLength(1);
  });
});
