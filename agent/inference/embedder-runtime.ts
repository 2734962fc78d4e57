// The embedder the camera pipelines use, with the two ways out of GPU memory trouble:
//  - an ONNX Runtime allocation failure inside a run is caught: the batch is retried in halves,
//    and a single chip that still fails moves the embedder to the CPU; each failure is reported;
//  - the GPU watchdog can move the embedder to a smaller (pruned) variant or to the CPU, and back.
// The primary embedder (the FaceAnalyzer's) is never released here: enrollment and the CLI keep
// using it. ORT's CUDA arena keeps what it allocated until its session is released, so a move
// stops further growth and frees the GPU's compute rather than returning memory already held.
import { FaceEmbedder, type FaceEmbeddingResult } from '../recognition/embedder.js';
import type { RgbImage } from '../vision/image.js';
import type { ModelEntry, ModelRegistry } from './model-registry.js';
import { createSession, type ExecutionProvider, isAllocationFailure, type SessionOptions } from './onnx-session.js';

export type EmbedderPlacement = 'primary' | 'variant' | 'cpu';

export interface EmbedderRuntimeDeps {
  primary: FaceEmbedder;
  /** Creates an embedder for `entry` on `providers` (the agent: createSession + FaceEmbedder). */
  create: (entry: ModelEntry, providers: readonly ExecutionProvider[]) => Promise<FaceEmbedder>;
  /** The configured provider order (a variant is created on it). */
  providers: readonly ExecutionProvider[];
  /** An allocation failure (published on the errors topic by the agent). */
  onError: (message: string, details: Record<string, unknown>) => void;
  log: (level: 'info' | 'warn', message: string) => void;
}

export interface EmbedderRuntimeStats {
  placement: EmbedderPlacement;
  model: string;
  provider: ExecutionProvider;
  allocationFailures: number;
  splitRetries: number;
}

/** The default factory: a session for `entry` from the registry, wrapped like the primary. */
export function embedderFactory(registry: ModelRegistry, primary: FaceEmbedder, session: SessionOptions): EmbedderRuntimeDeps['create'] {
  return async (entry, providers) => {
    await registry.ensure([entry]);
    const s = await createSession(entry.name, registry.pathOf(entry), { ...session, providers });
    return new FaceEmbedder(entry, s, primary.options);
  };
}

/** A variant may stand in for the primary only in the same embedding space (pruned from it, same chip). */
export function checkVariant(primary: ModelEntry, variant: ModelEntry): void {
  if (variant.role !== 'embedder') throw new Error(`health.gpu.criticalEmbedder: ${variant.name} is a ${variant.role}, not an embedder`);
  if (variant.pruning?.from !== primary.name) {
    throw new Error(`health.gpu.criticalEmbedder: ${variant.name} is not pruned from ${primary.name} (the gallery's embedding space); pick a variant of ${primary.name} or leave it unset to move to the CPU`);
  }
  const a = primary.chip;
  const b = variant.chip;
  if (!a || !b || a.width !== b.width || a.height !== b.height || a.template !== b.template) {
    throw new Error(`health.gpu.criticalEmbedder: ${variant.name}'s chip differs from ${primary.name}'s`);
  }
}

export class EmbedderRuntime {
  private current: FaceEmbedder;
  private placementNow: EmbedderPlacement = 'primary';
  /** Created on first use and kept: moving back and forth does not reload models. */
  private readonly spares = new Map<string, FaceEmbedder>();
  private allocationFailures = 0;
  private splitRetries = 0;
  private moving: Promise<void> = Promise.resolve();

  constructor(private readonly deps: EmbedderRuntimeDeps) {
    this.current = deps.primary;
  }

  get embedder(): FaceEmbedder {
    return this.current;
  }

  get placement(): EmbedderPlacement {
    return this.placementNow;
  }

  stats(): EmbedderRuntimeStats {
    return {
      placement: this.placementNow,
      model: this.current.entry.name,
      provider: this.current.provider as ExecutionProvider,
      allocationFailures: this.allocationFailures,
      splitRetries: this.splitRetries,
    };
  }

  /** Embeds through the current embedder; allocation failures are retried smaller, then on the CPU. */
  async embed(chips: readonly RgbImage[]): Promise<Float32Array[]> {
    return (await this.embedFaces(chips)).map((r) => r.embedding);
  }

  /** As embed(), with the feature maps behind each embedding (for occlusion-aware matching). */
  async embedFaces(chips: readonly RgbImage[]): Promise<FaceEmbeddingResult[]> {
    await this.moving;
    const embedder = this.current;
    try {
      return await embedder.embedFaces(chips);
    } catch (err) {
      if (!isAllocationFailure(err)) throw err;
      this.allocationFailures++;
      const message = (err as Error).message;
      const details = { model: embedder.entry.name, provider: embedder.provider, batch: chips.length, error: message };
      if (chips.length > 1) {
        this.deps.onError(`embedder ran out of memory on a batch of ${chips.length}; retrying in halves`, details);
        this.splitRetries++;
        const half = Math.ceil(chips.length / 2);
        const first = await this.embedFaces(chips.slice(0, half));
        const second = await this.embedFaces(chips.slice(half));
        return [...first, ...second];
      }
      if (embedder.provider !== 'cpu') {
        this.deps.onError(`embedder ran out of memory on ${embedder.provider} with one chip; moving it to the CPU`, details);
        await this.moveTo('cpu');
        return this.current.embedFaces(chips);
      }
      this.deps.onError('embedder ran out of memory on the CPU', details);
      throw err;
    }
  }

  /** Releases the spare embedders this runtime created (not the primary). */
  async close(): Promise<void> {
    await this.moving;
    this.current = this.deps.primary;
    const spares = [...this.spares.values()];
    this.spares.clear();
    await Promise.all(spares.map((s) => s.release()));
  }

  /**
   * Moves the embedder: 'cpu' (the primary model on the CPU), 'variant' (`variant` on the
   * configured providers) or back to 'primary'. Resolves when new runs use the new placement.
   */
  moveTo(placement: EmbedderPlacement, variant?: ModelEntry): Promise<void> {
    const next = this.moving.then(async () => {
      if (placement === this.placementNow && (placement !== 'variant' || this.current.entry.name === variant?.name)) return;
      const from = `${this.current.entry.name} on ${this.current.provider}`;
      if (placement === 'primary') {
        this.current = this.deps.primary;
      } else {
        const entry = placement === 'variant' ? variant : this.deps.primary.entry;
        if (!entry) throw new Error('moving the embedder to a variant needs the variant model');
        const providers: readonly ExecutionProvider[] = placement === 'cpu' ? ['cpu'] : this.deps.providers;
        const key = `${entry.name}@${providers.join(',')}`;
        let spare = this.spares.get(key);
        if (!spare) {
          spare = await this.deps.create(entry, providers);
          this.spares.set(key, spare);
        }
        this.current = spare;
      }
      this.placementNow = placement;
      this.deps.log('info', `embedder moved from ${from} to ${this.current.entry.name} on ${this.current.provider} (${placement})`);
    });
    // A failed move leaves the embedder where it was; later moves still run.
    this.moving = next.catch((err: unknown) => this.deps.log('warn', `embedder move to ${placement} failed: ${(err as Error).message}`));
    return next;
  }
}
