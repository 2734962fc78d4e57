// MTCNN face detection as published (Zhang et al. 2016; the TensorFlow port's procedure):
// image pyramid → P-Net → per-scale and cross-scale NMS → R-Net → O-Net → 5 landmarks.
// R-Net and O-Net run once per stage on a batch of every candidate.
// The ONNX models take raw RGB 0..255 in NCHW and normal orientation (models/build/mtcnn.ts).
import type { ModelSession } from '../inference/onnx-session.js';
import { type Box, type Point, boxHeight, boxWidth, nonMaxSuppression, overlap, squareBox } from './geometry.js';
import { mirrorImage, type RgbImage } from './image.js';
import { IntegralImage } from './integral-image.js';
import { DEFAULT_LANDMARK_CHECK, type LandmarkCheckOptions, landmarksPlausible } from './landmark-check.js';
import { cropResizeToChw } from './resample.js';

export interface DetectedFace {
  box: Box;
  score: number;
  /** Left eye, right eye, nose, left mouth corner, right mouth corner (image left = smaller x). */
  landmarks: [Point, Point, Point, Point, Point];
}

export interface MtcnnOptions {
  /** Smallest face side in pixels that the pyramid looks for. */
  minFaceSize: number;
  /** Pyramid step. */
  scaleFactor: number;
  /** Score thresholds for P-Net, R-Net, O-Net. */
  thresholds: [number, number, number];
  /**
   * Faces of the second pass whose 5 landmarks are implausible (landmark-check.ts) are dropped;
   * null: no check. The first pass is not checked (at its thresholds the check only lost faces).
   */
  landmarkCheck: LandmarkCheckOptions | null;
  /**
   * Thresholds of a second, looser pass, run when the first pass finds no strong face (see
   * strongFaceScore): faces behind masks and sunglasses are mostly lost at P-Net and R-Net, while
   * O-Net then often scores them high. null: no second pass.
   */
  secondPass: [number, number, number] | null;
  /**
   * A first-pass face is strong when O-Net scores it at least this and (with landmarkCheck) its
   * landmarks are plausible. Frames without a strong face get the second pass, whose faces away
   * from the first pass's are added: a weak background face or a false face no longer hides a
   * masked face from it. 0 with landmarkCheck null: the second pass runs only on frames where
   * the first finds no face at all.
   */
  strongFaceScore: number;
  /**
   * Pyramid step of the second pass: finer than the first pass's, so P-Net's 12-px windows meet a
   * masked face at more sizes (it proposes few of them at each single size).
   */
  secondPassScaleFactor: number;
  /**
   * Run the second pass on the mirror image too and merge the two: MTCNN is not left-right
   * symmetric, so the mirror image gets other proposals and scores. Doubles the second pass's time.
   */
  secondPassMirror: boolean;
  /**
   * Average O-Net's landmarks of each face with those it gives on the mirror image of the same crop
   * (one more O-Net run per pass that finds faces, on the faces only). Off by default: on Mask-LFW
   * occlusion-aware verification with detected landmarks went 91.83% → 92.40%, but with the clean
   * photos' landmarks 94.37% → 93.60% (models/README.md, "Landmarks under masks"): no clear gain
   * for its cost.
   */
  mirrorLandmarks: boolean;
  /**
   * IoU thresholds of the first pass's non-maximum suppressions: within each P-Net pyramid level,
   * across the levels, after R-Net (union overlap) and after O-Net (overlap over the smaller box).
   * The second pass keeps the published overlaps: it hunts occluded faces, which tighter
   * suppression loses (Mask-LFW misses 4.6% → 6.2% when it used these).
   */
  nms: NmsThresholds;
}

export interface NmsThresholds {
  pnetLevel: number;
  pnetPyramid: number;
  rnet: number;
  onet: number;
  /** Apply P-Net's box regression before the pyramid NMS instead of after it. */
  regressBeforePyramid: boolean;
}

export type Thresholds = MtcnnOptions['thresholds'];

/** MTCNN as published: one pass at 0.6/0.7/0.7, no landmark check. */
export const PUBLISHED_MTCNN_OPTIONS: Readonly<MtcnnOptions> = Object.freeze<MtcnnOptions>({
  minFaceSize: 20,
  scaleFactor: 0.709,
  thresholds: [0.6, 0.7, 0.7],
  landmarkCheck: null,
  secondPass: null,
  strongFaceScore: 0,
  secondPassScaleFactor: 0.709,
  secondPassMirror: false,
  mirrorLandmarks: false,
  nms: { pnetLevel: 0.5, pnetPyramid: 0.7, rnet: 0.7, onet: 0.7, regressBeforePyramid: false },
});

/**
 * The published cascade, then — on frames where it finds no strong face (none scoring ≥ 0.9 with
 * plausible landmarks) — a pass at 0.4/0.3/0.2 with the landmark check, at a finer pyramid step
 * (0.8) and on the mirror image too, whose faces away from the first pass's are added. Chosen with
 * `npm run eval:detector` (models/README.md, "Detection under occlusion"): on 500 Mask-LFW probes
 * the published cascade misses 55; a second pass where it finds nothing, 20; where it finds no
 * strong face, 15; with the finer step and the mirror image, 10 (29 of 1,500).
 * Clean LFW unchanged; no false face on the demo-style video (the second pass runs only on its
 * grey frames there: every true face of the sample photos scores ≥ 0.96). Run alone, the loose
 * pass finds ~0.85 false faces per frame of the sample photos.
 * The first pass suppresses at IoU 0.5 after P-Net's pyramid (boxes regressed first) and after
 * R-Net, instead of the published 0.7 (raw windows): on the 5-face benchmark frame R-Net gets 83
 * candidates instead of 159 and O-Net 11 instead of 40, no face lost on the sample photos or LFW,
 * LFW pairs-dev accuracy 98.73% → 98.90% (`npm run bench:models`, `facegate eval`).
 */
export const DEFAULT_MTCNN_OPTIONS: Readonly<MtcnnOptions> = Object.freeze<MtcnnOptions>({
  ...PUBLISHED_MTCNN_OPTIONS,
  landmarkCheck: DEFAULT_LANDMARK_CHECK,
  secondPass: [0.4, 0.3, 0.2],
  strongFaceScore: 0.9,
  secondPassScaleFactor: 0.8,
  secondPassMirror: true,
  mirrorLandmarks: false,
  nms: { pnetLevel: 0.5, pnetPyramid: 0.5, rnet: 0.5, onet: 0.7, regressBeforePyramid: true },
});

export interface MtcnnSessions {
  pnet: ModelSession;
  rnet: ModelSession;
  onet: ModelSession;
}

interface Candidate {
  box: Box;
  score: number;
  reg: [number, number, number, number];
}

const PNET_CELL = 12;
const PNET_STRIDE = 2;

export class MtcnnDetector {
  readonly options: MtcnnOptions;

  /**
   * Summed-area tables, one per detect() in flight (cameras share a detector), reused across
   * frames: a table is rebuilt in place, reallocated only when the frame size changes.
   */
  private readonly freeTables: IntegralImage[] = [];
  /** Mirror-image buffers of the second pass, reused across frames like the tables. */
  private readonly freeMirrors: Uint8Array[] = [];

  constructor(
    private readonly sessions: MtcnnSessions,
    options: Partial<MtcnnOptions> = {},
  ) {
    this.options = { ...DEFAULT_MTCNN_OPTIONS, ...options };
    const { minFaceSize, scaleFactor, secondPassScaleFactor, thresholds, secondPass, landmarkCheck } = this.options;
    if (!(minFaceSize >= PNET_CELL)) throw new Error(`mtcnn.minFaceSize must be ≥ ${PNET_CELL} px, got ${minFaceSize}`);
    for (const [name, f] of [['scaleFactor', scaleFactor], ['secondPassScaleFactor', secondPassScaleFactor]] as const) {
      if (!(f > 0.1 && f < 0.95)) throw new Error(`mtcnn.${name} must be in (0.1, 0.95), got ${f}`);
    }
    for (const [name, t] of [['thresholds', thresholds], ['secondPass', secondPass ?? [0, 0, 0]]] as const) {
      if (t.length !== 3 || t.some((v) => !(v >= 0 && v <= 1))) throw new Error(`mtcnn.${name} must be 3 values in [0, 1], got ${t.join(', ')}`);
    }
    if (!(this.options.strongFaceScore >= 0 && this.options.strongFaceScore <= 1)) throw new Error(`mtcnn.strongFaceScore must be in [0, 1], got ${this.options.strongFaceScore}`);
    const { pnetLevel, pnetPyramid, rnet, onet } = this.options.nms;
    if (![pnetLevel, pnetPyramid, rnet, onet].every((v) => v > 0 && v <= 1)) throw new Error(`mtcnn.nms overlaps must be in (0, 1], got ${JSON.stringify(this.options.nms)}`);
    if (landmarkCheck && !(landmarkCheck.minEyeDistance >= 0 && landmarkCheck.maxRollDegrees > 0)) {
      throw new Error(`mtcnn.landmarkCheck needs minEyeDistance ≥ 0 and maxRollDegrees > 0, got ${JSON.stringify(landmarkCheck)}`);
    }
  }

  /** Scales of the image pyramid for an image whose shorter side is `minSide`. */
  pyramidScales(minSide: number, factor = this.options.scaleFactor): number[] {
    const scales: number[] = [];
    let scale = PNET_CELL / this.options.minFaceSize;
    let side = minSide * scale;
    while (side >= PNET_CELL) {
      scales.push(scale);
      scale *= factor;
      side *= factor;
    }
    return scales;
  }

  async detect(image: RgbImage): Promise<DetectedFace[]> {
    if (image.width < PNET_CELL || image.height < PNET_CELL) return [];
    // Every pyramid level and every R-Net/O-Net crop is an area-averaged (INTER_AREA) resample
    // taken from one summed-area table of the frame: the frame is read once, and a crop costs
    // the same whatever the size of its box.
    // The pyramid's largest level is 12 / minFaceSize of the frame: from 24 px faces on, every
    // level shrinks the frame by 2× or more, so a table of 2×2 block sums serves it at a quarter
    // of the cost (crops that shrink less are resampled from the frame itself, see cropBatch).
    const scales = this.pyramidScales(Math.min(image.width, image.height));
    const cell = (scales[0] ?? 1) <= 0.5 ? 2 : 1;
    const table = (this.freeTables.pop() ?? new IntegralImage()).build(image, cell);
    try {
      const faces = await this.pass(image, table, scales, this.options.thresholds, this.options.nms, null);
      if (!this.options.secondPass || faces.some((f) => isStrongFace(f, this.options))) return faces;
      const second = await this.secondPass(image, table, cell, this.options.secondPass);
      // The second pass finds the first's faces again; only faces elsewhere are added.
      const elsewhere = second.filter((s) => faces.every((f) => overlap(s.box, f.box, 'min') < 0.5));
      return faces.length === 0 ? elsewhere : [...faces, ...elsewhere];
    } finally {
      this.freeTables.push(table);
    }
  }

  /**
   * The loose pass at its own (finer) pyramid step, on the frame and, with secondPassMirror, on
   * its mirror image; a face found on both is merged, then the O-Net NMS (overlap over the
   * smaller box) runs over the union.
   */
  private async secondPass(image: RgbImage, table: IntegralImage, cell: 1 | 2, thresholds: Thresholds): Promise<DetectedFace[]> {
    const { landmarkCheck, secondPassScaleFactor, secondPassMirror } = this.options;
    const nms = PUBLISHED_MTCNN_OPTIONS.nms;
    const scales = this.pyramidScales(Math.min(image.width, image.height), secondPassScaleFactor);
    const direct = await this.pass(image, table, scales, thresholds, nms, landmarkCheck);
    if (!secondPassMirror) return direct;
    const mirrored = mirrorImage(image, this.freeMirrors.pop());
    const mirrorTable = (this.freeTables.pop() ?? new IntegralImage()).build(mirrored, cell);
    let found: DetectedFace[];
    try {
      found = (await this.pass(mirrored, mirrorTable, scales, thresholds, nms, landmarkCheck)).map((f) => unmirrorFace(f, image.width));
    } finally {
      this.freeTables.push(mirrorTable);
      this.freeMirrors.push(mirrored.data);
    }
    // A face found on both is one face seen twice: its two boxes and landmark sets are averaged
    // (less of either estimate's error); faces found on one only are kept as they are.
    const merged: DetectedFace[] = [];
    const used = new Set<number>();
    for (const d of direct) {
      let best = -1;
      let bestIou = 0.5;
      found.forEach((m, i) => {
        const iou = overlap(d.box, m.box);
        if (!used.has(i) && iou >= bestIou) [best, bestIou] = [i, iou];
      });
      if (best < 0) {
        merged.push(d);
        continue;
      }
      used.add(best);
      merged.push(averageFaces(d, found[best] as DetectedFace));
    }
    const all = [...merged, ...found.filter((_, i) => !used.has(i))];
    const keep = nonMaxSuppression(all.map((f) => f.box), all.map((f) => f.score), nms.onet, 'min');
    return keep.map((i) => all[i] as DetectedFace);
  }

  /** One cascade at the given thresholds; faces with implausible landmarks dropped when `check`. */
  private async pass(image: RgbImage, table: IntegralImage, scales: readonly number[], thresholds: Thresholds, nms: NmsThresholds, check: LandmarkCheckOptions | null): Promise<DetectedFace[]> {
    const proposals = await this.proposeWithPnet(scales, table, thresholds[0], nms);
    if (proposals.length === 0) return [];
    const refined = await this.refine(image, table, proposals.map((c) => squareBox(c.box)), thresholds[1], nms.rnet);
    if (refined.length === 0) return [];
    const faces = await this.output(image, table, refined.map((c) => squareBox(c.box)), thresholds[2], nms.onet);
    return check ? faces.filter((f) => landmarksPlausible(f, check)) : faces;
  }

  private async proposeWithPnet(scales: readonly number[], table: IntegralImage, threshold: number, nms: NmsThresholds): Promise<Candidate[]> {
    const all: Candidate[] = [];
    // The next level is resampled before the previous level's run is awaited. onnxruntime-node
    // 1.30 runs a session on the main thread (inside a setImmediate), so the two do not overlap
    // in time; the order only matters for a backend that runs sessions off the main thread.
    const level = (scale: number): { scale: number; w: number; h: number; input: Float32Array } => {
      const w = Math.ceil(table.width * scale);
      const h = Math.ceil(table.height * scale);
      const input = new Float32Array(3 * h * w);
      table.resizeToChw(w, h, input, 0);
      return { scale, w, h, input };
    };
    const run = (l: ReturnType<typeof level>): Promise<{ scale: number; out: Awaited<ReturnType<ModelSession['run']>> }> =>
      this.sessions.pnet.run({ input: { data: l.input, dims: [1, 3, l.h, l.w] } }).then((out) => ({ scale: l.scale, out }));
    let pending = scales.length > 0 ? run(level(scales[0] as number)) : undefined;
    for (let n = 0; pending; n++) {
      const next = n + 1 < scales.length ? level(scales[n + 1] as number) : undefined;
      const { scale, out } = await pending;
      pending = next ? run(next) : undefined;
      const prob = requireOutput(out, 'prob', 'pnet');
      const reg = requireOutput(out, 'reg', 'pnet');
      const oh = prob.dims[2] as number;
      const ow = prob.dims[3] as number;
      const plane = oh * ow;
      const found: Candidate[] = [];
      for (let i = 0; i < oh; i++) {
        for (let j = 0; j < ow; j++) {
          const k = i * ow + j;
          const score = prob.data[plane + k] as number;
          if (score < threshold) continue;
          found.push({
            box: {
              x1: (PNET_STRIDE * j) / scale,
              y1: (PNET_STRIDE * i) / scale,
              x2: (PNET_STRIDE * j + PNET_CELL) / scale,
              y2: (PNET_STRIDE * i + PNET_CELL) / scale,
            },
            score,
            reg: [reg.data[k] as number, reg.data[plane + k] as number, reg.data[2 * plane + k] as number, reg.data[3 * plane + k] as number],
          });
        }
      }
      const keep = nonMaxSuppression(found.map((c) => c.box), found.map((c) => c.score), nms.pnetLevel);
      for (const i of keep) all.push(found[i] as Candidate);
    }
    // Regressed first, the boxes that several levels propose for one face mostly coincide, so
    // the pyramid NMS merges them (the published order suppresses raw windows, then regresses).
    const early = nms.regressBeforePyramid;
    const boxes = all.map((c) => (early ? applyRegression(c.box, c.reg) : c.box));
    const keep = nonMaxSuppression(boxes, all.map((c) => c.score), nms.pnetPyramid);
    return keep.map((i) => {
      const c = all[i] as Candidate;
      return { ...c, box: early ? (boxes[i] as Box) : applyRegression(c.box, c.reg) };
    });
  }

  /** R-Net: scores and regresses every candidate in one batch; returns survivors after NMS. */
  private async refine(image: RgbImage, table: IntegralImage, boxes: Box[], threshold: number, overlap: number): Promise<Candidate[]> {
    const stage = 'rnet';
    const size = 24;
    const batch = this.cropBatch(image, table, boxes, size, table.cellSize);
    const out = await this.sessions[stage].run({ input: { data: batch, dims: [boxes.length, 3, size, size] } });
    const prob = requireOutput(out, 'prob', stage);
    const reg = requireOutput(out, 'reg', stage);
    const kept: Candidate[] = [];
    boxes.forEach((box, n) => {
      const score = prob.data[n * 2 + 1] as number;
      if (score < threshold) return;
      kept.push({ box, score, reg: [reg.data[n * 4] as number, reg.data[n * 4 + 1] as number, reg.data[n * 4 + 2] as number, reg.data[n * 4 + 3] as number] });
    });
    const keep = nonMaxSuppression(kept.map((c) => c.box), kept.map((c) => c.score), overlap);
    return keep.map((i) => {
      const c = kept[i] as Candidate;
      return { ...c, box: applyRegression(c.box, c.reg) };
    });
  }

  /** O-Net: final scores, boxes and the 5 landmarks. */
  private async output(image: RgbImage, table: IntegralImage, boxes: Box[], threshold: number, overlap: number): Promise<DetectedFace[]> {
    const size = 48;
    // Crops from a table of 2×2 block sums move O-Net's landmarks by 0.6% of the eye distance on
    // average (300 LFW faces, against exact area averages): well inside MTCNN's own landmark noise.
    const batch = this.cropBatch(image, table, boxes, size, table.cellSize);
    const out = await this.sessions.onet.run({ input: { data: batch, dims: [boxes.length, 3, size, size] } });
    const prob = requireOutput(out, 'prob', 'onet');
    const reg = requireOutput(out, 'reg', 'onet');
    const marks = requireOutput(out, 'landmarks', 'onet');
    const faces: DetectedFace[] = [];
    const crops: number[] = [];
    boxes.forEach((box, n) => {
      const score = prob.data[n * 2 + 1] as number;
      if (score < threshold) return;
      const r: Candidate['reg'] = [reg.data[n * 4] as number, reg.data[n * 4 + 1] as number, reg.data[n * 4 + 2] as number, reg.data[n * 4 + 3] as number];
      faces.push({ box: applyRegression(box, r), score, landmarks: onetLandmarks(marks.data, n, box) });
      crops.push(n);
    });
    const keep = nonMaxSuppression(faces.map((f) => f.box), faces.map((f) => f.score), overlap, 'min');
    const kept = keep.map((i) => faces[i] as DetectedFace);
    if (this.options.mirrorLandmarks && kept.length > 0) await this.averageMirrorLandmarks(kept, keep.map((i) => crops[i] as number), batch, boxes);
    return kept;
  }

  /**
   * Averages each face's landmarks with O-Net's landmarks on the mirror image of the same crop
   * (mapped back, left and right points swapped): O-Net is not symmetric, and under a mask the two
   * estimates of the lower points disagree; their mean has less of either's error.
   */
  private async averageMirrorLandmarks(faces: DetectedFace[], crops: readonly number[], batch: Float32Array, boxes: readonly Box[]): Promise<void> {
    const size = 48;
    const per = 3 * size * size;
    const mirrored = new Float32Array(faces.length * per);
    crops.forEach((n, k) => {
      for (let c = 0; c < 3 * size; c++) {
        const row = n * per + c * size;
        const dst = k * per + c * size;
        for (let x = 0; x < size; x++) mirrored[dst + x] = batch[row + size - 1 - x] as number;
      }
    });
    const out = await this.sessions.onet.run({ input: { data: mirrored, dims: [faces.length, 3, size, size] } });
    const marks = requireOutput(out, 'landmarks', 'onet');
    faces.forEach((face, k) => {
      // O-Net's points on the mirrored crop, reflected back about the box's vertical centre line.
      const box = boxes[crops[k] as number] as Box;
      face.landmarks = meanLandmarks(face.landmarks, mirroredLandmarks(onetLandmarks(marks.data, k, box), box.x1 + box.x2));
    });
  }

  /** Crops each box (zero outside the image), resizes to size×size, packs one NCHW batch. */
  private cropBatch(image: RgbImage, table: IntegralImage, boxes: readonly Box[], size: number, minTableShrink: number): Float32Array {
    const per = 3 * size * size;
    const batch = new Float32Array(boxes.length * per);
    boxes.forEach((box, n) => {
      const x1 = Math.round(box.x1);
      const y1 = Math.round(box.y1);
      const x2 = Math.max(x1 + 1, Math.round(box.x2));
      const y2 = Math.max(y1 + 1, Math.round(box.y2));
      // Shrinks by `minTableShrink` (at least the table's cell size) or more come from the table,
      // at a cost independent of the box size; smaller shrinks read the box's own pixels (exact
      // area averages), and upscales interpolate.
      const limit = size * Math.max(minTableShrink, table.cellSize);
      if (x2 - x1 >= limit && y2 - y1 >= limit) table.resizeRegionToChw(x1, y1, x2 - x1, y2 - y1, size, size, batch, n * per);
      else cropResizeToChw(image, x1, y1, x2, y2, size, batch, n * per);
    });
    return batch;
  }
}

/** A first-pass face that spares the frame the second pass (MtcnnOptions.strongFaceScore). */
export function isStrongFace(face: DetectedFace, options: Pick<MtcnnOptions, 'strongFaceScore' | 'landmarkCheck'>): boolean {
  return face.score >= options.strongFaceScore && (!options.landmarkCheck || landmarksPlausible(face, options.landmarkCheck));
}

/** O-Net's 5 landmarks of crop `n` (fractions of its input box) in the frame's coordinates. */
function onetLandmarks(marks: Float32Array, n: number, box: Box): DetectedFace['landmarks'] {
  const w = boxWidth(box);
  const h = boxHeight(box);
  return Array.from({ length: 5 }, (_, p) => ({
    x: box.x1 + (marks[n * 10 + p] as number) * w,
    y: box.y1 + (marks[n * 10 + 5 + p] as number) * h,
  })) as DetectedFace['landmarks'];
}

/**
 * Landmarks reflected about the vertical line x = axis2x / 2, with the left and right eyes and
 * mouth corners swapped so that the first of each is again the image-left one.
 */
function mirroredLandmarks([le, re, nose, lm, rm]: DetectedFace['landmarks'], axis2x: number): DetectedFace['landmarks'] {
  const m = (p: Point): Point => ({ x: axis2x - p.x, y: p.y });
  return [m(re), m(le), m(nose), m(rm), m(lm)];
}

function meanLandmarks(a: DetectedFace['landmarks'], b: DetectedFace['landmarks']): DetectedFace['landmarks'] {
  return a.map((p, i) => ({ x: (p.x + (b[i] as Point).x) / 2, y: (p.y + (b[i] as Point).y) / 2 })) as DetectedFace['landmarks'];
}

/** A face found on the mirror image of a frame `width` wide, in the frame's coordinates. */
export function unmirrorFace(face: DetectedFace, width: number): DetectedFace {
  return {
    box: { x1: width - face.box.x2, y1: face.box.y1, x2: width - face.box.x1, y2: face.box.y2 },
    score: face.score,
    landmarks: mirroredLandmarks(face.landmarks, width),
  };
}

/** One face from two detections of it: mean box and landmarks, the higher score. */
function averageFaces(a: DetectedFace, b: DetectedFace): DetectedFace {
  return {
    box: { x1: (a.box.x1 + b.box.x1) / 2, y1: (a.box.y1 + b.box.y1) / 2, x2: (a.box.x2 + b.box.x2) / 2, y2: (a.box.y2 + b.box.y2) / 2 },
    score: Math.max(a.score, b.score),
    landmarks: meanLandmarks(a.landmarks, b.landmarks),
  };
}

function applyRegression(b: Box, r: readonly [number, number, number, number]): Box {
  const w = boxWidth(b);
  const h = boxHeight(b);
  return { x1: b.x1 + r[0] * w, y1: b.y1 + r[1] * h, x2: b.x2 + r[2] * w, y2: b.y2 + r[3] * h };
}

/** Interleaved RGB bytes (HWC) → planar float32 (CHW), values kept 0..255. */
export function toChw(hwc: Uint8Array, batch: number, h: number, w: number): Float32Array {
  const per = 3 * h * w;
  const out = new Float32Array(batch * per);
  for (let n = 0; n < batch; n++) toChwInto(hwc.subarray(n * per, (n + 1) * per), h, w, out, n * per);
  return out;
}

/** Equal-sized RGB images (face chips) → one planar float32 NCHW batch, values kept 0..255. */
export function chipsToChw(chips: readonly RgbImage[]): Float32Array {
  const [first] = chips;
  if (!first) return new Float32Array(0);
  const per = 3 * first.width * first.height;
  const out = new Float32Array(chips.length * per);
  chips.forEach((chip, n) => {
    if (chip.width !== first.width || chip.height !== first.height) throw new Error(`chip ${n} is ${chip.width}×${chip.height}, chip 0 ${first.width}×${first.height}`);
    toChwInto(chip.data, chip.height, chip.width, out, n * per);
  });
  return out;
}

/** One h×w HWC RGB image written as CHW float32 into `out` from `offset` (no allocation). */
function toChwInto(hwc: Uint8Array, h: number, w: number, out: Float32Array, offset: number): void {
  const plane = h * w;
  const r = out.subarray(offset, offset + plane);
  const g = out.subarray(offset + plane, offset + 2 * plane);
  const b = out.subarray(offset + 2 * plane, offset + 3 * plane);
  for (let p = 0, s = 0; p < plane; p++, s += 3) {
    r[p] = hwc[s] as number;
    g[p] = hwc[s + 1] as number;
    b[p] = hwc[s + 2] as number;
  }
}

function requireOutput(
  out: Record<string, { data: Float32Array; dims: readonly number[] }>,
  name: string,
  model: string,
): { data: Float32Array; dims: readonly number[] } {
  const t = out[name];
  if (!t) throw new Error(`model ${model} has no output named ${name} (has ${Object.keys(out).join(', ')})`);
  return t;
}
