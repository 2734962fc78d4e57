// Structured filter pruning of residual blocks (Li et al. 2017, as used by the paper): inside
// every residual block, the filters of the first convolution are ranked and the lowest removed,
// together with every per-channel tensor between the two convolutions (e.g. a PReLU slope) and the
// matching input channels of the block's second convolution. The block's output channels (tied to
// the shortcut) are left as they are, so the network's interface and every other layer is unchanged.
//
// Blocks are found by node name: a Conv named `<block>/conv1` followed by a Conv named
// `<block>/conv2` (the naming of models/build/dlib-resnet.ts and models/compress/lresnet50e-ir.ts).
// Conv initializers are `<node>/weight` [Cout, Cin, kh, kw] and `<node>/bias` [Cout].
import { GraphBuilder, type Initializer, type ModelInfo } from '../onnx/graph-builder.js';

export interface ResidualBlock {
  name: string;
  conv1: string;
  conv2: string;
  /** Output channels of conv1 = input channels of conv2 (what pruning removes). */
  inner: number;
  /** Initializer names of conv1's weight/bias and conv2's weight/bias. */
  w1: string;
  b1: string | undefined;
  w2: string;
  b2: string | undefined;
  /** Per-channel initializers of the nodes between conv1 and conv2 (sliced along `axis`). */
  between: { name: string; axis: number }[];
}

function weightOf(g: GraphBuilder, nodeName: string): { w: string; b: string | undefined } {
  const node = g.nodes.find((n) => n.name === nodeName);
  if (!node || node.opType !== 'Conv') throw new Error(`no Conv node named ${nodeName}`);
  const w = node.inputs[1];
  if (!w || !g.initializers.has(w)) throw new Error(`${nodeName}: weight is not an initializer`);
  const b = node.inputs[2];
  return { w, b: b && g.initializers.has(b) ? b : undefined };
}

/** The residual blocks of a graph, in node order. */
export function findBlocks(g: GraphBuilder): ResidualBlock[] {
  const names = new Set(g.nodes.map((n) => n.name));
  const blocks: ResidualBlock[] = [];
  for (const n of g.nodes) {
    if (n.opType !== 'Conv' || !n.name.endsWith('/conv1')) continue;
    const name = n.name.slice(0, -'/conv1'.length);
    if (!names.has(`${name}/conv2`)) continue;
    const c1 = weightOf(g, `${name}/conv1`);
    const c2 = weightOf(g, `${name}/conv2`);
    const inner = (g.initializers.get(c1.w) as Initializer).dims[0] as number;
    const cin2 = (g.initializers.get(c2.w) as Initializer).dims[1] as number;
    if (cin2 !== inner) throw new Error(`${name}: conv1 has ${inner} filters but conv2 reads ${cin2} channels`);
    // Nodes named `<block>/conv1/...` (activation etc.) with per-channel initializers.
    const between: ResidualBlock['between'] = [];
    for (const m of g.nodes) {
      if (!m.name.startsWith(`${name}/conv1/`)) continue;
      for (const input of m.inputs) {
        const init = g.initializers.get(input);
        if (!init || init.dims.length === 0) continue;
        const axis = init.dims.findIndex((d) => d === inner);
        if (axis < 0 || init.dims.some((d, i) => i !== axis && d !== 1)) throw new Error(`${m.name}: initializer ${input} [${init.dims.join(',')}] is not per-channel`);
        between.push({ name: input, axis });
      }
    }
    blocks.push({ name, conv1: `${name}/conv1`, conv2: `${name}/conv2`, inner, w1: c1.w, b1: c1.b, w2: c2.w, b2: c2.b, between });
  }
  return blocks;
}

/** L1 norm of each conv1 filter (sum of |w| over input channels and taps). */
export function l1Norms(g: GraphBuilder, block: ResidualBlock): number[] {
  const w = g.initializers.get(block.w1) as Initializer;
  const per = w.data.length / block.inner;
  const out: number[] = [];
  for (let o = 0; o < block.inner; o++) {
    let s = 0;
    for (let i = 0; i < per; i++) s += Math.abs(w.data[o * per + i] as number);
    out.push(s);
  }
  return out;
}

/** Number of filters ratio r removes from a block of `inner` filters (at least one stays). */
export const prunedCount = (inner: number, ratio: number): number => Math.min(inner - 1, Math.max(0, Math.round(ratio * inner)));

/** Indices of the filters to keep: the highest scores, returned in ascending index order. */
export function keepTopScores(scores: readonly number[], keep: number): number[] {
  return scores
    .map((s, i) => ({ s, i }))
    .sort((a, b) => b.s - a.s || a.i - b.i)
    .slice(0, keep)
    .map((x) => x.i)
    .sort((a, b) => a - b);
}

/** Slices `data` with shape `dims` along `axis`, keeping `keep` (ascending). */
export function sliceAxis(data: Float32Array, dims: readonly number[], axis: number, keep: readonly number[]): Float32Array {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = dims[axis] as number;
  const out = new Float32Array(outer * keep.length * inner);
  let p = 0;
  for (let o = 0; o < outer; o++) {
    for (const k of keep) {
      const src = (o * n + k) * inner;
      out.set(data.subarray(src, src + inner), p);
      p += inner;
    }
  }
  return out;
}

function replace(g: GraphBuilder, name: string, data: Float32Array, dims: number[]): void {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (expected !== data.length) throw new Error(`${name}: [${dims.join(',')}] needs ${expected} values, got ${data.length}`);
  g.initializers.set(name, { name, dims, data });
}

/**
 * Keeps the conv1 filters `keep` of `block` (ascending indices) and the matching conv2 input
 * channels. `conv2` replaces conv2's weight (already [Cout, keep.length, kh, kw]) and bias
 * (re-fitted by least squares); without it the original columns are kept.
 */
export function pruneBlock(g: GraphBuilder, block: ResidualBlock, keep: readonly number[], conv2?: { weight: Float32Array; bias: Float32Array }): void {
  if (keep.length === 0 || keep.some((k, i) => k < 0 || k >= block.inner || (i > 0 && k <= (keep[i - 1] as number)))) {
    throw new Error(`${block.name}: keep must be ascending indices in 0..${block.inner - 1}`);
  }
  const w1 = g.initializers.get(block.w1) as Initializer;
  replace(g, block.w1, sliceAxis(w1.data as Float32Array, w1.dims, 0, keep), [keep.length, ...w1.dims.slice(1)]);
  if (block.b1) replace(g, block.b1, sliceAxis((g.initializers.get(block.b1) as Initializer).data as Float32Array, [block.inner], 0, keep), [keep.length]);
  for (const b of block.between) {
    const init = g.initializers.get(b.name) as Initializer;
    const dims = [...init.dims];
    dims[b.axis] = keep.length;
    replace(g, b.name, sliceAxis(init.data as Float32Array, init.dims, b.axis, keep), dims);
  }
  const w2 = g.initializers.get(block.w2) as Initializer;
  const dims2 = [w2.dims[0] as number, keep.length, ...w2.dims.slice(2)];
  if (conv2) {
    replace(g, block.w2, conv2.weight, dims2);
    if (block.b2) replace(g, block.b2, conv2.bias, [w2.dims[0] as number]);
    else throw new Error(`${block.name}: conv2 has no bias to re-fit`);
  } else {
    replace(g, block.w2, sliceAxis(w2.data as Float32Array, w2.dims, 1, keep), dims2);
  }
}

export type PruneMethod = 'l1' | 'reconstruct';

/** Per-block ratios: one number for every block, or a map by block name (missing blocks: 0). */
export type BlockRatios = number | Record<string, number>;

export const ratioFor = (ratios: BlockRatios, block: string): number => (typeof ratios === 'number' ? ratios : (ratios[block] ?? 0));

export function checkRatios(g: GraphBuilder, ratios: BlockRatios): void {
  const values = typeof ratios === 'number' ? [ratios] : Object.values(ratios);
  for (const r of values) if (!(r >= 0 && r < 1)) throw new Error(`pruning ratio ${r} is outside [0, 1)`);
  if (typeof ratios !== 'number') {
    const known = new Set(findBlocks(g).map((b) => b.name));
    for (const k of Object.keys(ratios)) if (!known.has(k)) throw new Error(`unknown block "${k}"; blocks: ${[...known].join(', ')}`);
  }
}

/** Plain L1 pruning of every block. Returns the new model bytes and the kept indices per block. */
export function pruneL1(bytes: Uint8Array, ratios: BlockRatios, info?: Partial<ModelInfo>): { bytes: Uint8Array; kept: Record<string, number[]> } {
  const { graph, info: original } = GraphBuilder.fromBytes(bytes);
  checkRatios(graph, ratios);
  const kept: Record<string, number[]> = {};
  let changed = false;
  for (const block of findBlocks(graph)) {
    const remove = prunedCount(block.inner, ratioFor(ratios, block.name));
    if (remove === 0) continue;
    const keep = keepTopScores(l1Norms(graph, block), block.inner - remove);
    pruneBlock(graph, block, keep);
    kept[block.name] = keep;
    changed = true;
  }
  if (!changed && !info) return { bytes, kept };
  return { bytes: graph.toBytes(mergeInfo(original, info)), kept };
}

export function mergeInfo(original: ModelInfo, extra: Partial<ModelInfo> | undefined): ModelInfo {
  return {
    ...original,
    ...(extra?.producerName ? { producerName: extra.producerName } : {}),
    ...(extra?.producerVersion ? { producerVersion: extra.producerVersion } : {}),
    ...(extra?.docString ? { docString: extra.docString } : {}),
    metadata: { ...(original.metadata ?? {}), ...(extra?.metadata ?? {}) },
  };
}
