// Occlusion-aware 1:N search: a face whose feature map shows an occlusion pattern (a mask,
// sunglasses, a hand…) is embedded with that pattern's mask and projection and compared with the
// gallery's embeddings made the same way (stored per pattern at enrollment, so the search stays a
// vector search); a clean face takes the ordinary path. Without a dictionary it is the plain matcher.
// For an embedder with zoomed-out views (`chip.views`), a face not taken for confidently clean is
// compared in its wide representation (chip and views averaged): the dictionary's maps and the
// plain term of the ensemble and pairing are wide, against the gallery's wide embeddings.
import { type Gallery, patternModel } from './gallery.js';
import type { FaceEmbeddingResult } from './embedder.js';
import { type MatchResult, type MatchThresholds, Matcher } from './matcher.js';
import { CLEAN_PATTERN, type OcclusionDictionary, type OcclusionPrediction, WIDE_SPACE } from './occlusion-masks.js';

/** The pattern that means "a face mask" for the event's `masked` flag. */
export const FACE_MASK_PATTERN = 'lower-face';

export interface OcclusionMatch extends MatchResult {
  /** The predicted occlusion (absent without a dictionary or without feature maps). */
  occlusion?: OcclusionPrediction;
  /** A face mask (or scarf) over the nose and mouth was detected. */
  masked: boolean;
}

/** The space a face is compared in, and its embedding there. */
export interface FacePlacement {
  /** `clean` (the plain embeddings) or the predicted pattern's name. */
  space: string;
  matcher: Matcher;
  query: Float32Array;
  occlusion?: OcclusionPrediction;
  masked: boolean;
  /**
   * The face is compared in every space (the space ensemble, occlusion-masks.ts): its oriented
   * feature map, from which each pattern's embedding is made. `space`/`matcher`/`query` are then
   * the plain space's.
   */
  ensemble?: { oriented: Float32Array };
  /**
   * The face's plain embedding (in the dictionary's plainSpace: with views, its wide one), when it
   * is predicted occluded and its pattern pairs with the plain space
   * (OcclusionDictionary.pairsWithPlain): it is scored in both.
   */
  withPlain?: Float32Array;
}

/** Every identity's score against one face, from one embedder. */
export interface IdentityScores {
  names: readonly string[];
  /** Distance in the space the face was placed in (the plain space for the ensemble): the reported match distance. */
  distances: Float64Array;
  /** The score: log10 false-accept rate. */
  log10Far: Float64Array;
  occlusion?: OcclusionPrediction;
  masked: boolean;
}

/** A decision made on log10 false-accept rates (the ensemble's and the fusion's). */
export interface FarMatch extends OcclusionMatch {
  /** Calibrated log10 false-accept rate of the identity (or of the nearest one). */
  log10Far: number;
}

/**
 * The identity with the lowest log10 FAR, accepted at or below `thresholds.match`, unknown at or
 * above `thresholds.unknown`; `distances` are reported with it.
 */
export function decideByLog10Far(
  names: readonly string[],
  log10Far: ArrayLike<number>,
  distances: ArrayLike<number>,
  thresholds: { match: number; unknown: number },
  base: Pick<OcclusionMatch, 'occlusion' | 'masked'>,
): FarMatch {
  let best = -1;
  let secondBest = -1;
  for (let i = 0; i < names.length; i++) {
    const far = log10Far[i] as number;
    if (best < 0 || far < (log10Far[best] as number)) {
      secondBest = best;
      best = i;
    } else if (secondBest < 0 || far < (log10Far[secondBest] as number)) {
      secondBest = i;
    }
  }
  if (best < 0) return { identity: null, distance: Number.POSITIVE_INFINITY, unknown: true, log10Far: 0, ...base };
  const bestFar = log10Far[best] as number;
  const identity = bestFar <= thresholds.match ? (names[best] as string) : null;
  const result: FarMatch = { identity, distance: distances[best] as number, unknown: identity === null && bestFar >= thresholds.unknown, log10Far: bestFar, ...base };
  if (secondBest >= 0) result.secondBest = { identity: names[secondBest] as string, distance: distances[secondBest] as number };
  return result;
}

/**
 * For each name of one list, its index in another (-1: absent). Cached per pair of lists: a matcher
 * makes a new list only when it reloads, so the search path does no per-face lookups.
 */
export class NameAlignment {
  private readonly cache = new WeakMap<readonly string[], WeakMap<readonly string[], Int32Array>>();

  of(from: readonly string[], to: readonly string[]): Int32Array {
    let byTarget = this.cache.get(from);
    if (!byTarget) this.cache.set(from, (byTarget = new WeakMap()));
    let index = byTarget.get(to);
    if (!index) {
      const at = new Map(to.map((name, j) => [name, j]));
      index = Int32Array.from(from, (name) => at.get(name) ?? -1);
      byTarget.set(to, index);
    }
    return index;
  }
}

/** Match and unknown thresholds (plain-space distances) as log10 FARs on the plain space's curve. */
export function log10ThresholdsOf(curves: OcclusionDictionary, thresholds: MatchThresholds): { match: number; unknown: number } {
  const far = (d: number): number => curves.log10Far(CLEAN_PATTERN, d);
  return { match: far(thresholds.match), unknown: Math.max(far(thresholds.match), far(thresholds.unknown)) };
}

/** What the camera pipelines and the agent need of a matcher: one embedder's, or two fused. */
export interface FaceMatcher {
  readonly identities: number;
  readonly size: number;
  identitiesWithoutPatterns(): number;
  reload(gallery: Pick<Gallery, 'version' | 'embeddingsFor'>, force?: boolean): boolean;
  match(face: FaceEmbeddingResult): OcclusionMatch;
}

export class OcclusionAwareMatcher implements FaceMatcher {
  readonly plain: Matcher;
  /** The gallery's wide embeddings (embedders with views): the plain space of faces not taken for confidently clean. */
  private readonly wide?: Matcher;
  private readonly byPattern = new Map<string, Matcher>();
  private readonly alignment = new NameAlignment();
  /** The plain thresholds as log10 FARs: the decision for faces matched by the space ensemble. */
  readonly log10Thresholds?: { match: number; unknown: number };

  constructor(
    model: string,
    thresholds: MatchThresholds,
    readonly dictionary: OcclusionDictionary | undefined,
  ) {
    this.plain = new Matcher(model, thresholds);
    for (const p of dictionary?.patterns.values() ?? []) {
      // The same false-accept rates as the plain thresholds (which the config may override).
      this.byPattern.set(p.name, new Matcher(patternModel(model, p.name), dictionary?.thresholdsIn(p.name, thresholds) ?? thresholds));
    }
    if (dictionary) this.log10Thresholds = log10ThresholdsOf(dictionary, thresholds);
    // Its decisions go through log10 FARs (ensemble, pairing); the thresholds are the plain ones.
    if (dictionary?.plainSpace === WIDE_SPACE) this.wide = new Matcher(patternModel(model, WIDE_SPACE), thresholds);
  }

  /** The plain space of a face not taken for confidently clean: the wide one with views. */
  get uncertainPlain(): { space: string; matcher: Matcher } {
    return this.wide ? { space: WIDE_SPACE, matcher: this.wide } : { space: CLEAN_PATTERN, matcher: this.plain };
  }

  get identities(): number {
    return this.plain.identities;
  }

  get size(): number {
    return this.plain.size;
  }

  /** The thresholds each pattern's space uses. */
  patternThresholds(): Record<string, MatchThresholds> {
    return Object.fromEntries([...this.byPattern].map(([name, m]) => [name, m.thresholds]));
  }

  /** How many identities lack embeddings for some pattern (enrolled before the masks existed). */
  identitiesWithoutPatterns(): number {
    let least = this.plain.identities;
    for (const m of this.enrolledSpaces()) least = Math.min(least, m.identities);
    return this.plain.identities - least;
  }

  /** Reloads every pattern's embeddings when the gallery changed; true when it reloaded. */
  reload(gallery: Pick<Gallery, 'version' | 'embeddingsFor'>, force = false): boolean {
    const changed = this.plain.reload(gallery, force);
    if (changed) for (const m of this.enrolledSpaces()) m.reload(gallery, true);
    return changed;
  }

  /** The gallery's embeddings besides the plain ones: every pattern's, and the wide ones with views. */
  private enrolledSpaces(): Matcher[] {
    return [...this.byPattern.values(), ...(this.wide ? [this.wide] : [])];
  }

  /**
   * Where a face is compared: its predicted pattern's space with its masked embedding, or the plain
   * space (`clean`) with its ordinary embedding.
   */
  place(face: FaceEmbeddingResult): FacePlacement {
    const dictionary = this.dictionary;
    // Masks belong to one embedder: a face embedded by another (the runtime moved to a variant
    // under GPU pressure) takes the plain path.
    if (!dictionary || !face.features || face.model !== dictionary.embedderName) return { space: CLEAN_PATTERN, matcher: this.plain, query: face.embedding, masked: false };
    // The classifier reads the chip's maps; the masks the representation they were fitted on (with views, the wide one).
    const chipMap = dictionary.orient(face.features, face.mirrorFeatures);
    const occlusion = dictionary.predictOriented(chipMap);
    const masked = occlusion.pattern === FACE_MASK_PATTERN;
    const plainPath: FacePlacement = { space: CLEAN_PATTERN, matcher: this.plain, query: face.embedding, occlusion, masked };
    if (dictionary.takenForClean(occlusion)) return plainPath;
    // A face embedded without its views (masks fitted on wide maps) takes the plain path.
    const seen = dictionary.representation(face);
    if (!seen?.features) return plainPath;
    const oriented = seen === face ? chipMap : dictionary.orient(seen.features, seen.mirrorFeatures);
    // A gallery enrolled before the views has no wide embeddings: such faces take the plain path.
    const plainSide = this.uncertainPlain;
    const plainReady = plainSide.matcher.size > 0;
    if (dictionary.usesEnsemble(occlusion) && plainReady && this.anyPatternEnrolled()) {
      return { ...plainSide, query: seen.embedding, occlusion, masked, ensemble: { oriented } };
    }
    const matcher = occlusion.pattern === CLEAN_PATTERN ? undefined : this.byPattern.get(occlusion.pattern);
    // A pattern whose gallery is empty (identities enrolled before the masks) falls back to the plain path.
    if (!matcher || matcher.size === 0) return plainPath;
    const query = dictionary.maskedEmbeddingOriented(occlusion.pattern, oriented);
    return { space: occlusion.pattern, matcher, query, occlusion, masked, ...(dictionary.pairsWithPlain(occlusion.pattern) && plainReady ? { withPlain: seen.embedding } : {}) };
  }

  private anyPatternEnrolled(): boolean {
    for (const m of this.byPattern.values()) if (m.size > 0) return true;
    return false;
  }

  match(face: FaceEmbeddingResult): OcclusionMatch | FarMatch {
    const placed = this.place(face);
    const { matcher, query, occlusion, masked } = placed;
    const base = { ...(occlusion ? { occlusion } : {}), masked };
    if ((placed.ensemble || placed.withPlain) && this.dictionary && this.log10Thresholds) {
      const scores = this.scoreIdentities(face, this.dictionary, placed);
      return decideByLog10Far(scores.names, scores.log10Far, scores.distances, this.log10Thresholds, base);
    }
    return { ...matcher.match(query), ...base };
  }

  /**
   * Every identity's log10 FAR against the face, on `curves` (the dictionary's false-accept curves,
   * which a fusion reads even with masking off): in the space it is placed in, or — for the space
   * ensemble — the calibrated mean over the plain space and every pattern's space (over those that
   * hold the identity); for a face predicted occluded whose pattern pairs with the plain space,
   * the calibrated weighted mean of its pattern's and the plain space's.
   */
  scoreIdentities(face: FaceEmbeddingResult, curves: OcclusionDictionary, placed = this.place(face)): IdentityScores {
    const { names, distances } = placed.matcher.nearestPerIdentity(placed.query);
    const base = { names, distances, ...(placed.occlusion ? { occlusion: placed.occlusion } : {}), masked: placed.masked };
    const log10Far = Float64Array.from(distances, (d) => curves.log10Far(placed.space, d));
    const dictionary = this.dictionary;
    if (placed.withPlain && dictionary) {
      const { space, matcher } = this.uncertainPlain;
      const plain = matcher.nearestPerIdentity(placed.withPlain);
      const index = this.alignment.of(names, plain.names);
      for (let i = 0; i < names.length; i++) {
        const j = index[i] as number;
        if (j >= 0) log10Far[i] = dictionary.pairedLog10Far(placed.space, log10Far[i] as number, dictionary.log10Far(space, plain.distances[j] as number));
      }
      return { ...base, log10Far };
    }
    if (!placed.ensemble || !dictionary) return { ...base, log10Far };
    const plain = log10Far;
    const sums = new Float64Array(names.length);
    const counts = new Float64Array(names.length);
    for (const [pattern, matcher] of this.byPattern) {
      if (matcher.size === 0) continue;
      const own = matcher.nearestPerIdentity(dictionary.maskedEmbeddingOriented(pattern, placed.ensemble.oriented));
      const index = this.alignment.of(names, own.names);
      for (let i = 0; i < names.length; i++) {
        const j = index[i] as number;
        if (j < 0) continue;
        sums[i] = (sums[i] as number) + dictionary.log10Far(pattern, own.distances[j] as number);
        counts[i] = (counts[i] as number) + 1;
      }
    }
    for (let i = 0; i < names.length; i++) sums[i] = dictionary.ensembleLog10Far(plain[i] as number, sums[i] as number, counts[i] as number);
    return { ...base, log10Far: sums };
  }
}
