// Area-averaged downscaling (OpenCV's INTER_AREA) from a summed-area table, for MTCNN's image
// pyramid. INTER_AREA in opencv-js reads the whole frame for every pyramid level (≈3.5 ms per
// level at 1280×720, 9 levels for 40 px faces); with the table built once per frame, each output
// pixel costs four lookups whatever the scale, so the pyramid costs about one pass over the frame.
//
// The integral of a piecewise-constant image is piecewise bilinear, so interpolating the table
// bilinearly at fractional coordinates gives exact sums over fractional rectangles — exactly the
// fractional-coverage average INTER_AREA computes.
import type { RgbImage } from './image.js';

type Table = Int32Array | Float64Array;

export class IntegralImage {
  private table: Table = new Int32Array(0);
  private stride = 0;
  width = 0;
  height = 0;

  /** (Re)builds the table for `image`, reusing the buffer across frames of one size. */
  build(image: RgbImage): this {
    const { width, height, data } = image;
    const stride = (width + 1) * 3;
    const size = stride * (height + 1);
    // 32-bit sums are exact up to 8.4 M pixels (255 × pixels < 2³¹) and halve the memory traffic.
    const wide = 255 * width * height >= 2 ** 31;
    if (this.table.length !== size || (this.table instanceof Float64Array) !== wide) {
      this.table = wide ? new Float64Array(size) : new Int32Array(size);
    }
    const t = this.table;
    t.fill(0, 0, stride);
    for (let y = 0; y < height; y++) {
      let o = (y + 1) * stride;
      let above = y * stride;
      t[o] = 0;
      t[o + 1] = 0;
      t[o + 2] = 0;
      o += 3;
      above += 3;
      let r = 0, g = 0, b = 0;
      let p = y * width * 3;
      const end = p + width * 3;
      for (; p < end; p += 3, o += 3, above += 3) {
        r += data[p] as number;
        g += data[p + 1] as number;
        b += data[p + 2] as number;
        t[o] = (t[above] as number) + r;
        t[o + 1] = (t[above + 1] as number) + g;
        t[o + 2] = (t[above + 2] as number) + b;
      }
    }
    this.stride = stride;
    this.width = width;
    this.height = height;
    return this;
  }

  /**
   * The whole image area-resampled to outW×outH, written as planar RGB float32 into `out` at
   * `offset`, values rounded to integers as OpenCV's 8-bit output is.
   */
  resizeToChw(outW: number, outH: number, out: Float32Array, offset = 0): void {
    this.resizeRegionToChw(0, 0, this.width, this.height, outW, outH, out, offset);
  }

  /**
   * The rectangle (x0, y0, w, h) area-resampled to outW×outH (a shrink). The rectangle may reach
   * outside the image: what lies outside counts as black, as MTCNN's zero-padded crops want.
   */
  resizeRegionToChw(x0: number, y0: number, w: number, h: number, outW: number, outH: number, out: Float32Array, offset = 0): void {
    if (outW > w || outH > h) throw new Error(`area resize only shrinks (${w}×${h} → ${outW}×${outH})`);
    const sx = w / outW;
    const sy = h / outH;
    // Column taps (table offset and fraction) of each output edge, shared by every row; edges
    // outside the image clamp to it, so the outside adds nothing to the sums.
    const xOff = new Int32Array(outW + 1);
    const xFrac = new Float64Array(outW + 1);
    for (let i = 0; i <= outW; i++) {
      const x = Math.min(this.width, Math.max(0, x0 + i * sx));
      const c = Math.min(this.width - 1, Math.floor(x));
      xOff[i] = c * 3;
      xFrac[i] = x - c;
    }
    const t = this.table;
    const stride = this.stride;
    const plane = outW * outH;
    const inv = 1 / (sx * sy);
    const n = (outW + 1) * 3;
    // The table interpolated along the top and bottom edge of the current output row.
    let top = new Float64Array(n);
    let bottom = new Float64Array(n);
    for (let j = 0; j <= outH; j++) {
      const y = Math.min(this.height, Math.max(0, y0 + j * sy));
      const c = Math.min(this.height - 1, Math.floor(y));
      const f = y - c;
      const r0 = c * stride;
      const r1 = r0 + stride;
      for (let i = 0, d = 0; i <= outW; i++, d += 3) {
        const a = r0 + (xOff[i] as number);
        const e = r1 + (xOff[i] as number);
        const fx = xFrac[i] as number;
        for (let ch = 0; ch < 3; ch++) {
          const t00 = t[a + ch] as number;
          const t01 = t[a + 3 + ch] as number;
          const t10 = t[e + ch] as number;
          const t11 = t[e + 3 + ch] as number;
          const upper = t00 + (t01 - t00) * fx;
          bottom[d + ch] = upper + (t10 + (t11 - t10) * fx - upper) * f;
        }
      }
      if (j > 0) {
        let o = offset + (j - 1) * outW;
        for (let i = 0, d = 0; i < outW; i++, d += 3, o++) {
          out[o] = Math.round(((bottom[d + 3] as number) - (bottom[d] as number) - (top[d + 3] as number) + (top[d] as number)) * inv);
          out[o + plane] = Math.round(((bottom[d + 4] as number) - (bottom[d + 1] as number) - (top[d + 4] as number) + (top[d + 1] as number)) * inv);
          out[o + 2 * plane] = Math.round(((bottom[d + 5] as number) - (bottom[d + 2] as number) - (top[d + 5] as number) + (top[d + 2] as number)) * inv);
        }
      }
      const swap = top;
      top = bottom;
      bottom = swap;
    }
  }
}
