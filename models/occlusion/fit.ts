// Closed-form fitting of the occlusion mask dictionary (no training framework):
//   - labels: which pattern each calibration occlusion is (by occluder kind, or for rectangles,
//     hands and objects by the half of the chip they cover most);
//   - element mask: drop the fraction of feature elements whose value moves most (relative to their
//     spread over clean faces) between a clean face and the same face occluded (PDSN's criterion);
//   - projection: the embedder's own fc on the masked map, fused with a linear discriminant (LDA:
//     people as classes, the clean and the occluded face of each as its samples) that keeps what
//     separates people and drops what the occluder changes;
//   - classifier: least-squares one-vs-all on the standardised map, predicting the pattern.
// Linear algebra: ml-matrix (Cholesky, symmetric eigendecomposition) in Float64.
import { CholeskyDecomposition, EigenvalueDecomposition, Matrix } from 'ml-matrix';
import type { OccluderKind } from '../../agent/occlusion/occluders.js';
import { CLEAN_PATTERN, classifierOutputs, projectMasked, type ProjectionBlock } from '../../agent/recognition/occlusion-masks.js';
import { type CalibrationVariant, type OcclusionCalibration, variantKind } from './calibration.js';

export interface PatternSpec {
  name: string;
  regions: string[];
}

/** The dictionary's patterns. Sides are the subject's: the chip's left half is the person's right. */
export const PATTERNS: readonly PatternSpec[] = [
  { name: 'lower-face', regions: ['nose', 'mouth', 'chin'] },
  { name: 'eyes', regions: ['eyes'] },
  { name: 'upper-face', regions: ['forehead', 'eyes'] },
  { name: 'right-side', regions: ['right-eye', 'right-cheek'] },
  { name: 'left-side', regions: ['left-eye', 'left-cheek'] },
];

/** Occlusions covering less than this fraction of the chip are left out (nothing to learn from). */
const MIN_COVERAGE = 0.05;

/** The pattern of one calibration occlusion, from its kind and coverage (see calibration.ts). */
export function patternOf(kind: OccluderKind, coverage: ArrayLike<number>): string | undefined {
  if ((coverage[4] as number) < MIN_COVERAGE) return undefined;
  if (kind === 'mask' || kind === 'scarf') return 'lower-face';
  if (kind === 'sunglasses') return 'eyes';
  const halves = ['upper-face', 'lower-face', 'right-side', 'left-side'];
  let best = 0;
  for (let h = 1; h < 4; h++) if ((coverage[h] as number) > (coverage[best] as number)) best = h;
  return halves[best];
}

export interface Sample {
  face: number;
  kind: OccluderKind;
  /** The calibration chip: the kind's first draw or a later one. */
  variant: Exclude<CalibrationVariant, 'clean'>;
}

/** Calibration occlusions per pattern. */
export function samplesByPattern(cal: OcclusionCalibration): Map<string, Sample[]> {
  const out = new Map<string, Sample[]>(PATTERNS.map((p) => [p.name, []]));
  for (const [variant, coverage] of cal.coverage) {
    const kind = variantKind(variant);
    for (let face = 0; face < cal.files.length; face++) {
      const pattern = patternOf(kind, coverage.subarray(face * 5, face * 5 + 5));
      if (pattern) out.get(pattern)?.push({ face, kind, variant });
    }
  }
  return out;
}

function row(data: Float32Array, i: number, f: number): Float32Array {
  return data.subarray(i * f, (i + 1) * f);
}

/** PDSN's corruption score per element: mean |occluded − clean| / (spread over clean faces). */
export function corruptionScores(clean: Float32Array, occluded: readonly { clean: Float32Array; occluded: Float32Array }[], f: number): Float64Array {
  const n = clean.length / f;
  const mean = new Float64Array(f);
  const sq = new Float64Array(f);
  for (let i = 0; i < n; i++) {
    const r = row(clean, i, f);
    for (let j = 0; j < f; j++) {
      mean[j] = (mean[j] as number) + (r[j] as number);
      sq[j] = (sq[j] as number) + (r[j] as number) ** 2;
    }
  }
  const diff = new Float64Array(f);
  for (const o of occluded) for (let j = 0; j < f; j++) diff[j] = (diff[j] as number) + Math.abs((o.occluded[j] as number) - (o.clean[j] as number));
  const score = new Float64Array(f);
  for (let j = 0; j < f; j++) {
    const m = (mean[j] as number) / n;
    const sd = Math.sqrt(Math.max(0, (sq[j] as number) / n - m * m));
    score[j] = (diff[j] as number) / occluded.length / (sd + 1e-3);
  }
  return score;
}

/** A 0/1 mask dropping the `fraction` of elements with the highest scores. */
export function keepMask(scores: Float64Array, fraction: number): Float32Array {
  const order = [...scores.keys()].sort((a, b) => (scores[b] as number) - (scores[a] as number));
  const keep = new Float32Array(scores.length).fill(1);
  for (const j of order.slice(0, Math.round(fraction * scores.length))) keep[j] = 0;
  return keep;
}

/**
 * LDA with two samples per class (each person clean and occluded): within-class scatter from the
 * differences, regularised by `ridge` × its mean eigenvalue; whitened by Cholesky; the top `k`
 * eigenvectors of the whitened between-class scatter. Returns the mean and the F × k projection.
 */
export function fitDiscriminant(clean: Matrix, occluded: Matrix, ridge: number, k: number): { mean: Float64Array; projection: Matrix } {
  const m = clean.rows;
  const f = clean.columns;
  const all = Matrix.add(clean, occluded).div(2);
  const mean = all.mean('column');
  const diff = Matrix.sub(occluded, clean).div(Math.SQRT2);
  const within = diff.transpose().mmul(diff).div(m);
  const centred = all.clone().subRowVector(mean);
  const between = centred.transpose().mmul(centred).div(m);
  let trace = 0;
  for (let j = 0; j < f; j++) trace += within.get(j, j);
  for (let j = 0; j < f; j++) within.set(j, j, within.get(j, j) + (ridge * trace) / f);
  const chol = new CholeskyDecomposition(within);
  if (!chol.isPositiveDefinite()) throw new Error('occlusion masks: within-class scatter is not positive definite (too few calibration faces?)');
  // B = L⁻¹ S_b L⁻ᵀ; projection = L⁻ᵀ V_k.
  const lower = chol.lowerTriangularMatrix;
  const linv = solveLower(lower, Matrix.eye(f));
  const whitened = linv.mmul(between).mmul(linv.transpose());
  const eig = new EigenvalueDecomposition(whitened, { assumeSymmetric: true });
  const values = eig.realEigenvalues;
  const order = [...values.keys()].sort((a, b) => (values[b] as number) - (values[a] as number)).slice(0, k);
  const vectors = eig.eigenvectorMatrix;
  const top = new Matrix(f, k);
  order.forEach((col, c) => {
    for (let j = 0; j < f; j++) top.set(j, c, vectors.get(j, col));
  });
  return { mean: Float64Array.from(mean), projection: linv.transpose().mmul(top) };
}

/** Solves L X = B for lower-triangular L. */
function solveLower(l: Matrix, b: Matrix): Matrix {
  const n = l.rows;
  const x = b.clone();
  for (let c = 0; c < b.columns; c++) {
    for (let i = 0; i < n; i++) {
      let s = x.get(i, c);
      for (let j = 0; j < i; j++) s -= l.get(i, j) * x.get(j, c);
      x.set(i, c, s / l.get(i, i));
    }
  }
  return x;
}

export interface FittedPattern {
  name: string;
  regions: string[];
  kinds: string[];
  dropped: number;
  blocks: ProjectionBlock[];
  keep: Float32Array;
  mean: Float32Array;
  projection: Float32Array;
  samples: number;
}

export interface FitOptions {
  /** Element fractions to try for the mask (chosen on the validation faces). */
  dropFractions: readonly number[];
  /** Ridge of the within-class scatter (× its mean eigenvalue). */
  ridge: number;
  /** Discriminant dimensions. */
  ldaDims: number;
  /** Weight² of the embedder-fc block in the fused embedding (the LDA block gets 1 − this). */
  fcShare: number;
  /** The embedder's fc: [C × embedding] row-major, applied to the spatial mean of the map; omitted → LDA only. */
  fc?: { weight: Float32Array; channels: number; outputs: number };
}

/** The pattern's projection matrix ([F × dims]) and blocks, from the fc and the discriminant. */
function assemble(shape: readonly [number, number, number], lda: { mean: Float64Array; projection: Matrix }, options: FitOptions): Pick<FittedPattern, 'blocks' | 'mean' | 'projection'> {
  const f = shape[0] * shape[1] * shape[2];
  const k = lda.projection.columns;
  const fc = options.fc && options.fcShare > 0 ? plainProjection(shape, options.fc) : undefined;
  const fcOut = fc ? (fc.blocks[0] as ProjectionBlock).size : 0;
  const dims = fcOut + k;
  // Columns: the embedder's fc (when fused), then the discriminant.
  const projection = new Float32Array(f * dims);
  for (let j = 0; j < f; j++) {
    if (fc) projection.set(fc.projection.subarray(j * fcOut, (j + 1) * fcOut), j * dims);
    for (let o = 0; o < k; o++) projection[j * dims + fcOut + o] = lda.projection.get(j, o);
  }
  const blocks: ProjectionBlock[] = [];
  if (fc) blocks.push({ size: fcOut, weight: Math.sqrt(options.fcShare), centred: false, kind: 'embedder fc on the masked map' });
  blocks.push({ size: k, weight: Math.sqrt(fc ? 1 - options.fcShare : 1), centred: true, kind: 'linear discriminant (LDA) on the masked map' });
  return { blocks, mean: Float32Array.from(lda.mean), projection };
}

/** Rows × mask, as a matrix. */
function maskedMatrix(rows: readonly Float32Array[], keep: Float32Array): Matrix {
  const f = keep.length;
  const m = new Matrix(rows.length, f);
  rows.forEach((src, r) => {
    for (let j = 0; j < f; j++) m.set(r, j, (src[j] as number) * (keep[j] as number));
  });
  return m;
}

export interface Verification {
  /** Best-threshold accuracy of genuine (a face clean vs occluded) against as many impostors. */
  accuracy: number;
  /** Distance at which 1 in 1,000 impostor pairs is accepted. */
  thresholdFar1e3: number;
  /** Genuine pairs accepted at that threshold. */
  tarAtFar1e3: number;
  genuine: number;
  impostors: number;
}

/** The FAR grid of the calibration curves: log10 FAR from -5 to 0 in steps of 0.05. */
export const FAR_GRID = { log10From: -5, log10Step: 0.05 } as const;

/** Impostor distances (sorted ascending) at the FAR grid's points. */
export function farCurve(sortedImpostors: readonly number[]): number[] {
  const points = Math.round(-FAR_GRID.log10From / FAR_GRID.log10Step) + 1;
  const n = sortedImpostors.length;
  return Array.from({ length: points }, (_, k) => {
    const far = 10 ** (FAR_GRID.log10From + k * FAR_GRID.log10Step);
    return sortedImpostors[Math.min(n - 1, Math.max(0, Math.ceil(far * n) - 1))] as number;
  });
}

/** Sorted distances of every pair (i < j) of vectors: impostors when each vector is another person. */
export function pairwiseDistances(vectors: readonly Float32Array[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < vectors.length; i++) {
    for (let j = i + 1; j < vectors.length; j++) {
      const a = vectors[i] as Float32Array;
      const b = vectors[j] as Float32Array;
      let s = 0;
      for (let k = 0; k < a.length; k++) s += ((a[k] as number) - (b[k] as number)) ** 2;
      out.push(Math.sqrt(s));
    }
  }
  return out.sort((x, y) => x - y);
}

/** Distances of clean faces (gallery) against occluded ones (probes), each face against every other. */
export function verify(gallery: readonly Float32Array[], probes: readonly Float32Array[]): Verification & { far: number[] } {
  const genuine: number[] = [];
  const impostor: number[] = [];
  const dist = (a: Float32Array, b: Float32Array): number => {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += ((a[i] as number) - (b[i] as number)) ** 2;
    return Math.sqrt(s);
  };
  for (let i = 0; i < probes.length; i++) {
    for (let j = 0; j < gallery.length; j++) (i === j ? genuine : impostor).push(dist(gallery[j] as Float32Array, probes[i] as Float32Array));
  }
  impostor.sort((a, b) => a - b);
  const thresholdFar1e3 = impostor[Math.floor(impostor.length / 1000)] ?? 0;
  const tarAtFar1e3 = genuine.filter((d) => d < thresholdFar1e3).length / genuine.length;
  // Balanced accuracy at the best threshold (genuine vs impostors, equal weight).
  const points = [...genuine.map((d) => ({ d, g: true })), ...impostor.map((d) => ({ d, g: false }))].sort((a, b) => a.d - b.d);
  let g = 0;
  let im = 0;
  let best = 0.5;
  for (const p of points) {
    if (p.g) g++;
    else im++;
    best = Math.max(best, (g / genuine.length + (1 - im / impostor.length)) / 2);
  }
  return { accuracy: best, thresholdFar1e3, tarAtFar1e3, genuine: genuine.length, impostors: impostor.length, far: farCurve(impostor) };
}

export interface PatternFit {
  pattern: FittedPattern;
  /** Impostor distances of the chosen fit at the FAR grid's points. */
  far: number[];
  /** Validation figures per drop fraction tried, and for the plain embedding. */
  validation: { dropped: number; verification: Verification }[];
  plain: Verification;
}

/**
 * Fits one pattern on the training faces, choosing the drop fraction on the validation faces (other
 * people). `plainEmbed` gives the ordinary embedding of an oriented map, for the baseline figure.
 */
export function fitPattern(
  spec: PatternSpec,
  cal: OcclusionCalibration,
  samples: readonly Sample[],
  isValidation: (face: number) => boolean,
  options: FitOptions,
  log: (line: string) => void,
): PatternFit {
  const shape = cal.featureShape;
  const f = shape[0] * shape[1] * shape[2];
  const clean = cal.features.get('clean') as Float32Array;
  const train = samples.filter((s) => !isValidation(s.face));
  const val = samples.filter((s) => isValidation(s.face));
  if (train.length < 50 || val.length < 20) throw new Error(`pattern ${spec.name}: ${train.length} training and ${val.length} validation occlusions; need ≥ 50 and ≥ 20`);
  const occ = (s: Sample): Float32Array => row(cal.features.get(s.variant) as Float32Array, s.face, f);
  const scores = corruptionScores(clean, train.map((s) => ({ clean: row(clean, s.face, f), occluded: occ(s) })), f);
  // Validation probes: one occlusion per face (the first), against every validation face clean.
  const valByFace = new Map<number, Sample>();
  for (const s of val) if (!valByFace.has(s.face)) valByFace.set(s.face, s);
  const valSamples = [...valByFace.values()];
  const validation: PatternFit['validation'] = [];
  let best: { fitted: FittedPattern; accuracy: number; far: number[] } | undefined;
  for (const dropped of options.dropFractions) {
    const keep = keepMask(scores, dropped);
    const cleanM = maskedMatrix(train.map((s) => row(clean, s.face, f)), keep);
    const occM = maskedMatrix(train.map(occ), keep);
    const started = Date.now();
    const lda = fitDiscriminant(cleanM, occM, options.ridge, options.ldaDims);
    const fitted: FittedPattern = {
      name: spec.name,
      regions: spec.regions,
      kinds: [...new Set(samples.map((s) => s.kind))].sort(),
      dropped,
      keep,
      samples: train.length,
      ...assemble(shape, lda, options),
    };
    const g = valSamples.map((s) => projectMasked(fitted, row(clean, s.face, f)));
    const p = valSamples.map((s) => projectMasked(fitted, occ(s)));
    const { far, ...verification } = verify(g, p);
    validation.push({ dropped, verification });
    log(`  ${spec.name}: drop ${dropped}: validation accuracy ${(verification.accuracy * 100).toFixed(2)}%, TAR@FAR1e-3 ${(verification.tarAtFar1e3 * 100).toFixed(1)}% (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    if (!best || verification.accuracy > best.accuracy) best = { fitted, accuracy: verification.accuracy, far };
  }
  // Baseline: the ordinary embedding (all elements, fc only) on the same validation pairs.
  const plainPattern = options.fc
    ? { keep: new Float32Array(f).fill(1), mean: new Float32Array(f), ...plainProjection(shape, options.fc) }
    : undefined;
  const plainRun = plainPattern ? verify(valSamples.map((s) => projectMasked(plainPattern, row(clean, s.face, f))), valSamples.map((s) => projectMasked(plainPattern, occ(s)))) : undefined;
  const plain: Verification = plainRun
    ? { accuracy: plainRun.accuracy, thresholdFar1e3: plainRun.thresholdFar1e3, tarAtFar1e3: plainRun.tarAtFar1e3, genuine: plainRun.genuine, impostors: plainRun.impostors }
    : { accuracy: Number.NaN, thresholdFar1e3: Number.NaN, tarAtFar1e3: Number.NaN, genuine: 0, impostors: 0 };
  const chosen = best as { fitted: FittedPattern; far: number[] };
  return { pattern: chosen.fitted, far: chosen.far, validation, plain };
}

/** The embedder's own fc as a [F × outputs] projection of the map (its spatial mean folded in). */
export function plainProjection(shape: readonly [number, number, number], fc: NonNullable<FitOptions['fc']>): Pick<FittedPattern, 'blocks' | 'projection'> {
  const [, h, w] = shape;
  const f = shape[0] * h * w;
  const projection = new Float32Array(f * fc.outputs);
  for (let j = 0; j < f; j++) {
    const ch = Math.floor(j / (h * w));
    for (let o = 0; o < fc.outputs; o++) projection[j * fc.outputs + o] = (fc.weight[ch * fc.outputs + o] as number) / (h * w);
  }
  return { blocks: [{ size: fc.outputs, weight: 1, centred: false, kind: 'embedder fc' }], projection };
}

export interface FittedClassifier {
  classes: string[];
  mean: Float32Array;
  scale: Float32Array;
  /** [(F + 1) × classes], the last row the bias. */
  weights: Float32Array;
  minScore: number;
  /** Validation: share of each variant predicted as its pattern (clean: predicted clean). */
  accuracy: Record<string, number>;
}

/**
 * Least-squares one-vs-all classifier (ridge `lambda`) on standardised maps: clean faces and every
 * labelled occlusion of the training faces. `minScore` is set so that at most `cleanFalseRate` of
 * the validation clean faces are taken for occluded.
 */
export function fitClassifier(cal: OcclusionCalibration, byPattern: ReadonlyMap<string, readonly Sample[]>, isValidation: (face: number) => boolean, lambda: number, cleanFalseRate: number): FittedClassifier {
  const shape = cal.featureShape;
  const f = shape[0] * shape[1] * shape[2];
  const classes = [CLEAN_PATTERN, ...PATTERNS.map((p) => p.name)];
  const clean = cal.features.get('clean') as Float32Array;
  type Item = { x: Float32Array; label: number; variant: string; face: number };
  const items: Item[] = [];
  for (let face = 0; face < cal.files.length; face++) items.push({ x: row(clean, face, f), label: 0, variant: CLEAN_PATTERN, face });
  for (const [pattern, samples] of byPattern) {
    const label = classes.indexOf(pattern);
    for (const s of samples) items.push({ x: row(cal.features.get(s.variant) as Float32Array, s.face, f), label, variant: s.kind, face: s.face });
  }
  const train = items.filter((it) => !isValidation(it.face));
  const val = items.filter((it) => isValidation(it.face));
  const mean = new Float64Array(f);
  const sq = new Float64Array(f);
  for (const it of train) for (let j = 0; j < f; j++) {
    mean[j] = (mean[j] as number) + (it.x[j] as number);
    sq[j] = (sq[j] as number) + (it.x[j] as number) ** 2;
  }
  const scale = new Float32Array(f);
  for (let j = 0; j < f; j++) {
    mean[j] = (mean[j] as number) / train.length;
    scale[j] = 1 / (Math.sqrt(Math.max(0, (sq[j] as number) / train.length - (mean[j] as number) ** 2)) + 1e-3);
  }
  const z = new Matrix(train.length, f + 1);
  const t = new Matrix(train.length, classes.length);
  train.forEach((it, r) => {
    for (let j = 0; j < f; j++) z.set(r, j, ((it.x[j] as number) - (mean[j] as number)) * (scale[j] as number));
    z.set(r, f, 1);
    t.set(r, it.label, 1);
  });
  const gram = z.transpose().mmul(z);
  for (let j = 0; j < f; j++) gram.set(j, j, gram.get(j, j) + lambda);
  const w = new CholeskyDecomposition(gram).solve(z.transpose().mmul(t));
  const weights = new Float32Array((f + 1) * classes.length);
  for (let j = 0; j <= f; j++) for (let k = 0; k < classes.length; k++) weights[j * classes.length + k] = w.get(j, k);
  const mean32 = Float32Array.from(mean);
  const outputs = val.map((it) => classifierOutputs(it.x, mean32, scale, weights, classes.length));
  const argmax = (o: Float64Array): number => o.reduce((b, v, k) => (v > (o[b] as number) ? k : b), 0);
  // The clean validation faces' best non-clean output, where it beats clean: the threshold that
  // keeps the false occlusion rate at cleanFalseRate.
  const cleanRisk = val
    .map((it, i) => ({ it, o: outputs[i] as Float64Array }))
    .filter(({ it }) => it.label === 0)
    .map(({ o }) => (argmax(o) === 0 ? Number.NEGATIVE_INFINITY : Math.min(1, Math.max(0, o[argmax(o)] as number))))
    .sort((a, b) => b - a);
  const allowed = Math.floor(cleanRisk.length * cleanFalseRate);
  const minScore = Math.max(0, (cleanRisk[allowed] ?? 0) + 1e-6);
  const hits = new Map<string, { ok: number; n: number }>();
  val.forEach((it, i) => {
    const o = outputs[i] as Float64Array;
    const k = argmax(o);
    const predicted = k !== 0 && Math.min(1, Math.max(0, o[k] as number)) >= minScore ? k : 0;
    const h = hits.get(it.variant) ?? { ok: 0, n: 0 };
    h.n++;
    if (predicted === it.label) h.ok++;
    hits.set(it.variant, h);
  });
  const accuracy = Object.fromEntries([...hits].map(([v, h]) => [v, h.ok / h.n]));
  return { classes, mean: mean32, scale, weights, minScore, accuracy };
}
