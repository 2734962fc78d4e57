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
  /** Image pixels per table cell along each axis (1, or 2 for a table of 2×2 block sums). */
  private cell = 1;
  /** Table cells per row and per column (the image size divided by `cell`, rounded up). */
  private cellsX = 0;
  private cellsY = 0;
  width = 0;
  height = 0;
  /** Per-call working rows, kept across calls (MTCNN makes hundreds of crops per frame). */
  private work = { xOff: new Int32Array(0), xFrac: new Float64Array(0), top: new Float64Array(0), bottom: new Float64Array(0) };

  /**
   * (Re)builds the table for `image`, reusing the buffer across frames of one size.
   *
   * `cell` 2 sums 2×2 pixel blocks first: a quarter of the table to build and to read, for
   * resamplers that shrink by 2× or more (MTCNN's pyramid for faces of 24 px and up). Region
   * sums are then exact on even pixel edges and interpolated within a block elsewhere, which
   * moves a shrunk pixel by a fraction of a grey level where the image has detail.
   */
  build(image: RgbImage, cell: 1 | 2 = 1): this {
    const { width, height, data } = image;
    const cellsX = Math.ceil(width / cell);
    const cellsY = Math.ceil(height / cell);
    const stride = (cellsX + 1) * 3;
    const size = stride * (cellsY + 1);
    // 32-bit sums are exact up to 8.4 M pixels (255 × pixels < 2³¹) and halve the memory traffic.
    const wide = 255 * cell * cell * cellsX * cellsY >= 2 ** 31;
    if (this.table.length < size || (this.table instanceof Float64Array) !== wide) {
      this.table = wide ? new Float64Array(size) : new Int32Array(size);
    }
    const t = this.table;
    t.fill(0, 0, stride);
    const rowBytes = width * 3;
    for (let y = 0; y < cellsY; y++) {
      let o = (y + 1) * stride;
      let above = y * stride;
      t[o] = 0;
      t[o + 1] = 0;
      t[o + 2] = 0;
      o += 3;
      above += 3;
      let r = 0, g = 0, b = 0;
      if (cell === 1) {
        let p = y * rowBytes;
        const end = p + rowBytes;
        for (; p < end; p += 3, o += 3, above += 3) {
          r += data[p] as number;
          g += data[p + 1] as number;
          b += data[p + 2] as number;
          t[o] = (t[above] as number) + r;
          t[o + 1] = (t[above + 1] as number) + g;
          t[o + 2] = (t[above + 2] as number) + b;
        }
      } else {
        // A block past the last row or column repeats the edge pixel, so every cell holds 4 pixels.
        const p0 = 2 * y * rowBytes;
        const p1 = Math.min(2 * y + 1, height - 1) * rowBytes;
        // Whole blocks first; an odd last column repeats its pixel (c = a) in the last cell.
        const whole = width >> 1;
        for (let x = 0; x < cellsX; x++, o += 3, above += 3) {
          const a = 6 * x;
          const c = x < whole ? a + 3 : a;
          r += (data[p0 + a] as number) + (data[p0 + c] as number) + (data[p1 + a] as number) + (data[p1 + c] as number);
          g += (data[p0 + a + 1] as number) + (data[p0 + c + 1] as number) + (data[p1 + a + 1] as number) + (data[p1 + c + 1] as number);
          b += (data[p0 + a + 2] as number) + (data[p0 + c + 2] as number) + (data[p1 + a + 2] as number) + (data[p1 + c + 2] as number);
          t[o] = (t[above] as number) + r;
          t[o + 1] = (t[above + 1] as number) + g;
          t[o + 2] = (t[above + 2] as number) + b;
        }
      }
    }
    this.stride = stride;
    this.cell = cell;
    this.cellsX = cellsX;
    this.cellsY = cellsY;
    this.width = width;
    this.height = height;
    return this;
  }

  /** Working rows for `edges` output column edges, grown when a call needs more. */
  private scratch(edges: number): IntegralImage['work'] {
    if (this.work.xOff.length < edges) {
      this.work = { xOff: new Int32Array(edges), xFrac: new Float64Array(edges), top: new Float64Array(3 * edges), bottom: new Float64Array(3 * edges) };
    }
    return this.work;
  }

  /** Image pixels per table cell (see build()). */
  get cellSize(): number {
    return this.cell;
  }

  /**
   * The whole image area-resampled to outW×outH, written as planar RGB float32 into `out` at
   * `offset`, values rounded to integers as OpenCV's 8-bit output is.
   */
  resizeToChw(outW: number, outH: number, out: Float32Array, offset = 0): void {
    this.resizeRegionToChw(0, 0, this.width, this.height, outW, outH, out, offset);
  }

  /**
   * The rectangle (x0, y0, w, h), in image pixels, area-resampled to outW×outH (a shrink by at
   * least the cell size). The rectangle may reach outside the image: what lies outside counts as
   * black, as MTCNN's zero-padded crops want.
   */
  resizeRegionToChw(x0: number, y0: number, w: number, h: number, outW: number, outH: number, out: Float32Array, offset = 0): void {
    const cell = this.cell;
    if (outW * cell > w || outH * cell > h) throw new Error(`area resize only shrinks, by ${cell}× or more for this table (${w}×${h} → ${outW}×${outH})`);
    // Work in table cells; the image's right and bottom edges may fall inside the last cell.
    const sx = w / cell / outW;
    const sy = h / cell / outH;
    const cx0 = x0 / cell;
    const cy0 = y0 / cell;
    const edgeX = this.width / cell;
    const edgeY = this.height / cell;
    // Column taps (table offset and fraction) of each output edge, shared by every row; edges
    // outside the image clamp to it, so the outside adds nothing to the sums.
    const { xOff, xFrac, top: topRow, bottom: bottomRow } = this.scratch(outW + 1);
    for (let i = 0; i <= outW; i++) {
      const x = Math.min(edgeX, Math.max(0, cx0 + i * sx));
      const c = Math.min(this.cellsX - 1, Math.floor(x));
      xOff[i] = c * 3;
      xFrac[i] = x - c;
    }
    const t = this.table;
    const stride = this.stride;
    const plane = outW * outH;
    const plane2 = 2 * plane;
    // Mean = sum ÷ (pixels per output pixel); each cell sums cell² pixels.
    const inv = 1 / (sx * sy * cell * cell);
    // The table interpolated along the top and bottom edge of the current output row.
    let top = topRow;
    let bottom = bottomRow;
    for (let j = 0; j <= outH; j++) {
      const y = Math.min(edgeY, Math.max(0, cy0 + j * sy));
      const c = Math.min(this.cellsY - 1, Math.floor(y));
      const fy = y - c;
      const gy = 1 - fy;
      const r0 = c * stride;
      const r1 = r0 + stride;
      for (let i = 0, d = 0; i <= outW; i++, d += 3) {
        const xo = xOff[i] as number;
        const a = r0 + xo;
        const e = r1 + xo;
        const fx = xFrac[i] as number;
        const gx = 1 - fx;
        // Bilinear weights of the four surrounding table entries, shared by the three channels.
        const w00 = gx * gy;
        const w01 = fx * gy;
        const w10 = gx * fy;
        const w11 = fx * fy;
        bottom[d] = (t[a] as number) * w00 + (t[a + 3] as number) * w01 + (t[e] as number) * w10 + (t[e + 3] as number) * w11;
        bottom[d + 1] = (t[a + 1] as number) * w00 + (t[a + 4] as number) * w01 + (t[e + 1] as number) * w10 + (t[e + 4] as number) * w11;
        bottom[d + 2] = (t[a + 2] as number) * w00 + (t[a + 5] as number) * w01 + (t[e + 2] as number) * w10 + (t[e + 5] as number) * w11;
      }
      if (j > 0) {
        // Column sums of the row band, differenced across each output pixel's left/right edge.
        let o = offset + (j - 1) * outW;
        let pr = (bottom[0] as number) - (top[0] as number);
        let pg = (bottom[1] as number) - (top[1] as number);
        let pb = (bottom[2] as number) - (top[2] as number);
        for (let i = 0, d = 3; i < outW; i++, d += 3, o++) {
          const cr = (bottom[d] as number) - (top[d] as number);
          const cg = (bottom[d + 1] as number) - (top[d + 1] as number);
          const cb = (bottom[d + 2] as number) - (top[d + 2] as number);
          // Rounded as OpenCV's 8-bit output is (the values are never negative).
          // `| 0` truncates like Math.floor for these non-negative values, at a fraction of its cost.
          out[o] = ((cr - pr) * inv + 0.5) | 0;
          out[o + plane] = ((cg - pg) * inv + 0.5) | 0;
          out[o + plane2] = ((cb - pb) * inv + 0.5) | 0;
          pr = cr;
          pg = cg;
          pb = cb;
        }
      }
      const swap = top;
      top = bottom;
      bottom = swap;
    }
  }
}
