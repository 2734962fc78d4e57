// The occlusion mask dictionary of one embedder variant (PDSN's idea, solved in closed form by
// models/occlusion/build-dictionary.ts): for each occlusion pattern, a 0/1 mask over the elements
// of the embedder's last feature map (dropping those the pattern corrupts most) and a linear
// projection of the masked map (discriminant analysis on clean/occluded calibration pairs) into a
// space where the same person with and without the occlusion lie close. A linear classifier on the
// feature map predicts the pattern from the face itself.
//
// Files: `<name>.json` (header: embedder name and sha256, feature shape, patterns, thresholds,
// offsets into the blob) and `<name>.bin` (little-endian float32 blob).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelEntry } from '../inference/model-registry.js';
import type { FaceEmbeddingResult, WideEmbedding } from './embedder.js';
import type { MatchThresholds } from './matcher.js';

export const CLEAN_PATTERN = 'clean';
/**
 * The plain space of the wide representation (FaceEmbeddingResult.wide: chip and zoomed-out views
 * averaged), for embedders with `chip.views`: a face not taken for confidently clean is compared
 * there, and its pattern spaces read its wide maps. Gallery embeddings are stored under
 * patternModel(model, WIDE_SPACE).
 */
export const WIDE_SPACE = 'wide';

/**
 * One part of a pattern's embedding: `size` outputs of the projection, centred on the pattern's
 * mean first or not, L2-normalised, then scaled by `weight` (the weights' squares sum to 1, so the
 * whole embedding has unit length and a squared distance is the weighted sum of the parts').
 */
export interface ProjectionBlock {
  size: number;
  weight: number;
  centred: boolean;
  /** What the block is, e.g. "embedder fc on the masked map" or "discriminant (LDA)". */
  kind: string;
}

export interface OcclusionPatternHeader {
  /** Pattern name, e.g. `lower-face`, `eyes`. */
  name: string;
  /** Face regions the pattern covers (for events and logs). */
  regions: string[];
  /** Occluder kinds it was calibrated on. */
  kinds: string[];
  /** Fraction of feature elements the mask drops. */
  dropped: number;
  blocks: ProjectionBlock[];
  /** Impostor distances in this pattern's space at the FAR grid's points (see OcclusionDictionaryHeader.far). */
  far: number[];
  /** Float offsets into the blob: keep mask [F], mean [F], projection [F × Σ block sizes]. */
  offsets: { keep: number; mean: number; projection: number };
}

export interface OcclusionDictionaryHeader {
  format: 'facegate-occlusion-masks/1';
  /** `views`: the zoomed-out views the embedder averaged in when the masks were fitted (manifest `chip.views`). */
  embedder: { name: string; sha256: string; views?: number[] };
  /** Shape of the `features` output the masks act on: [C, H, W]. */
  featureShape: [number, number, number];
  patterns: OcclusionPatternHeader[];
  /** Linear pattern classifier on standardised features: offsets of mean [F], scale [F], weights [(F + 1) × P]. */
  classifier: { classes: string[]; offsets: { mean: number; scale: number; weights: number }; minScore: number };
  /**
   * False-accept calibration: distances of impostor pairs (calibration faces of different people) at
   * log10 FAR = from, from + step, … (up to 0), in the plain space and (per pattern) in each pattern's
   * space. Distances of different spaces are compared through their FAR, and a pattern's thresholds
   * are those with the same FAR as the plain thresholds.
   */
  far: {
    log10From: number;
    log10Step: number;
    /** The plain space: the chip's own embeddings. */
    plain: number[];
    /** WIDE_SPACE: the wide embeddings (only for embedders with views, whose maps the masks were fitted on). */
    wide?: number[];
  };
  /** Matching in every space at once for faces predicted clean without confidence (see SpaceEnsembleHeader); absent in older files. */
  ensemble?: SpaceEnsembleHeader;
  /** Floats in the blob. */
  floats: number;
  /** How it was built (command, calibration set, validation figures). */
  provenance: Record<string, unknown>;
}

/**
 * The space ensemble. The classifier misses many occlusions it was not calibrated on (a rectangle
 * or a hand over one side of the face, say) and takes them for clean, with little confidence. A
 * face predicted clean is therefore compared in the plain space only when the classifier is
 * confident (its clean output at least `cleanMinScore`); a face it is unsure of is compared in every
 * space (plain and each pattern's), and its score against an identity is the mean of the log10
 * FARs of those comparisons, mapped to the FAR that mean really has on calibration impostors. A face
 * predicted occluded is not averaged over every space — the spaces its occluder corrupts would cost
 * it at the agent's low false-accept threshold (measured: Mask-LFW at the agent's threshold fell 4 to
 * 6 points when every occluded face took the ensemble) — but over its pattern's and the plain
 * space (`withPlain`).
 */
export interface SpaceEnsembleHeader {
  /** A face takes the plain path only when the classifier's clean output is at least this. */
  cleanMinScore: number;
  /** Mean log10 FARs of impostor pairs at the FAR grid's points (see OcclusionDictionaryHeader.far). */
  far: number[];
  /**
   * The most (in log10) the ensemble may lower a comparison's false-accept rate below the plain
   * space's: a rail for faces unlike the calibration faces (a blurred face in a crowd), which the
   * classifier is unsure of for want of resemblance, not for an occlusion.
   */
  maxGain: number;
  /**
   * Weight of the plain space's log10 FAR in the mean (the pattern spaces share the rest equally);
   * absent in older files: every space weighs the same.
   */
  plainWeight?: number;
  /**
   * A face predicted occluded is scored in its pattern's space *and* the plain space: the weighted
   * mean of its two log10 FARs, mapped through that mean's own impostor curve for the pattern. The
   * pattern's mask and projection discard what the occluder corrupts; the plain embedding keeps
   * what they discard with it, and hedges a wrong prediction. Patterns without a curve (too few
   * calibration faces predicted them) keep their own space alone. Absent in older files.
   */
  withPlain?: PlainPairing;
  /** How it was calibrated. */
  provenance: Record<string, unknown>;
}

export interface PlainPairing {
  /** Weight of the plain space's log10 FAR in the mean (the pattern's has 1 − weight). */
  weight: number;
  /** Per pattern: weighted-mean log10 FARs of impostor pairs at the FAR grid's points. */
  far: Record<string, number[]>;
}

/** The pairing's uncalibrated score (PlainPairing): the weighted mean of a comparison's log10 FARs in its pattern's and the plain space. */
export function pairedMean(plainWeight: number, patternLog10Far: number, plainLog10Far: number): number {
  return (1 - plainWeight) * patternLog10Far + plainWeight * plainLog10Far;
}

/**
 * The space ensemble's uncalibrated score (SpaceEnsembleHeader): `plainWeight` × the plain space's
 * log10 FAR + the rest shared equally by the pattern spaces compared; without a weight (older
 * files) every space weighs the same.
 */
export function ensembleMean(plainWeight: number | undefined, plainLog10Far: number, patternSum: number, patternCount: number): number {
  if (patternCount === 0) return plainLog10Far;
  if (plainWeight === undefined) return (plainLog10Far + patternSum) / (patternCount + 1);
  return plainWeight * plainLog10Far + ((1 - plainWeight) * patternSum) / patternCount;
}

/** log10 FAR of a distance on a calibrated curve (linear between grid points; below the grid it keeps falling, so order is kept). */
export function log10FarAt(curve: readonly number[], grid: { log10From: number; log10Step: number }, distance: number): number {
  const first = curve[0] as number;
  if (distance <= first) return grid.log10From - (first - distance) / Math.max(first, 1e-9);
  for (let k = 1; k < curve.length; k++) {
    const hi = curve[k] as number;
    if (distance <= hi) {
      const lo = curve[k - 1] as number;
      const t = hi > lo ? (distance - lo) / (hi - lo) : 1;
      return grid.log10From + (k - 1 + t) * grid.log10Step;
    }
  }
  return 0;
}

/**
 * log10 FAR of a score that is itself a mean of log10 FARs (space ensemble, score fusion), on the
 * curve of such scores: like log10FarAt, but below the curve's first point the score keeps its own
 * scale, both being log10 FARs.
 */
export function scoreLog10FarAt(curve: readonly number[], grid: { log10From: number; log10Step: number }, score: number): number {
  const first = curve[0] as number;
  return score <= first ? grid.log10From - (first - score) : log10FarAt(curve, grid, score);
}

/** The distance at a log10 FAR on a calibrated curve (the inverse of log10FarAt on the grid). */
export function distanceAtLog10Far(curve: readonly number[], grid: { log10From: number; log10Step: number }, log10Far: number): number {
  const x = (log10Far - grid.log10From) / grid.log10Step;
  if (x <= 0) return curve[0] as number;
  if (x >= curve.length - 1) return curve[curve.length - 1] as number;
  const k = Math.floor(x);
  const t = x - k;
  return (curve[k] as number) * (1 - t) + (curve[k + 1] as number) * t;
}

export interface OcclusionPattern extends Omit<OcclusionPatternHeader, 'offsets'> {
  keep: Float32Array;
  mean: Float32Array;
  projection: Float32Array;
}

export interface OcclusionPrediction {
  pattern: string;
  regions: string[];
  /** Classifier confidence of the pattern, 0..1 (softmax over the patterns). */
  score: number;
}

/** Horizontal mirror of a [C, H, W] map (the mirror image's map back in the chip's orientation). */
export function mirrorMap(map: Float32Array, [c, h, w]: readonly [number, number, number]): Float32Array {
  const out = new Float32Array(map.length);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      const row = (ch * h + y) * w;
      for (let x = 0; x < w; x++) out[row + x] = map[row + (w - 1 - x)] as number;
    }
  }
  return out;
}

/** What a dictionary is checked against: the embedder's name, model file and views. */
export type DictionaryEmbedder = { name: string; sha256: string; chip?: { views?: number[] } };

/** The map in the chip's orientation: (own + the mirror image's map mirrored back) / 2, as the agent computes it. */
export function orientedFeatures(features: Float32Array, mirrorFeatures: Float32Array | undefined, shape: readonly [number, number, number]): Float32Array {
  if (!mirrorFeatures) return features;
  const back = mirrorMap(mirrorFeatures, shape);
  for (let i = 0; i < back.length; i++) back[i] = ((features[i] as number) + (back[i] as number)) / 2;
  return back;
}

export class OcclusionDictionary {
  readonly patterns: ReadonlyMap<string, OcclusionPattern>;
  private readonly featureCount: number;

  private constructor(
    readonly header: OcclusionDictionaryHeader,
    private readonly blob: Float32Array,
    readonly source: string,
  ) {
    const [c, h, w] = header.featureShape;
    this.featureCount = c * h * w;
    const f = this.featureCount;
    const slice = (offset: number, length: number, what: string): Float32Array => {
      if (!(offset >= 0 && offset + length <= blob.length)) throw new Error(`${source}: ${what} lies outside the blob (${offset}+${length} > ${blob.length})`);
      return blob.subarray(offset, offset + length);
    };
    const patterns = new Map<string, OcclusionPattern>();
    for (const p of header.patterns) {
      const { offsets, ...rest } = p;
      patterns.set(p.name, {
        ...rest,
        keep: slice(offsets.keep, f, `pattern ${p.name} keep mask`),
        mean: slice(offsets.mean, f, `pattern ${p.name} mean`),
        projection: slice(offsets.projection, f * p.blocks.reduce((n, b) => n + b.size, 0), `pattern ${p.name} projection`),
      });
    }
    for (const name of header.classifier.classes) {
      if (name !== CLEAN_PATTERN && !patterns.has(name)) throw new Error(`${source}: classifier class "${name}" has no pattern`);
    }
    this.patterns = patterns;
    const rising = (curve: readonly number[] | undefined, what: string): void => {
      if (curve && (curve.length < 2 || curve.some((v, k) => !Number.isFinite(v) || (k > 0 && v < (curve[k - 1] as number))))) throw new Error(`${source}: ${what} is not a rising curve`);
    };
    if (header.ensemble && !(header.ensemble.maxGain >= 0)) throw new Error(`${source}: ensemble.maxGain must be a number ≥ 0`);
    const weight = header.ensemble?.plainWeight;
    if (weight !== undefined && !(weight >= 0 && weight <= 1)) throw new Error(`${source}: ensemble.plainWeight must lie in [0, 1]`);
    rising(header.far.wide, 'far.wide');
    rising(header.ensemble?.far, 'ensemble.far');
    const pairing = header.ensemble?.withPlain;
    if (pairing) {
      if (!(pairing.weight > 0 && pairing.weight < 1)) throw new Error(`${source}: ensemble.withPlain.weight must lie in (0, 1)`);
      for (const [name, curve] of Object.entries(pairing.far)) {
        if (!patterns.has(name)) throw new Error(`${source}: ensemble.withPlain.far names no pattern "${name}"`);
        rising(curve, `ensemble.withPlain.far["${name}"]`);
      }
    }
    const { offsets, classes } = header.classifier;
    slice(offsets.weights, (f + 1) * classes.length, 'classifier weights');
  }

  /**
   * Loads `<path>.json` + `<path>.bin` and checks they belong to the embedder `embedder` (name and
   * sha256 of its model file): masks of another variant would silently drop the wrong elements.
   */
  static load(path: string, embedder: DictionaryEmbedder): OcclusionDictionary {
    const headerFile = `${path}.json`;
    const blobFile = `${path}.bin`;
    for (const f of [headerFile, blobFile]) if (!existsSync(f)) throw new Error(`occlusion masks: ${f} not found`);
    return OcclusionDictionary.fromFiles(headerFile, readFileSync(headerFile), blobFile, readFileSync(blobFile), embedder);
  }

  private static fromFiles(headerFile: string, headerBytes: Buffer, blobFile: string, bytes: Buffer, embedder: DictionaryEmbedder): OcclusionDictionary {
    let header: OcclusionDictionaryHeader;
    try {
      header = JSON.parse(headerBytes.toString('utf8')) as OcclusionDictionaryHeader;
    } catch (err) {
      throw new Error(`occlusion masks: ${headerFile} is not valid JSON: ${(err as Error).message}`);
    }
    if (header.format !== 'facegate-occlusion-masks/1') throw new Error(`occlusion masks: ${headerFile} has format ${String(header.format)}, expected facegate-occlusion-masks/1`);
    if (header.embedder.name !== embedder.name || header.embedder.sha256 !== embedder.sha256) {
      throw new Error(
        `occlusion masks ${headerFile} belong to embedder ${header.embedder.name} (sha256 ${header.embedder.sha256.slice(0, 12)}…), ` +
          `not to ${embedder.name} (sha256 ${embedder.sha256.slice(0, 12)}…): rebuild them for this variant (npm run models:occlusion -- --model ${embedder.name})`,
      );
    }
    const [built, now] = [header.embedder.views ?? [], embedder.chip?.views ?? []];
    if (built.join() !== now.join()) {
      throw new Error(`occlusion masks ${headerFile} were fitted on ${embedder.name} averaging views [${built.join(', ')}], and its manifest entry now averages [${now.join(', ')}]: rebuild them (npm run models:occlusion -- --model ${embedder.name})`);
    }
    if (bytes.length !== header.floats * 4) throw new Error(`occlusion masks: ${blobFile} has ${bytes.length} bytes, header says ${header.floats} floats`);
    const blob = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    return new OcclusionDictionary(header, blob, headerFile);
  }

  /**
   * The dictionary registered with an embedder's manifest entry (undefined when it has none);
   * files are checked against the manifest's checksums.
   */
  static forEmbedder(modelsDir: string, entry: ModelEntry): OcclusionDictionary | undefined {
    const info = entry.occlusion;
    if (!info) return undefined;
    const path = join(modelsDir, info.path);
    const read = (ext: 'json' | 'bin', want: string): Buffer => {
      const file = `${path}.${ext}`;
      if (!existsSync(file)) throw new Error(`occlusion masks of ${entry.name}: ${file} not found (rebuild: ${info.command})`);
      const bytes = readFileSync(file);
      if (createHash('sha256').update(bytes).digest('hex') !== want) throw new Error(`occlusion masks of ${entry.name}: sha256 of ${file} differs from models/manifest.json (rebuild: ${info.command})`);
      return bytes;
    };
    return OcclusionDictionary.fromFiles(`${path}.json`, read('json', info.sha256.json), `${path}.bin`, read('bin', info.sha256.bin), entry);
  }

  /** The embedder variant the masks belong to. */
  get embedderName(): string {
    return this.header.embedder.name;
  }

  get featureShape(): readonly [number, number, number] {
    return this.header.featureShape;
  }

  private checkFeatures(features: Float32Array, what: string): void {
    if (features.length !== this.featureCount) {
      throw new Error(`occlusion masks: ${what} has ${features.length} values, the masks expect ${this.featureShape.join('×')} = ${this.featureCount}`);
    }
  }

  /**
   * The map the masks and the classifier read: the chip's own, averaged with the mirror image's map
   * mirrored back. Compute it once per face and pass it to predictOriented / maskedEmbeddingOriented.
   */
  orient(features: Float32Array, mirrorFeatures?: Float32Array): Float32Array {
    this.checkFeatures(features, 'feature map');
    if (mirrorFeatures) this.checkFeatures(mirrorFeatures, 'mirror feature map');
    return orientedFeatures(features, mirrorFeatures, this.featureShape);
  }

  /**
   * The space a face not taken for confidently clean is compared in plainly (its own embedding, or
   * with views its wide one): WIDE_SPACE when the masks were fitted on wide maps, else `clean`.
   */
  get plainSpace(): string {
    return this.header.far.wide ? WIDE_SPACE : CLEAN_PATTERN;
  }

  /**
   * The representation of a face the masks read (its wide one when they were fitted on wide maps);
   * undefined when the face lacks it (embedded without views), which then takes the plain path.
   * The classifier always reads the chip's own maps (`features`): whether a face is clean is
   * decided as without views, and a view running off the frame's edge cannot make it look occluded.
   */
  representation(face: FaceEmbeddingResult): WideEmbedding | undefined {
    return this.header.far.wide ? face.wide : face;
  }

  /**
   * Whether matching reads the face's wide representation: the masks were fitted on wide maps and
   * the classifier (on the chip's maps) does not take the face for confidently clean.
   */
  readsWide(face: FaceEmbeddingResult): boolean {
    if (!this.header.far.wide || !face.features || face.model !== this.embedderName) return false;
    return !this.takenForClean(this.predict(face.features, face.mirrorFeatures));
  }

  /** Whether a face with this prediction is confidently clean: matched by its chip's plain embedding alone. */
  takenForClean(prediction: OcclusionPrediction): boolean {
    return prediction.pattern === CLEAN_PATTERN && !this.usesEnsemble(prediction);
  }

  /** log10 FAR of a distance in a space: `clean` (the plain embeddings), `wide` or a pattern's. */
  log10Far(space: string, distance: number): number {
    const grid = this.header.far;
    if (space === CLEAN_PATTERN) return log10FarAt(grid.plain, grid, distance);
    if (space === WIDE_SPACE) {
      if (!grid.wide) throw new Error(`occlusion masks ${this.source}: no wide space (the masks were fitted without views)`);
      return log10FarAt(grid.wide, grid, distance);
    }
    const p = this.patterns.get(space);
    if (!p) throw new Error(`occlusion masks: no pattern "${space}"`);
    return log10FarAt(p.far, grid, distance);
  }

  /** Whether faces predicted clean without confidence are matched in every space (an ensemble calibration exists). */
  get hasEnsemble(): boolean {
    return this.header.ensemble !== undefined;
  }

  /** Whether a face with this prediction is matched in every space: predicted clean, but not confidently. */
  usesEnsemble(prediction: OcclusionPrediction): boolean {
    const e = this.header.ensemble;
    return e !== undefined && prediction.pattern === CLEAN_PATTERN && prediction.score < e.cleanMinScore;
  }

  /**
   * The ensemble's log10 FAR of a comparison, from its log10 FAR in plainSpace and the sum and count
   * of its log10 FARs in the pattern spaces: their weighted mean (ensembleMean) on the ensemble's
   * calibration, kept within maxGain of the plain space's.
   */
  ensembleLog10Far(plainLog10Far: number, patternSum: number, patternCount: number): number {
    const e = this.header.ensemble;
    if (!e) throw new Error(`occlusion masks ${this.source}: no space-ensemble calibration`);
    const mean = ensembleMean(e.plainWeight, plainLog10Far, patternSum, patternCount);
    return Math.max(scoreLog10FarAt(e.far, this.header.far, mean), plainLog10Far - e.maxGain);
  }

  /** Whether a face predicted with `pattern` is scored in that pattern's space and the plain space together (withPlain). */
  pairsWithPlain(pattern: string): boolean {
    return this.header.ensemble?.withPlain?.far[pattern] !== undefined;
  }

  /**
   * The log10 FAR of a comparison of a face predicted with `pattern` (pairsWithPlain), from its
   * log10 FARs in the pattern's space and in the plain space: their weighted mean on its calibration.
   */
  pairedLog10Far(pattern: string, patternLog10Far: number, plainLog10Far: number): number {
    const pairing = this.header.ensemble?.withPlain;
    const curve = pairing?.far[pattern];
    if (!pairing || !curve) throw new Error(`occlusion masks ${this.source}: pattern "${pattern}" has no calibration with the plain space`);
    return scoreLog10FarAt(curve, this.header.far, pairedMean(pairing.weight, patternLog10Far, plainLog10Far));
  }

  /** A pattern's thresholds with the same false-accept rates as the plain thresholds `plain`. */
  thresholdsIn(pattern: string, plain: MatchThresholds): MatchThresholds {
    const p = this.patterns.get(pattern);
    if (!p) throw new Error(`occlusion masks: no pattern "${pattern}"`);
    const grid = this.header.far;
    const at = (d: number): number => distanceAtLog10Far(p.far, grid, log10FarAt(grid.plain, grid, d));
    const match = at(plain.match);
    return { match, unknown: Math.max(match, at(plain.unknown)) };
  }

  /** Which occlusion pattern the face shows, from its feature map (a linear least-squares classifier). */
  predict(features: Float32Array, mirrorFeatures?: Float32Array): OcclusionPrediction {
    return this.predictOriented(this.orient(features, mirrorFeatures));
  }

  /** predict() on a map from orient(). */
  predictOriented(x: Float32Array): OcclusionPrediction {
    this.checkFeatures(x, 'oriented feature map');
    const { classes, offsets, minScore } = this.header.classifier;
    const f = this.featureCount;
    const scores = classifierOutputs(
      x,
      this.blob.subarray(offsets.mean, offsets.mean + f),
      this.blob.subarray(offsets.scale, offsets.scale + f),
      this.blob.subarray(offsets.weights, offsets.weights + (f + 1) * classes.length),
      classes.length,
    );
    let best = 0;
    for (let k = 1; k < classes.length; k++) if ((scores[k] as number) > (scores[best] as number)) best = k;
    const score = Math.min(1, Math.max(0, scores[best] as number));
    const name = classes[best] as string;
    const pattern = name === CLEAN_PATTERN || score < minScore ? undefined : this.patterns.get(name);
    if (pattern) return { pattern: pattern.name, regions: pattern.regions, score };
    const clean = classes.indexOf(CLEAN_PATTERN);
    return { pattern: CLEAN_PATTERN, regions: [], score: clean >= 0 ? Math.min(1, Math.max(0, scores[clean] as number)) : 1 - score };
  }

  /** The face's embedding in `pattern`'s space (unit length); compare it with gallery embeddings made the same way. */
  maskedEmbedding(pattern: string, features: Float32Array, mirrorFeatures?: Float32Array): Float32Array {
    return this.maskedEmbeddingOriented(pattern, this.orient(features, mirrorFeatures));
  }

  /** maskedEmbedding() on a map from orient(). */
  maskedEmbeddingOriented(pattern: string, x: Float32Array): Float32Array {
    const p = this.patterns.get(pattern);
    if (!p) throw new Error(`occlusion masks: no pattern "${pattern}" (have ${[...this.patterns.keys()].join(', ')})`);
    this.checkFeatures(x, 'oriented feature map');
    return projectMasked(p, x);
  }
}

/** Outputs of the linear classifier: standardise x, then [x, 1] · weights ([F + 1] × classes). */
export function classifierOutputs(x: ArrayLike<number>, mean: ArrayLike<number>, scale: ArrayLike<number>, weights: ArrayLike<number>, classes: number): Float64Array {
  const f = x.length;
  const out = new Float64Array(classes);
  for (let k = 0; k < classes; k++) out[k] = weights[f * classes + k] as number; // bias row
  for (let i = 0; i < f; i++) {
    const v = ((x[i] as number) - (mean[i] as number)) * (scale[i] as number);
    if (v === 0) continue;
    const row = i * classes;
    for (let k = 0; k < classes; k++) out[k] = (out[k] as number) + v * (weights[row + k] as number);
  }
  return out;
}

/** A pattern's embedding of an oriented feature map: mask, project block by block, normalise, weight. */
export function projectMasked(p: Pick<OcclusionPattern, 'keep' | 'mean' | 'projection' | 'blocks'>, oriented: ArrayLike<number>): Float32Array {
  const f = oriented.length;
  const dims = p.blocks.reduce((s, b) => s + b.size, 0);
  if (p.keep.length !== f || p.projection.length !== f * dims) throw new Error(`occlusion masks: a map of ${f} values does not fit a pattern of ${p.keep.length} elements × ${dims} outputs`);
  const masked = new Float64Array(f);
  for (let i = 0; i < f; i++) masked[i] = (oriented[i] as number) * (p.keep[i] as number);
  const out = new Float32Array(dims);
  let start = 0;
  for (const b of p.blocks) {
    // Each block reads the masked map itself, or centred on the pattern's mean: one pass per block.
    const acc = new Float64Array(b.size);
    for (let i = 0; i < f; i++) {
      const x = b.centred ? (masked[i] as number) - (p.mean[i] as number) : (masked[i] as number);
      if (x === 0) continue;
      const row = i * dims + start;
      for (let k = 0; k < b.size; k++) acc[k] = (acc[k] as number) + x * (p.projection[row + k] as number);
    }
    let norm = 0;
    for (let k = 0; k < b.size; k++) norm += (acc[k] as number) ** 2;
    const scale = b.weight / (Math.sqrt(norm) || 1);
    for (let k = 0; k < b.size; k++) out[start + k] = (acc[k] as number) * scale;
    start += b.size;
  }
  return out;
}
