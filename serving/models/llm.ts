/** @module A causal LLM in the Hugging Face ONNX layout (embed_tokens + decoder_model_merged with a KV cache): prefill, batched decode steps for continuous batching, and a plain generate loop. */
import { basename, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ConfigError } from '../../runtime/errors';
import { readModelFolder, type JsonObject } from './folder';
import { createSampler, type SamplingOptions } from './sampling';
import { openSession, type Device } from './session';
import { ChatTokenizer, type ChatMessage } from './tokenizer';

/**
 * One sequence being generated: its tokens and its own KV cache. Make it with {@link CausalLM.sequence}, fill its
 * cache with {@link CausalLM.prefill}, then {@link append} each chosen token and run {@link CausalLM.step}.
 *
 * @example
 * const seq = llm.sequence(llm.encodePrompt(messages), { imageEmbeds });
 * const pick = createSampler({ temperature: 0.7, seed: 1 });
 * seq.append(pick(await llm.prefill(seq)));
 * const [logits] = await llm.step([seq, ...othersRunning]); // then seq.append(pick(logits)), and so on
 */
export class Sequence {
  /** Prompt tokens, then the appended ones. */
  readonly ids: number[];
  readonly promptLength: number;
  /** How many of `ids` are in the KV cache; the next position to compute. */
  cached = 0;
  /** The KV cache, one array per decoder cache input (in the decoder's order), each [1, kvHeads, cached, headDim]. */
  kv: Float32Array[] | undefined;
  /** True while a prefill or step of this sequence runs. */
  busy = false;

  constructor(
    prompt: readonly number[],
    /** One array per image, [rows, hidden] each, for the prompt's image tokens in order. */
    readonly imageEmbeds: readonly Float32Array[] = [],
  ) {
    this.ids = [...prompt];
    this.promptLength = prompt.length;
  }

  /** The tokens generated so far. */
  get generated(): number[] {
    return this.ids.slice(this.promptLength);
  }

  /** Adds the token chosen from the last logits; the next step computes it. */
  append(token: number): void {
    this.ids.push(token);
  }
}

/** Options of {@link CausalLM.generate}. Sampling is greedy unless a temperature is given (or the model's generation_config samples). */
export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to generate. @default generation_config's max_new_tokens, else until the context is full */
  maxTokens?: number;
  /** Ends generation at any of these token ids or strings; their text is not part of the output. */
  stop?: readonly (string | number)[];
  /** Keep going past the end-of-sequence token (benchmarks that want a fixed length). @default false */
  ignoreEos?: boolean;
  /** Image encoder output, one [rows, hidden] array per image, in the order of the image tokens in the prompt. */
  imageEmbeds?: readonly Float32Array[];
}

/** One generated token and the text it adds (may be '' while a character or a possible stop string is incomplete). */
export interface GeneratedToken {
  token: number;
  text: string;
}

const int64 = (values: ArrayLike<number>) => BigInt64Array.from(values as number[], BigInt);

/**
 * A causal LLM from a model folder: `onnx/embed_tokens.onnx` (input_ids → inputs_embeds) and
 * `onnx/decoder_model_merged.onnx` (inputs_embeds, attention_mask, position_ids, past_key_values.* → logits,
 * present.*), with the folder's tokenizer. Sequences own their KV caches, so a host can batch any set of them
 * per step (continuous batching).
 *
 * @example
 * const llm = await CausalLM.load('tiny-vlm', 'cpu');
 * for await (const { text } of llm.generate([{ role: 'user', content: 'Hi' }], { maxTokens: 16 })) process.stdout.write(text);
 */
export class CausalLM {
  readonly hiddenSize: number;
  /** The context: the most tokens (prompt and generated) a sequence may hold. */
  readonly maxPositions: number;
  private readonly cacheInputs: string[];
  private readonly cacheShape: [number, number];
  private readonly usesPositionIds: boolean;

  private constructor(
    readonly name: string,
    readonly tokenizer: ChatTokenizer,
    private readonly embedder: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    /** Where the decoder runs ('cpu' when CUDA was asked for but is not available). */
    readonly device: Device,
    private readonly generationConfig: JsonObject,
    textConfig: JsonObject,
  ) {
    const cache = decoder.inputMetadata.filter((m) => m.name.startsWith('past_key_values.'));
    this.cacheInputs = cache.map((m) => m.name);
    const heads = Number(textConfig.num_key_value_heads ?? textConfig.num_attention_heads);
    this.hiddenSize = Number(textConfig.hidden_size);
    const dims = cache[0]?.isTensor ? cache[0].shape : [];
    // The cache's head count and head size are fixed in the graph; the config says the same for exports that left them symbolic.
    this.cacheShape = [typeof dims[1] === 'number' ? dims[1] : heads, typeof dims[3] === 'number' ? dims[3] : Number(textConfig.head_dim ?? this.hiddenSize / heads)];
    this.usesPositionIds = decoder.inputNames.includes('position_ids');
    this.maxPositions = Number(textConfig.max_position_embeddings ?? Infinity);
    const unsupported = decoder.inputMetadata.filter((m) => m.isTensor && (m.name.startsWith('past_key_values.') || m.name === 'inputs_embeds') && m.type !== 'float32');
    if (unsupported.length || !this.cacheInputs.length || !Number.isFinite(this.hiddenSize) || !this.cacheShape.every(Number.isInteger)) {
      throw new ConfigError(
        `${name}: the decoder must take float32 inputs_embeds and past_key_values.{i}.key/value [batch, heads, past, head_dim] inputs, with hidden_size and the head counts in config.json` +
          (unsupported.length ? ` (${unsupported.map((m) => m.name).join(', ')} are not float32: use the fp32 export)` : ''),
      );
    }
  }

  /**
   * Opens a model folder's token embeddings and decoder on `device` (CUDA falls back to the CPU with a warning).
   *
   * @example
   * const llm = await CausalLM.load('tiny-vlm', 'cuda');
   */
  static async load(modelId: string, device: Device = 'cpu'): Promise<CausalLM> {
    const folder = readModelFolder(modelId);
    const tokenizer = ChatTokenizer.load(folder);
    const [embedder, decoder] = await Promise.all(
      ['embed_tokens', 'decoder_model_merged'].map((file) =>
        openSession(join(folder.dir, 'onnx', `${file}.onnx`), device).catch((err: Error) => {
          throw new ConfigError(`${folder.dir}: cannot open onnx/${file}.onnx (${err.message.split('\n')[0]}); the LLM needs onnx/embed_tokens.onnx and onnx/decoder_model_merged.onnx`, { cause: err });
        }),
      ),
    );
    const textConfig = (folder.config.text_config ?? folder.config) as JsonObject;
    try {
      return new CausalLM(basename(folder.dir), tokenizer, embedder.session, decoder.session, decoder.device, folder.generationConfig, textConfig);
    } catch (err) {
      await Promise.all([embedder.session.release(), decoder.session.release()]);
      throw err;
    }
  }

  /** Token embeddings of `ids`, [ids.length, hidden] row after row. */
  async embed(ids: readonly number[]): Promise<Float32Array> {
    const out = await this.embedder.run({ input_ids: new ort.Tensor('int64', int64(ids), [1, ids.length]) });
    return out.inputs_embeds.data as Float32Array;
  }

  /** Prompt ids: a string is encoded as is (with the tokenizer's leading special tokens), messages through the chat template with the generation prompt, ids are taken as they are. */
  encodePrompt(input: string | readonly ChatMessage[] | readonly number[]): number[] {
    if (typeof input === 'string') return this.tokenizer.encode(input);
    if (input.length === 0 || typeof input[0] === 'number') return [...(input as readonly number[])];
    const text = this.tokenizer.applyChatTemplate(input as ChatMessage[], { addGenerationPrompt: true });
    return this.tokenizer.encode(text, { addSpecialTokens: false });
  }

  /** A new sequence from prompt ids (see {@link encodePrompt}) and the embeddings of its images. Nothing runs yet. */
  sequence(prompt: readonly number[], { imageEmbeds }: { imageEmbeds?: readonly Float32Array[] } = {}): Sequence {
    return new Sequence(prompt, imageEmbeds);
  }

  /**
   * Runs the whole prompt of a new sequence through the decoder, image embeddings in place of its image tokens;
   * fills the sequence's KV cache and returns the logits of its last position (pick the first token from them).
   */
  async prefill(seq: Sequence): Promise<Float32Array> {
    const n = seq.ids.length;
    if (seq.kv) throw new ConfigError('this sequence is already prefilled: append a token and call step()');
    if (n === 0) throw new ConfigError('the prompt is empty: give at least one token');
    if (n > this.maxPositions) {
      throw new ConfigError(`the prompt has ${n} tokens but ${this.name} takes at most ${this.maxPositions} (its context, max_position_embeddings): shorten the prompt`);
    }
    const [heads, headDim] = this.cacheShape;
    const empty = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]);
    return this.exclusive([seq], async () => {
      const embeds = await this.embed(seq.ids);
      this.placeImages(seq, embeds);
      return (await this.run([seq], embeds, n, 0, () => empty))[0];
    });
  }

  /**
   * One decode step for a batch of prefilled sequences, each with exactly one appended token not yet computed.
   * Their past lengths may differ: shorter caches are padded on the left to the longest and the attention mask
   * hides the padding, so each row computes what it would alone. Returns each sequence's logits, in order.
   */
  async step(seqs: readonly Sequence[]): Promise<Float32Array[]> {
    if (seqs.length === 0) return [];
    if (new Set(seqs).size !== seqs.length) throw new ConfigError('a sequence appears twice in one step: give each sequence once');
    for (const s of seqs) {
      if (!s.kv) throw new ConfigError('step() needs prefilled sequences: call prefill(seq) first');
      if (s.ids.length !== s.cached + 1) throw new ConfigError(`each sequence needs exactly one new token per step (this one has ${s.ids.length - s.cached}): append() the token chosen from the last logits`);
      if (s.ids.length > this.maxPositions) throw new ConfigError(`a sequence reached ${this.name}'s context of ${this.maxPositions} tokens: end it (finish reason: length)`);
    }
    const past = Math.max(...seqs.map((s) => s.cached));
    const [heads, headDim] = this.cacheShape;
    return this.exclusive(seqs, async () => {
      const embeds = await this.embed(seqs.map((s) => s.ids[s.cached]));
      return this.run(seqs, embeds, 1, past, (c) => {
        if (seqs.length === 1) return new ort.Tensor('float32', seqs[0].kv![c], [1, heads, past, headDim]);
        // Left padding: row b's past sits at the end of the row, so its new key lands right after it.
        const padded = new Float32Array(seqs.length * heads * past * headDim);
        seqs.forEach((s, b) => {
          const len = s.cached * headDim;
          for (let h = 0; h < heads; h++) padded.set(s.kv![c].subarray(h * len, (h + 1) * len), ((b * heads + h) * past + past - s.cached) * headDim);
        });
        return new ort.Tensor('float32', padded, [seqs.length, heads, past, headDim]);
      });
    });
  }

  /** Marks the sequences busy while `work` runs: a sequence in two steps at once would lose one of its cache updates. */
  private async exclusive<T>(seqs: readonly Sequence[], work: () => Promise<T>): Promise<T> {
    if (seqs.some((s) => s.busy)) throw new ConfigError('a sequence is already in a running prefill or step: wait for it before the next one');
    for (const s of seqs) s.busy = true;
    try {
      return await work();
    } finally {
      for (const s of seqs) s.busy = false;
    }
  }

  /** Runs the decoder on `length` new positions per sequence after a (padded) past of `past`; keeps each row's present KV. */
  private async run(seqs: readonly Sequence[], embeds: Float32Array, length: number, past: number, pastTensor: (cacheIndex: number) => ort.Tensor): Promise<Float32Array[]> {
    const batch = seqs.length;
    const total = past + length;
    const mask = new BigInt64Array(batch * total);
    const positions = new BigInt64Array(batch * length);
    seqs.forEach((s, b) => {
      mask.fill(1n, b * total + past - s.cached, (b + 1) * total);
      for (let i = 0; i < length; i++) positions[b * length + i] = BigInt(s.cached + i);
    });
    const feeds: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', embeds, [batch, length, this.hiddenSize]),
      attention_mask: new ort.Tensor('int64', mask, [batch, total]),
    };
    if (this.usesPositionIds) feeds.position_ids = new ort.Tensor('int64', positions, [batch, length]);
    this.cacheInputs.forEach((name, c) => (feeds[name] = pastTensor(c)));
    // Exports with these inputs compute only what a decode loop needs (the last logits) and take the cached branch.
    if (this.decoder.inputNames.includes('num_logits_to_keep')) feeds.num_logits_to_keep = new ort.Tensor('int64', BigInt64Array.of(1n), []);
    if (this.decoder.inputNames.includes('use_cache_branch')) feeds.use_cache_branch = new ort.Tensor('bool', [past > 0], [1]);

    const out = await this.decoder.run(feeds);

    const [heads, headDim] = this.cacheShape;
    const presents = this.cacheInputs.map((name) => out[name.replace('past_key_values.', 'present.')].data as Float32Array);
    seqs.forEach((s, b) => {
      s.kv = presents.map((data) => {
        if (batch === 1) return data;
        // Row b without its left padding: per head, its last cached + length positions.
        const len = (s.cached + length) * headDim;
        const own = new Float32Array(heads * len);
        for (let h = 0; h < heads; h++) own.set(data.subarray(((b * heads + h) * total + total) * headDim - len, ((b * heads + h) * total + total) * headDim), h * len);
        return own;
      });
      s.cached += length;
    });
    const logits = out.logits;
    const [, rows, vocab] = logits.dims;
    const data = logits.data as Float32Array;
    return seqs.map((_, b) => data.slice(((b + 1) * rows - 1) * vocab, (b + 1) * rows * vocab));
  }

  private placeImages(seq: Sequence, embeds: Float32Array): void {
    const id = this.tokenizer.imageTokenId;
    const slots = id === undefined ? [] : seq.ids.flatMap((t, i) => (t === id ? [i] : []));
    const hidden = this.hiddenSize;
    const bad = seq.imageEmbeds.findIndex((e) => e.length === 0 || e.length % hidden !== 0);
    if (bad >= 0) throw new ConfigError(`image embedding ${bad} has ${seq.imageEmbeds[bad].length} values, not whole rows of hidden_size ${hidden}: pass the image encoder's output for this model`);
    const rows = seq.imageEmbeds.reduce((sum, e) => sum + e.length / hidden, 0);
    if (slots.length !== rows) {
      throw new ConfigError(
        `the prompt has ${slots.length} image tokens but the image embeddings have ${rows} rows (${seq.imageEmbeds.length} images): ` +
          `each image takes its image token repeated once per row (${this.tokenizer.imageTokensPerImage} here), which tokenizer.encode does; give one embedding per image in the prompt`,
      );
    }
    let slot = 0;
    for (const e of seq.imageEmbeds) for (let r = 0; r < e.length / hidden; r++) embeds.set(e.subarray(r * hidden, (r + 1) * hidden), slots[slot++] * hidden);
  }

  /**
   * Generates one sequence: prefill, then one step per token, yielding each token with its text as it comes. Ends
   * after `maxTokens`, at a stop token (end of sequence, or one of `stop`; it is yielded, its text is not), at a
   * stop string (left out of the text), or when the context is full. A prompt that fills the context throws.
   *
   * @example
   * for await (const { token, text } of llm.generate('Once upon a time', { maxTokens: 32, temperature: 0.8, seed: 1 })) process.stdout.write(text);
   */
  async *generate(input: string | readonly ChatMessage[] | readonly number[], options: GenerateOptions = {}): AsyncGenerator<GeneratedToken> {
    const gc = this.generationConfig;
    const { stop = [], ignoreEos = false, imageEmbeds } = options;
    const maxTokens = options.maxTokens ?? (typeof gc.max_new_tokens === 'number' ? gc.max_new_tokens : Infinity);
    if (!(maxTokens >= 1) || (maxTokens !== Infinity && !Number.isInteger(maxTokens))) throw new ConfigError(`maxTokens must be a whole number >= 1, got ${maxTokens}`);
    const sampled = gc.do_sample === true;
    const pick = createSampler({
      temperature: options.temperature ?? (sampled ? Number(gc.temperature ?? 1) : 0),
      topP: options.topP ?? (sampled ? Number(gc.top_p ?? 1) : 1),
      seed: options.seed,
    });
    const stopIds = new Set([...stop.filter((s): s is number => typeof s === 'number'), ...(ignoreEos ? [] : this.tokenizer.eosTokenIds)]);
    const stopTexts = stop.filter((s): s is string => typeof s === 'string' && s.length > 0);

    const prompt = this.encodePrompt(input);
    if (prompt.length >= this.maxPositions) {
      throw new ConfigError(`the prompt has ${prompt.length} tokens but ${this.name}'s context is ${this.maxPositions} (max_position_embeddings), which leaves no room to generate: shorten the prompt`);
    }
    const seq = this.sequence(prompt, { imageEmbeds });
    let logits = await this.prefill(seq);
    const decoder = this.tokenizer.streamDecoder();
    let text = '';
    let sent = 0;
    for (let n = 1; ; n++) {
      const token = pick(logits);
      seq.append(token);
      if (stopIds.has(token)) {
        yield { token, text: text.slice(sent) + decoder.flush() };
        return;
      }
      text += decoder.push(token);
      const hit = stopTexts.reduce((first, s) => {
        const at = text.indexOf(s, sent);
        return at >= 0 && (first < 0 || at < first) ? at : first;
      }, -1);
      if (hit >= 0) {
        yield { token, text: text.slice(sent, hit) };
        return;
      }
      if (n >= maxTokens || seq.ids.length >= this.maxPositions) {
        yield { token, text: text.slice(sent) + decoder.flush() };
        return;
      }
      // Hold back an ending that may grow into a stop string, so a stop string never reaches the caller in pieces.
      const held = Math.max(0, ...stopTexts.map((s) => heldBack(text, s)));
      yield { token, text: text.slice(sent, text.length - held) };
      sent = text.length - held;
      logits = (await this.step([seq]))[0];
    }
  }

  /** Frees the ONNX sessions. */
  async release(): Promise<void> {
    await Promise.all([this.embedder.release(), this.decoder.release()]);
  }
}

/** The length of the longest ending of `text` that is a beginning of `stop` (shorter than stop itself). */
function heldBack(text: string, stop: string): number {
  for (let k = Math.min(stop.length - 1, text.length); k > 0; k--) if (text.endsWith(stop.slice(0, k))) return k;
  return 0;
}
