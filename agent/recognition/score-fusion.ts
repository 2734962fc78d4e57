// Score fusion of two embedders (e.g. dlib-resnet + mobilefacenet): each compares the face with
// every identity in its own space (plain, or the face's predicted occlusion pattern's), each
// distance becomes a log10 false-accept rate on that space's calibrated curve, and an identity's
// fused score is the mean of its two log10 FARs (the geometric mean of the FARs). The fused score
// is then mapped to the false-accept rate it really has, measured on calibration impostors
// (models/occlusion/build-fusion.ts), so one threshold — the primary embedder's match threshold,
// read as a false-accept rate — decides whether a face is that identity.
//
// Two networks trained on different data fail on different faces: on LFW the fusion reaches
// 99.4% clean and 95.5% with masks (models/README.md), where each alone stays below 95%.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelEntry } from '../inference/model-registry.js';
import type { FaceEmbeddingResult } from './embedder.js';
import type { Gallery } from './gallery.js';
import type { MatchThresholds } from './matcher.js';
import { type OcclusionDictionary, scoreLog10FarAt } from './occlusion-masks.js';
import { decideByLog10Far, type FaceMatcher, type FarMatch, log10ThresholdsOf, NameAlignment, type OcclusionAwareMatcher } from './occlusion-matcher.js';

export const FUSION_FORMAT = 'facegate-score-fusion/1';

export interface FusionCalibrationFile {
  format: typeof FUSION_FORMAT;
  /** The two embedders, primary first, each with the sha256 of its model file. */
  embedders: [{ name: string; sha256: string }, { name: string; sha256: string }];
  /** Fused scores (mean log10 FAR) of calibration impostor pairs at log10 FAR = from, from + step, … 0. */
  far: { log10From: number; log10Step: number; fused: number[] };
  provenance: Record<string, unknown>;
}

/** Where the calibration of a pair of embedders lives, relative to the models folder. */
export function fusionPath(primary: string, companion: string): string {
  return join('occlusion', `${primary}+${companion}.fusion.json`);
}

/** Embedders a calibrated fusion with `primary` exists for (files in models/occlusion), sorted by name. */
export function calibratedCompanions(modelsDir: string, primary: string): string[] {
  const dir = join(modelsDir, 'occlusion');
  if (!existsSync(dir)) return [];
  const prefix = `${primary}+`;
  const suffix = '.fusion.json';
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(suffix))
    .map((f) => f.slice(prefix.length, -suffix.length))
    .sort();
}

/**
 * The companion embedder `fuseWith` asks for: a model name, `none`, or `auto` (the first embedder a
 * calibrated fusion with `primary` exists for, none when there is none).
 */
export function resolveCompanion(modelsDir: string, primary: string, fuseWith: string | undefined): string | undefined {
  if (!fuseWith || fuseWith === 'none') return undefined;
  if (fuseWith !== 'auto') return fuseWith;
  return calibratedCompanions(modelsDir, primary)[0];
}

export const fusionCommand = (primary: string, companion: string): string => `npm run models:fusion -- --embedders ${primary},${companion}`;

export class ScoreFusion {
  private constructor(
    readonly calibration: FusionCalibrationFile,
    readonly source: string,
  ) {}

  /** Loads the calibration of `primary` + `companion`, checked against both model files' sha256. */
  static load(modelsDir: string, primary: Pick<ModelEntry, 'name' | 'sha256'>, companion: Pick<ModelEntry, 'name' | 'sha256'>): ScoreFusion {
    const file = join(modelsDir, fusionPath(primary.name, companion.name));
    const rebuild = `rebuild it: ${fusionCommand(primary.name, companion.name)}`;
    if (!existsSync(file)) throw new Error(`score fusion of ${primary.name} and ${companion.name} is not calibrated: ${file} not found (${rebuild})`);
    let cal: FusionCalibrationFile;
    try {
      cal = JSON.parse(readFileSync(file, 'utf8')) as FusionCalibrationFile;
    } catch (err) {
      throw new Error(`score fusion: ${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (cal.format !== FUSION_FORMAT) throw new Error(`score fusion: ${file} has format ${String(cal.format)}, expected ${FUSION_FORMAT}`);
    for (const [i, want] of [primary, companion].entries()) {
      const got = cal.embedders?.[i];
      if (got?.name !== want.name || got.sha256 !== want.sha256) {
        throw new Error(`score fusion: ${file} was calibrated for ${got?.name ?? '?'} (sha256 ${String(got?.sha256).slice(0, 12)}…), not ${want.name} (sha256 ${want.sha256.slice(0, 12)}…): ${rebuild}`);
      }
    }
    const curve = cal.far?.fused;
    if (!Array.isArray(curve) || curve.length < 2 || curve.some((v, k) => !Number.isFinite(v) || (k > 0 && v < (curve[k - 1] as number)))) {
      throw new Error(`score fusion: ${file} has no rising far.fused curve (${rebuild})`);
    }
    return new ScoreFusion(cal, file);
  }

  get primary(): string {
    return this.calibration.embedders[0].name;
  }

  get companion(): string {
    return this.calibration.embedders[1].name;
  }

  /** The log10 FAR a fused score (mean of two log10 FARs) has on calibration impostors. */
  calibratedLog10Far(fused: number): number {
    const { fused: curve, ...grid } = this.calibration.far;
    return scoreLog10FarAt(curve, grid, fused);
  }
}

/** One side of a fusion: an embedder's matcher and the FAR curves of its spaces. */
export interface FusionSide {
  matcher: OcclusionAwareMatcher;
  /** The embedder's dictionary, read for its false-accept curves (masking may be off). */
  curves: OcclusionDictionary;
}

/** A fused decision: the log10 FAR is the fused score's, calibrated. */
export type FusedMatch = FarMatch;

/**
 * 1:N search with two embedders fused. A face's `companion` result holds the second embedder's
 * embedding; a face without one (the companion failed or is paused) is matched by the primary alone.
 */
export class FusedMatcher implements FaceMatcher {
  private readonly alignment = new NameAlignment();
  /** Log10 FARs of the primary's match and unknown thresholds: the fused decision's thresholds. */
  readonly log10Thresholds: { match: number; unknown: number };

  constructor(
    readonly primary: FusionSide,
    readonly companion: FusionSide,
    readonly fusion: ScoreFusion,
    thresholds: MatchThresholds,
  ) {
    this.log10Thresholds = log10ThresholdsOf(primary.curves, thresholds);
  }

  get identities(): number {
    return this.primary.matcher.identities;
  }

  get size(): number {
    return this.primary.matcher.size;
  }

  identitiesWithoutPatterns(): number {
    return Math.max(this.primary.matcher.identitiesWithoutPatterns(), this.companion.matcher.identitiesWithoutPatterns());
  }

  /** Identities the primary knows that have no companion embedding (fused only once re-enrolled). */
  identitiesWithoutCompanion(): number {
    return Math.max(0, this.primary.matcher.identities - this.companion.matcher.identities);
  }

  reload(gallery: Pick<Gallery, 'version' | 'embeddingsFor'>, force = false): boolean {
    const changed = this.primary.matcher.reload(gallery, force);
    if (changed) this.companion.matcher.reload(gallery, true);
    return changed;
  }

  match(face: FaceEmbeddingResult): FusedMatch {
    const a = this.primary.matcher.scoreIdentities(face, this.primary.curves);
    const second = face.companion;
    const b = second ? this.companion.matcher.scoreIdentities(second, this.companion.curves) : undefined;
    const fused = Float64Array.from(a.log10Far);
    if (b) {
      const other = this.alignment.of(a.names, b.names);
      // An identity the companion has no embedding of is scored by the primary alone.
      for (let i = 0; i < fused.length; i++) {
        const j = other[i] as number;
        if (j >= 0) fused[i] = this.fusion.calibratedLog10Far(((a.log10Far[i] as number) + (b.log10Far[j] as number)) / 2);
      }
    }
    return decideByLog10Far(a.names, fused, a.distances, this.log10Thresholds, { ...(a.occlusion ? { occlusion: a.occlusion } : {}), masked: a.masked });
  }
}
