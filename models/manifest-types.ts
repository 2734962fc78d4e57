// The models manifest (models/manifest.json): what each registered network is, where it came
// from, its interface and its checksum. Written by `npm run models`, read by the agent's registry.

export type ModelRole = 'detector' | 'embedder';

export interface TensorSpec {
  name: string;
  shape: (number | string)[];
}

export interface ModelEntry {
  name: string;
  role: ModelRole;
  /** Detector networks name their MTCNN stage. */
  stage?: 'pnet' | 'rnet' | 'onet';
  /** Path relative to models/. */
  file: string;
  /** true: rebuilt from installed npm packages by `npm run models` (kept out of git). */
  generated: boolean;
  sha256: string;
  bytes: number;
  default: boolean;
  license: string;
  source: { package: string; version: string; files: string[] };
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Embedders: the aligned chip they expect. */
  chip?: ChipSpec;
  /** Embedders: the verification threshold on Euclidean distance (from `facegate eval`). */
  threshold?: number;
  /** Parameters and multiply-accumulates per input, counted from the graph. */
  params?: number;
  macs?: number;
  notes?: string;
  /** Pruned variants (models/compress): how this file was derived from its parent model. */
  pruning?: PruningInfo;
  /** Embedders: the occlusion mask dictionary built for exactly this file (models/occlusion). */
  occlusion?: OcclusionMasksInfo;
}

export interface ChipSpec {
  template: string;
  width: number;
  height: number;
  /**
   * Zoomed-out views: for each s (> 1) a second chip of the same face, 1/s as large about the
   * template's landmark centroid, cut from the frame (so it shows more of the face's surroundings).
   * The face's wide representation (FaceEmbeddingResult.wide) is the mean over the chip and its
   * views; the occlusion dictionary is fitted on it, and occlusion-aware matching compares a face
   * not taken for confidently clean in it. The plain embedding (and so `threshold`) stays the
   * chip's own. Part of the model's calibration, so it lives here.
   */
  views?: number[];
}

export interface OcclusionMasksInfo {
  /** Path relative to models/ without extension: `<path>.json` (header) and `<path>.bin` (floats). */
  path: string;
  /** sha256 of the .bin and of the .json. */
  sha256: { bin: string; json: string };
  /** Pattern names. */
  patterns: string[];
  /** The command that rebuilds it. */
  command: string;
}

export interface PruningInfo {
  /** The model it was pruned from. */
  from: string;
  /** Uniform ratio of conv1 filters removed per residual block; null when per-block ratios are given. */
  ratio: number | null;
  /** Per-block ratios (from `facegate models sensitivity`), when not uniform. */
  perBlock?: Record<string, number>;
  method: 'l1' | 'reconstruct';
  /** Calibration faces used by `reconstruct` (null for l1). */
  calibration: string | null;
  /** The command that rebuilds the file. */
  command: string;
  seconds?: number;
}

export interface ModelManifest {
  version: 1;
  models: ModelEntry[];
}
