// Nearest-identity search among the gallery embeddings of ONE embedder model. Embeddings of other
// models are never loaded, so faces are never compared across models.
//
// The embeddings sit in one flat Float32Array (row-major, `dims` values per row), scanned in full
// for every query: squared Euclidean distances in WebAssembly SIMD (l2-simd.ts; a plain JavaScript
// loop where SIMD is missing), then one pass picking the best and second-best identity. 10,000 ×
// 128-d rows is 1.3 M multiply-adds (measure: `npm run bench:matcher`).
//
// Decision, on the Euclidean distance d to the nearest embedding:
//   d ≤ match              → that identity
//   d ≥ unknown            → a confident unknown (identity null, unknown true)
//   match < d < unknown    → uncertain (identity null, unknown false): the caller should wait for
//                            more frames rather than report anyone.
import type { ModelEntry } from '../inference/model-registry.js';
import type { Gallery, StoredEmbedding } from './gallery.js';
import { SimdDistances } from './l2-simd.js';

/** dlib's published verification threshold, used when the manifest has none for the model. */
export const FALLBACK_MATCH_THRESHOLD = 0.6;
/** Default gap between the match threshold and the unknown threshold. */
export const DEFAULT_UNKNOWN_MARGIN = 0.1;

export interface MatchThresholds {
  /** Distance at or below which a face is the nearest identity. */
  match: number;
  /** Distance at or above which a face is a confident unknown. */
  unknown: number;
}

export interface MatchResult {
  identity: string | null;
  /** Distance to the nearest embedding (Infinity when the gallery has none for this model). */
  distance: number;
  unknown: boolean;
  /** The nearest embedding of a different identity than the nearest one. */
  secondBest?: { identity: string; distance: number };
}

/** Thresholds from an embedder's manifest entry (its measured `threshold`), with overrides. */
export function thresholdsFor(entry: Pick<ModelEntry, 'threshold'> | undefined, overrides: Partial<MatchThresholds> = {}): MatchThresholds {
  const match = overrides.match ?? entry?.threshold ?? FALLBACK_MATCH_THRESHOLD;
  const unknown = overrides.unknown ?? match + DEFAULT_UNKNOWN_MARGIN;
  if (!(match > 0) || !Number.isFinite(match)) throw new Error(`match threshold must be a positive number, got ${match}`);
  if (!(unknown >= match) || !Number.isFinite(unknown)) throw new Error(`unknown threshold (${unknown}) must be a number ≥ the match threshold (${match})`);
  return { match, unknown };
}

export interface MatcherOptions {
  /** Use the WebAssembly SIMD kernel when the runtime has it (default true). */
  simd?: boolean;
}

export class Matcher {
  private names: string[] = [];
  /** Row → index into `names`. */
  private labels = new Int32Array(0);
  private matrix = new Float32Array(0);
  private dims = 0;
  private loadedVersion: number | undefined;
  private simd: SimdDistances | null = null;

  constructor(
    readonly model: string,
    readonly thresholds: MatchThresholds,
    readonly options: MatcherOptions = {},
  ) {
    thresholdsFor(undefined, thresholds);
  }

  /** A matcher for an embedder's manifest entry, thresholds from its measured threshold. */
  static forModel(entry: Pick<ModelEntry, 'name' | 'threshold'>, overrides: Partial<MatchThresholds> = {}, options: MatcherOptions = {}): Matcher {
    return new Matcher(entry.name, thresholdsFor(entry, overrides), options);
  }

  /** Which distance kernel runs: 'wasm-simd' or 'js'. */
  get kernel(): 'wasm-simd' | 'js' {
    return this.simd ? 'wasm-simd' : 'js';
  }

  /** Number of loaded embeddings. */
  get size(): number {
    return this.labels.length;
  }

  /** Number of distinct identities loaded. */
  get identities(): number {
    return this.names.length;
  }

  get dimensions(): number {
    return this.dims;
  }

  /** The gallery version last loaded by reload(). */
  get version(): number | undefined {
    return this.loadedVersion;
  }

  /** Replaces the loaded embeddings (all must be of this matcher's model and of one length). */
  load(rows: readonly StoredEmbedding[]): void {
    const dims = rows[0]?.embedding.length ?? 0;
    const names: string[] = [];
    const index = new Map<string, number>();
    const labels = new Int32Array(rows.length);
    const matrix = new Float32Array(rows.length * dims);
    rows.forEach((r, i) => {
      if (r.embedding.length !== dims) throw new Error(`gallery embeddings of ${this.model} differ in length: ${dims} and ${r.embedding.length}`);
      let label = index.get(r.identity);
      if (label === undefined) {
        label = names.length;
        names.push(r.identity);
        index.set(r.identity, label);
      }
      labels[i] = label;
      matrix.set(r.embedding, i * dims);
    });
    this.names = names;
    this.labels = labels;
    this.matrix = matrix;
    this.dims = dims;
    this.simd = this.options.simd !== false && rows.length > 0 ? SimdDistances.create(matrix, rows.length, dims) : null;
  }

  /**
   * Loads this model's embeddings from the gallery when its version differs from the one loaded
   * last (or always with `force`). Returns true when it reloaded.
   */
  reload(gallery: Pick<Gallery, 'version' | 'embeddingsFor'>, force = false): boolean {
    const version = gallery.version();
    if (!force && version === this.loadedVersion) return false;
    this.load(gallery.embeddingsFor(this.model));
    this.loadedVersion = version;
    return true;
  }

  match(embedding: Float32Array): MatchResult {
    const n = this.labels.length;
    if (n === 0) return { identity: null, distance: Number.POSITIVE_INFINITY, unknown: true };
    const d = this.dims;
    if (embedding.length !== d) throw new Error(`embedding has ${embedding.length} values; the ${this.model} gallery has ${d}`);
    const labels = this.labels;
    let best = Number.POSITIVE_INFINITY;
    let bestLabel = -1;
    let second = Number.POSITIVE_INFINITY;
    let secondLabel = -1;
    const squared = this.simd ? this.simd.compute(embedding) : this.jsDistances(embedding);
    for (let row = 0; row < n; row++) {
      const s = squared[row] as number;
      if (s < best) {
        const label = labels[row] as number;
        if (label !== bestLabel) {
          second = best;
          secondLabel = bestLabel;
        }
        best = s;
        bestLabel = label;
      } else if (s < second) {
        const label = labels[row] as number;
        if (label !== bestLabel) {
          second = s;
          secondLabel = label;
        }
      }
    }
    const distance = Math.sqrt(best);
    const { match, unknown } = this.thresholds;
    const identity = distance <= match ? (this.names[bestLabel] as string) : null;
    const result: MatchResult = { identity, distance, unknown: identity === null && distance >= unknown };
    if (secondLabel >= 0) result.secondBest = { identity: this.names[secondLabel] as string, distance: Math.sqrt(second) };
    return result;
  }

  /**
   * The distance from `embedding` to each identity's nearest embedding, indexed like `names`
   * (score fusion compares identities across two embedders, so it needs every identity's distance).
   */
  nearestPerIdentity(embedding: Float32Array): { names: readonly string[]; distances: Float64Array } {
    const distances = new Float64Array(this.names.length).fill(Number.POSITIVE_INFINITY);
    const n = this.labels.length;
    if (n === 0) return { names: this.names, distances };
    if (embedding.length !== this.dims) throw new Error(`embedding has ${embedding.length} values; the ${this.model} gallery has ${this.dims}`);
    const squared = this.simd ? this.simd.compute(embedding) : this.jsDistances(embedding);
    for (let row = 0; row < n; row++) {
      const label = this.labels[row] as number;
      const s = squared[row] as number;
      if (s < (distances[label] as number)) distances[label] = s;
    }
    for (let i = 0; i < distances.length; i++) distances[i] = Math.sqrt(distances[i] as number);
    return { names: this.names, distances };
  }

  private scratch = new Float32Array(0);

  /** Squared distances to every row, in plain JavaScript (the fallback kernel). */
  private jsDistances(q: Float32Array): Float32Array {
    const n = this.labels.length;
    const d = this.dims;
    const m = this.matrix;
    if (this.scratch.length < n) this.scratch = new Float32Array(n);
    const out = this.scratch;
    for (let row = 0, off = 0; row < n; row++, off += d) {
      let s0 = 0;
      let s1 = 0;
      let k = 0;
      for (; k + 1 < d; k += 2) {
        const x = (q[k] as number) - (m[off + k] as number);
        const y = (q[k + 1] as number) - (m[off + k + 1] as number);
        s0 += x * x;
        s1 += y * y;
      }
      if (k < d) {
        const x = (q[k] as number) - (m[off + k] as number);
        s0 += x * x;
      }
      out[row] = s0 + s1;
    }
    return out;
  }
}
