// Closed-form distillation of the embedding layer: after the residual blocks are pruned and
// re-fitted, the final fully connected layer (dlib ResNet: `head/fc`, a bias-free MatMul on the
// spatial mean of the last block) is re-fitted by ridge least squares so that the PRUNED network's
// pooled features map to the UNPRUNED network's embeddings on the calibration faces. The block
// re-fits only match each block's own output; this step corrects what they leave, in the space the
// matcher compares.
//
// Distances between embeddings do not change when every embedding is shifted by the same vector,
// so the fit has an intercept that is then dropped (no bias node is added to the graph).
import { GraphBuilder, type Initializer, type ModelInfo } from '../onnx/graph-builder.js';
import { type ChipSet, chipBatch, openTap } from './activations.js';
import { accumulateGram, solveNormalEquations, symmetrize } from './linalg.js';

export interface HeadRefitOptions {
  /** Ridge, relative to the mean diagonal of the feature Gram matrix; pulls W towards the current W. */
  ridge?: number;
  /** Targets: the unpruned embeddings as they are, or scaled to unit length. */
  target?: 'raw' | 'unit';
  /** Fit on these chips only (indices); the rest can be held out. Default: all. */
  indices?: readonly number[];
  batch?: number;
}

export interface HeadReport {
  samples: number;
  /** Relative squared error of the centred embeddings vs the unpruned network's: before and after. */
  errBefore: number;
  errAfter: number;
  seconds: number;
}

/** The fc node: a MatMul named `head/fc` whose second input is an initializer [features, dims]. */
export function headLayer(g: GraphBuilder): { input: string; output: string; weight: Initializer } {
  const node = g.nodes.find((n) => n.name === 'head/fc');
  if (!node || node.opType !== 'MatMul') throw new Error('no MatMul node named head/fc');
  const weight = g.initializers.get(node.inputs[1] as string);
  if (!weight || weight.dims.length !== 2) throw new Error('head/fc: weight is not a 2-D initializer');
  return { input: node.inputs[0] as string, output: node.outputs[0] as string, weight };
}

/** Rows [pooled features of `pruned`, embedding of `original`] over the chips, in batches. */
async function* featurePairs(original: Uint8Array, pruned: Uint8Array, chips: ChipSet, indices: readonly number[], batch: number): AsyncGenerator<{ p: Float32Array; e: Float32Array; n: number }> {
  const outO = headLayer(GraphBuilder.fromBytes(original).graph).output;
  const inP = headLayer(GraphBuilder.fromBytes(pruned).graph).input;
  const o = await openTap(original, [outO], chips);
  const p = await openTap(pruned, [inP], chips);
  const size = chips.width * chips.height * 3;
  try {
    for (let start = 0; start < indices.length; start += batch) {
      const idx = indices.slice(start, start + batch);
      const sub: ChipSet = { ...chips, count: idx.length, data: new Uint8Array(idx.length * size) };
      idx.forEach((i, k) => sub.data.set(chips.data.subarray(i * size, (i + 1) * size), k * size));
      const input = chipBatch(sub, 0, idx.length);
      const e = (await o.run(input, idx.length))[outO]?.data as Float32Array;
      const f = (await p.run(input, idx.length))[inP]?.data as Float32Array;
      yield { p: f, e, n: idx.length };
    }
  } finally {
    await o.release();
    await p.release();
  }
}

/** P·W for P rows×d (Float64) and W d×m (Float32). */
function project(p: Float64Array, rows: number, d: number, w: Float32Array, m: number): Float64Array {
  const out = new Float64Array(rows * m);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < d; k++) {
      const pk = p[i * d + k] as number;
      if (pk === 0) continue;
      for (let j = 0; j < m; j++) out[i * m + j] = (out[i * m + j] as number) + pk * (w[k * m + j] as number);
    }
  }
  return out;
}

/** Relative squared error of centred predictions: ‖(ŷ − ȳ̂) − (y − ȳ)‖² / ‖y − ȳ‖² (row-major N×m). */
export function centredError(pred: Float64Array, target: Float64Array, rows: number, m: number): number {
  let err = 0;
  let total = 0;
  for (let j = 0; j < m; j++) {
    let mp = 0;
    let mt = 0;
    for (let i = 0; i < rows; i++) {
      mp += pred[i * m + j] as number;
      mt += target[i * m + j] as number;
    }
    mp /= rows;
    mt /= rows;
    for (let i = 0; i < rows; i++) {
      const t = (target[i * m + j] as number) - mt;
      err += ((pred[i * m + j] as number) - mp - t) ** 2;
      total += t * t;
    }
  }
  return err / total;
}

/**
 * Re-fits head/fc of `pruned` so that its pooled features reproduce `original`'s embeddings on the
 * chips. Returns the new model and the centred embedding error before/after on the fitted chips.
 */
export async function refitHead(original: Uint8Array, pruned: Uint8Array, chips: ChipSet, options: HeadRefitOptions = {}, info?: Partial<ModelInfo>): Promise<{ bytes: Uint8Array; report: HeadReport }> {
  const started = performance.now();
  const { graph, info: own } = GraphBuilder.fromBytes(pruned);
  const { weight } = headLayer(graph);
  const [d = 0, m = 0] = weight.dims;
  const w0 = weight.data as Float32Array;
  const indices = options.indices ?? Array.from({ length: chips.count }, (_, i) => i);
  // Pooled features P (rows×d) and targets Y (rows×m), kept in memory (a few MB).
  const feats = new Float64Array(indices.length * d);
  const target = new Float64Array(indices.length * m);
  let rows = 0;
  for await (const batch of featurePairs(original, pruned, chips, indices, options.batch ?? 32)) {
    for (let b = 0; b < batch.n; b++, rows++) {
      for (let k = 0; k < d; k++) feats[rows * d + k] = batch.p[b * d + k] as number;
      let s = 0;
      for (let j = 0; j < m; j++) s += (batch.e[b * m + j] as number) ** 2;
      const scale = options.target === 'unit' ? 1 / Math.sqrt(Math.max(s, 1e-12)) : 1;
      for (let j = 0; j < m; j++) target[rows * m + j] = (batch.e[b * m + j] as number) * scale;
    }
  }
  // Normal equations with a constant column (index d): G = AᵀA, AᵀY.
  const n = d + 1;
  const g = new Float64Array(n * n);
  const aty = new Float64Array(n * m);
  const a = new Float64Array(n);
  for (let i = 0; i < rows; i++) {
    a.set(feats.subarray(i * d, (i + 1) * d));
    a[d] = 1;
    accumulateGram(g, a, n);
    for (let k = 0; k < n; k++) {
      const ak = a[k] as number;
      for (let j = 0; j < m; j++) aty[k * m + j] = (aty[k * m + j] as number) + ak * (target[i * m + j] as number);
    }
  }
  symmetrize(g, n);
  // Ridge towards the current weights: (G + λI) w = Aᵀy + λ·w₀ (the constant's prior: 0), λ
  // relative to the features' mean diagonal.
  const rhs = Array.from({ length: m }, (_, j) => Float64Array.from({ length: n }, (_, k) => aty[k * m + j] as number));
  const prior = Array.from({ length: m }, (_, j) => Float64Array.from({ length: n }, (_, k) => (k < d ? (w0[k * m + j] as number) : 0)));
  const solved = solveNormalEquations(g, n, rhs, options.ridge ?? 1e-3, prior, d);
  const w = new Float32Array(d * m);
  for (let k = 0; k < d; k++) for (let j = 0; j < m; j++) w[k * m + j] = (solved[j] as Float64Array)[k] as number;
  // Errors on the fitted rows, centred (the dropped intercept does not count).
  const errBefore = centredError(project(feats, rows, d, w0, m), target, rows, m);
  const errAfter = centredError(project(feats, rows, d, w, m), target, rows, m);
  graph.initializers.set(weight.name, { name: weight.name, dims: [d, m], data: w });
  const merged: ModelInfo = { ...own, metadata: { ...(own.metadata ?? {}), ...(info?.metadata ?? {}) } };
  return { bytes: graph.toBytes(merged), report: { samples: rows, errBefore, errAfter, seconds: (performance.now() - started) / 1000 } };
}
