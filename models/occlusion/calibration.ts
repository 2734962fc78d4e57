// Calibration data for the occlusion masks: people of ../shared/data/lfw who are in no pairs-dev
// pair, each photo clean and under every synthetic occluder kind (agent/occlusion, seeded), aligned
// with the clean photo's landmarks so the only difference between the two chips is the occluder.
// For every chip: the embedder's feature map in the chip's orientation (the chip's own map averaged
// with the mirror image's map mirrored back, as the agent computes it) and how much of each half of
// the chip the occluder changed. With --draws D, the occluders placed anywhere on the face
// (MULTI_DRAW_KINDS) are drawn D times per photo. Cached under CACHE_DIR: the first run detects and
// renders ~10,000 faces (about 8 minutes on 2 cores; 14 with --draws 3).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pickCentralFace } from '../../agent/evaluation/run-eval.js';
import { ImageOccluder } from '../../agent/occlusion/occlude-set.js';
import { OCCLUDER_KINDS, type OccluderKind } from '../../agent/occlusion/occluders.js';
import { embedWithViews, type FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { orientedFeatures } from '../../agent/recognition/occlusion-masks.js';
import { decodeImage, type RgbImage } from '../../agent/vision/image.js';
import { sha256 } from '../build/build-models.js';
import { CACHE_DIR, calibrationFiles, DEFAULT_LFW } from '../compress/lfw.js';

/** A calibration chip: the clean photo, or one occluder draw (`kind` for the first, `kind#d` for draw d ≥ 1). */
export type CalibrationVariant = 'clean' | OccluderKind | `${OccluderKind}#${number}`;

/**
 * Occluder kinds placed anywhere on the face (a rectangle, a hand, an object), which get extra
 * draws with --draws: one draw per face leaves few samples for the side and upper-face patterns.
 * Masks, scarves and sunglasses sit where the landmarks put them; more draws vary only their look.
 */
export const MULTI_DRAW_KINDS: readonly OccluderKind[] = ['random40', 'hand', 'object'];

/** The occluder kind a variant was drawn from, and which draw it is (0 for the first). */
export function variantDraw(variant: Exclude<CalibrationVariant, 'clean'>): { kind: OccluderKind; draw: number } {
  const [kind, draw] = variant.split('#');
  return { kind: kind as OccluderKind, draw: Number(draw ?? 0) };
}

export const variantKind = (variant: Exclude<CalibrationVariant, 'clean'>): OccluderKind => variantDraw(variant).kind;

/** Every variant of a calibration pass with `draws` draws of the MULTI_DRAW_KINDS. */
export function calibrationVariants(draws: number): CalibrationVariant[] {
  const extra = Array.from({ length: draws - 1 }, (_, d) => MULTI_DRAW_KINDS.map((k): CalibrationVariant => `${k}#${d + 1}`)).flat();
  return ['clean', ...OCCLUDER_KINDS, ...extra];
}

/** Command-line options (node:util parseArgs) that pick the embedder and its calibration pass; the defaults hit the same cache. */
export const CALIBRATION_OPTIONS = {
  model: { type: 'string' },
  lfw: { type: 'string', default: DEFAULT_LFW },
  count: { type: 'string', default: '2000' },
  seed: { type: 'string', default: '7000' },
  draws: { type: 'string', default: '1' },
} as const;

export interface CalibrationArgs {
  lfw: string;
  count: number;
  seed: number;
  draws: number;
}

/** CALIBRATION_OPTIONS' values, checked (`usage` ends each error). */
export function calibrationArgs(values: { lfw?: string | boolean; count?: string | boolean; seed?: string | boolean; draws?: string | boolean }, usage: string): CalibrationArgs {
  const int = (name: string, v: unknown, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} ${String(v)}: an integer ≥ ${min}; ${usage}`);
    return n;
  };
  return { lfw: String(values.lfw), count: int('count', values.count, 100), seed: int('seed', values.seed, -(2 ** 31)), draws: int('draws', values.draws, 1) };
}

/** Fractions of the chip's pixels the occluder changed: upper, lower, left, right half, whole chip. */
export type Coverage = [number, number, number, number, number];

export interface OcclusionCalibration {
  /** LFW-relative photo paths, one per calibration face. */
  files: string[];
  featureShape: [number, number, number];
  /** Per variant: [faces × C·H·W] oriented feature maps. */
  features: Map<CalibrationVariant, Float32Array>;
  /**
   * Per variant: [faces × outputs] the embedder's own output (flip-averaged as it runs). Read where
   * the fc does not make the embedding from the features (mobilefacenet-occ); absent from caches
   * written before it was stored.
   */
  embeddings?: Map<CalibrationVariant, Float32Array>;
  /** Per occluded variant: [faces × 5] coverage (see Coverage). */
  coverage: Map<Exclude<CalibrationVariant, 'clean'>, Float32Array>;
}

/** A pixel counts as changed when a channel moved by more than this. */
const CHANGED = 24;

/** Pixels (1) where the occluded chip differs from the clean one: some channel by more than CHANGED. */
export function changedPixels(clean: RgbImage, occluded: RgbImage): Uint8Array {
  const out = new Uint8Array(clean.width * clean.height);
  for (let i = 0; i < out.length; i++) {
    for (let c = 0; c < 3; c++) if (Math.abs((clean.data[3 * i + c] as number) - (occluded.data[3 * i + c] as number)) > CHANGED) out[i] = 1;
  }
  return out;
}

export function chipCoverage(clean: RgbImage, occluded: RgbImage): Coverage {
  const { width: w, height: h } = clean;
  const changed = changedPixels(clean, occluded);
  let up = 0, lo = 0, le = 0, ri = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!changed[y * w + x]) continue;
      if (y < h / 2) up++; else lo++;
      if (x < w / 2) le++; else ri++;
    }
  }
  const half = (w * h) / 2;
  return [up / half, lo / half, le / half, ri / half, (up + lo) / (w * h)];
}

interface CacheMeta {
  files: string[];
  featureShape: [number, number, number];
  variants: CalibrationVariant[];
}

/**
 * Each calibration photo with a detected face, as its chips in `variants` order (`clean` first):
 * the clean photo and every occluder drawn on it, all aligned by the clean photo's landmarks, so
 * the only difference between two chips is the occluder. Draw d of kind k is seeded seed + k +
 * 1000·d (draw 0: seed + k, as before there were draws). `index`: the photo's place in `files`.
 */
export async function* calibrationChips(
  analyzer: FaceAnalyzer,
  lfwDir: string,
  files: readonly string[],
  variants: readonly CalibrationVariant[],
  seed: number,
  withViews = true,
): AsyncGenerator<{ index: number; file: string; chips: RgbImage[]; views: RgbImage[][] }> {
  if (variants[0] !== 'clean') throw new Error(`calibration variants start with clean, got ${variants.join(', ')}`);
  const occluder = new ImageOccluder(analyzer.detector, join(lfwDir, 'images'), files);
  for (const [index, file] of files.entries()) {
    const image = await decodeImage(join(lfwDir, 'images', file));
    const face = pickCentralFace(await analyzer.detect(image), image.width, image.height);
    if (!face) continue;
    // The embedder's own views (chip.views) of each variant too, so calibration sees what the agent embeds.
    const cut = (img: RgbImage): [RgbImage, RgbImage[]] => {
      const { chips, transforms } = analyzer.chips(img, [face]);
      return [chips[0] as RgbImage, withViews ? (analyzer.views(img, transforms)[0] as RgbImage[]) : []];
    };
    const [chip, view] = cut(image);
    const chips: RgbImage[] = [chip];
    const views: RgbImage[][] = [view];
    for (const variant of variants.slice(1) as Exclude<CalibrationVariant, 'clean'>[]) {
      const { kind, draw } = variantDraw(variant);
      const { image: occluded } = await occluder.occlude(file, image, kind, seed + OCCLUDER_KINDS.indexOf(kind) + 1000 * draw, face);
      const [c, v] = cut(occluded);
      chips.push(c);
      views.push(v);
    }
    yield { index, file, chips, views };
  }
}

/**
 * The calibration faces' oriented maps and embeddings, clean and under every occluder (cached). For
 * an embedder with views they are its wide representation (FaceEmbeddingResult.wide), which the
 * masks act on; `{ views: false }` gives the chips' own (the plain space's curve, the fusion's).
 */
export async function occlusionCalibration(analyzer: FaceAnalyzer, args: CalibrationArgs, log: (line: string) => void, options: { views?: boolean } = {}): Promise<OcclusionCalibration> {
  const { lfw: lfwDir, count, seed, draws } = args;
  const scales = options.views === false ? [] : (analyzer.embedder.chip.views ?? []);
  const candidates = calibrationFiles(lfwDir, count);
  const variants = calibrationVariants(draws);
  const occludedVariants = variants.filter((v): v is Exclude<CalibrationVariant, 'clean'> => v !== 'clean');
  // The detector's options place the landmarks, and so every chip.
  const key = sha256(new TextEncoder().encode(JSON.stringify([analyzer.embedder.entry.sha256, ...(scales.length ? [scales] : []), analyzer.template.name, analyzer.detector.options, candidates, seed, variants, 'v1']))).slice(0, 16);
  const cacheDir = join(CACHE_DIR, `occlusion-${analyzer.embedder.entry.name}-${key}`);
  const metaFile = join(cacheDir, 'meta.json');
  if (existsSync(metaFile)) {
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as CacheMeta;
    const read = (name: string): Float32Array => {
      const b = readFileSync(join(cacheDir, name));
      return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
    };
    log(`calibration: ${meta.files.length} faces from the cache ${cacheDir}`);
    return {
      files: meta.files,
      featureShape: meta.featureShape,
      features: new Map(meta.variants.map((v) => [v, read(`features-${v}.f32`)])),
      coverage: new Map(occludedVariants.map((v) => [v, read(`coverage-${v}.f32`)])),
      ...(meta.variants.every((v) => existsSync(join(cacheDir, `embeddings-${v}.f32`))) ? { embeddings: new Map(meta.variants.map((v) => [v, read(`embeddings-${v}.f32`)])) } : {}),
    };
  }
  const files: string[] = [];
  const rows = new Map<CalibrationVariant, Float32Array[]>(variants.map((v) => [v, []]));
  const embeddingRows = new Map<CalibrationVariant, Float32Array[]>(variants.map((v) => [v, []]));
  const coverage = new Map(occludedVariants.map((v) => [v, [] as number[]]));
  let shape: [number, number, number] | undefined;
  const started = Date.now();
  for await (const { index: i, file, chips, views } of calibrationChips(analyzer, lfwDir, candidates, variants, seed, scales.length > 0)) {
    occludedVariants.forEach((variant, v) => coverage.get(variant)?.push(...chipCoverage(chips[0] as RgbImage, chips[v + 1] as RgbImage)));
    const results = await embedWithViews(chips.map((c, v) => [c, ...(views[v] ?? [])]), (c) => analyzer.embedder.embedFaces(c));
    if (!shape) {
      const features = analyzer.embedder.entry.outputs.find((o) => o.name === 'features');
      if (!features || results[0]?.features === undefined) throw new Error(`embedder ${analyzer.embedder.entry.name} has no "features" output: occlusion masks need the feature map`);
      shape = features.shape.slice(1).map(Number) as [number, number, number];
    }
    results.forEach((own, v) => {
      const r = own.wide ?? own;
      rows.get(variants[v] as CalibrationVariant)?.push(orientedFeatures(r.features as Float32Array, r.mirrorFeatures, shape as [number, number, number]));
      embeddingRows.get(variants[v] as CalibrationVariant)?.push(r.embedding);
    });
    files.push(file);
    if ((i + 1) % 100 === 0) log(`calibration: ${i + 1}/${candidates.length} photos (${((Date.now() - started) / (i + 1)).toFixed(0)} ms each)`);
  }
  if (!shape || files.length === 0) throw new Error(`no calibration face found in ${lfwDir}`);
  const stack = (list: Float32Array[]): Float32Array => {
    const out = new Float32Array(list.length * (list[0]?.length ?? 0));
    list.forEach((r, i) => out.set(r, i * r.length));
    return out;
  };
  const result: OcclusionCalibration = {
    files,
    featureShape: shape,
    features: new Map(variants.map((v) => [v, stack(rows.get(v) ?? [])])),
    coverage: new Map(occludedVariants.map((v) => [v, Float32Array.from(coverage.get(v) ?? [])])),
    embeddings: new Map(variants.map((v) => [v, stack(embeddingRows.get(v) ?? [])])),
  };
  mkdirSync(cacheDir, { recursive: true });
  for (const [v, f] of result.features) writeFileSync(join(cacheDir, `features-${v}.f32`), f);
  for (const [v, c] of result.coverage) writeFileSync(join(cacheDir, `coverage-${v}.f32`), c);
  for (const [v, e] of result.embeddings ?? []) writeFileSync(join(cacheDir, `embeddings-${v}.f32`), e);
  writeFileSync(metaFile, JSON.stringify({ files, featureShape: shape, variants } satisfies CacheMeta));
  log(`calibration: ${files.length} faces × ${variants.length} variants in ${((Date.now() - started) / 1000).toFixed(0)} s (cached in ${cacheDir})`);
  return result;
}
