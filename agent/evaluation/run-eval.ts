// `facegate eval`: verification accuracy on a pairs file, every image processed exactly as the
// agent processes a frame (MTCNN → 5-point alignment → embedder).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { euclideanDistance, type FaceEmbeddingResult } from '../recognition/embedder.js';
import type { FaceAnalyzer } from '../recognition/face-analyzer.js';
import { CLEAN_PATTERN, type OcclusionDictionary } from '../recognition/occlusion-masks.js';
import { warpChips } from '../vision/align.js';
import type { Affine } from '../vision/geometry.js';
import { decodeImage, type RgbImage } from '../vision/image.js';
import type { DetectedFace } from '../vision/mtcnn.js';
import { readPairsFile } from './pairs.js';
import { kFoldVerification, type ScoredPair, type VerificationReport } from './verification.js';

export interface EvalOptions {
  pairsFile: string;
  imagesDir: string;
  /** The second image of each pair is read from here (occluded probes vs clean gallery). */
  probeImagesDir?: string;
  /**
   * With probeImagesDir: align each probe by the landmarks detected on its clean original (in
   * imagesDir) instead of on the occluded photo — FROM's and PDSN's protocol, where occluders are
   * drawn on aligned faces, so the figure measures recognition alone (detection is measured apart).
   */
  alignProbesFromClean?: boolean;
  /** Detections and embeddings shared with earlier runs of the same analyzer (see EvalCache). */
  cache?: EvalCache;
  jsonOut?: string;
  log?: (line: string) => void;
}

/**
 * Detections and embeddings kept across runs with one analyzer: eval:occlusion measures several
 * probe sets against the same clean gallery, whose photos need embedding once. Keep one cache per
 * analyzer (a cached face belongs to that detector and embedder).
 */
export interface EvalCache {
  /** The face nearest the centre detected in each file (null: none). */
  faces: Map<string, DetectedFace | null>;
  /** Each file's embedding, keyed by the file and the file its landmarks came from; found: false when a centred crop stood in. */
  embeddings: Map<string, { embedding: FaceEmbeddingResult; found: boolean }>;
}

export const newEvalCache = (): EvalCache => ({ faces: new Map(), embeddings: new Map() });

export interface EvalResult {
  pairsFile: string;
  imagesDir: string;
  probeImagesDir: string | null;
  /** Where the probes' landmarks came from. */
  probeAlignment: 'detected' | 'clean-original';
  model: string;
  template: string;
  flipAverage: boolean;
  images: number;
  noFace: { count: number; rate: number; files: string[]; fallback: string };
  pairs: number;
  report: VerificationReport;
  /**
   * Occlusion-aware matching (when the embedder has occlusion masks): the probe's predicted pattern
   * decides the space both faces are compared in; distances are divided by that space's match
   * threshold so pairs of different patterns share one threshold, as the agent's decisions do.
   */
  masked?: { report: VerificationReport; probePatterns: Record<string, number> };
  /**
   * Each pair's score as a log10 false-accept rate (with occlusion masks, whose calibration gives
   * the scale), in file order: plain distances and occlusion-aware scores. One scale for every
   * embedder, so two embedders' scores can be fused (eval:occlusion). Not written to the JSON.
   */
  pairLog10Far?: { plain: number[]; masked: number[] };
  seconds: number;
  msPerImage: number;
}

/** The central face of `file` (pickCentralFace), detected once per `faces` map; `image` is read only on a miss. */
export async function cachedCentralFace(analyzer: FaceAnalyzer, faces: Map<string, DetectedFace | null>, file: string, image: () => Promise<RgbImage>): Promise<DetectedFace | undefined> {
  if (!faces.has(file)) {
    const img = await image();
    faces.set(file, pickCentralFace(await analyzer.detect(img), img.width, img.height) ?? null);
  }
  return faces.get(file) ?? undefined;
}

/** Fraction of the shorter image side used for the centred fallback crop when no face is found. */
const FALLBACK_CROP = 0.55;

/** The face an evaluation photo is about: the one nearest the centre, larger faces preferred. */
export function pickCentralFace(faces: readonly DetectedFace[], width: number, height: number): DetectedFace | undefined {
  let best: DetectedFace | undefined;
  let bestScore = -Infinity;
  const diag = Math.hypot(width, height);
  for (const f of faces) {
    const cx = (f.box.x1 + f.box.x2) / 2 - width / 2;
    const cy = (f.box.y1 + f.box.y2) / 2 - height / 2;
    const size = Math.min(f.box.x2 - f.box.x1, f.box.y2 - f.box.y1);
    const s = size / diag - 2 * (Math.hypot(cx, cy) / diag);
    if (s > bestScore) {
      bestScore = s;
      best = f;
    }
  }
  return best;
}

/** Image → chip transform for a centred square crop (the no-face fallback). */
function centredCropTransform(image: RgbImage, chipSize: number): Affine {
  const side = FALLBACK_CROP * Math.min(image.width, image.height);
  const s = chipSize / side;
  return [s, 0, -(image.width / 2 - side / 2) * s, 0, s, -(image.height / 2 - side / 2) * s];
}

export async function runVerificationEval(analyzer: FaceAnalyzer, options: EvalOptions): Promise<EvalResult> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const pairsFile = readPairsFile(options.pairsFile);
  const firstFiles = new Set(pairsFile.pairs.map((p) => join(options.imagesDir, p.first)));
  const secondFiles = new Set(pairsFile.pairs.map((p) => join(options.probeImagesDir ?? options.imagesDir, p.second)));
  const files = [...new Set([...firstFiles, ...secondFiles])].sort();
  const fromClean = Boolean(options.alignProbesFromClean && options.probeImagesDir);
  if (options.alignProbesFromClean && !options.probeImagesDir) throw new Error('aligning probes by their clean originals needs --probe-images');
  // Occluded probe → its clean original (same relative path under imagesDir).
  const cleanOf = new Map(fromClean ? pairsFile.pairs.map((p) => [join(options.probeImagesDir as string, p.second), join(options.imagesDir, p.second)]) : []);
  const cache = options.cache ?? newEvalCache();
  const embeddings = new Map<string, FaceEmbeddingResult>();
  const noFace: string[] = [];
  const { chip } = analyzer.embedder;
  const landmarksFileOf = (file: string): string => cleanOf.get(file) ?? file;
  const cacheKey = (file: string): string => `${file}\u0000${landmarksFileOf(file)}`;

  // Only files not embedded by an earlier run with the same cache are read; one is decoded ahead
  // while the current one is in the networks.
  const todo = files.filter((f) => !cache.embeddings.has(cacheKey(f)));
  let next = todo.length ? decodeImage(todo[0] as string) : undefined;
  for (let i = 0; i < todo.length; i++) {
    const file = todo[i] as string;
    const image = await (next as Promise<RgbImage>);
    next = i + 1 < todo.length ? decodeImage(todo[i + 1] as string) : undefined;
    next?.catch(() => {}); // surfaced when awaited
    const landmarksFile = landmarksFileOf(file);
    const face = await cachedCentralFace(analyzer, cache.faces, landmarksFile, async () => (landmarksFile === file ? image : decodeImage(landmarksFile)));
    let embedding: FaceEmbeddingResult;
    if (face) {
      embedding = (await analyzer.embedFaces(image, [face]))[0] as FaceEmbeddingResult;
    } else {
      const [crop] = warpChips(analyzer.cv, image, [centredCropTransform(image, chip.width)], chip.width, chip.height);
      [embedding] = (await analyzer.embedder.embedFaces([crop as RgbImage])) as [FaceEmbeddingResult];
    }
    cache.embeddings.set(cacheKey(file), { embedding, found: face !== undefined });
    if ((i + 1) % 500 === 0 || i + 1 === todo.length) log(`embedded ${i + 1}/${todo.length} images (${files.length - todo.length} from earlier runs)`);
  }
  for (const file of files) {
    const entry = cache.embeddings.get(cacheKey(file)) as { embedding: FaceEmbeddingResult; found: boolean };
    if (!entry.found) noFace.push(file);
    embeddings.set(file, entry.embedding);
  }

  const pairOf = (p: (typeof pairsFile.pairs)[number]): [FaceEmbeddingResult, FaceEmbeddingResult] => [
    embeddings.get(join(options.imagesDir, p.first)) as FaceEmbeddingResult,
    embeddings.get(join(options.probeImagesDir ?? options.imagesDir, p.second)) as FaceEmbeddingResult,
  ];
  const scored: ScoredPair[] = pairsFile.pairs.map((p) => {
    const [a, b] = pairOf(p);
    return { fold: p.fold, same: p.same, distance: euclideanDistance(a.embedding, b.embedding) };
  });
  const masks = analyzer.occlusion;
  // Each pair is scored once in its occlusion-aware space; the verification and the fusion scores share it.
  const maskedScores = masks ? pairsFile.pairs.map((p) => maskedScore(masks, ...pairOf(p))) : undefined;
  const masked =
    masks && maskedScores
      ? maskedVerification(masks, pairsFile.pairs.map((p, i) => ({ fold: p.fold, same: p.same, probe: pairOf(p)[1], score: maskedScores[i] as number })))
      : undefined;
  const pairLog10Far = masks && maskedScores ? { plain: scored.map((p) => masks.log10Far(CLEAN_PATTERN, p.distance)), masked: maskedScores } : undefined;
  const seconds = (Date.now() - started) / 1000;
  const result: EvalResult = {
    pairsFile: options.pairsFile,
    imagesDir: options.imagesDir,
    probeImagesDir: options.probeImagesDir ?? null,
    probeAlignment: fromClean ? 'clean-original' : 'detected',
    model: analyzer.embedder.entry.name,
    template: analyzer.template.name,
    flipAverage: analyzer.embedder.options.flipAverage,
    images: files.length,
    noFace: {
      count: noFace.length,
      rate: noFace.length / Math.max(1, files.length),
      files: noFace,
      fallback: `centred square crop of ${FALLBACK_CROP} × the shorter side, resized to the chip`,
    },
    pairs: scored.length,
    report: kFoldVerification(scored),
    ...(masked ? { masked } : {}),
    ...(pairLog10Far ? { pairLog10Far } : {}),
    seconds,
    msPerImage: (seconds * 1000) / Math.max(1, files.length),
  };
  if (options.jsonOut) writeFileSync(options.jsonOut, `${JSON.stringify({ ...result, pairLog10Far: undefined }, null, 2)}\n`);
  return result;
}

/**
 * Verification with occlusion-aware matching: the probe (second face) predicts its pattern; an
 * occluded probe and its gallery face are compared under that pattern's mask and projection. Each
 * pair's score (maskedScore) is the log10 false-accept rate of its distance in its own space (calibrated at
 * build time), so pairs compared in different spaces share one threshold, as the agent's per-space
 * thresholds of equal FAR do.
 */
export function maskedVerification(
  masks: OcclusionDictionary,
  pairs: readonly { fold: number; same: boolean; probe: FaceEmbeddingResult; score: number }[],
): { report: VerificationReport; probePatterns: Record<string, number> } {
  const scored = pairs.map(({ fold, same, score }) => ({ fold, same, distance: score }));
  return { report: kFoldVerification(scored), probePatterns: countPatterns(masks, pairs.map((p) => p.probe)) };
}

/** Per dictionary and face: its oriented map, predicted pattern and masked embeddings, computed once (a face meets many others). */
interface MaskedEntry {
  oriented?: Float32Array;
  pattern: string;
  /** Matched in every space (the space ensemble). */
  ensemble: boolean;
  spaces: Map<string, Float32Array>;
}
const maskedCache = new WeakMap<OcclusionDictionary, WeakMap<FaceEmbeddingResult, MaskedEntry>>();

function cached(masks: OcclusionDictionary, face: FaceEmbeddingResult): MaskedEntry {
  let perFace = maskedCache.get(masks);
  if (!perFace) maskedCache.set(masks, (perFace = new WeakMap()));
  let entry = perFace.get(face);
  if (!entry) {
    // The classifier reads the chip's maps; the masks the representation they were fitted on (with views, the wide one).
    const seen = masks.representation(face);
    const oriented = seen?.features && face.features ? masks.orient(seen.features, seen.mirrorFeatures) : undefined;
    const prediction = oriented && face.features ? masks.predictOriented(seen === face ? oriented : masks.orient(face.features, face.mirrorFeatures)) : undefined;
    entry = { ...(oriented ? { oriented } : {}), pattern: prediction?.pattern ?? CLEAN_PATTERN, ensemble: prediction ? masks.usesEnsemble(prediction) : false, spaces: new Map() };
    perFace.set(face, entry);
  }
  return entry;
}

/** The occlusion pattern predicted on a face (clean without feature maps). */
export function predictedPattern(masks: OcclusionDictionary, face: FaceEmbeddingResult): string {
  return cached(masks, face).pattern;
}

function maskedOf(masks: OcclusionDictionary, face: FaceEmbeddingResult, pattern: string): Float32Array | undefined {
  const entry = cached(masks, face);
  if (!entry.oriented) return undefined;
  let e = entry.spaces.get(pattern);
  if (!e) entry.spaces.set(pattern, (e = masks.maskedEmbeddingOriented(pattern, entry.oriented)));
  return e;
}

/**
 * log10 FAR of the pair as the agent scores it (OcclusionAwareMatcher): the distance in the space
 * the probe's predicted occlusion chooses (with the plain space's where its pattern pairs with it),
 * or — for a probe predicted clean without confidence,
 * when the dictionary has a space ensemble — the calibrated mean of the log10 FARs in every space.
 */
export function maskedScore(masks: OcclusionDictionary, gallery: FaceEmbeddingResult, probe: FaceEmbeddingResult): number {
  const plain = (): number => masks.log10Far(CLEAN_PATTERN, euclideanDistance(gallery.embedding, probe.embedding));
  // A probe not taken for confidently clean is compared plainly in the dictionary's plain space (with views, the wide one).
  const [g0, q0] = [masks.representation(gallery), masks.representation(probe)];
  const nonCleanPlain = (): number => (g0 && q0 ? masks.log10Far(masks.plainSpace, euclideanDistance(g0.embedding, q0.embedding)) : plain());
  if (cached(masks, probe).ensemble) {
    let sum = 0;
    let n = 0;
    for (const pattern of masks.patterns.keys()) {
      const g = maskedOf(masks, gallery, pattern);
      const q = maskedOf(masks, probe, pattern);
      if (!g || !q) continue;
      sum += masks.log10Far(pattern, euclideanDistance(g, q));
      n++;
    }
    return masks.ensembleLog10Far(nonCleanPlain(), sum, n);
  }
  const pattern = predictedPattern(masks, probe);
  const g = pattern === CLEAN_PATTERN ? undefined : maskedOf(masks, gallery, pattern);
  const q = pattern === CLEAN_PATTERN ? undefined : maskedOf(masks, probe, pattern);
  if (!g || !q) return plain();
  const far = masks.log10Far(pattern, euclideanDistance(g, q));
  return masks.pairsWithPlain(pattern) ? masks.pairedLog10Far(pattern, far, nonCleanPlain()) : far;
}

/** How many faces predict each pattern, and (`all spaces`) how many are matched by the space ensemble. */
export function countPatterns(masks: OcclusionDictionary, faces: readonly FaceEmbeddingResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const f of faces) {
    const { pattern, ensemble } = cached(masks, f);
    counts[pattern] = (counts[pattern] ?? 0) + 1;
    if (ensemble) counts[ALL_SPACES] = (counts[ALL_SPACES] ?? 0) + 1;
  }
  return counts;
}

/** The count of faces matched in every space (countPatterns). */
export const ALL_SPACES = 'all spaces';

export function formatEvalTable(r: EvalResult): string {
  const pct = (v: number): string => `${(v * 100).toFixed(2)}%`;
  const lines = [
    `model ${r.model}  template ${r.template}  flip-average ${r.flipAverage ? 'on' : 'off'}`,
    `pairs ${r.pairs}  images ${r.images}  no face detected ${r.noFace.count} (${pct(r.noFace.rate)}; ${r.noFace.fallback})`,
    '',
    '| fold | threshold | accuracy |',
    '|---:|---:|---:|',
    ...r.report.folds.map((f) => `| ${f.fold + 1} | ${f.threshold.toFixed(4)} | ${pct(f.accuracy)} |`),
    `| mean ± std | | ${pct(r.report.meanAccuracy)} ± ${pct(r.report.stdAccuracy)} |`,
    '',
    ...r.report.tarAtFar.map((t) => `TAR @ FAR ${t.far}: ${pct(t.tar)} (threshold ${t.threshold.toFixed(4)}, ${t.negatives} negative pairs)`),
    `threshold on all pairs: ${r.report.overallThreshold.toFixed(4)}`,
    ...(r.masked
      ? [
          '',
          `occlusion-aware matching (probe patterns: ${Object.entries(r.masked.probePatterns).map(([k, v]) => `${k} ${v}`).join(', ')}; each pair scored by the false-accept rate of its distance in its own space):`,
          `accuracy ${pct(r.masked.report.meanAccuracy)} ± ${pct(r.masked.report.stdAccuracy)}` +
            ` (plain ${pct(r.report.meanAccuracy)}); ${r.masked.report.tarAtFar.map((t) => `TAR @ FAR ${t.far}: ${pct(t.tar)}`).join(', ')}`,
        ]
      : []),
    `${r.seconds.toFixed(1)} s, ${r.msPerImage.toFixed(1)} ms per image`,
  ];
  return lines.join('\n');
}
