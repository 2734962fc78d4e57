// Face embedder: aligned chips in, one embedding per face out, in one batched ORT run.
// With flip averaging, each chip and its mirror image are embedded and their embeddings averaged.
import type { ModelEntry } from '../inference/model-registry.js';
import type { ModelSession } from '../inference/onnx-session.js';
import type { RgbImage } from '../vision/image.js';
import { chwInputPool, type InputPool } from './input-pool.js';

export interface EmbedderOptions {
  /** Average the embeddings of the chip and its mirror image. */
  flipAverage: boolean;
}

export interface FaceEmbeddingResult {
  embedding: Float32Array;
  /** The embedder model that produced it (after a GPU-pressure move, possibly a variant). */
  model: string;
  /** Last spatial feature map before pooling, [C, H, W] flattened (for occlusion masks). */
  features?: Float32Array;
  /** The same map of the mirror image (with flip averaging). */
  mirrorFeatures?: Float32Array;
  /** The same face embedded by the companion embedder (score fusion), from its own chip. */
  companion?: FaceEmbeddingResult;
  /**
   * The face seen wide (embedders with `chip.views`): embedding and maps averaged over the chip and
   * its zoomed-out views. Occlusion-aware matching compares a face it does not take for confidently
   * clean in this representation (occlusion-matcher.ts); the fields above stay the chip's alone.
   */
  wide?: WideEmbedding;
}

/** A face's representation averaged over its chip and zoomed-out views (FaceEmbeddingResult.wide). */
export type WideEmbedding = Pick<FaceEmbeddingResult, 'embedding' | 'features' | 'mirrorFeatures'>;

export class FaceEmbedder {
  readonly dims: number;
  private readonly inputs: InputPool;

  constructor(
    readonly entry: ModelEntry,
    private readonly session: ModelSession,
    readonly options: EmbedderOptions,
  ) {
    const out = entry.outputs.find((o) => o.name === 'embedding');
    if (!entry.chip || !out) throw new Error(`model ${entry.name} is not an embedder (no chip spec or embedding output)`);
    this.dims = Number(out.shape[1]);
    this.inputs = chwInputPool(entry.chip.width, entry.chip.height);
  }

  get chip(): NonNullable<ModelEntry['chip']> {
    return this.entry.chip as NonNullable<ModelEntry['chip']>;
  }

  get provider(): string {
    return this.session.provider;
  }

  async embed(chips: readonly RgbImage[]): Promise<Float32Array[]> {
    return (await this.embedFaces(chips)).map((r) => r.embedding);
  }

  /** Embeddings with the feature maps behind them (chip and mirror image), when the model has them. */
  async embedFaces(chips: readonly RgbImage[]): Promise<FaceEmbeddingResult[]> {
    if (chips.length === 0) return [];
    const { width, height } = this.chip;
    for (const [i, c] of chips.entries()) {
      if (c.width !== width || c.height !== height) {
        throw new Error(`chip ${i} is ${c.width}×${c.height}; model ${this.entry.name} needs ${width}×${height}`);
      }
    }
    // The input tensor is packed into a reused buffer (mirror images written straight from the
    // chip): no per-frame input garbage in the hot path.
    const count = this.options.flipAverage ? chips.length * 2 : chips.length;
    const input = this.inputs.take(count);
    let out: Awaited<ReturnType<ModelSession['run']>>;
    try {
      for (let i = 0; i < chips.length; i++) {
        const data = (chips[i] as RgbImage).data;
        input.pack(i, data, false);
        if (this.options.flipAverage) input.pack(chips.length + i, data, true);
      }
      out = await this.session.run({ input: { data: input.view, dims: [count, 3, height, width] } });
    } finally {
      this.inputs.give(input);
    }
    const emb = out.embedding;
    if (!emb) throw new Error(`model ${this.entry.name} returned no embedding output`);
    const d = this.dims;
    const maps = out.features;
    const f = maps ? maps.data.length / count : 0;
    const mapOf = (row: number): Float32Array | undefined => (maps ? maps.data.slice(row * f, (row + 1) * f) : undefined);
    return chips.map((_, i) => {
      const e = emb.data.slice(i * d, (i + 1) * d);
      const result: FaceEmbeddingResult = { embedding: e, model: this.entry.name };
      const features = mapOf(i);
      if (features) result.features = features;
      if (this.options.flipAverage) {
        const m = emb.data.subarray((chips.length + i) * d, (chips.length + i + 1) * d);
        for (let k = 0; k < d; k++) e[k] = ((e[k] as number) + (m[k] as number)) / 2;
        const mirrored = mapOf(chips.length + i);
        if (mirrored) result.mirrorFeatures = mirrored;
      }
      return result;
    });
  }

  /** Releases the model session (only for embedders created apart from the FaceAnalyzer). */
  release(): Promise<void> {
    return this.session.release();
  }

  /** Input buffers held for reuse (for the GC benchmark and tests). */
  get inputPool(): InputPool {
    return this.inputs;
  }
}

export function euclideanDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`embedding sizes differ: ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (b[i] as number);
    s += d * d;
  }
  return Math.sqrt(s);
}

export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`embedding sizes differ: ${a.length} vs ${b.length}`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}
