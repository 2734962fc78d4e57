// Plain geometry shared by the detector and the aligner: boxes, NMS and the 2-D similarity
// transform. Written here rather than taken from OpenCV because opencv-js builds have neither
// NMSBoxes nor estimateAffinePartial2D.

export interface Point {
  x: number;
  y: number;
}

/** Axis-aligned box in pixels: corners (x1, y1) top-left and (x2, y2) bottom-right. */
export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export const boxWidth = (b: Box): number => b.x2 - b.x1;
export const boxHeight = (b: Box): number => b.y2 - b.y1;
export const boxArea = (b: Box): number => Math.max(0, b.x2 - b.x1) * Math.max(0, b.y2 - b.y1);

export function intersectionArea(a: Box, b: Box): number {
  const w = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const h = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  return w > 0 && h > 0 ? w * h : 0;
}

/** Intersection over union, or over the smaller box ('min', MTCNN's last stage). */
export function overlap(a: Box, b: Box, mode: 'union' | 'min' = 'union'): number {
  const inter = intersectionArea(a, b);
  if (inter === 0) return 0;
  const denom = mode === 'union' ? boxArea(a) + boxArea(b) - inter : Math.min(boxArea(a), boxArea(b));
  return denom > 0 ? inter / denom : 0;
}

/**
 * Greedy non-maximum suppression. Returns the indices of the kept boxes, best score first.
 * O(n²) in the worst case; MTCNN stages see at most a few thousand candidates.
 */
export function nonMaxSuppression(
  boxes: readonly Box[],
  scores: ArrayLike<number>,
  threshold: number,
  mode: 'union' | 'min' = 'union',
): number[] {
  const order = boxes.map((_, i) => i).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  const suppressed = new Uint8Array(boxes.length);
  const keep: number[] = [];
  for (let oi = 0; oi < order.length; oi++) {
    const i = order[oi] as number;
    if (suppressed[i]) continue;
    keep.push(i);
    const bi = boxes[i] as Box;
    for (let oj = oi + 1; oj < order.length; oj++) {
      const j = order[oj] as number;
      if (!suppressed[j] && overlap(bi, boxes[j] as Box, mode) > threshold) suppressed[j] = 1;
    }
  }
  return keep;
}

/** Grows a box to the square around its centre, side = the longer edge. */
export function squareBox(b: Box): Box {
  const w = boxWidth(b);
  const h = boxHeight(b);
  const side = Math.max(w, h);
  const cx = b.x1 + w / 2;
  const cy = b.y1 + h / 2;
  return { x1: cx - side / 2, y1: cy - side / 2, x2: cx + side / 2, y2: cy + side / 2 };
}

/**
 * 2×3 affine matrix [a, b, tx, c, d, ty] mapping (x, y) to (a·x + b·y + tx, c·x + d·y + ty):
 * row-major, the layout cv.warpAffine takes.
 */
export type Affine = [number, number, number, number, number, number];

export function applyAffine(m: Affine, p: Point): Point {
  return { x: m[0] * p.x + m[1] * p.y + m[2], y: m[3] * p.x + m[4] * p.y + m[5] };
}

export function invertAffine(m: Affine): Affine {
  const [a, b, tx, c, d, ty] = m;
  const det = a * d - b * c;
  if (Math.abs(det) < 1e-12) throw new Error('affine transform is singular');
  const ia = d / det;
  const ib = -b / det;
  const ic = -c / det;
  const id = a / det;
  return [ia, ib, -(ia * tx + ib * ty), ic, id, -(ic * tx + id * ty)];
}

/**
 * Least-squares similarity transform (rotation, uniform scale, translation; no reflection)
 * taking `from` onto `to`: Umeyama's closed form, which in 2-D reduces to fitting
 * to ≈ (a + ib)·from + t over complex numbers.
 */
export function similarityTransform(from: readonly Point[], to: readonly Point[]): Affine {
  if (from.length !== to.length || from.length < 2) {
    throw new Error(`similarity transform needs ≥ 2 matching points, got ${from.length} and ${to.length}`);
  }
  const n = from.length;
  let fx = 0, fy = 0, tx = 0, ty = 0;
  for (let i = 0; i < n; i++) {
    fx += (from[i] as Point).x; fy += (from[i] as Point).y;
    tx += (to[i] as Point).x; ty += (to[i] as Point).y;
  }
  fx /= n; fy /= n; tx /= n; ty /= n;
  let dot = 0, cross = 0, norm = 0;
  for (let i = 0; i < n; i++) {
    const sx = (from[i] as Point).x - fx, sy = (from[i] as Point).y - fy;
    const dx = (to[i] as Point).x - tx, dy = (to[i] as Point).y - ty;
    dot += sx * dx + sy * dy;
    cross += sx * dy - sy * dx;
    norm += sx * sx + sy * sy;
  }
  if (norm < 1e-12) throw new Error('similarity transform: source points are all the same');
  const a = dot / norm;
  const b = cross / norm;
  return [a, -b, tx - (a * fx - b * fy), b, a, ty - (b * fx + a * fy)];
}
