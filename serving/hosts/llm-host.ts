/** @module LLMHost: an actor that serves a causal LLM, with one scheduler loop that runs all active requests' decode steps as one batch (continuous batching). */
import { ConfigError, get, remote, type Ref } from '../../runtime';
import { readModelFolder, type JsonObject } from '../models/folder';
import { CausalLM, type Sequence } from '../models/llm';
import { createSampler, type Sampler } from '../models/sampling';
import type { Device } from '../models/session';
import type { ChatMessage, ContentPart, StreamDecoder } from '../models/tokenizer';
import { checkHostConfig, defaultDevice, hostPlace, LazyModel } from './batcher';
import type { Embedding, HostReady } from './encoder-host';

/** Config of an {@link LLMHost}. */
export interface LLMHostConfig {
  /** A model name under NODUS_MODEL_DIR or a folder in the Hugging Face ONNX layout. */
  modelId: string;
  /** @default 'cuda' when this process was given GPUs (CUDA_VISIBLE_DEVICES), else 'cpu'; CUDA falls back to the CPU with a warning */
  device?: Device;
  /** Most sequences in one decode step; more requests wait for a place. @default 16 */
  maxBatchSize?: number;
}

/**
 * One generation request. Give `prompt` (plain text, or the user's text when there are images) or `messages`
 * (chat, through the model's template). Images: one `['image', url]` per image in `multimodalData` and, in the
 * same order, its features in `embeddings`, made by an EncoderHost for this model.
 */
export interface LLMRequest {
  prompt?: string;
  messages?: ChatMessage[];
  /** The request's images, in order; with a `prompt` they go before its text in one user message. */
  multimodalData?: [modality: 'image', url: string][];
  /** One per image in `multimodalData`, in order: EncoderHost.encode's refs. */
  embeddings?: Ref<Embedding>[];
  /** Most tokens to generate. @default generation_config's max_new_tokens, else until the context is full */
  maxTokens?: number;
  /** 0 is greedy. @default generation_config's (0 unless it samples) */
  temperature?: number;
  topP?: number;
  /** Seeds this request's own sampler: the same seed gives the same tokens, batched or not. */
  seed?: number;
  /** Ends generation at any of these strings (left out of the response). */
  stop?: string[];
  /** Keep going past the end-of-sequence token (benchmarks that want a fixed length). @default false */
  ignoreEos?: boolean;
}

/** One streamed token and the text it adds ('' while a character or a possible stop string is incomplete). */
export interface StreamedToken {
  text: string;
  token: number;
}

/** What {@link LLMHost.generate} returns. */
export interface LLMResponse {
  response: string;
  /** Tokens generated (a final stop token included). */
  tokens: number;
  /** 'stop': an end-of-sequence token or a stop string; 'length': maxTokens or the context's end. */
  finishReason: 'stop' | 'length';
}

/** LLMHost.stats(): how the scheduler loop ran since the host started. */
export interface LLMHostStats {
  /** Batched decode steps run. */
  steps: number;
  prefills: number;
  /** Tokens generated, over all requests. */
  tokens: number;
  /** The largest batch of a decode step so far. */
  largestBatch: number;
  /** How many steps ran with each batch size: `{ 1: 40, 4: 60 }`. */
  stepsByBatchSize: Record<number, number>;
  /** Requests being decoded and waiting for their prefill now. */
  running: number;
  waiting: number;
}

const CONFIG_FIELDS = ['modelId', 'device', 'maxBatchSize'] as const;
const REQUEST_FIELDS = ['prompt', 'messages', 'multimodalData', 'embeddings', 'maxTokens', 'temperature', 'topP', 'seed', 'stop', 'ignoreEos'];

/** Tokens of one request on their way to its caller: the scheduler pushes, the call's method pulls. */
class TokenChannel {
  private readonly items: StreamedToken[] = [];
  private end: { reason: LLMResponse['finishReason'] } | { error: unknown } | undefined;
  private wake: (() => void) | undefined;
  /** Set when the caller went away (a stream left early): the scheduler drops the request. */
  cancelled = false;

  push(item: StreamedToken): void {
    this.items.push(item);
    this.wake?.();
  }
  finish(end: { reason: LLMResponse['finishReason'] } | { error: unknown }): void {
    this.end ??= end;
    this.wake?.();
  }

  /** Yields the tokens as they come; returns the finish reason, or throws the request's error. */
  async *drain(): AsyncGenerator<StreamedToken, LLMResponse['finishReason']> {
    for (;;) {
      if (this.items.length) {
        yield this.items.shift()!;
        continue;
      }
      if (this.end) {
        if ('error' in this.end) throw this.end.error;
        return this.end.reason;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** A request in the scheduler: its sequence, sampler, stop rules and the text decoded so far. */
interface Job {
  seq: Sequence;
  pick: Sampler;
  stopIds: Set<number>;
  stopTexts: string[];
  maxTokens: number;
  decoder: StreamDecoder;
  text: string;
  sent: number;
  out: TokenChannel;
}

/**
 * Serves a causal LLM as an actor, with continuous batching: one scheduler loop per host. Each turn it prefills
 * the requests that arrived (one at a time) so they join the running batch, runs one batched decode step over
 * every active sequence (sequences of different lengths share it), samples each with its own sampler, sends each
 * token to its request, and drops the sequences that finished. A request's own error (a prompt over the context,
 * embeddings that do not fit) fails that request only.
 *
 * @example
 * const llm = LLMHostActor.options({ numGpus: 1 }).remote({ modelId: 'tiny-vlm' });
 * const { response } = await get(llm.generate.remote({ prompt: 'Hello', maxTokens: 32 }));
 * for await (const ref of llm.stream.remote({ prompt: 'Hello' })) process.stdout.write((await get(ref)).text);
 */
export class LLMHost {
  private readonly config: Required<LLMHostConfig>;
  private readonly model: LazyModel<{ llm: CausalLM; generationConfig: JsonObject }>;
  private readonly waiting: Job[] = [];
  private running: Job[] = [];
  private looping = false;
  private readonly counts = { steps: 0, prefills: 0, tokens: 0, largestBatch: 0, stepsByBatchSize: {} as Record<number, number> };

  constructor(config: LLMHostConfig) {
    checkHostConfig('LLMHost', config as unknown as Record<string, unknown>, CONFIG_FIELDS);
    this.config = { device: defaultDevice(), maxBatchSize: 16, ...config };
    const { modelId, device } = this.config;
    this.model = new LazyModel(async () => {
      const llm = await CausalLM.load(modelId, device);
      return { llm, generationConfig: readModelFolder(modelId).generationConfig };
    });
  }

  /** Resolves once the model is loaded (rejects with the load error), saying where it runs. */
  async ready(): Promise<HostReady> {
    const { llm } = await this.model.get();
    return { device: llm.device, modelId: this.config.modelId, ...hostPlace() };
  }

  /** Generates a whole response. */
  async generate(req: LLMRequest): Promise<LLMResponse> {
    const out = await this.submit(req);
    const tokens = out.drain();
    let response = '';
    let n = 0;
    for (;;) {
      const next = await tokens.next();
      if (next.done) return { response, tokens: n, finishReason: next.value };
      response += next.value.text;
      n++;
    }
  }

  /** Streams the response, one item per generated token as it is generated. Leaving the loop early ends the request. */
  async *stream(req: LLMRequest): AsyncGenerator<StreamedToken> {
    const out = await this.submit(req);
    try {
      yield* out.drain();
    } finally {
      out.cancelled = true;
    }
  }

  /** How the scheduler loop ran since the host started. */
  stats(): LLMHostStats {
    return { ...this.counts, stepsByBatchSize: { ...this.counts.stepsByBatchSize }, running: this.running.length, waiting: this.waiting.length };
  }

  /** Checks and tokenizes a request and queues it for the scheduler. */
  private async submit(req: LLMRequest): Promise<TokenChannel> {
    const { llm, generationConfig: gc } = await this.model.get();
    if (typeof req !== 'object' || req === null) throw new ConfigError('generate() takes a request object: { prompt, maxTokens, ... }');
    const unknown = Object.keys(req).filter((k) => !REQUEST_FIELDS.includes(k));
    if (unknown.length) throw new ConfigError(`unknown request field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; valid ones are ${REQUEST_FIELDS.join(', ')}`);
    // null counts as absent: callers that validate with a schema (or msgpack) may send absent fields as null.
    if ((req.prompt == null) === (req.messages == null)) throw new ConfigError('give either prompt (a string) or messages (a chat), not both nor neither');
    if (req.prompt != null && typeof req.prompt !== 'string') throw new ConfigError('prompt must be a string; for a chat give messages: [{ role, content }]');
    if (req.messages != null && !Array.isArray(req.messages)) throw new ConfigError('messages must be a list of { role, content } messages');
    const images = req.multimodalData ?? [];
    const bad = images.findIndex((d) => !Array.isArray(d) || d[0] !== 'image');
    if (bad >= 0) throw new ConfigError(`multimodalData[${bad}] must be ['image', url]: only images are served so far`);
    const refs = req.embeddings ?? [];
    if (refs.length !== images.length) {
      throw new ConfigError(
        `the request has ${images.length} image${images.length === 1 ? '' : 's'} in multimodalData but ${refs.length} embeddings: ` +
          'give one embedding per image, in order (EncoderHost.encode makes them); this host does not encode images itself',
      );
    }

    let input: string | ChatMessage[];
    if (req.messages) {
      const parts = req.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).filter((p: ContentPart) => p.type === 'image').length;
      if (parts !== images.length) throw new ConfigError(`the messages have ${parts} image parts but multimodalData has ${images.length} images: give one { type: 'image' } part per image`);
      input = req.messages;
    } else if (images.length) {
      // As llava's processor: the images first, then the text, in one user turn.
      input = [{ role: 'user', content: [...images.map((): ContentPart => ({ type: 'image' })), { type: 'text', text: req.prompt! }] }];
    } else {
      input = req.prompt!;
    }
    const prompt = llm.encodePrompt(input);
    if (prompt.length >= llm.maxPositions) {
      throw new ConfigError(`the prompt has ${prompt.length} tokens but ${llm.name}'s context is ${llm.maxPositions} (max_position_embeddings), which leaves no room to generate: shorten the prompt`);
    }
    // Nested refs arrive as refs: the embeddings come from the object store here, host to host.
    const embeddings = refs.length ? await get(refs) : [];
    const imageEmbeds = embeddings.map((e, i) => {
      if (!(e?.data instanceof Float32Array)) throw new ConfigError(`embeddings[${i}] is not an image embedding ({ data: Float32Array, dims }): pass EncoderHost.encode's refs`);
      return e.data;
    });

    const sampled = gc.do_sample === true;
    const maxTokens = req.maxTokens ?? (typeof gc.max_new_tokens === 'number' ? gc.max_new_tokens : Infinity);
    if (!(maxTokens >= 1) || (maxTokens !== Infinity && !Number.isInteger(maxTokens))) throw new ConfigError(`maxTokens must be a whole number >= 1, got ${maxTokens}`);
    const stop = req.stop ?? [];
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string')) throw new ConfigError('stop must be a list of strings');
    const job: Job = {
      seq: llm.sequence(prompt, { imageEmbeds }),
      pick: createSampler({
        temperature: req.temperature ?? (sampled ? Number(gc.temperature ?? 1) : 0),
        topP: req.topP ?? (sampled ? Number(gc.top_p ?? 1) : 1),
        seed: req.seed ?? undefined,
      }),
      stopIds: new Set(req.ignoreEos ? [] : llm.tokenizer.eosTokenIds),
      stopTexts: stop.filter((s) => s.length > 0),
      maxTokens,
      decoder: llm.tokenizer.streamDecoder(),
      text: '',
      sent: 0,
      out: new TokenChannel(),
    };
    this.waiting.push(job);
    if (!this.looping) {
      this.looping = true;
      void this.loop(llm);
    }
    return job.out;
  }

  /** The scheduler: prefill arrivals, then one batched step; until no request is left (the next one starts it again). */
  private async loop(llm: CausalLM): Promise<void> {
    try {
      while (this.waiting.length || this.running.length) {
        while (this.waiting.length && this.running.length < this.config.maxBatchSize) {
          const job = this.waiting.shift()!;
          if (job.out.cancelled) continue;
          try {
            const logits = await llm.prefill(job.seq);
            this.counts.prefills++;
            if (!this.advance(llm, job, logits)) this.running.push(job);
          } catch (err) {
            // Image embeddings that do not fit the prompt's image tokens, and the like: this request only.
            job.out.finish({ error: err });
          }
        }
        this.running = this.running.filter((j) => !j.out.cancelled);
        if (!this.running.length) continue;
        const batch = this.running;
        let logits: Float32Array[];
        try {
          logits = await llm.step(batch.map((j) => j.seq));
        } catch (err) {
          // A failed run leaves no cache to go on from: end the batch's requests, keep the host serving.
          for (const j of batch) j.out.finish({ error: err });
          this.running = [];
          continue;
        }
        const c = this.counts;
        c.steps++;
        c.largestBatch = Math.max(c.largestBatch, batch.length);
        c.stepsByBatchSize[batch.length] = (c.stepsByBatchSize[batch.length] ?? 0) + 1;
        this.running = batch.filter((j, i) => !this.advance(llm, j, logits[i]));
      }
    } catch (err) {
      // A bug here must not leave callers waiting forever: fail what is queued, and let the next request start afresh.
      for (const j of [...this.running, ...this.waiting.splice(0)]) j.out.finish({ error: err });
      this.running = [];
    } finally {
      // In the same turn as the loop's last check, so a request queued right after it starts a new loop.
      this.looping = false;
    }
  }

  /**
   * Picks a request's next token from its logits and sends it with its text: the same stop rules as
   * CausalLM.generate, so a batched request gives what it would alone. Returns true when the request is done.
   */
  private advance(llm: CausalLM, job: Job, logits: Float32Array): boolean {
    const { seq, decoder, out } = job;
    const token = job.pick(logits);
    seq.append(token);
    this.counts.tokens++;
    const n = seq.ids.length - seq.promptLength;
    if (job.stopIds.has(token)) {
      out.push({ token, text: job.text.slice(job.sent) + decoder.flush() });
      out.finish({ reason: 'stop' });
      return true;
    }
    job.text += decoder.push(token);
    const hit = job.stopTexts.reduce((first, s) => {
      const at = job.text.indexOf(s, job.sent);
      return at >= 0 && (first < 0 || at < first) ? at : first;
    }, -1);
    if (hit >= 0) {
      out.push({ token, text: job.text.slice(job.sent, hit) });
      out.finish({ reason: 'stop' });
      return true;
    }
    if (n >= job.maxTokens || seq.ids.length >= llm.maxPositions) {
      out.push({ token, text: job.text.slice(job.sent) + decoder.flush() });
      out.finish({ reason: 'length' });
      return true;
    }
    // Hold back an ending that may grow into a stop string, so a stop string never reaches the caller in pieces.
    const held = Math.max(0, ...job.stopTexts.map((s) => heldBack(job.text, s)));
    out.push({ token, text: job.text.slice(job.sent, job.text.length - held) });
    job.sent = job.text.length - held;
    return false;
  }
}

/** The length of the longest ending of `text` that is a beginning of `stop` (shorter than stop itself). */
function heldBack(text: string, stop: string): number {
  for (let k = Math.min(stop.length - 1, text.length); k > 0; k--) if (text.endsWith(stop.slice(0, k))) return k;
  return 0;
}

/**
 * The LLMHost actor class: one CPU, many concurrent calls (so requests batch), restarted whenever its process
 * dies; a call that was running then fails rather than run twice. Add `numGpus`, `name`... with `.options()`.
 *
 * @example
 * const llm = LLMHostActor.remote({ modelId: 'tiny-vlm', device: 'cpu' });
 */
export const LLMHostActor = remote(LLMHost, { numCpus: 1, maxConcurrency: 256, maxRestarts: -1, maxTaskRetries: 0 });
