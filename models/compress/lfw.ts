// LFW data for pruning: calibration chips (people in no pair, aligned exactly as the agent does:
// FaceAnalyzer detect → central face → chips()) and a fast embedding-only evaluation of embedder
// variants on pairs-dev from chips aligned once and cached (same landmarks, same warp, same
// flip averaging and N-fold protocol as `facegate eval`).
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pickCentralFace } from '../../agent/evaluation/run-eval.js';
import { readPairsFile, type VerificationPair } from '../../agent/evaluation/pairs.js';
import { bestThreshold, kFoldVerification, type VerificationReport } from '../../agent/evaluation/verification.js';
import { createSession } from '../../agent/inference/onnx-session.js';
import { euclideanDistance } from '../../agent/recognition/embedder.js';
import type { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { warpChips } from '../../agent/vision/align.js';
import type { Affine, Point } from '../../agent/vision/geometry.js';
import { decodeImage, type RgbImage } from '../../agent/vision/image.js';
import { type ChipSet, chipBatch, concatChips } from './activations.js';

export const DEFAULT_LFW = join('..', 'shared', 'data', 'lfw');
export const CACHE_DIR = '/tmp/facegate-compress';

/** Every person in no pair of `pairsName`, sorted, with the relative paths (Name/Name_NNNN.jpg) of their photos, sorted. */
function peopleInNoPair(lfwDir: string, pairsName: string): string[][] {
  const pairs = readPairsFile(join(lfwDir, pairsName)).pairs;
  const inPairs = new Set(pairs.flatMap((p) => [dirname(p.first), dirname(p.second)]));
  return readdirSync(join(lfwDir, 'images'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && !inPairs.has(d.name))
    .map((d) => d.name)
    .sort()
    .map((p) => readdirSync(join(lfwDir, 'images', p)).filter((f) => f.endsWith('.jpg')).sort().map((f) => join(p, f)));
}

/** Relative paths (Name/Name_NNNN.jpg) of the first image of every `step`-th person in no pair. */
export function calibrationFiles(lfwDir: string, count: number, pairsName = 'pairs-dev.txt'): string[] {
  const files = peopleInNoPair(lfwDir, pairsName).flatMap((photos) => photos.slice(0, 1));
  const step = Math.max(1, Math.floor(files.length / count));
  return files.filter((_, i) => i % step === 0).slice(0, count);
}

/**
 * Every photo of the people in no pair who have two or more (52 people, 133 photos in LFW):
 * identity-disjoint from the pairs, so a calibration fit that leaves them out can be checked by
 * verification on them without reading the evaluation pairs.
 */
export function validationFiles(lfwDir: string, pairsName = 'pairs-dev.txt'): string[] {
  return peopleInNoPair(lfwDir, pairsName).filter((photos) => photos.length >= 2).flat();
}

/** All images under a directory (recursively), sorted. */
export function imagesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(jpe?g|png|webp)$/i.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

export function mirrorChips(set: ChipSet): ChipSet {
  const { width: w, height: h } = set;
  const data = new Uint8Array(set.data.length);
  for (let n = 0; n < set.count; n++) {
    for (let y = 0; y < h; y++) {
      const row = (n * h + y) * w * 3;
      for (let x = 0; x < w; x++) {
        const s = row + x * 3;
        const d = row + (w - 1 - x) * 3;
        data[d] = set.data[s] as number;
        data[d + 1] = set.data[s + 1] as number;
        data[d + 2] = set.data[s + 2] as number;
      }
    }
  }
  return { ...set, data };
}

function toChipSet(chips: readonly RgbImage[], width: number, height: number): ChipSet {
  const data = new Uint8Array(chips.length * width * height * 3);
  chips.forEach((c, i) => data.set(c.data, i * width * height * 3));
  return { width, height, count: chips.length, data };
}

function saveChips(file: string, set: ChipSet, names: readonly string[]): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, set.data);
  writeFileSync(`${file}.json`, JSON.stringify({ width: set.width, height: set.height, count: set.count, names }));
}

function loadChips(file: string): { set: ChipSet; names: string[] } | undefined {
  if (!existsSync(file) || !existsSync(`${file}.json`)) return undefined;
  const meta = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as { width: number; height: number; count: number; names: string[] };
  const data = new Uint8Array(readFileSync(file));
  if (data.length !== meta.count * meta.width * meta.height * 3) return undefined;
  return { set: { width: meta.width, height: meta.height, count: meta.count, data }, names: meta.names };
}

/**
 * Calibration chips: every file detected and aligned as the agent does (the central face), plus
 * their mirror images. Cached under CACHE_DIR by `key`.
 */
export async function calibrationChips(analyzer: FaceAnalyzer, files: readonly string[], key: string, log: (line: string) => void = () => {}): Promise<ChipSet> {
  const cache = join(CACHE_DIR, `calib-${key}-${analyzer.template.name}.bin`);
  const cached = loadChips(cache);
  if (cached && cached.names.length === files.length && cached.names.every((n, i) => n === files[i])) return concatChips([cached.set, mirrorChips(cached.set)]);
  const chips: RgbImage[] = [];
  for (const [i, f] of files.entries()) {
    const image = await decodeImage(f);
    const face = pickCentralFace(await analyzer.detect(image), image.width, image.height);
    if (face) chips.push(...analyzer.chips(image, [face]).chips);
    if ((i + 1) % 100 === 0) log(`calibration: aligned ${i + 1}/${files.length} images`);
  }
  const set = toChipSet(chips, analyzer.template.width, analyzer.template.height);
  saveChips(cache, set, files);
  log(`calibration: ${set.count} faces from ${files.length} images (+ mirror images)`);
  return concatChips([set, mirrorChips(set)]);
}

export interface LfwPairsData {
  pairs: VerificationPair[];
  files: string[];
  chips: ChipSet;
  noFace: number;
}

/** Fraction of the shorter side of the centred crop used when no face is found (as run-eval). */
const FALLBACK_CROP = 0.55;

/**
 * The chip of every pairs-dev image, aligned from the central MTCNN face (landmarks cached as JSON
 * in the format of models/calibrate/sweep-template.ts; detected here when missing).
 */
export async function lfwPairsChips(analyzer: FaceAnalyzer, lfwDir: string, landmarksCache: string, log: (line: string) => void = () => {}): Promise<LfwPairsData> {
  const pairs = readPairsFile(join(lfwDir, 'pairs-dev.txt')).pairs;
  const files = [...new Set(pairs.flatMap((p) => [p.first, p.second]))].sort();
  const cache = join(CACHE_DIR, `lfw-pairs-dev-${analyzer.template.name}.bin`);
  const cached = loadChips(cache);
  let landmarks: Record<string, Point[] | null> = existsSync(landmarksCache) ? (JSON.parse(readFileSync(landmarksCache, 'utf8')) as Record<string, Point[] | null>) : {};
  const noFaceCount = (): number => files.filter((f) => !landmarks[f]).length;
  if (cached && cached.names.length === files.length && cached.names.every((n, i) => n === files[i])) {
    return { pairs, files, chips: cached.set, noFace: noFaceCount() };
  }
  if (files.some((f) => !(f in landmarks))) {
    log(`detecting faces in ${files.length} pairs-dev images (landmarks cached at ${landmarksCache})`);
    landmarks = {};
    for (const f of files) {
      const img = await decodeImage(join(lfwDir, 'images', f));
      landmarks[f] = pickCentralFace(await analyzer.detect(img), img.width, img.height)?.landmarks ?? null;
    }
    writeFileSync(landmarksCache, JSON.stringify(landmarks));
  }
  const { width, height } = analyzer.template;
  const chips: RgbImage[] = [];
  for (const f of files) {
    const img = await decodeImage(join(lfwDir, 'images', f));
    const lm = landmarks[f];
    if (lm) chips.push(...analyzer.chips(img, [{ landmarks: lm as [Point, Point, Point, Point, Point] }]).chips);
    else {
      const side = FALLBACK_CROP * Math.min(img.width, img.height);
      const s = width / side;
      const m: Affine = [s, 0, -(img.width / 2 - side / 2) * s, 0, s, -(img.height / 2 - side / 2) * s];
      chips.push(...warpChips(analyzer.cv, img, [m], width, height));
    }
  }
  const set = toChipSet(chips, width, height);
  saveChips(cache, set, files);
  return { pairs, files, chips: set, noFace: noFaceCount() };
}

/** Embeddings of every chip (flip-averaged like FaceEmbedder when `flip`). */
export async function embedChips(model: Uint8Array | string, chips: ChipSet, flip: boolean, batch = 16): Promise<Float32Array[]> {
  const session = await createSession('eval', model);
  const out: Float32Array[] = [];
  try {
    for (let start = 0; start < chips.count; start += batch) {
      const end = Math.min(chips.count, start + batch);
      const n = end - start;
      const plain = chipBatch(chips, start, end);
      let input = plain;
      if (flip) {
        const sub: ChipSet = { ...chips, count: n, data: chips.data.subarray(start * chips.width * chips.height * 3, end * chips.width * chips.height * 3) };
        input = new Float32Array(2 * plain.length);
        input.set(plain);
        input.set(chipBatch(mirrorChips(sub), 0, n), plain.length);
      }
      const res = await session.run({ input: { data: input, dims: [flip ? 2 * n : n, 3, chips.height, chips.width] } });
      const emb = res.embedding;
      if (!emb) throw new Error('model has no embedding output');
      const d = emb.dims[1] as number;
      for (let i = 0; i < n; i++) {
        const e = emb.data.slice(i * d, (i + 1) * d);
        if (flip) for (let k = 0; k < d; k++) e[k] = ((e[k] as number) + (emb.data[(n + i) * d + k] as number)) / 2;
        out.push(e);
      }
    }
  } finally {
    await session.release();
  }
  return out;
}

/** N-fold verification of `model` on the pairs (restricted to `folds` when given). */
export async function evaluatePairs(model: Uint8Array | string, data: LfwPairsData, options: { flip: boolean; folds?: readonly number[] }): Promise<VerificationReport> {
  const pairs = options.folds ? data.pairs.filter((p) => (options.folds as readonly number[]).includes(p.fold)) : data.pairs;
  const needed = new Set(pairs.flatMap((p) => [p.first, p.second]));
  const index = new Map(data.files.map((f, i) => [f, i]));
  const idx = data.files.filter((f) => needed.has(f)).map((f) => index.get(f) as number);
  const size = data.chips.width * data.chips.height * 3;
  const subset: ChipSet = idx.length === data.files.length ? data.chips : { ...data.chips, count: idx.length, data: new Uint8Array(idx.length * size) };
  if (subset !== data.chips) idx.forEach((i, k) => subset.data.set(data.chips.data.subarray(i * size, (i + 1) * size), k * size));
  const emb = await embedChips(model, subset, options.flip);
  const byFile = new Map(idx.map((i, k) => [data.files[i] as string, emb[k] as Float32Array]));
  const scored = pairs.map((p) => ({ fold: p.fold, same: p.same, distance: euclideanDistance(byFile.get(p.first) as Float32Array, byFile.get(p.second) as Float32Array) }));
  const report = kFoldVerification(scored);
  // One fold has no other folds to choose its threshold on: report the best accuracy on it.
  if (report.folds.length === 1) return { ...report, meanAccuracy: bestThreshold(scored).accuracy, stdAccuracy: 0 };
  return report;
}
