/** @module Tests of image loading (data: URLs, files) and Hugging Face-style preprocessing, against hand computations. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { ConfigError } from '../../runtime';
import { ImageInputError, loadImageBytes, preprocess, preprocessEach, stackImages, type PreprocessorConfig } from '../../serving/models/image';

/** An RGB PNG from a function of (x, y). */
async function png(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(pixel(x, y), (y * width + x) * 3);
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Value of channel c at (y, x) of image n in an NCHW batch. */
function at(batch: { data: Float32Array; dims: number[] }, n: number, c: number, y: number, x: number): number {
  const [, C, H, W] = batch.dims;
  return batch.data[((n * C + c) * H + y) * W + x];
}

let dir: string;
let red: Buffer;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nodus-image-'));
  red = await png(4, 4, () => [255, 0, 0]);
  await writeFile(join(dir, 'red.png'), red);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('loadImageBytes', () => {
  it('decodes a base64 data URL into the image bytes', async () => {
    expect((await loadImageBytes(`data:image/png;base64,${red.toString('base64')}`)).equals(red)).toBe(true);
  });

  it('decodes a percent-encoded data URL byte for byte', async () => {
    const encoded = [...red].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
    expect((await loadImageBytes(`data:image/png,${encoded}`)).equals(red)).toBe(true);
  });

  it('reads a file by path, relative path and file:// URL', async () => {
    const file = join(dir, 'red.png');
    expect((await loadImageBytes(file)).equals(red)).toBe(true);
    expect((await loadImageBytes(pathToFileURL(file).href)).equals(red)).toBe(true);
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      expect((await loadImageBytes('red.png')).equals(red)).toBe(true);
    } finally {
      process.chdir(cwd);
    }
  });

  it('says a data URL without a comma is invalid', async () => {
    await expect(loadImageBytes('data:image/png;base64')).rejects.toThrow(/Invalid data URL .*no ','/);
  });

  it('says which characters are allowed when the base64 is bad', async () => {
    const err = await loadImageBytes('data:image/png;base64,iVBO*Rw0K!').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageInputError);
    expect((err as ImageInputError).code).toBe('IMAGE_INPUT');
    expect((err as Error).message).toMatch(/Bad base64 in data URL/);
  });

  it('refuses a media type that is not an image it can decode, listing the ones it can', async () => {
    await expect(loadImageBytes('data:text/plain;base64,aGVsbG8=')).rejects.toThrow(/Unsupported media type 'text\/plain'.*image\/png, image\/jpeg/);
    await expect(loadImageBytes('data:,hello')).rejects.toThrow(/Unsupported media type 'text\/plain'/);
  });

  it('says a missing file is neither a data URL nor an existing file', async () => {
    const missing = join(dir, 'nope.png');
    await expect(loadImageBytes(missing)).rejects.toThrow(`is neither a data: URL nor an existing file (no file at ${missing})`);
  });

  it('refuses http URLs, as nothing is fetched here, and other schemes', async () => {
    await expect(loadImageBytes('https://example.com/cat.png')).rejects.toThrow(/not fetched here.*pass it as a data: URL/);
    await expect(loadImageBytes('ftp://example.com/cat.png')).rejects.toThrow(/neither a data: URL nor a file path/);
  });
});

describe('preprocess', () => {
  it('names the input that does not decode', async () => {
    const err = await preprocess([red, Buffer.from('not an image')], { do_rescale: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageInputError);
    expect((err as Error).message).toMatch(/^Image 1 did not decode/);
  });

  it('resizes by shortest edge, center-crops, rescales and normalizes as a hand computation says', async () => {
    // 4 high x 8 wide, in 2x2 blocks of one colour: block column j, block row i has R = 10 + 40j + 160i, G = R + 1, B = R + 2.
    const block = (x: number, y: number): [number, number, number] => {
      const r = 10 + 40 * Math.floor(x / 2) + 160 * Math.floor(y / 2);
      return [r, r + 1, r + 2];
    };
    const mean = [0.5, 0.4, 0.3];
    const std = [0.25, 0.2, 0.1];
    const config: PreprocessorConfig = {
      do_resize: true,
      size: { shortest_edge: 2 },
      resample: 0,
      do_center_crop: true,
      crop_size: { height: 2, width: 2 },
      do_rescale: true,
      rescale_factor: 1 / 255,
      do_normalize: true,
      image_mean: mean,
      image_std: std,
      processor_class: 'CLIPProcessor', // unknown fields are ignored
    };
    const batch = await preprocess([await png(8, 4, block)], config);
    // Shortest edge 4 -> 2 halves the image to 2x4, one pixel per block (nearest); the 2x2 center crop starts at
    // column floor((4 - 2) / 2) = 1, so it keeps block columns 1 and 2.
    expect(batch.dims).toEqual([1, 3, 2, 2]);
    for (let y = 0; y < 2; y++) {
      for (let x = 0; x < 2; x++) {
        const r = 10 + 40 * (x + 1) + 160 * y;
        const rgb = [r, r + 1, r + 2];
        for (let c = 0; c < 3; c++) expect(at(batch, 0, c, y, x)).toBeCloseTo((rgb[c] / 255 - mean[c]) / std[c], 5);
      }
    }
  });

  it('resizes to an exact height and width with bicubic resampling, keeping a flat colour flat', async () => {
    const batch = await preprocess([await png(4, 4, () => [200, 100, 50])], { size: { height: 3, width: 5 }, resample: 3, image_mean: 0.5, image_std: 0.5 });
    expect(batch.dims).toEqual([1, 3, 3, 5]);
    const expected = [200, 100, 50].map((v) => (v / 255 - 0.5) / 0.5);
    for (let c = 0; c < 3; c++) for (let i = 0; i < 15; i++) expect(batch.data[c * 15 + i]).toBeCloseTo(expected[c], 5);
  });

  it('rounds dynamic sizes to a multiple, shrinks to max_side first, and orders channels BGR on request', async () => {
    const [small] = await preprocessEach([await png(70, 40, () => [10, 20, 30])], { ensure_multiple_of: 32, channel_order: 'bgr', do_normalize: false });
    // round(40 / 32) = 1 and round(70 / 32) = 2 multiples.
    expect(small.dims).toEqual([1, 3, 32, 64]);
    expect([at(small, 0, 0, 5, 5), at(small, 0, 1, 5, 5), at(small, 0, 2, 5, 5)].map((v) => Math.round(v * 255))).toEqual([30, 20, 10]);
    const [big] = await preprocessEach([await png(300, 100, () => [0, 0, 0])], { ensure_multiple_of: 32, max_side: 150 });
    // 300x100 -> 150x50 under max_side, then round(50 / 32) = 2 and round(150 / 32) = 5 multiples.
    expect(big.dims).toEqual([1, 3, 64, 160]);
  });

  it('pads bottom and right with zeros up to size_divisor after normalizing', async () => {
    const batch = await preprocess([await png(5, 3, () => [255, 255, 255])], { do_pad: true, size_divisor: 4, image_mean: 0.5, image_std: 0.5 });
    expect(batch.dims).toEqual([1, 3, 4, 8]);
    expect(at(batch, 0, 0, 2, 4)).toBeCloseTo(1, 6);
    expect(at(batch, 0, 0, 3, 0)).toBe(0);
    expect(at(batch, 0, 2, 0, 5)).toBe(0);
  });

  it('composites transparency onto white and turns grey into three equal channels', async () => {
    const clear = await sharp({ create: { width: 2, height: 2, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const grey = await sharp(await png(2, 2, () => [90, 90, 90])).toColourspace('b-w').png().toBuffer();
    expect((await sharp(grey).metadata()).channels).toBe(1);
    const batch = await preprocess([clear, grey], {});
    expect(Array.from(batch.data.subarray(0, 12), (v) => Math.round(v * 255))).toEqual(new Array(12).fill(255));
    expect(Array.from(batch.data.subarray(12), (v) => Math.round(v * 255))).toEqual(new Array(12).fill(90));
  });

  it('refuses to batch images that come out in different sizes, and stacks those of one size', async () => {
    const images = [await png(64, 32, () => [1, 2, 3]), await png(32, 32, () => [4, 5, 6]), await png(64, 32, () => [7, 8, 9])];
    await expect(preprocess(images, { ensure_multiple_of: 32 })).rejects.toThrow(/different sizes \(0: 32x64, 1: 32x32, 2: 32x64\).*preprocessEach/);
    const singles = await preprocessEach(images, { ensure_multiple_of: 32 });
    const stacked = stackImages([singles[0], singles[2]]);
    expect(stacked.dims).toEqual([2, 3, 32, 64]);
    expect(Math.round(at(stacked, 1, 0, 0, 0) * 255)).toBe(7);
    expect(() => stackImages([singles[0], singles[1]])).toThrow(/only images of one size stack/);
  });

  it('rejects a bad config with a ConfigError naming the field', async () => {
    await expect(preprocess([red], { size: { height: -1, width: 2 } })).rejects.toThrow(ConfigError);
    await expect(preprocess([red], { image_mean: [0.5, 0.5] })).rejects.toThrow(/image_mean/);
    await expect(preprocess([red], { do_resize: true })).rejects.toThrow(/no size/);
  });
});
