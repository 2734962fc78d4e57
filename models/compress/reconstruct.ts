// `--method reconstruct`: pruning with accuracy recovered without retraining (ThiNet, Luo et al.
// 2017; He et al. 2017 "Channel Pruning for Accelerating Very Deep Neural Networks").
//
// Block by block from the input side, with the blocks before already pruned:
//   1. run the PRUNED network on the calibration chips up to this block: X = the input of conv2
//      (all conv1 channels, computed from the pruned network's own activations) and S = the
//      shortcut value entering the block's Add;
//   2. run the ORIGINAL network up to this block: T = its Add output (pre-activation block output);
//   3. at sampled output positions, the regression target is y = T − S and the regressors are
//      conv2's receptive field of X (channels × taps) plus a constant; accumulate the normal
//      equations G = AᵀA and AᵀY in Float64 over all output channels at once;
//   4. choose the channels to keep: by default greedily, removing one channel at a time with the
//      least rise in least-squares error when the others are re-fitted (select.ts); or by the
//      largest contributions wᶜᵀ G_cc wᶜ of each channel's original conv2 weights (its share of the
//      block output energy on the calibration data), which ignores correlated channels;
//   5. re-fit conv2 (weights + bias) on the kept channels by ridge least squares (Cholesky on the
//      sub-matrix of G), and drop the other conv1 filters (pruneBlock).
// Blocks with ratio 0 behind pruned ones are re-fitted too (their input has changed). Optionally
// the embedding layer is then re-fitted to the unpruned network's embeddings (head.ts).
import { GraphBuilder, type GraphNode, type Initializer, type ModelInfo } from '../onnx/graph-builder.js';
import { type ChipSet, chipBatch, openTap, type Tap } from './activations.js';
import { accumulateGram, solveNormalEquations, subMatrix, symmetrize } from './linalg.js';
import { type BlockRatios, checkRatios, findBlocks, keepTopScores, mergeInfo, prunedCount, pruneBlock, ratioFor, type ResidualBlock } from './prune.js';
import { headLayer, type HeadReport, refitHead } from './head.js';
import { greedyKeep } from './select.js';
import { seededRandom } from '../../agent/util/seeded-random.js';

/** Cache tag of the default recipe (greedy selection, 20000 rows, no head re-fit); bump when defaults change. */
export const RECONSTRUCT_RECIPE = 'v2';

export interface ReconstructOptions {
  /**
   * Most sampled output positions per block (rows of the regression; default 20000). Measured at
   * ratio 0.5 with 2936 calibration chips: 6000 rows 96.97%, 20000 rows 97.87%, 40000 rows 97.60%
   * on LFW pairs-dev (differences of ~0.3 points are within the fold noise).
   */
  maxSamples?: number;
  /** Ridge, relative to the mean diagonal of G. */
  ridge?: number;
  seed?: number;
  batch?: number;
  /** Re-fit conv2 of unpruned blocks behind pruned ones too (default true). */
  refitUnpruned?: boolean;
  /**
   * How kept channels are chosen: `contribution` (each channel's share wᶜᵀG_cc wᶜ of the block
   * output with its original weights) or `greedy` (backward elimination by least-squares error
   * with the rest re-fitted, select.ts).
   */
  selection?: 'contribution' | 'greedy';
  /**
   * What the ridge pulls conv2's re-fitted weights towards: 0, or the original weights of the kept
   * channels (the sliced conv2 and its bias), which matters where a block has few sampled rows.
   * Default zero; the original prior has not been measured on LFW.
   */
  prior?: 'zero' | 'original';
  /**
   * Finally re-fit the embedding layer (head/fc) so the pruned network's pooled features map to
   * the unpruned network's embeddings on the calibration chips (head.ts). Default false: on LFW
   * at ratio 0.5 it moved accuracy by −0.4 … +0.3 points (within the fold noise). Skipped when the
   * graph has no head/fc or there are too few calibration chips.
   */
  head?: boolean;
  /** Ridge of the head re-fit (relative, towards the current weights). */
  headRidge?: number;
  /**
   * Before a block's conv2, re-fit its conv1 (all filters, weights + bias) so its pre-activation
   * output on the PRUNED network's block input matches the unpruned network's (default false).
   * Measured at ratio 0.5 (1468 faces, 20000 rows, greedy): lower block errors but 97.50% vs 97.87%
   * on LFW pairs-dev; conv256_down_out's conv1 has 2305 unknowns for 2936 rows (one position per
   * chip) and overfits there.
   */
  refitConv1?: boolean;
  log?: (line: string) => void;
}

export interface BlockReport {
  block: string;
  kept: number;
  of: number;
  samples: number;
  unknowns: number;
  /** Relative squared error ‖ŷ − y‖² / ‖y − ȳ‖² on the calibration samples: plain slice vs re-fit. */
  errSlice: number;
  errRefit: number;
  seconds: number;
}


interface BlockTaps {
  conv2Input: string;
  shortcut: string;
  add: string;
  conv2: GraphNode;
}

/** Value names around a block: conv2's input, the shortcut entering the Add, the Add output. */
export function blockTaps(g: GraphBuilder, block: ResidualBlock): BlockTaps {
  const conv2 = g.nodes.find((n) => n.name === block.conv2) as GraphNode;
  const add = g.nodes.find((n) => n.name === `${block.name}/add`);
  if (!add || add.opType !== 'Add') throw new Error(`${block.name}: no Add node named ${block.name}/add`);
  const producer = new Map<string, GraphNode>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const onConvPath = (v: string): boolean => (producer.get(v)?.name ?? '').startsWith(block.conv2);
  const convIn = add.inputs.find(onConvPath);
  const shortcut = add.inputs.find((v) => !onConvPath(v));
  if (!convIn || !shortcut) throw new Error(`${block.name}: cannot tell the conv path from the shortcut at ${add.name}`);
  return { conv2Input: conv2.inputs[0] as string, shortcut, add: add.outputs[0] as string, conv2 };
}

function convGeometry(node: GraphNode, w: Initializer): { kh: number; kw: number; stride: number; padTop: number; padLeft: number } {
  const pads = (node.attributes.pads as number[] | undefined) ?? [0, 0, 0, 0];
  const strides = (node.attributes.strides as number[] | undefined) ?? [1, 1];
  if (strides[0] !== strides[1]) throw new Error(`${node.name}: non-square strides`);
  return { kh: w.dims[2] as number, kw: w.dims[3] as number, stride: strides[0] as number, padTop: pads[0] as number, padLeft: pads[1] as number };
}

type Tensor = { data: Float32Array; dims: readonly number[] };

/** What one convolution is fitted to: its input X in the pruned network and the target y. */
interface FitSpec {
  /** Value name of the convolution's input in the pruned network (tap outputs). */
  x: string;
  /** Input channels of X. */
  cin: number;
  /** Target at image b, output channel oc and output position (oy, ox), from both taps' outputs. */
  target: (o: Record<string, Tensor>, p: Record<string, Tensor>, b: number, oc: number, oy: number, ox: number) => number;
  label: string;
}

/**
 * Accumulates the normal equations of one convolution over the chip set. Returns G (n×n), AᵀY
 * (n×Cout), Σy, Σy² per output channel and the number of rows; n = cin·kh·kw + 1 (last: the constant).
 */
async function normalEquations(
  original: Tap,
  pruned: Tap,
  spec: FitSpec,
  w2: Initializer,
  node: GraphNode,
  chips: ChipSet,
  opts: Required<Omit<ReconstructOptions, 'log' | 'refitUnpruned' | 'selection' | 'prior' | 'head' | 'headRidge' | 'refitConv1'>>,
): Promise<{ g: Float64Array; aty: Float64Array; n: number; cout: number; rows: number; ySum: Float64Array; ySq: Float64Array }> {
  const geo = convGeometry(node, w2);
  const cout = w2.dims[0] as number;
  const inner = spec.cin;
  const kk = geo.kh * geo.kw;
  const n = inner * kk + 1;
  const g = new Float64Array(n * n);
  const aty = new Float64Array(n * cout);
  const ySum = new Float64Array(cout);
  const ySq = new Float64Array(cout);
  const a = new Float64Array(n);
  const y = new Float64Array(cout);
  const random = seededRandom(opts.seed);
  let rows = 0;
  for (let start = 0; start < chips.count; start += opts.batch) {
    const end = Math.min(chips.count, start + opts.batch);
    const input = chipBatch(chips, start, end);
    const [o, p] = [await original.run(input, end - start), await pruned.run(input, end - start)];
    const x = p[spec.x] as Tensor;
    const [, cx = 0, hx = 0, wx = 0] = x.dims;
    if (cx !== inner) throw new Error(`${spec.label}: input has ${cx} channels, expected ${inner}`);
    // conv2's own output grid (the Add may be larger when the conv path is zero-padded).
    const ho = Math.floor((hx + 2 * geo.padTop - geo.kh) / geo.stride) + 1;
    const wo = Math.floor((wx + 2 * geo.padLeft - geo.kw) / geo.stride) + 1;
    const perImage = Math.max(1, Math.ceil(opts.maxSamples / chips.count));
    for (let b = 0; b < end - start; b++) {
      // Positions of this image: all of them, or a random subset.
      const all = ho * wo;
      const picks: number[] = [];
      if (all <= perImage) for (let q = 0; q < all; q++) picks.push(q);
      else {
        const chosen = new Set<number>();
        while (chosen.size < perImage) chosen.add(Math.floor(random() * all));
        picks.push(...[...chosen].sort((u, v) => u - v));
      }
      for (const q of picks) {
        const oy = Math.floor(q / wo);
        const ox = q % wo;
        for (let c = 0; c < inner; c++) {
          const base = (b * cx + c) * hx * wx;
          for (let ky = 0; ky < geo.kh; ky++) {
            const iy = oy * geo.stride - geo.padTop + ky;
            for (let kx = 0; kx < geo.kw; kx++) {
              const ix = ox * geo.stride - geo.padLeft + kx;
              a[c * kk + ky * geo.kw + kx] = iy >= 0 && iy < hx && ix >= 0 && ix < wx ? (x.data[base + iy * wx + ix] as number) : 0;
            }
          }
        }
        a[n - 1] = 1;
        for (let oc = 0; oc < cout; oc++) {
          const v = spec.target(o, p, b, oc, oy, ox);
          y[oc] = v;
          ySum[oc] = (ySum[oc] as number) + v;
          ySq[oc] = (ySq[oc] as number) + v * v;
        }
        accumulateGram(g, a, n);
        for (let i = 0; i < n; i++) {
          const ai = a[i] as number;
          if (ai === 0) continue;
          const row = i * cout;
          for (let oc = 0; oc < cout; oc++) aty[row + oc] = (aty[row + oc] as number) + ai * (y[oc] as number);
        }
        rows++;
      }
    }
  }
  symmetrize(g, n);
  return { g, aty, n, cout, rows, ySum, ySq };
}

/** ‖Aw − y‖² summed over outputs, from the normal equations: wᵀGw − 2wᵀAᵀy + Σy². */
function residual(g: Float64Array, n: number, aty: Float64Array, cout: number, ySq: Float64Array, idx: readonly number[], weights: Float64Array[]): number {
  let total = 0;
  for (let oc = 0; oc < cout; oc++) {
    const w = weights[oc] as Float64Array;
    let quad = 0;
    let lin = 0;
    for (let i = 0; i < idx.length; i++) {
      const wi = w[i] as number;
      if (wi === 0) continue;
      const gi = (idx[i] as number) * n;
      let s = 0;
      for (let j = 0; j < idx.length; j++) s += (g[gi + (idx[j] as number)] as number) * (w[j] as number);
      quad += wi * s;
      lin += wi * (aty[(idx[i] as number) * cout + oc] as number);
    }
    total += quad - 2 * lin + (ySq[oc] as number);
  }
  return total;
}

export interface ReconstructResult {
  bytes: Uint8Array;
  kept: Record<string, number[]>;
  blocks: BlockReport[];
  /** The head re-fit, when it ran. */
  head?: HeadReport;
  seconds: number;
}

/** Prunes `bytes` with per-block `ratios`, re-fitting every conv2 on the calibration chips. */
export async function pruneReconstruct(bytes: Uint8Array, ratios: BlockRatios, chips: ChipSet, options: ReconstructOptions = {}, info?: Partial<ModelInfo>): Promise<ReconstructResult> {
  const started = performance.now();
  const opts = { maxSamples: options.maxSamples ?? 20000, ridge: options.ridge ?? 1e-3, seed: options.seed ?? 1, batch: options.batch ?? 16 };
  const log = options.log ?? (() => {});
  const origGraph = GraphBuilder.fromBytes(bytes).graph;
  checkRatios(origGraph, ratios);
  let current = GraphBuilder.fromBytes(bytes);
  const blocks = findBlocks(current.graph);
  const kept: Record<string, number[]> = {};
  const reports: BlockReport[] = [];
  let upstreamChanged = false;
  for (const block of blocks) {
    const remove = prunedCount(block.inner, ratioFor(ratios, block.name));
    if (remove === 0 && (!upstreamChanged || options.refitUnpruned === false)) continue;
    const t0 = performance.now();
    const origBlock = findBlocks(origGraph).find((b) => b.name === block.name) as ResidualBlock;
    if (options.refitConv1 && upstreamChanged) {
      await refitConv1(bytes, origGraph, current, block, chips, opts, options.prior === 'original', log);
      current = GraphBuilder.fromBytes(current.graph.toBytes(current.info));
    }
    const currentBytes = current.graph.toBytes(current.info);
    const taps = { orig: blockTaps(origGraph, origBlock), pruned: blockTaps(current.graph, block) };
    const original = await openTap(bytes, [taps.orig.add], chips);
    const pruned = await openTap(currentBytes, [taps.pruned.conv2Input, taps.pruned.shortcut], chips);
    const w2 = current.graph.initializers.get(block.w2) as Initializer;
    // Target: the unpruned Add output minus the pruned network's shortcut (y = T − S).
    const spec: FitSpec = {
      x: taps.pruned.conv2Input,
      cin: block.inner,
      label: `${block.name}/conv2`,
      target: (o, p, b, oc, oy, ox) => {
        const t = o[taps.orig.add] as Tensor;
        const [, c = 0, ht = 0, wt = 0] = t.dims;
        const idx = ((b * c + oc) * ht + oy) * wt + ox;
        return (t.data[idx] as number) - ((p[taps.pruned.shortcut] as Tensor).data[idx] as number);
      },
    };
    let eq: Awaited<ReturnType<typeof normalEquations>>;
    try {
      eq = await normalEquations(original, pruned, spec, w2, taps.pruned.conv2, chips, opts);
    } finally {
      await original.release();
      await pruned.release();
    }
    const { g, aty, n, cout, rows, ySum, ySq } = eq;
    const kk = (w2.dims[2] as number) * (w2.dims[3] as number);
    const inner = block.inner;
    const w2d = w2.data as Float32Array;
    const b2d = block.b2 ? ((current.graph.initializers.get(block.b2) as Initializer).data as Float32Array) : new Float32Array(cout);
    // Channel contributions wᶜᵀ G_cc wᶜ with the current weights.
    const energy: number[] = [];
    for (let c = 0; c < inner; c++) {
      let e = 0;
      for (let oc = 0; oc < cout; oc++) {
        for (let t1 = 0; t1 < kk; t1++) {
          const w1 = w2d[(oc * inner + c) * kk + t1] as number;
          if (w1 === 0) continue;
          let s = 0;
          for (let t2 = 0; t2 < kk; t2++) s += (g[(c * kk + t1) * n + c * kk + t2] as number) * (w2d[(oc * inner + c) * kk + t2] as number);
          e += w1 * s;
        }
      }
      energy.push(e);
    }
    const keep =
      remove === 0
        ? Array.from({ length: inner }, (_, i) => i)
        : (options.selection ?? 'greedy') === 'greedy'
          ? greedyKeep(g, n, aty, cout, inner, kk, inner - remove, opts.ridge)
          : keepTopScores(energy, inner - remove);
    const idx = [...keep.flatMap((c) => Array.from({ length: kk }, (_, t) => c * kk + t)), n - 1];
    const sub = subMatrix(g, n, idx);
    const rhs = Array.from({ length: cout }, (_, oc) => Float64Array.from(idx, (i) => aty[i * cout + oc] as number));
    // The sliced original weights: the ridge prior (optionally) and the baseline error.
    const sliced = Array.from({ length: cout }, (_, oc) =>
      Float64Array.from(idx, (i) => (i === n - 1 ? (b2d[oc] as number) : (w2d[(oc * inner + Math.floor(i / kk)) * kk + (i % kk)] as number))),
    );
    const solved = solveNormalEquations(sub, idx.length, rhs, opts.ridge, options.prior === 'original' ? sliced : undefined);
    let variance = 0;
    for (let oc = 0; oc < cout; oc++) variance += (ySq[oc] as number) - (ySum[oc] as number) ** 2 / Math.max(1, rows);
    const errSlice = residual(g, n, aty, cout, ySq, idx, sliced) / variance;
    const errRefit = residual(g, n, aty, cout, ySq, idx, solved) / variance;
    const weight = new Float32Array(cout * keep.length * kk);
    const bias = new Float32Array(cout);
    for (let oc = 0; oc < cout; oc++) {
      const x = solved[oc] as Float64Array;
      for (let k = 0; k < keep.length * kk; k++) weight[oc * keep.length * kk + k] = x[k] as number;
      bias[oc] = x[idx.length - 1] as number;
    }
    pruneBlock(current.graph, block, keep, { weight, bias });
    if (remove > 0) kept[block.name] = keep;
    upstreamChanged = true;
    const seconds = (performance.now() - t0) / 1000;
    reports.push({ block: block.name, kept: keep.length, of: inner, samples: rows, unknowns: idx.length, errSlice, errRefit, seconds });
    log(`${block.name}: kept ${keep.length}/${inner}, ${rows} samples × ${idx.length} unknowns, relative error ${errSlice.toFixed(4)} (sliced) → ${errRefit.toFixed(4)} (re-fit), ${seconds.toFixed(1)} s`);
    current = GraphBuilder.fromBytes(current.graph.toBytes(current.info));
  }
  const pruned = current.graph.toBytes(mergeInfo(current.info, info));
  const done = (): ReconstructResult => ({ bytes: pruned, kept, blocks: reports, seconds: (performance.now() - started) / 1000 });
  const features = headFeatures(current.graph);
  if (options.head !== true || reports.length === 0 || features === undefined) return done();
  // Measured on LFW (ratio 0.5): with 600 chips for 257 unknowns the re-fit overfit (−0.4 points).
  if (chips.count < HEAD_MIN_CHIPS_PER_UNKNOWN * (features + 1)) {
    log(`head/fc: not re-fitted (${chips.count} calibration chips < ${HEAD_MIN_CHIPS_PER_UNKNOWN} per unknown × ${features + 1})`);
    return done();
  }
  const head = await refitHead(bytes, pruned, chips, { ridge: options.headRidge ?? 1e-3, batch: opts.batch });
  log(`head/fc: embedding error ${head.report.errBefore.toFixed(4)} → ${head.report.errAfter.toFixed(4)} (centred, relative, ${head.report.samples} calibration chips), ${head.report.seconds.toFixed(1)} s`);
  return { bytes: head.bytes, kept, blocks: reports, head: head.report, seconds: (performance.now() - started) / 1000 };
}

/**
 * Re-fits conv1 of `block` in `current` (in place): its pre-activation output on the pruned
 * network's block input is fitted to the unpruned network's, so conv1 absorbs the upstream drift.
 */
async function refitConv1(
  bytes: Uint8Array,
  origGraph: GraphBuilder,
  current: { graph: GraphBuilder; info: ModelInfo },
  block: ResidualBlock,
  chips: ChipSet,
  opts: Parameters<typeof normalEquations>[6],
  priorOriginal: boolean,
  log: (line: string) => void,
): Promise<void> {
  const node = current.graph.nodes.find((n) => n.name === block.conv1) as GraphNode;
  const target = (origGraph.nodes.find((n) => n.name === block.conv1) as GraphNode).outputs[0] as string;
  const w1 = current.graph.initializers.get(block.w1) as Initializer;
  if (!block.b1) throw new Error(`${block.name}: conv1 has no bias to re-fit`);
  const b1 = (current.graph.initializers.get(block.b1) as Initializer).data as Float32Array;
  const [cout = 0, cin = 0, kh = 0, kw = 0] = w1.dims;
  const kk = kh * kw;
  const original = await openTap(bytes, [target], chips);
  const pruned = await openTap(current.graph.toBytes(current.info), [node.inputs[0] as string], chips);
  const spec: FitSpec = {
    x: node.inputs[0] as string,
    cin,
    label: `${block.name}/conv1`,
    target: (o, _p, b, oc, oy, ox) => {
      const t = o[target] as Tensor;
      const [, c = 0, ht = 0, wt = 0] = t.dims;
      return t.data[((b * c + oc) * ht + oy) * wt + ox] as number;
    },
  };
  let eq: Awaited<ReturnType<typeof normalEquations>>;
  try {
    eq = await normalEquations(original, pruned, spec, w1, node, chips, opts);
  } finally {
    await original.release();
    await pruned.release();
  }
  const { g, aty, n, rows, ySum, ySq } = eq;
  const idx = Array.from({ length: n }, (_, i) => i);
  const w1d = w1.data as Float32Array;
  const now = Array.from({ length: cout }, (_, oc) => Float64Array.from(idx, (i) => (i === n - 1 ? (b1[oc] as number) : (w1d[oc * cin * kk + i] as number))));
  const rhs = Array.from({ length: cout }, (_, oc) => Float64Array.from(idx, (i) => aty[i * cout + oc] as number));
  const solved = solveNormalEquations(g, n, rhs, opts.ridge, priorOriginal ? now : undefined);
  let variance = 0;
  for (let oc = 0; oc < cout; oc++) variance += (ySq[oc] as number) - (ySum[oc] as number) ** 2 / Math.max(1, rows);
  const before = residual(g, n, aty, cout, ySq, idx, now) / variance;
  const after = residual(g, n, aty, cout, ySq, idx, solved) / variance;
  const weight = new Float32Array(cout * cin * kk);
  const bias = new Float32Array(cout);
  for (let oc = 0; oc < cout; oc++) {
    const x = solved[oc] as Float64Array;
    for (let k = 0; k < cin * kk; k++) weight[oc * cin * kk + k] = x[k] as number;
    bias[oc] = x[n - 1] as number;
  }
  current.graph.initializers.set(block.w1, { name: block.w1, dims: [...w1.dims], data: weight });
  current.graph.initializers.set(block.b1, { name: block.b1, dims: [cout], data: bias });
  log(`${block.name}/conv1: ${rows} samples × ${n} unknowns, relative error ${before.toFixed(4)} (as is) → ${after.toFixed(4)} (re-fit)`);
}

/** The head re-fit needs this many calibration chips per unknown (features + constant). */
export const HEAD_MIN_CHIPS_PER_UNKNOWN = 4;

/** Input features of head/fc, or undefined when the graph has none. */
function headFeatures(g: GraphBuilder): number | undefined {
  try {
    return headLayer(g).weight.dims[0];
  } catch {
    return undefined;
  }
}

/**
 * Relative error ‖T_pruned − T_orig‖² / ‖T_orig − mean‖² of a block's Add output over a chip set
 * (both networks run end to end up to the block).
 */
export async function blockOutputError(origBytes: Uint8Array, prunedBytes: Uint8Array, blockName: string, chips: ChipSet, batch = 16): Promise<number> {
  const name = (b: Uint8Array): string => {
    const { graph } = GraphBuilder.fromBytes(b);
    const block = findBlocks(graph).find((x) => x.name === blockName);
    if (!block) throw new Error(`no block ${blockName}`);
    return blockTaps(graph, block).add;
  };
  const a = await openTap(origBytes, [name(origBytes)], chips);
  const b = await openTap(prunedBytes, [name(prunedBytes)], chips);
  let err = 0;
  let sum = 0;
  let sq = 0;
  let count = 0;
  try {
    for (let start = 0; start < chips.count; start += batch) {
      const end = Math.min(chips.count, start + batch);
      const input = chipBatch(chips, start, end);
      const ta = Object.values(await a.run(input, end - start))[0]?.data as Float32Array;
      const tb = Object.values(await b.run(input, end - start))[0]?.data as Float32Array;
      for (let i = 0; i < ta.length; i++) {
        const d = (ta[i] as number) - (tb[i] as number);
        err += d * d;
        sum += ta[i] as number;
        sq += (ta[i] as number) ** 2;
      }
      count += ta.length;
    }
  } finally {
    await a.release();
    await b.release();
  }
  return err / (sq - (sum * sum) / count);
}
