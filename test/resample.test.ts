// The detector's own resamplers against OpenCV's INTER_AREA: the summed-area-table pyramid and
// the fused crop+resize for R-Net/O-Net must feed the networks what cv.resize would.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { decodeImage, type RgbImage } from '../agent/vision/image.js';
import { IntegralImage } from '../agent/vision/integral-image.js';
import { loadOpenCv, type OpenCv, withMats } from '../agent/vision/opencv.js';
import { cropResizeToChw } from '../agent/vision/resample.js';
import { samplePath } from './support/samples.js';

function cvAreaResize(cv: OpenCv, image: RgbImage, x: number, y: number, w: number, h: number, ow: number, oh: number): Uint8Array {
  return withMats((track) => {
    const src = track(new cv.Mat(image.height, image.width, cv.CV_8UC3));
    src.data.set(image.data);
    const roi = track(src.roi(new cv.Rect(x, y, w, h)));
    const dst = track(new cv.Mat());
    cv.resize(roi, dst, new cv.Size(ow, oh), 0, 0, cv.INTER_AREA);
    return new Uint8Array(dst.data);
  });
}

/** Largest |a − b| between planar float CHW and interleaved HWC bytes. */
function maxDiff(chw: Float32Array, hwc: Uint8Array, w: number, h: number): number {
  let worst = 0;
  for (let p = 0; p < w * h; p++) for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs((chw[c * w * h + p] as number) - (hwc[p * 3 + c] as number)));
  return worst;
}

describe('resamplers match OpenCV INTER_AREA', () => {
  let cv: OpenCv;
  let photo: RgbImage;
  before(async () => {
    cv = await loadOpenCv();
    photo = await decodeImage(samplePath(4));
  });

  it('pyramid levels from the summed-area table are within rounding of cv.resize', () => {
    const table = new IntegralImage().build(photo);
    for (const scale of [0.6, 0.3, 0.2127, 0.1, 0.0123]) {
      const w = Math.ceil(photo.width * scale);
      const h = Math.ceil(photo.height * scale);
      const out = new Float32Array(3 * w * h);
      table.resizeToChw(w, h, out);
      const ref = cvAreaResize(cv, photo, 0, 0, photo.width, photo.height, w, h);
      assert.ok(maxDiff(out, ref, w, h) <= 1, `scale ${scale}: differs from OpenCV by more than rounding`);
    }
  });

  it('a table of 2×2 block sums gives the same pyramid on even edges and stays close elsewhere', () => {
    const table = new IntegralImage().build(photo, 2);
    assert.equal(table.cellSize, 2);
    for (const [scale, meanLimit] of [[0.5, 0.01], [0.3, 0.5], [0.2127, 0.5], [0.1, 0.2]] as const) {
      const w = Math.ceil(photo.width * scale);
      const h = Math.ceil(photo.height * scale);
      const out = new Float32Array(3 * w * h);
      table.resizeToChw(w, h, out);
      const ref = cvAreaResize(cv, photo, 0, 0, photo.width, photo.height, w, h);
      let sum = 0;
      for (let p = 0; p < w * h; p++) for (let c = 0; c < 3; c++) sum += Math.abs((out[c * w * h + p] as number) - (ref[p * 3 + c] as number));
      // Within a 2×2 block the table assumes an even spread: a fraction of a grey level on
      // average, a few levels at the sharpest edges.
      assert.ok(sum / (3 * w * h) <= meanLimit, `scale ${scale}: mean difference ${(sum / (3 * w * h)).toFixed(3)} from OpenCV`);
      assert.ok(maxDiff(out, ref, w, h) <= 16, `scale ${scale}: an output pixel is far from OpenCV's`);
    }
    assert.throws(() => table.resizeToChw(photo.width, photo.height, new Float32Array(3 * photo.width * photo.height)), /by 2× or more/);
  });

  it('a 2×2 table of an odd-sized image repeats the edge pixels', () => {
    const flat: RgbImage = { width: 11, height: 7, data: new Uint8Array(11 * 7 * 3).fill(90) };
    const out = new Float32Array(3 * 5 * 3);
    new IntegralImage().build(flat, 2).resizeToChw(5, 3, out);
    assert.ok(out.every((v) => v === 90), `got ${Array.from(out).join(',')}`);
  });

  it('rejects an upscale, which INTER_AREA does not average', () => {
    const table = new IntegralImage().build({ width: 4, height: 4, data: new Uint8Array(48) });
    assert.throws(() => table.resizeToChw(8, 8, new Float32Array(192)), /only shrinks/);
  });

  it('crop+resize matches cv.resize of the crop, inside the image', () => {
    for (const [x1, y1, x2, y2, size] of [
      [1000, 900, 1070, 985, 24],
      [300, 200, 500, 400, 48],
      [1000, 900, 1091, 991, 48],
    ] as const) {
      const out = new Float32Array(3 * size * size);
      cropResizeToChw(photo, x1, y1, x2, y2, size, out, 0);
      const ref = cvAreaResize(cv, photo, x1, y1, x2 - x1, y2 - y1, size, size);
      assert.ok(maxDiff(out, ref, size, size) <= 0.5 + 1e-4, `box ${x1},${y1}→${x2},${y2} differs`);
    }
  });

  it('crops from the summed-area table match cv.resize of the crop, and count the outside as black', () => {
    const table = new IntegralImage().build(photo);
    for (const [x, y, w, h, size] of [
      [1000, 900, 70, 70, 24],
      [300, 200, 200, 200, 48],
      [1000, 900, 91, 91, 48],
    ] as const) {
      const out = new Float32Array(3 * size * size);
      table.resizeRegionToChw(x, y, w, h, size, size, out);
      const ref = cvAreaResize(cv, photo, x, y, w, h, size, size);
      assert.ok(maxDiff(out, ref, size, size) <= 1, `region ${x},${y} ${w}×${h} differs`);
    }
    const grey: RgbImage = { width: 10, height: 10, data: new Uint8Array(300).fill(200) };
    const out = new Float32Array(3 * 2 * 2);
    new IntegralImage().build(grey).resizeRegionToChw(-10, -10, 20, 20, 2, 2, out);
    assert.deepEqual(Array.from(out.subarray(0, 4)), [0, 0, 0, 200]);
  });

  it('pads with black outside the image', () => {
    const img: RgbImage = { width: 10, height: 10, data: new Uint8Array(300).fill(200) };
    const out = new Float32Array(3 * 4 * 4);
    cropResizeToChw(img, -10, -10, 10, 10, 4, out, 0); // top-left quarter is outside
    assert.equal(out[0], 0);
    assert.equal(out[3 * 4 + 3], 200);
  });
});
