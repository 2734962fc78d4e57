// The recognition core in one object: detect (MTCNN) → align (5-point similarity to the
// embedder's template) → embed. The CLI, the evaluation and the camera pipeline all use it, so a
// face is processed the same way everywhere.
import { type ModelEntry, ModelRegistry } from '../inference/model-registry.js';
import { batchedSession } from '../inference/batched-session.js';
import { createSession, type ModelSession, type SessionOptions } from '../inference/onnx-session.js';
import { alignmentTransform, type ChipTemplate, warpChips } from '../vision/align.js';
import type { Affine } from '../vision/geometry.js';
import type { RgbImage } from '../vision/image.js';
import { type DetectedFace, MtcnnDetector, type MtcnnOptions } from '../vision/mtcnn.js';
import { loadOpenCv, type OpenCv } from '../vision/opencv.js';
import { loadTemplate } from '../vision/templates.js';
import { FaceEmbedder, type FaceEmbeddingResult } from './embedder.js';
import { OcclusionDictionary } from './occlusion-masks.js';

/** A detected face with its embedding (and the feature maps behind it, for occlusion masks). */
export interface AnalyzedFace extends DetectedFace, FaceEmbeddingResult {
  /** Image → chip transform used for this face. */
  alignment: Affine;
}

export interface FaceAnalyzerOptions {
  /** Embedder model name; default: the manifest's default embedder. */
  embedder?: string;
  detector?: Partial<MtcnnOptions>;
  /** Chip template name; default: the embedder's own. */
  template?: string;
  flipAverage?: boolean;
  session?: SessionOptions;
  registry?: ModelRegistry;
  log?: (line: string) => void;
  /** Merge concurrent R-Net/O-Net runs (several cameras sharing the detector) into one run each. */
  batchDetectorStages?: { maxRequests: number };
  /** Load the embedder's occlusion mask dictionary when it has one (default true). */
  occlusionMasks?: boolean;
}

export class FaceAnalyzer {
  private constructor(
    readonly cv: OpenCv,
    readonly detector: MtcnnDetector,
    readonly embedder: FaceEmbedder,
    readonly template: ChipTemplate,
    private readonly sessions: ModelSession[],
    /** The embedder's occlusion masks (models/occlusion), when it has them and they are enabled. */
    readonly occlusion: OcclusionDictionary | undefined,
  ) {}

  static async create(options: FaceAnalyzerOptions = {}): Promise<FaceAnalyzer> {
    const registry = options.registry ?? ModelRegistry.load();
    const detectorEntries = (['pnet', 'rnet', 'onet'] as const).map((stage) => {
      const e = registry.models.find((m) => m.role === 'detector' && m.stage === stage && m.default);
      if (!e) throw new Error(`no default MTCNN ${stage} model registered`);
      return e;
    });
    const embedderEntry: ModelEntry = options.embedder ? registry.get(options.embedder) : registry.defaultFor('embedder');
    if (embedderEntry.role !== 'embedder') throw new Error(`model ${embedderEntry.name} is a ${embedderEntry.role}, not an embedder`);
    await registry.ensure([...detectorEntries, embedderEntry], options.log);
    const [cv, pnet, rnet, onet, emb] = await Promise.all([
      loadOpenCv(),
      ...detectorEntries.map((e) => createSession(e.name, registry.pathOf(e), options.session)),
      createSession(embedderEntry.name, registry.pathOf(embedderEntry), options.session),
    ]);
    const template = loadTemplate(options.template ?? embedderEntry.chip?.template ?? '');
    const embedder = new FaceEmbedder(embedderEntry, emb as ModelSession, { flipAverage: options.flipAverage ?? true });
    if (template.width !== embedder.chip.width || template.height !== embedder.chip.height) {
      throw new Error(`template ${template.name} is ${template.width}×${template.height}; ${embedderEntry.name} needs ${embedder.chip.width}×${embedder.chip.height}`);
    }
    const merge = options.batchDetectorStages;
    const [r, o] = [rnet, onet].map((s) => (merge ? batchedSession(s as ModelSession, merge) : (s as ModelSession)));
    const detector = new MtcnnDetector({ pnet: pnet as ModelSession, rnet: r as ModelSession, onet: o as ModelSession }, options.detector);
    const occlusion = options.occlusionMasks !== false ? OcclusionDictionary.forEmbedder(registry.dir, embedderEntry) : undefined;
    return new FaceAnalyzer(cv as OpenCv, detector, embedder, template, [pnet, r, o, emb] as ModelSession[], occlusion);
  }

  detect(image: RgbImage): Promise<DetectedFace[]> {
    return this.detector.detect(image);
  }

  /** Aligned chips for the given faces, in order. */
  chips(image: RgbImage, faces: readonly Pick<DetectedFace, 'landmarks'>[]): { chips: RgbImage[]; transforms: Affine[] } {
    const transforms = faces.map((f) => alignmentTransform(f.landmarks, this.template));
    return { chips: warpChips(this.cv, image, transforms, this.template.width, this.template.height), transforms };
  }

  async embedFaces(image: RgbImage, faces: readonly DetectedFace[]): Promise<AnalyzedFace[]> {
    const { chips, transforms } = this.chips(image, faces);
    const results = await this.embedder.embedFaces(chips);
    return faces.map((f, i) => ({ ...f, ...(results[i] as FaceEmbeddingResult), alignment: transforms[i] as Affine }));
  }

  async analyze(image: RgbImage): Promise<AnalyzedFace[]> {
    return this.embedFaces(image, await this.detect(image));
  }

  /** The execution provider of each model, and the providers passed over with their reasons. */
  get sessionsInfo(): { model: string; provider: ModelSession['provider']; skipped: ModelSession['skipped'] }[] {
    return this.sessions.map((s) => ({ model: s.name, provider: s.provider, skipped: s.skipped }));
  }

  async close(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}
