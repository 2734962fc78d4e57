// Crop + resize + CHW packing in one pass, for the R-Net/O-Net batches. OpenCV would need a Mat,
// an ROI, a border copy and a resize per candidate (≈0.3 ms of call overhead each, and a frame
// has tens to hundreds of candidates); this reads only the crop's own pixels, once.
//
// Downscaling averages over each output pixel's footprint with fractional edge weights, which
// is what OpenCV's INTER_AREA does; upscaling interpolates bilinearly from pixel centres, as
// INTER_AREA falls back to. Pixels outside the image count as black (MTCNN's zero padding).
import type { RgbImage } from './image.js';

interface AxisWeights {
  /** For output i: first source index, number of taps, and taps' weights at offsets[i]. */
  start: Int32Array;
  count: Int32Array;
  offsets: Int32Array;
  weights: Float32Array;
}

/** Source taps for resampling the span [from, from + length) of an axis to `size` samples. */
function axisWeights(from: number, length: number, size: number): AxisWeights {
  const start = new Int32Array(size);
  const count = new Int32Array(size);
  const offsets = new Int32Array(size);
  const w: number[] = [];
  const scale = length / size;
  for (let i = 0; i < size; i++) {
    offsets[i] = w.length;
    if (scale >= 1) {
      const a = i * scale;
      const b = a + scale;
      const first = Math.floor(a);
      const last = Math.min(Math.ceil(b), length) - 1;
      start[i] = from + first;
      for (let k = first; k <= last; k++) w.push((Math.min(b, k + 1) - Math.max(a, k)) / scale);
      count[i] = last - first + 1;
    } else {
      const c = (i + 0.5) * scale - 0.5;
      const f = Math.floor(c);
      const t = c - f;
      const lo = Math.max(0, Math.min(length - 1, f));
      const hi = Math.max(0, Math.min(length - 1, f + 1));
      start[i] = from + lo;
      if (hi === lo) {
        w.push(1);
        count[i] = 1;
      } else {
        w.push(1 - t, t);
        count[i] = 2;
      }
    }
  }
  return { start, count, offsets, weights: Float32Array.from(w) };
}

/**
 * Resamples the integer box [x1, x2) × [y1, y2) of `image` (it may reach outside the image) to
 * size×size and writes it as planar RGB float32 (0..255) into `out` at `offset`.
 */
export function cropResizeToChw(
  image: RgbImage,
  x1: number,
  y1: number,
  x2: number,
  y2: number,
  size: number,
  out: Float32Array,
  offset: number,
): void {
  const cw = x2 - x1;
  const ch = y2 - y1;
  if (cw <= 0 || ch <= 0) throw new Error(`crop box is empty: ${x1},${y1} → ${x2},${y2}`);
  const xs = axisWeights(x1, cw, size);
  const ys = axisWeights(y1, ch, size);
  const { width, height, data } = image;
  // Horizontal pass over the crop rows that the vertical pass needs: rows × size × 3.
  const rowFirst = ys.start[0] as number;
  const lastOut = size - 1;
  const rowLast = (ys.start[lastOut] as number) + (ys.count[lastOut] as number) - 1;
  const rows = rowLast - rowFirst + 1;
  const tmp = new Float32Array(rows * size * 3);
  for (let r = 0; r < rows; r++) {
    const y = rowFirst + r;
    if (y < 0 || y >= height) continue; // black
    const rowBase = y * width * 3;
    const t = r * size * 3;
    for (let i = 0; i < size; i++) {
      let sr = 0, sg = 0, sb = 0;
      const s0 = xs.start[i] as number;
      const n = xs.count[i] as number;
      const o = xs.offsets[i] as number;
      for (let k = 0; k < n; k++) {
        const x = s0 + k;
        if (x < 0 || x >= width) continue;
        const wt = xs.weights[o + k] as number;
        const p = rowBase + x * 3;
        sr += (data[p] as number) * wt;
        sg += (data[p + 1] as number) * wt;
        sb += (data[p + 2] as number) * wt;
      }
      tmp[t + i * 3] = sr;
      tmp[t + i * 3 + 1] = sg;
      tmp[t + i * 3 + 2] = sb;
    }
  }
  const plane = size * size;
  for (let j = 0; j < size; j++) {
    const r0 = (ys.start[j] as number) - rowFirst;
    const n = ys.count[j] as number;
    const o = ys.offsets[j] as number;
    for (let i = 0; i < size; i++) {
      let sr = 0, sg = 0, sb = 0;
      for (let k = 0; k < n; k++) {
        const wt = ys.weights[o + k] as number;
        const t = ((r0 + k) * size + i) * 3;
        sr += (tmp[t] as number) * wt;
        sg += (tmp[t + 1] as number) * wt;
        sb += (tmp[t + 2] as number) * wt;
      }
      const p = offset + j * size + i;
      out[p] = sr;
      out[p + plane] = sg;
      out[p + 2 * plane] = sb;
    }
  }
}
