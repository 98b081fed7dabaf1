/** @module ImageEncoder on a Hugging Face VLM folder layout, with a small patch-embedding vision encoder built here. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import sharp from 'sharp';
import { ConfigError } from '../../runtime';
import { stackImages } from '../../serving/models/image';
import { ImageEncoder } from '../../serving/models/vision';

// The vision encoder: a 4x4 stride-4 Conv over 8x8 images (4 patches of 4 features), reshaped and transposed to
// [batch, patches, features] like a ViT's patch embedding. Deterministic weights so the test can recompute it.
const weight = (o: number, c: number, i: number, j: number): number => (((o * 48 + c * 16 + i * 4 + j) % 7) - 3) / 10;
const BIAS = [0.1, -0.2, 0.3, 0];

function visionEncoderOnnx(): Uint8Array {
  const T = onnx.TensorProto.DataType;
  const A = onnx.AttributeProto.AttributeType;
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: { elemType: T.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
  });
  const W: number[] = [];
  for (let o = 0; o < 4; o++) for (let c = 0; c < 3; c++) for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) W.push(weight(o, c, i, j));
  const graph = onnx.GraphProto.create({
    name: 'vision_encoder',
    input: [{ name: 'pixel_values', type: tensorType(['batch', 3, 8, 8]) }],
    output: [{ name: 'image_features', type: tensorType(['batch', 4, 4]) }],
    initializer: [
      { name: 'W', dataType: T.FLOAT, dims: [4, 3, 4, 4], floatData: W },
      { name: 'B', dataType: T.FLOAT, dims: [4], floatData: BIAS },
      // int64 through rawData: protobufjs would want Long objects for int64Data.
      { name: 'shape', dataType: T.INT64, dims: [3], rawData: new Uint8Array(new BigInt64Array([0n, 4n, 4n]).buffer) },
    ],
    node: [
      {
        opType: 'Conv',
        input: ['pixel_values', 'W', 'B'],
        output: ['conv'],
        attribute: [
          { name: 'kernel_shape', type: A.INTS, ints: [4, 4] },
          { name: 'strides', type: A.INTS, ints: [4, 4] },
        ],
      },
      { opType: 'Reshape', input: ['conv', 'shape'], output: ['flat'] },
      { opType: 'Transpose', input: ['flat'], output: ['image_features'], attribute: [{ name: 'perm', type: A.INTS, ints: [0, 2, 1] }] },
    ],
  });
  return onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }], producerName: 'nodus-test', graph }).finish();
}

/** A CLIP-style processor, as transformers writes it, scaled down to 8x8. */
const PREPROCESSOR = {
  image_processor_type: 'CLIPImageProcessor',
  processor_class: 'LlavaProcessor',
  do_convert_rgb: true,
  do_resize: true,
  size: { shortest_edge: 8 },
  resample: 3,
  do_center_crop: true,
  crop_size: { height: 8, width: 8 },
  do_rescale: true,
  rescale_factor: 0.00392156862745098,
  do_normalize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
};

async function image(width: number, height: number, seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 37 + seed * 101) % 256;
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

let dir: string;
let encoder: ImageEncoder;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nodus-vlm-'));
  await mkdir(join(dir, 'tiny-vlm', 'onnx'), { recursive: true });
  await writeFile(join(dir, 'tiny-vlm', 'onnx', 'vision_encoder.onnx'), visionEncoderOnnx());
  await writeFile(join(dir, 'tiny-vlm', 'preprocessor_config.json'), JSON.stringify(PREPROCESSOR));
  encoder = await ImageEncoder.load(join(dir, 'tiny-vlm'), { device: 'cpu' });
});
afterAll(async () => {
  await encoder?.release();
  await rm(dir, { recursive: true, force: true });
});

it('loads a Hugging Face VLM folder: onnx/vision_encoder.onnx fed pixel_values, preprocessed per preprocessor_config.json', () => {
  expect(encoder.inputName).toBe('pixel_values');
  expect(encoder.outputName).toBe('image_features');
  expect(encoder.device).toBe('cpu');
  expect(encoder.preprocessorConfig).toMatchObject({ crop_size: { height: 8, width: 8 } });
});

it('encodes a batch of 3 into 3 embeddings of [patches, features] that equal single runs and the convolution by hand', async () => {
  const singles = await encoder.preprocess([await image(16, 16, 1), await image(20, 12, 2), await image(10, 30, 3)]);
  expect(singles.map((s) => s.dims)).toEqual([[1, 3, 8, 8], [1, 3, 8, 8], [1, 3, 8, 8]]);
  const batch = stackImages(singles);
  const out = await encoder.encode(batch);
  expect(out).toHaveLength(3);
  for (const [n, embedding] of out.entries()) {
    expect(embedding.dims).toEqual([4, 4]);
    const [alone] = await encoder.encode(singles[n]);
    for (let i = 0; i < 16; i++) expect(Math.abs(embedding.data[i] - alone.data[i])).toBeLessThanOrEqual(1e-6);
    // Patch p = (py, px) of the 2x2 grid, feature k: bias + the 4x4 window times the weights.
    for (let p = 0; p < 4; p++) {
      for (let k = 0; k < 4; k++) {
        let sum = BIAS[k];
        for (let c = 0; c < 3; c++) {
          for (let i = 0; i < 4; i++) {
            for (let j = 0; j < 4; j++) sum += weight(k, c, i, j) * singles[n].data[c * 64 + (Math.floor(p / 2) * 4 + i) * 8 + (p % 2) * 4 + j];
          }
        }
        expect(embedding.data[p * 4 + k]).toBeCloseTo(sum, 4);
      }
    }
  }
});

it('encodes image sources end to end, from data URLs and files', async () => {
  const png = await image(16, 16, 1);
  await writeFile(join(dir, 'a.png'), png);
  const [fromUrl, fromFile] = await encoder.encodeImages([`data:image/png;base64,${png.toString('base64')}`, join(dir, 'a.png')]);
  expect(fromUrl.dims).toEqual([4, 4]);
  expect(Array.from(fromUrl.data)).toEqual(Array.from(fromFile.data));
});

it('runs on the CPU and says so when CUDA is asked for where it is missing', async () => {
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    const gpu = await ImageEncoder.load(join(dir, 'tiny-vlm'), { device: 'cuda' });
    // On a machine with the CUDA provider this is 'cuda'; here it is CPU-only.
    expect(['cpu', 'cuda']).toContain(gpu.device);
    if (gpu.device === 'cpu') expect(warn).toHaveBeenCalledWith(expect.stringMatching(/CUDA provider of onnxruntime-node is not available/));
    await gpu.release();
  } finally {
    warn.mockRestore();
  }
});

it('refuses a batch of the wrong size, naming the size the model takes', async () => {
  await expect(encoder.encode({ data: new Float32Array(3 * 16 * 16), dims: [1, 3, 16, 16] })).rejects.toThrow(/takes 8x8 images, this batch is 16x16/);
  await expect(encoder.encode({ data: new Float32Array(5), dims: [1, 3, 8, 8] })).rejects.toThrow(/NCHW batch/);
});

it('says what to pass when a folder is not a VLM folder or an .onnx file has no preprocessing', async () => {
  await mkdir(join(dir, 'empty'), { recursive: true });
  await expect(ImageEncoder.load(join(dir, 'empty'))).rejects.toThrow(/no onnx\/vision_encoder\.onnx.*\{ config/);
  await mkdir(join(dir, 'bare'), { recursive: true });
  await writeFile(join(dir, 'bare', 'model.onnx'), visionEncoderOnnx());
  await expect(ImageEncoder.load(join(dir, 'bare', 'model.onnx'))).rejects.toThrow(/needs a preprocessing config/);
  await expect(ImageEncoder.load(join(dir, 'nowhere'))).rejects.toThrow(/No model at/);
});

it('loads any .onnx image model from a generic config or from a preprocessor_config.json beside it', async () => {
  const generic = await ImageEncoder.load(join(dir, 'bare'), { config: { model: 'model.onnx', size: { height: 8, width: 8 }, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } });
  const [e] = await generic.encodeImages([join(dir, 'a.png')]);
  expect(e.dims).toEqual([4, 4]);
  await generic.release();
  await writeFile(join(dir, 'bare', 'preprocessor_config.json'), JSON.stringify({ size: { height: 8, width: 8 } }));
  const beside = await ImageEncoder.load(join(dir, 'bare', 'model.onnx'));
  expect(beside.preprocessorConfig).toEqual({ size: { height: 8, width: 8 } });
  await beside.release();
});

it('rejects an unknown option or generic config field, listing the valid ones', async () => {
  type Options = Parameters<typeof ImageEncoder.load>[1];
  const file = join(dir, 'bare', 'model.onnx');
  const err = await ImageEncoder.load(file, { config: { size: 'dynamic', colour: 'bgr' } } as unknown as Options).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as Error).message).toMatch(/colour.*Valid fields: model, input, output, size/);
  await expect(ImageEncoder.load(file, { size: 'dynamic' } as unknown as Options)).rejects.toThrow(/Unknown option 'size'.*device, config/);
  await expect(ImageEncoder.load(file, { device: 'gpu' } as unknown as Options)).rejects.toThrow(/device must be 'cpu' or 'cuda'/);
});
