/** @module EncoderHost: an actor that serves an image encoder, batching concurrent requests' images into shared runs (dynamic batching). */
import { ConfigError, put, remote, type Ref } from '../../runtime';
import { resolveModelDir } from '../models/folder';
import { ImageInputError, loadImageBytes, stackImages, type ImageBatch } from '../models/image';
import type { Device } from '../models/session';
import { ImageEncoder, type GenericImageModelConfig, type ImageEmbedding } from '../models/vision';
import { checkHostConfig, defaultDevice, DynamicBatcher, hostPlace, LazyModel, type BatcherStats } from './batcher';

/** One image's features as an EncoderHost stores them: the encoder output's slice for that image. */
export type Embedding = ImageEmbedding;

/** Config of an {@link EncoderHost}. */
export interface EncoderHostConfig {
  /** A model name under NODUS_MODEL_DIR or a Hugging Face VLM folder; with `generic`, the .onnx file. */
  modelId: string;
  /** Only images for now. */
  modality: 'image';
  /** @default 'cuda' when this process was given GPUs (CUDA_VISIBLE_DEVICES), else 'cpu'; CUDA falls back to the CPU with a warning */
  device?: Device;
  /** Most images in one encoder run. @default 32 */
  maxBatchSize?: number;
  /** How long the first waiting image waits for others to share its run, in ms. @default 5 */
  batchWindowMs?: number;
  /** For an ONNX image model without a Hugging Face folder: its preprocessing and tensor names. */
  generic?: GenericImageModelConfig;
}

/** What {@link EncoderHost.encode} returns: one stored embedding per input image, in order. */
export interface EncodeResult {
  /** Refs to the embeddings: hand them to an LLMHost (or `get` them); the values stay in the object store. */
  embeddings: Ref<Embedding>[];
  /** Where the encoder really runs. */
  device: Device;
}

/** Where a host runs and what it serves, once its model is loaded. */
export interface HostReady {
  device: Device;
  modelId: string;
  node: string;
  pid: number;
}

/** EncoderHost.stats(): requests served and how their images were batched. */
export interface EncoderHostStats extends BatcherStats {
  /** encode() calls that succeeded. */
  requests: number;
  /** encode() calls that failed (bad input, load error). */
  failed: number;
}

const CONFIG_FIELDS = ['modelId', 'modality', 'device', 'maxBatchSize', 'batchWindowMs', 'generic'] as const;

/**
 * Serves an image encoder as an actor. The model loads when the actor starts; requests wait for it. Images of
 * concurrent `encode` calls are batched: the first waiting image opens a window of `batchWindowMs`, and the
 * images of that size that arrive in it (up to `maxBatchSize`) run as one batch; one batch runs at a time, and
 * the images that arrive meanwhile form the next. Each embedding is `put` into the object store, so an LLM host
 * on another node takes it from there. A bad image fails only its own call.
 *
 * @example
 * const enc = EncoderHostActor.options({ numGpus: 1, name: 'tiny-vlm-image' }).remote({ modelId: 'tiny-vlm', modality: 'image' });
 * await get(enc.ready.remote());
 * const { embeddings } = await get(enc.encode.remote(['data:image/png;base64,...']));
 */
export class EncoderHost {
  private readonly config: Required<Omit<EncoderHostConfig, 'generic'>> & Pick<EncoderHostConfig, 'generic'>;
  private readonly model: LazyModel<ImageEncoder>;
  private batcher: DynamicBatcher<ImageBatch, Embedding> | undefined;
  private requests = 0;
  private failed = 0;

  constructor(config: EncoderHostConfig) {
    checkHostConfig('EncoderHost', config as unknown as Record<string, unknown>, CONFIG_FIELDS);
    if (config.modality !== 'image') throw new ConfigError(`EncoderHost: modality must be 'image' (the only one served so far), not ${JSON.stringify(config.modality)}`);
    this.config = { device: defaultDevice(), maxBatchSize: 32, batchWindowMs: 5, ...config };
    const { modelId, device, generic } = this.config;
    this.model = new LazyModel(async () => {
      // A named model is resolved here, so an unknown id fails with the list of models there is.
      const encoder = generic ? await ImageEncoder.load(modelId, { device, config: generic }) : await ImageEncoder.load(resolveModelDir(modelId), { device });
      this.batcher = new DynamicBatcher((images) => encoder.encode(stackImages(images)), { maxBatchSize: this.config.maxBatchSize, windowMs: this.config.batchWindowMs });
      return encoder;
    });
  }

  /** Resolves once the model is loaded (rejects with the load error), saying where it runs. */
  async ready(): Promise<HostReady> {
    const encoder = await this.model.get();
    return { device: encoder.device, modelId: this.config.modelId, ...hostPlace() };
  }

  /**
   * Encodes images (data: URLs or local files), one embedding per image in the order given. The call's images
   * join the batches of concurrent calls; an image that cannot be read or decoded fails this call only.
   */
  async encode(sources: string[]): Promise<EncodeResult> {
    try {
      if (!Array.isArray(sources) || sources.length === 0) throw new ImageInputError('encode() takes a non-empty list of images: data: URLs or file paths');
      const encoder = await this.model.get();
      const bytes = await Promise.all(sources.map((s) => loadImageBytes(s)));
      const singles = await encoder.preprocess(bytes);
      const embeddings = await Promise.all(singles.map((s) => this.batcher!.submit(encoder.batchKey(s), s)));
      const refs = await Promise.all(embeddings.map((e) => put(e)));
      this.requests++;
      return { embeddings: refs, device: encoder.device };
    } catch (err) {
      this.failed++;
      throw err;
    }
  }

  /** Requests served and how their images were batched, since the host started. */
  stats(): EncoderHostStats {
    const batches = this.batcher?.stats() ?? { batches: 0, items: 0, largest: 0, sizes: {} };
    return { ...batches, requests: this.requests, failed: this.failed };
  }
}

/**
 * The EncoderHost actor class: one CPU, many concurrent calls (so they can batch), restarted whenever its process
 * dies; a call that was running then fails rather than run twice. Add `numGpus`, `name`... with `.options()`.
 *
 * @example
 * const enc = EncoderHostActor.remote({ modelId: 'tiny-vlm', modality: 'image', device: 'cpu' });
 */
export const EncoderHostActor = remote(EncoderHost, { numCpus: 1, maxConcurrency: 256, maxRestarts: -1, maxTaskRetries: 0 });
