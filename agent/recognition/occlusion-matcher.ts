// Occlusion-aware 1:N search: a face whose feature map shows an occlusion pattern (a mask,
// sunglasses, a hand…) is embedded with that pattern's mask and projection and compared with the
// gallery's embeddings made the same way (stored per pattern at enrollment, so the search stays a
// vector search); a clean face takes the ordinary path. Without a dictionary it is the plain matcher.
import { type Gallery, patternModel } from './gallery.js';
import type { FaceEmbeddingResult } from './embedder.js';
import { type MatchResult, type MatchThresholds, Matcher } from './matcher.js';
import { CLEAN_PATTERN, type OcclusionDictionary, type OcclusionPrediction } from './occlusion-masks.js';

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
  private readonly byPattern = new Map<string, Matcher>();

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
    for (const m of this.byPattern.values()) least = Math.min(least, m.identities);
    return this.plain.identities - least;
  }

  /** Reloads every pattern's embeddings when the gallery changed; true when it reloaded. */
  reload(gallery: Pick<Gallery, 'version' | 'embeddingsFor'>, force = false): boolean {
    const changed = this.plain.reload(gallery, force);
    if (changed) for (const m of this.byPattern.values()) m.reload(gallery, true);
    return changed;
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
    const oriented = dictionary.orient(face.features, face.mirrorFeatures);
    const occlusion = dictionary.predictOriented(oriented);
    const masked = occlusion.pattern === FACE_MASK_PATTERN;
    const matcher = occlusion.pattern === CLEAN_PATTERN ? undefined : this.byPattern.get(occlusion.pattern);
    // A pattern whose gallery is empty (identities enrolled before the masks) falls back to the plain path.
    if (!matcher || matcher.size === 0) return { space: CLEAN_PATTERN, matcher: this.plain, query: face.embedding, occlusion, masked };
    return { space: occlusion.pattern, matcher, query: dictionary.maskedEmbeddingOriented(occlusion.pattern, oriented), occlusion, masked };
  }

  match(face: FaceEmbeddingResult): OcclusionMatch {
    const { matcher, query, occlusion, masked } = this.place(face);
    return { ...matcher.match(query), ...(occlusion ? { occlusion } : {}), masked };
  }
}
