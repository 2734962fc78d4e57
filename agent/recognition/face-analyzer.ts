// The recognition core in one object: detect (MTCNN) → align (5-point similarity to the
// embedder's template) → embed. The CLI, the evaluation and the camera pipeline all use it, so a
// face is processed the same way everywhere.
import { type ModelEntry, ModelRegistry } from '../inference/model-registry.js';
import { batchedSession } from '../inference/batched-session.js';
import { createSession, type ModelSession, type SessionOptions } from '../inference/onnx-session.js';
import { alignmentTransform, type ChipTemplate, warpChips, zoomedView } from '../vision/align.js';
import type { Affine } from '../vision/geometry.js';
import type { RgbImage } from '../vision/image.js';
import { type DetectedFace, MtcnnDetector, type MtcnnOptions } from '../vision/mtcnn.js';
import { loadOpenCv, type OpenCv } from '../vision/opencv.js';
import { loadTemplate } from '../vision/templates.js';
import { FaceEmbedder, type FaceEmbeddingResult, type WideEmbedding } from './embedder.js';
import { OcclusionDictionary } from './occlusion-masks.js';
import { resolveCompanion, ScoreFusion } from './score-fusion.js';

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
  /**
   * A second embedder whose scores are fused with the first's (score-fusion.ts): a model name,
   * `auto` (the one a calibrated fusion exists for) or `none` (the default).
   */
  fuseWith?: string;
  /**
   * With `fuseWith: auto`, whether to fuse when the embedder runs on the CPU (default true). The
   * agent passes false: on a CPU the companion costs about a fifth of the analysed frame rate
   * (README's pipeline benchmark), on a GPU little.
   */
  autoFusionOnCpu?: boolean;
}

/** One face's chips: the embedder's, and the companion's (its own template) when fusing. */
export interface FaceChips {
  chip: RgbImage;
  /** The embedder's zoomed-out views of the face (its manifest's `chip.views`), averaged in. */
  views?: RgbImage[];
  companionChip?: RgbImage;
  companionViews?: RgbImage[];
}

/** The second embedder of a score fusion, with what matching needs of it. */
export interface CompanionEmbedder {
  embedder: FaceEmbedder;
  template: ChipTemplate;
  /** Its occlusion masks, when they are enabled. */
  occlusion: OcclusionDictionary | undefined;
}

export interface AnalyzerFusion {
  companion: CompanionEmbedder;
  score: ScoreFusion;
  /** Both embedders' dictionaries, primary first, read for their false-accept curves (masking may be off). */
  curves: [OcclusionDictionary, OcclusionDictionary];
}

/** The embedder's chip template (or `name`), checked against the chip size it needs. */
function templateFor(embedder: FaceEmbedder, name?: string): ChipTemplate {
  const template = loadTemplate(name ?? embedder.entry.chip?.template ?? '');
  if (template.width !== embedder.chip.width || template.height !== embedder.chip.height) {
    throw new Error(`template ${template.name} is ${template.width}×${template.height}; ${embedder.entry.name} needs ${embedder.chip.width}×${embedder.chip.height}`);
  }
  return template;
}

/** A companion must be another embedder (fusing a model with itself or its pruned variant adds nothing). */
export function checkCompanion(primary: ModelEntry, companion: ModelEntry): void {
  if (companion.role !== 'embedder') throw new Error(`recognition.fuseWith: ${companion.name} is a ${companion.role}, not an embedder`);
  if (companion.name === primary.name) throw new Error(`recognition.fuseWith: ${companion.name} is already the embedder; fuse with another one or set fuseWith: none`);
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
    /** The second embedder and the calibration of the fused score, when fusing. */
    readonly fusion: AnalyzerFusion | undefined,
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
    const companionName = resolveCompanion(registry.dir, embedderEntry.name, options.fuseWith);
    const companionEntry = companionName ? registry.get(companionName) : undefined;
    if (companionEntry) checkCompanion(embedderEntry, companionEntry);
    // Checked before any session is created: a fusion without calibration fails at once.
    const score = companionEntry ? ScoreFusion.load(registry.dir, embedderEntry, companionEntry) : undefined;
    await registry.ensure([...detectorEntries, embedderEntry, ...(companionEntry ? [companionEntry] : [])], options.log);
    const [cv, pnet, rnet, onet, emb] = await Promise.all([
      loadOpenCv(),
      ...detectorEntries.map((e) => createSession(e.name, registry.pathOf(e), options.session)),
      createSession(embedderEntry.name, registry.pathOf(embedderEntry), options.session),
    ]);
    // Known only now: where the embedder runs, which `auto` fusion may depend on.
    const fuse = companionEntry && !(options.fuseWith === 'auto' && options.autoFusionOnCpu === false && (emb as ModelSession).provider === 'cpu');
    if (companionEntry && !fuse) options.log?.(`score fusion with ${companionEntry.name} is off: ${embedderEntry.name} runs on the CPU (fuseWith: auto); set fuseWith: ${companionEntry.name} to fuse there too`);
    const second = fuse ? await createSession(companionEntry.name, registry.pathOf(companionEntry), options.session) : undefined;
    const flipAverage = options.flipAverage ?? true;
    const embedder = new FaceEmbedder(embedderEntry, emb as ModelSession, { flipAverage });
    const template = templateFor(embedder, options.template);
    const masks = options.occlusionMasks !== false;
    let fusion: AnalyzerFusion | undefined;
    if (companionEntry && score && second) {
      const companion = new FaceEmbedder(companionEntry, second as ModelSession, { flipAverage });
      const curves = [embedderEntry, companionEntry].map((e) => {
        const d = OcclusionDictionary.forEmbedder(registry.dir, e);
        if (!d) throw new Error(`score fusion needs the false-accept curves of ${e.name}'s occlusion dictionary, and it has none (npm run models:occlusion -- --model ${e.name})`);
        return d;
      }) as [OcclusionDictionary, OcclusionDictionary];
      fusion = { companion: { embedder: companion, template: templateFor(companion), occlusion: masks ? curves[1] : undefined }, score, curves };
    }
    const merge = options.batchDetectorStages;
    const [r, o] = [rnet, onet].map((s) => (merge ? batchedSession(s as ModelSession, merge) : (s as ModelSession)));
    const detector = new MtcnnDetector({ pnet: pnet as ModelSession, rnet: r as ModelSession, onet: o as ModelSession }, options.detector);
    const occlusion = masks ? (fusion?.curves[0] ?? OcclusionDictionary.forEmbedder(registry.dir, embedderEntry)) : undefined;
    const sessions = [pnet, r, o, emb, ...(second ? [second] : [])] as ModelSession[];
    return new FaceAnalyzer(cv as OpenCv, detector, embedder, template, sessions, occlusion, fusion);
  }

  /** The companion embedder's model name when fusing, else null (stats, enrollment replies). */
  get fusedWith(): string | null {
    return this.fusion?.companion.embedder.entry.name ?? null;
  }

  detect(image: RgbImage): Promise<DetectedFace[]> {
    return this.detector.detect(image);
  }

  /** Aligned chips for the given faces, in order. */
  chips(image: RgbImage, faces: readonly Pick<DetectedFace, 'landmarks'>[]): { chips: RgbImage[]; transforms: Affine[] } {
    const transforms = faces.map((f) => alignmentTransform(f.landmarks, this.template));
    return { chips: warpChips(this.cv, image, transforms, this.template.width, this.template.height), transforms };
  }

  /**
   * Each face's zoomed-out views for the embedder (its manifest's `chip.views`; none for most
   * models), cut from the image around the chips' transforms.
   */
  views(image: RgbImage, transforms: readonly Affine[]): RgbImage[][] {
    return cutViews(this.cv, image, transforms, this.template, this.embedder.chip.views ?? []);
  }

  /** Every face's chips: the embedder's (with its views), and the companion's when fusing. */
  faceChips(image: RgbImage, faces: readonly Pick<DetectedFace, 'landmarks'>[]): { items: FaceChips[]; transforms: Affine[] } {
    const { chips, transforms } = this.chips(image, faces);
    const views = this.views(image, transforms);
    const companion = this.fusion?.companion;
    const companionTransforms = companion ? faces.map((f) => alignmentTransform(f.landmarks, companion.template)) : [];
    const second = companion ? warpChips(this.cv, image, companionTransforms, companion.template.width, companion.template.height) : undefined;
    const secondViews = companion ? cutViews(this.cv, image, companionTransforms, companion.template, companion.embedder.chip.views ?? []) : [];
    const items = chips.map((chip, i): FaceChips => ({
      chip,
      ...(views[i]?.length ? { views: views[i] } : {}),
      ...(second ? { companionChip: second[i] as RgbImage } : {}),
      ...(secondViews[i]?.length ? { companionViews: secondViews[i] } : {}),
    }));
    return { items, transforms };
  }

  /**
   * Embeds faces' chips: the embedder's through `primary` (the agent passes its GPU-aware runtime),
   * then the companion's, attached to each result as `companion`. With `companion.skip` (the agent
   * under GPU pressure) or when the companion fails and `companion.onError` is given, the results
   * come without it and are matched by the embedder alone.
   */
  async embedChips(
    items: readonly FaceChips[],
    primary: (chips: RgbImage[]) => Promise<FaceEmbeddingResult[]> = (c) => this.embedder.embedFaces(c),
    options: { skip?: boolean; onError?: (err: Error) => void; views?: ViewsFor } = {},
  ): Promise<FaceEmbeddingResult[]> {
    const results = options.views === 'uncertain' ? await this.embedViewsIfUncertain(items, primary) : await embedWithViews(items.map((i) => [i.chip, ...(i.views ?? [])]), primary);
    const companion = this.fusion?.companion.embedder;
    if (!companion || options.skip || results.length === 0) return results;
    const chips = items.map((i, k) => {
      if (!i.companionChip) throw new Error(`face ${k} has no chip for the companion embedder ${companion.entry.name}`);
      return [i.companionChip, ...(i.companionViews ?? [])];
    });
    let second: FaceEmbeddingResult[];
    try {
      second = await embedWithViews(chips, (c) => companion.embedFaces(c));
    } catch (err) {
      if (!options.onError) throw err;
      options.onError(err as Error);
      return results;
    }
    return results.map((r, k) => ({ ...r, companion: second[k] as FaceEmbeddingResult }));
  }

  /**
   * The chips first; then the views of only those faces whose matching will read their wide
   * representation (OcclusionDictionary.readsWide: not taken for confidently clean), so a clean
   * face costs what it cost without views.
   */
  private async embedViewsIfUncertain(items: readonly FaceChips[], primary: (chips: RgbImage[]) => Promise<FaceEmbeddingResult[]>): Promise<FaceEmbeddingResult[]> {
    const results = await primary(items.map((i) => i.chip));
    const masks = this.occlusion;
    const todo = masks ? results.map((_, k) => k).filter((k) => items[k]?.views?.length && masks.readsWide(results[k] as FaceEmbeddingResult)) : [];
    if (todo.length === 0) return results;
    const views = await primary(todo.flatMap((k) => items[k]?.views ?? []));
    let at = 0;
    for (const k of todo) {
      const own = results[k] as FaceEmbeddingResult;
      const group = views.slice(at, (at += items[k]?.views?.length ?? 0));
      // A view embedded by another model (the runtime moved under GPU pressure) is not averaged in.
      if (group.every((v) => v.model === own.model)) results[k] = { ...own, wide: averageResults([own, ...group]) };
    }
    return results;
  }

  async embedFaces(image: RgbImage, faces: readonly DetectedFace[]): Promise<AnalyzedFace[]> {
    const { items, transforms } = this.faceChips(image, faces);
    const results = await this.embedChips(items);
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

/**
 * Which faces get their zoomed-out views embedded: `all` (enrollment and evaluation: a gallery face
 * needs its wide embedding whatever the probe), or `uncertain` (the agent's probes: only faces the
 * occlusion classifier does not take for confidently clean, the only ones matched wide).
 */
export type ViewsFor = 'all' | 'uncertain';

/** Each face's zoomed-out views (one warp for all faces and scales); [] per face without scales. */
function cutViews(cv: OpenCv, image: RgbImage, transforms: readonly Affine[], template: ChipTemplate, scales: readonly number[]): RgbImage[][] {
  if (scales.length === 0) return transforms.map(() => []);
  const all = warpChips(cv, image, transforms.flatMap((t) => scales.map((s) => zoomedView(t, template, s))), template.width, template.height);
  return transforms.map((_, i) => all.slice(i * scales.length, (i + 1) * scales.length));
}

/**
 * Embeds every face's chips (its chip, then its views) in one run. Each face's result is its chip's;
 * with views it carries `wide`: the embedding and both feature maps averaged over chip and views.
 */
export async function embedWithViews(faces: readonly RgbImage[][], embed: (chips: RgbImage[]) => Promise<FaceEmbeddingResult[]>): Promise<FaceEmbeddingResult[]> {
  if (faces.every((f) => f.length === 1)) return embed(faces.map((f) => f[0] as RgbImage));
  const results = await embed(faces.flat());
  let at = 0;
  return faces.map((chips) => {
    const group = results.slice(at, (at += chips.length));
    const own = group[0] as FaceEmbeddingResult;
    return group.length === 1 ? own : { ...own, wide: averageResults(group) };
  });
}

function averageResults(group: readonly FaceEmbeddingResult[]): WideEmbedding {
  const mean = (pick: (r: FaceEmbeddingResult) => Float32Array | undefined): Float32Array | undefined => {
    const rows = group.map(pick);
    if (rows.some((r) => r === undefined)) return undefined;
    const out = new Float32Array((rows[0] as Float32Array).length);
    for (const r of rows as Float32Array[]) for (let k = 0; k < out.length; k++) out[k] = (out[k] as number) + (r[k] as number) / rows.length;
    return out;
  };
  const features = mean((r) => r.features);
  const mirrorFeatures = mean((r) => r.mirrorFeatures);
  return { embedding: mean((r) => r.embedding) as Float32Array, ...(features ? { features } : {}), ...(mirrorFeatures ? { mirrorFeatures } : {}) };
}
