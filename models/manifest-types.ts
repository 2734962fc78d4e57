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
  chip?: { template: string; width: number; height: number };
  /** Embedders: the verification threshold on Euclidean distance (from `facegate eval`). */
  threshold?: number;
  /** Parameters and multiply-accumulates per input, counted from the graph. */
  params?: number;
  macs?: number;
  notes?: string;
}

export interface ModelManifest {
  version: 1;
  models: ModelEntry[];
}
