/** @module Images for encoder models: bytes from data: URLs and files, and Hugging Face-style preprocessing into an NCHW float tensor. */
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { z } from 'zod';
import { ConfigError, NodusError } from '../../runtime';

/** An image could not be read or decoded; the message says which one and what to pass instead. */
export class ImageInputError extends NodusError {
  override readonly code = 'IMAGE_INPUT';
}

/** Media types a data: URL may declare: what the bundled libvips decodes (SVG left out: it may reference other files). */
const MEDIA_TYPES = new Set(['image/png', 'image/jpeg', 'image/jpg', 'image/pjpeg', 'image/webp', 'image/gif', 'image/avif', 'image/tiff']);
const SUPPORTED = 'image/png, image/jpeg, image/webp, image/gif, image/avif or image/tiff';

/** A data URL can be megabytes long: messages quote only its head. */
function quote(source: string): string {
  return JSON.stringify(source.length > 60 ? `${source.slice(0, 60)}...` : source);
}

/**
 * The bytes of an image given as a `data:` URL (base64 or percent-encoded) or as a local file (a path, relative to
 * the working directory, or a `file://` URL). Nothing is fetched over the network: http(s) URLs are refused.
 * Throws {@link ImageInputError} saying what is wrong.
 *
 * @example
 * const png = await loadImageBytes('data:image/png;base64,iVBORw0KGgo...');
 * const jpg = await loadImageBytes('./photos/cat.jpg');
 */
export async function loadImageBytes(source: string): Promise<Buffer> {
  if (typeof source !== 'string' || source.length === 0) {
    throw new ImageInputError('An image source must be a non-empty string: a data: URL or a file path.');
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(source)?.[1]?.toLowerCase();
  if (scheme === 'data') return decodeDataUrl(source);
  if (scheme === 'http' || scheme === 'https') {
    throw new ImageInputError(
      `Image URLs are not fetched here (${quote(source)}): download the image where the request comes from and pass it as a data: URL.`,
    );
  }
  let path: string;
  if (scheme === 'file') {
    try {
      path = fileURLToPath(source);
    } catch (err) {
      throw new ImageInputError(`${quote(source)} is not a valid file:// URL (${(err as Error).message}).`);
    }
  } else if (scheme !== undefined && scheme.length > 1) {
    // One letter would be a Windows drive (C:\...), which is a path.
    throw new ImageInputError(`${quote(source)} is neither a data: URL nor a file path (scheme '${scheme}:'): pass a data: URL or a local file.`);
  } else {
    path = resolvePath(source);
  }
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ImageInputError(`${quote(source)} is neither a data: URL nor an existing file (no file at ${path}).`);
    }
    if (code === 'EISDIR') throw new ImageInputError(`${path} is a folder, not an image file.`);
    throw new ImageInputError(`Could not read the image file ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** RFC 2397: `data:[<media type>][;param=value]*[;base64],<data>`; the media type defaults to text/plain. */
function decodeDataUrl(url: string): Buffer {
  const comma = url.indexOf(',');
  if (comma < 0) throw new ImageInputError(`Invalid data URL ${quote(url)}: no ',' before the data (expected data:image/png;base64,<data>).`);
  const params = url.slice(5, comma).split(';').map((p) => p.trim());
  const isBase64 = params.length > 1 && params[params.length - 1].toLowerCase() === 'base64';
  const mediaType = params[0].toLowerCase() || 'text/plain';
  if (!MEDIA_TYPES.has(mediaType)) {
    throw new ImageInputError(`Unsupported media type '${mediaType}' in data URL ${quote(url)}: use ${SUPPORTED}.`);
  }
  const payload = url.slice(comma + 1);
  let bytes: Buffer;
  if (isBase64) {
    // Buffer.from(…, 'base64') skips characters it does not know, so a corrupt payload would decode to garbage silently.
    const text = payload.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))).replace(/\s+/g, '');
    const body = text.replace(/=+$/, '');
    if (!/^[A-Za-z0-9+/_-]*$/.test(body) || text.length - body.length > 2 || body.length % 4 === 1) {
      throw new ImageInputError(`Bad base64 in data URL ${quote(url)}: only A-Z a-z 0-9 + / (or - _) and up to two '=' at the end may appear.`);
    }
    bytes = Buffer.from(body, 'base64');
  } else {
    bytes = percentDecode(payload, url);
  }
  if (bytes.length === 0) throw new ImageInputError(`The data URL ${quote(url)} holds no data.`);
  return bytes;
}

/** Byte-wise: decodeURIComponent would reject the non-UTF-8 bytes every binary image has. */
function percentDecode(text: string, url: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x25 /* % */) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/i.test(hex)) throw new ImageInputError(`Bad percent-encoding at character ${i} of data URL ${quote(url)}: '%' must be followed by two hex digits.`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (ch < 0x80) {
      out.push(ch);
    } else {
      out.push(...Buffer.from(text[i], 'utf8'));
    }
  }
  return Buffer.from(out);
}

type HW = { height: number; width: number };

/**
 * The fields of a Hugging Face `preprocessor_config.json` (image processors) that {@link preprocess} honours, plus
 * three of nodus's own for models without one (`max_side`, `channel_order`, and `ensure_multiple_of` without a
 * `size`). Other fields are ignored. Steps run in Hugging Face's order: convert to RGB, resize, center crop,
 * rescale, normalize, pad.
 *
 * - `do_convert_rgb` (default true): always effectively on, as the tensor has 3 channels: grey becomes RGB, and
 *   transparency is composited onto white (what recent transformers do).
 * - `do_resize` (default: true when `size` or `ensure_multiple_of` is given), `size`:
 *   `{height,width}` exactly; `{shortest_edge}` keeps the aspect ratio (long side truncated, as HF does), capped by
 *   `longest_edge` when both are given; `{longest_edge}` alone scales the long side to it (rounded); a bare number
 *   means `shortest_edge` when `do_center_crop` is on (CLIP's old configs), else a square.
 * - `ensure_multiple_of` (DPT): each resized side is rounded to the nearest multiple (at least one multiple). Without
 *   `size` the image keeps its own size, rounded so: a "dynamic" model such as PaddleOCR's detector.
 * - `max_side` (nodus): without `size`, first shrink so the longer side is at most this (never enlarge).
 * - `resample`: PIL codes, 0 nearest, 1 lanczos, 2 bilinear (default), 3 bicubic; 4 box and 5 hamming run as
 *   bilinear. sharp (libvips) resamples with antialiasing like PIL, but values differ from PIL's by a few levels.
 * - `do_center_crop`, `crop_size` (number or `{height,width}`): HF's crop; a crop larger than the image pads with 0.
 * - `do_rescale` (default true), `rescale_factor` (default 1/255).
 * - `do_normalize` (default: true when `image_mean` is given), `image_mean`, `image_std`: per tensor channel, after
 *   `channel_order`.
 * - `do_pad` with `size_divisor`: pad bottom and right with 0 (after normalizing) up to a multiple.
 * - `channel_order` (nodus, default 'rgb'): 'bgr' for models trained on OpenCV images (PaddleOCR).
 *
 * EXIF orientation is not applied (neither PIL nor transformers apply it); a multi-frame GIF gives its first frame.
 */
export interface PreprocessorConfig {
  do_convert_rgb?: boolean;
  do_resize?: boolean;
  size?: number | HW | { shortest_edge: number; longest_edge?: number } | { longest_edge: number };
  resample?: number;
  do_center_crop?: boolean;
  crop_size?: number | HW;
  do_rescale?: boolean;
  rescale_factor?: number;
  do_normalize?: boolean;
  image_mean?: number | number[];
  image_std?: number | number[];
  do_pad?: boolean;
  size_divisor?: number;
  ensure_multiple_of?: number;
  max_side?: number;
  channel_order?: 'rgb' | 'bgr';
  [field: string]: unknown;
}

/** A batch of preprocessed images: NCHW float32, all of one size. */
export interface ImageBatch {
  data: Float32Array;
  dims: [number, 3, number, number];
}

const positive = z.number().int().positive();
const hw = z.object({ height: positive, width: positive });
const triple = z.union([z.number(), z.array(z.number()).length(3)]);
// Loose: a preprocessor_config.json carries many fields this does not use (processor_class, patch_size...).
const schema = z.looseObject({
  do_convert_rgb: z.boolean().nullish(),
  do_resize: z.boolean().nullish(),
  size: z
    .union([positive, hw, z.object({ shortest_edge: positive, longest_edge: positive.nullish() }), z.object({ longest_edge: positive })])
    .nullish(),
  resample: z.number().int().min(0).max(5).nullish(),
  do_center_crop: z.boolean().nullish(),
  crop_size: z.union([positive, hw]).nullish(),
  do_rescale: z.boolean().nullish(),
  rescale_factor: z.number().positive().nullish(),
  do_normalize: z.boolean().nullish(),
  image_mean: triple.nullish(),
  image_std: z.union([z.number().positive(), z.array(z.number().positive()).length(3)]).nullish(),
  do_pad: z.boolean().nullish(),
  size_divisor: positive.nullish(),
  ensure_multiple_of: positive.nullish(),
  max_side: positive.nullish(),
  channel_order: z.enum(['rgb', 'bgr']).nullish(),
});

type Kernel = 'nearest' | 'linear' | 'cubic' | 'lanczos3';
const KERNELS: Record<number, Kernel> = { 0: 'nearest', 1: 'lanczos3', 2: 'linear', 3: 'cubic', 4: 'linear', 5: 'linear' };

interface Resolved {
  resize: ((h: number, w: number) => HW) | null;
  kernel: Kernel;
  crop: HW | null;
  scale: number;
  mean: number[];
  std: number[];
  bgr: boolean;
  padTo: number;
}

/** Checks a config once (not per image) and turns it into the steps; throws ConfigError naming the bad fields. */
function resolveConfig(config: PreprocessorConfig): Resolved {
  const parsed = schema.safeParse(config);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ');
    throw new ConfigError(`Invalid image preprocessor config: ${problems}.`);
  }
  const c = parsed.data;
  const crop = !c.do_center_crop || c.crop_size == null ? null : typeof c.crop_size === 'number' ? { height: c.crop_size, width: c.crop_size } : c.crop_size;
  if (c.do_center_crop && !crop) throw new ConfigError('do_center_crop is on but crop_size is missing: give crop_size {height, width}.');
  const multiple = c.ensure_multiple_of ?? null;
  const doResize = c.do_resize ?? (c.size != null || multiple != null);
  if (doResize && c.size == null && multiple == null) {
    throw new ConfigError('do_resize is on but there is no size: give size ({height, width}, {shortest_edge} or {longest_edge}) or ensure_multiple_of.');
  }
  if (c.max_side != null && c.size != null) throw new ConfigError('max_side applies only without size (dynamic sizes); drop one of them.');
  const toMultiple = (v: number): number => (multiple ? Math.max(multiple, Math.round(v / multiple) * multiple) : Math.max(1, v));
  let resize: Resolved['resize'] = null;
  if (doResize) {
    const size = c.size;
    resize = (h, w) => {
      let out: HW;
      if (size == null) {
        const s = c.max_side != null && Math.max(h, w) > c.max_side ? c.max_side / Math.max(h, w) : 1;
        out = { height: Math.trunc(h * s), width: Math.trunc(w * s) };
      } else if (typeof size === 'number' && !crop) {
        out = { height: size, width: size };
      } else if (typeof size === 'number' || 'shortest_edge' in size) {
        const shortest = typeof size === 'number' ? size : size.shortest_edge;
        const longest = typeof size === 'number' ? null : size.longest_edge;
        const [short, long] = h <= w ? [h, w] : [w, h];
        let [newShort, newLong] = [shortest, Math.trunc((shortest * long) / short)];
        if (longest != null && newLong > longest) [newShort, newLong] = [Math.trunc((longest * short) / long), longest];
        out = h <= w ? { height: newShort, width: newLong } : { height: newLong, width: newShort };
      } else if ('height' in size) {
        out = { height: size.height, width: size.width };
      } else {
        const s = size.longest_edge / Math.max(h, w);
        out = { height: Math.round(h * s), width: Math.round(w * s) };
      }
      return { height: toMultiple(out.height), width: toMultiple(out.width) };
    };
  }
  const normalize = c.do_normalize ?? c.image_mean != null;
  const three = (v: number | number[] | null | undefined, fallback: number): number[] =>
    v == null ? [fallback, fallback, fallback] : typeof v === 'number' ? [v, v, v] : v;
  if (normalize && c.image_mean == null) throw new ConfigError('do_normalize is on but image_mean is missing: give image_mean and image_std (3 numbers each).');
  if (c.do_pad && c.size_divisor == null) throw new ConfigError('do_pad is on but size_divisor is missing: give the multiple to pad to.');
  return {
    resize,
    kernel: KERNELS[c.resample ?? 2],
    crop,
    scale: c.do_rescale === false ? 1 : (c.rescale_factor ?? 1 / 255),
    mean: normalize ? three(c.image_mean, 0) : [0, 0, 0],
    std: normalize ? three(c.image_std, 1) : [1, 1, 1],
    bgr: c.channel_order === 'bgr',
    padTo: c.do_pad ? c.size_divisor! : 1,
  };
}

/**
 * Throws ConfigError if {@link preprocess} would refuse this config: for checking a model's config when it loads.
 *
 * @example
 * checkPreprocessorConfig(JSON.parse(readFileSync('preprocessor_config.json', 'utf8')));
 */
export function checkPreprocessorConfig(config: PreprocessorConfig): void {
  resolveConfig(config);
}

/** Decoded, resized RGB bytes of one image (before crop and normalization). */
async function decode(image: Buffer, index: number, steps: Resolved): Promise<{ rgb: Buffer; height: number; width: number }> {
  try {
    const meta = await sharp(image).metadata();
    // Flatten before resizing so transparent pixels' hidden colours do not bleed into the resized ones.
    let pipeline = sharp(image).flatten({ background: '#ffffff' }).toColourspace('srgb');
    const target = steps.resize?.(meta.height, meta.width);
    if (target && (target.height !== meta.height || target.width !== meta.width)) {
      pipeline = pipeline.resize(target.width, target.height, { fit: 'fill', kernel: steps.kernel });
    }
    const { data, info } = await pipeline.removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { rgb: data, height: info.height, width: info.width };
  } catch (err) {
    throw new ImageInputError(
      `Image ${index} did not decode (${(err as Error).message}): pass PNG, JPEG, WebP, GIF, AVIF or TIFF bytes.`,
      { cause: err },
    );
  }
}

/**
 * Decodes images with sharp and turns them into one NCHW float32 batch the way a Hugging Face image processor
 * would (see {@link PreprocessorConfig} for the fields honoured). All images must come out the same size: with
 * dynamic sizes use {@link preprocessEach} and batch the images of equal dims.
 * Throws ImageInputError naming the input that does not decode, ConfigError for a bad config.
 *
 * @example
 * const clip = { size: { shortest_edge: 224 }, resample: 3, do_center_crop: true, crop_size: 224,
 *   image_mean: [0.4815, 0.4578, 0.4082], image_std: [0.2686, 0.2613, 0.2758] };
 * const { data, dims } = await preprocess([await loadImageBytes('cat.jpg')], clip);   // dims [1, 3, 224, 224]
 */
export async function preprocess(images: Buffer[], config: PreprocessorConfig): Promise<ImageBatch> {
  if (images.length === 0) throw new ImageInputError('preprocess() needs at least one image.');
  const each = await preprocessEach(images, config);
  const sizes = each.map((b) => `${b.dims[2]}x${b.dims[3]}`);
  if (sizes.some((s) => s !== sizes[0])) {
    throw new ImageInputError(
      `The images come out in different sizes (${sizes.map((s, i) => `${i}: ${s}`).join(', ')}), so they cannot share a batch: ` +
        'use preprocessEach() and batch the images of equal size (ImageEncoder.batchKey).',
    );
  }
  return stackImages(each);
}

/**
 * Like {@link preprocess}, but one batch of one image per input, so that images of different sizes (a dynamic
 * model) can be grouped by size before they are stacked. Errors name the input's index in `images`.
 *
 * @example
 * const singles = await preprocessEach(images, { ensure_multiple_of: 32, max_side: 960 });
 */
export async function preprocessEach(images: Buffer[], config: PreprocessorConfig): Promise<ImageBatch[]> {
  const steps = resolveConfig(config);
  return Promise.all(images.map(async (image, i) => toTensor(await decode(image, i, steps), steps)));
}

/** Crop, rescale, normalize, channel order and pad, into CHW float32. */
function toTensor(d: { rgb: Buffer; height: number; width: number }, steps: Resolved): ImageBatch {
  const ch = steps.crop?.height ?? d.height;
  const cw = steps.crop?.width ?? d.width;
  const H = Math.ceil(ch / steps.padTo) * steps.padTo;
  const W = Math.ceil(cw / steps.padTo) * steps.padTo;
  const plane = H * W;
  const data = new Float32Array(3 * plane);
  // HF's center crop: floor of half the difference; negative offsets mean the crop is bigger and pads with 0.
  const top = Math.floor((d.height - ch) / 2);
  const left = Math.floor((d.width - cw) / 2);
  for (let c = 0; c < 3; c++) {
    const src = steps.bgr ? 2 - c : c;
    const mean = steps.mean[c];
    const std = steps.std[c];
    const base = c * plane;
    const fill = -mean / std;
    for (let y = 0; y < ch; y++) {
      const sy = y + top;
      for (let x = 0; x < cw; x++) {
        const sx = x + left;
        const inside = sy >= 0 && sy < d.height && sx >= 0 && sx < d.width;
        data[base + y * W + x] = inside ? (d.rgb[(sy * d.width + sx) * 3 + src] * steps.scale - mean) / std : fill;
      }
    }
    // The do_pad area (right and bottom) stays 0: Hugging Face pads after normalizing.
  }
  return { data, dims: [1, 3, H, W] };
}

/**
 * Joins preprocessed batches of one size into one batch (e.g. single images the scheduler gathered by batchKey).
 *
 * @example
 * const batch = stackImages(await Promise.all(images.map((b) => preprocess([b], config))));
 */
export function stackImages(batches: ImageBatch[]): ImageBatch {
  if (batches.length === 0) throw new ImageInputError('stackImages() needs at least one batch.');
  const [, , H, W] = batches[0].dims;
  const bad = batches.findIndex((b) => b.dims[2] !== H || b.dims[3] !== W);
  if (bad >= 0) {
    throw new ImageInputError(`Batch ${bad} is ${batches[bad].dims[2]}x${batches[bad].dims[3]}, batch 0 is ${H}x${W}: only images of one size stack (group by batchKey).`);
  }
  if (batches.length === 1) return batches[0];
  const n = batches.reduce((sum, b) => sum + b.dims[0], 0);
  const data = new Float32Array(n * 3 * H * W);
  let offset = 0;
  for (const b of batches) {
    data.set(b.data, offset);
    offset += b.data.length;
  }
  return { data, dims: [n, 3, H, W] };
}
