// `facegate models prune` and `facegate models sensitivity`: the pruning library applied to a
// registered model, writing the result to models/pruned/ and registering it in the manifest.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { modelsDir, projectRoot } from '../../agent/paths.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { readManifest, sha256, writeManifest } from '../build/build-models.js';
import type { ModelEntry } from '../manifest-types.js';
import { graphStats } from '../onnx/graph-stats.js';
import type { ChipSet } from './activations.js';
import { CACHE_DIR, calibrationChips, calibrationFiles, DEFAULT_LFW, evaluatePairs, imagesUnder, lfwPairsChips } from './lfw.js';
import { GraphBuilder } from '../onnx/graph-builder.js';
import { type BlockRatios, mergeInfo, pruneL1, type PruneMethod } from './prune.js';
import { pruneReconstruct, RECONSTRUCT_RECIPE, type ReconstructOptions } from './reconstruct.js';
import { blockMacs, deriveRatios, sensitivity, sensitivitySvg, svgToPng } from './sensitivity.js';

/** Calibration images: on LFW, the first image of every person in no pairs-dev pair (1468). */
export const DEFAULT_CALIB_COUNT = 1500;

/**
 * Cache key of a pruned variant: the parent's bytes, the ratios, the method, the calibration set
 * and the reconstruct recipe (RECONSTRUCT_RECIPE with the default options).
 */
export function variantKey(original: Uint8Array, ratios: BlockRatios, method: PruneMethod, calibration: string, recipe = RECONSTRUCT_RECIPE): string {
  return sha256(new TextEncoder().encode(JSON.stringify([sha256(original), ratios, method, calibration, recipe]))).slice(0, 16);
}

export function readRatiosFile(file: string): Record<string, number> {
  const raw: unknown = JSON.parse(readFileSync(file, 'utf8'));
  // Either {block: ratio} or a sensitivity/derivation JSON with a "ratios" object.
  const obj = typeof raw === 'object' && raw !== null && 'ratios' in raw && typeof (raw as { ratios: unknown }).ratios === 'object' ? (raw as { ratios: unknown }).ratios : raw;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Error(`${file}: expected {"<block>": ratio, ...}`);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v !== 'number') throw new Error(`${file}: ratio of ${k} is not a number`);
    out[k] = v;
  }
  return out;
}

/**
 * Calibration chips for `reconstruct`: `calib` is an LFW-layout folder (pairs-dev.txt + images/:
 * the first image of people in no pair) or any folder of face photos; all aligned as the agent does.
 */
export async function loadCalibration(analyzer: FaceAnalyzer, calib: string, count: number, log: (line: string) => void): Promise<{ chips: ChipSet; label: string }> {
  const lfwLayout = existsSync(join(calib, 'pairs-dev.txt')) && existsSync(join(calib, 'images'));
  const files = lfwLayout ? calibrationFiles(calib, count).map((f) => join(calib, 'images', f)) : imagesUnder(calib).slice(0, count);
  if (files.length === 0) throw new Error(`no calibration images found in ${calib}`);
  const key = `${lfwLayout ? 'lfw' : 'dir'}${files.length}-${sha256(new TextEncoder().encode(files.join('\n'))).slice(0, 10)}`;
  const chips = await calibrationChips(analyzer, files, key, log);
  const rel = relative(projectRoot(), resolve(calib)) || '.';
  const label = lfwLayout
    ? `${rel}: first image of every Nth person in no pairs-dev pair, ${files.length} images → ${chips.count / 2} faces + mirror images`
    : `${rel}: ${files.length} images → ${chips.count / 2} faces + mirror images`;
  return { chips, label };
}

export interface PruneRequest {
  model: string;
  ratios: BlockRatios;
  method: PruneMethod;
  calib?: string;
  calibCount?: number;
  /** reconstruct: channel selection (default greedy), rows per block (default 20000), head/fc re-fit (default off). */
  selection?: ReconstructOptions['selection'];
  samples?: number;
  head?: boolean;
  out: string;
  /** The command line recorded in the manifest. */
  command: string;
  log?: (line: string) => void;
}

/** Prunes a registered embedder, writes models/pruned/<out>.onnx and registers it. */
export async function pruneRegistered(req: PruneRequest): Promise<ModelEntry> {
  const log = req.log ?? (() => {});
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(req.out)) throw new Error(`--out "${req.out}": use letters, digits, '.', '_' and '-'`);
  const registry = ModelRegistry.load();
  const parent = registry.get(req.model);
  if (parent.role !== 'embedder') throw new Error(`model ${parent.name} is a ${parent.role}; pruning applies to embedders`);
  if (req.out === parent.name) throw new Error('--out must name a new model');
  await registry.ensure([parent], log);
  const bytes = new Uint8Array(readFileSync(registry.pathOf(parent)));
  const started = performance.now();
  const metadata: Record<string, string> = {
    pruned_from: parent.name,
    pruning_method: req.method,
    pruning_ratios: JSON.stringify(req.ratios),
    pruning_command: req.command,
  };
  let pruned: Uint8Array;
  let calibration: string | null = null;
  let reused = false;
  if (req.method === 'l1') {
    pruned = pruneL1(bytes, req.ratios, { metadata }).bytes;
  } else {
    const analyzer = await FaceAnalyzer.create({ embedder: parent.name, flipAverage: false, log });
    let chips: ChipSet;
    try {
      const c = await loadCalibration(analyzer, req.calib ?? DEFAULT_LFW, req.calibCount ?? DEFAULT_CALIB_COUNT, log);
      chips = c.chips;
      calibration = c.label;
    } finally {
      await analyzer.close();
    }
    const extra = { metadata: { ...metadata, calibration: calibration ?? '' } };
    // The benchmark caches the variants it builds (same recipe → same bytes); reuse one if present.
    const options: ReconstructOptions = { log, selection: req.selection ?? 'greedy', maxSamples: req.samples ?? 20000, head: req.head ?? false };
    const isDefault = options.selection === 'greedy' && options.maxSamples === 20000 && !options.head;
    const recipe = isDefault ? RECONSTRUCT_RECIPE : `${RECONSTRUCT_RECIPE}:${options.selection}:${options.maxSamples}:${options.head ? 'head' : 'no-head'}`;
    const key = variantKey(bytes, req.ratios, req.method, calibration ?? '', recipe);
    const dir = join(CACHE_DIR, 'variants');
    const hit = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith(`-${key}.onnx`)) : undefined;
    if (hit) {
      log(`reusing the cached reconstruction ${join(dir, hit)} (same model, ratios, method and calibration)`);
      const { graph, info } = GraphBuilder.fromBytes(new Uint8Array(readFileSync(join(dir, hit))));
      pruned = graph.toBytes(mergeInfo(info, extra));
      reused = true;
    } else {
      pruned = (await pruneReconstruct(bytes, req.ratios, chips, options, extra)).bytes;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const file = `pruned/${req.out}.onnx`;
  mkdirSync(join(modelsDir(), 'pruned'), { recursive: true });
  writeFileSync(join(modelsDir(), file), pruned);
  const input = parent.inputs[0];
  const statsShape = (input?.shape ?? []).map((d) => (typeof d === 'number' ? d : 1));
  const stats = await graphStats(pruned, { [input?.name ?? 'input']: statsShape });
  const old = readManifest().models.find((m) => m.name === req.out);
  const uniform = typeof req.ratios === 'number';
  const entry: ModelEntry = {
    ...parent,
    name: req.out,
    file,
    generated: false,
    default: old?.default ?? false,
    sha256: sha256(pruned),
    bytes: pruned.length,
    params: stats.params,
    macs: stats.macs,
    notes: `${parent.name} with ${uniform ? `${req.ratios as number} of` : 'per-block ratios of'} each residual block's conv1 filters pruned (${req.method})`,
    pruning: {
      from: parent.name,
      ratio: uniform ? (req.ratios as number) : null,
      ...(uniform ? {} : { perBlock: req.ratios as Record<string, number> }),
      method: req.method,
      calibration,
      command: req.command,
      // Pruning time (not recorded when the benchmark's cached result was reused).
      ...(reused ? {} : { seconds: Number(seconds.toFixed(1)) }),
    },
  };
  // The threshold measured for the parent does not carry over to a pruned network, nor do its
  // occlusion masks (fitted to the parent's features; the loader refuses them for another model).
  delete entry.threshold;
  delete entry.occlusion;
  if (old?.threshold !== undefined && old.sha256 === entry.sha256) entry.threshold = old.threshold;
  writeManifest([entry]);
  log(`wrote ${file}: ${(entry.bytes / 1e6).toFixed(2)} MB, ${stats.params} params, ${(stats.macs / 1e6).toFixed(1)} M MACs (${parent.name}: ${parent.params ?? '?'} params, ${((parent.macs ?? 0) / 1e6).toFixed(1)} M MACs) in ${seconds.toFixed(1)} s`);
  return entry;
}

/** Makes `name` the default embedder (and no other). */
export function setDefaultEmbedder(name: string): void {
  const manifest = readManifest();
  if (!manifest.models.some((m) => m.name === name && m.role === 'embedder')) throw new Error(`no embedder named ${name}`);
  writeManifest(manifest.models.filter((m) => m.role === 'embedder').map((m) => ({ ...m, default: m.name === name })));
}

export interface SensitivityRequest {
  model: string;
  ratios: number[];
  lfw: string;
  folds: number[];
  flip: boolean;
  landmarks: string;
  out: string;
  target?: number[];
  /** Ratio step of the derivation (0.25 keeps every block's channel count a multiple of 8). */
  step?: number;
  log?: (line: string) => void;
}

/** Sensitivity curves on a validation split of pairs-dev; writes <out>.json and <out>.png. */
export async function sensitivityRegistered(req: SensitivityRequest): Promise<void> {
  const log = req.log ?? (() => {});
  const registry = ModelRegistry.load();
  const parent = registry.get(req.model);
  await registry.ensure([parent], log);
  const bytes = new Uint8Array(readFileSync(registry.pathOf(parent)));
  const analyzer = await FaceAnalyzer.create({ embedder: parent.name, flipAverage: false, log });
  const data = await (async () => {
    try {
      return await lfwPairsChips(analyzer, req.lfw, req.landmarks, log);
    } finally {
      await analyzer.close();
    }
  })();
  const input = parent.inputs[0];
  const stats = await graphStats(bytes, { [input?.name ?? 'input']: (input?.shape ?? []).map((d) => (typeof d === 'number' ? d : 1)) });
  const { findBlocks } = await import('./prune.js');
  const names = findBlocks(GraphBuilder.fromBytes(bytes).graph).map((b) => b.name);
  const split = `pairs-dev folds ${req.folds.map((f) => f + 1).join(',')} (${req.folds.length * 600} pairs), flip ${req.flip ? 'on' : 'off'}`;
  const result = await sensitivity({ name: parent.name, bytes }, req.ratios, (b) => evaluatePairs(b, data, { flip: req.flip, folds: req.folds }), blockMacs(stats.perNode, names), { split, log });
  const derived = Object.fromEntries((req.target ?? [0.1, 0.2, 0.3, 0.4, 0.5]).map((t) => [String(t), deriveRatios(result, t, req.step ?? 0.25)]));
  mkdirSync(resolve(req.out, '..'), { recursive: true });
  writeFileSync(`${req.out}.json`, `${JSON.stringify({ ...result, derived }, null, 2)}\n`);
  writeFileSync(`${req.out}.png`, await svgToPng(sensitivitySvg(result)));
  for (const [t, d] of Object.entries(derived)) {
    writeFileSync(`${req.out}-ratios-${t}.json`, `${JSON.stringify({ target: Number(t), predictedDrop: d.predictedDrop, achieved: d.achieved, ratios: d.ratios }, null, 2)}\n`);
  }
  log(`wrote ${req.out}.json, ${req.out}.png and ${req.out}-ratios-<target>.json (${result.seconds.toFixed(0)} s)`);
}

export const cacheDir = CACHE_DIR;
export const fileSize = (p: string): number => statSync(p).size;
