// A tiny, literal NHWC reference interpreter for float32 TFLite graphs: only the ops the MTCNN
// and MobileFaceNet files use, executed one by one exactly as TFLite defines them (no fusion, no layout tricks).
// Shapes are recomputed from the actual input, so P-Net runs on any input size.
import type { TfliteGraph, TfliteOperator, Padding, Activation } from '../../models/tflite/reader.js';

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

function act(v: number, a: Activation): number {
  if (a === 'NONE') return v;
  if (a === 'RELU') return Math.max(0, v);
  if (a === 'RELU6') return Math.min(6, Math.max(0, v));
  throw new Error(`reference: activation ${a}`);
}

/** TF output size and leading pad for one spatial axis. */
function samePad(inSize: number, k: number, s: number, padding: Padding): { out: number; before: number } {
  if (padding === 'VALID') return { out: Math.floor((inSize - k) / s) + 1, before: 0 };
  const out = Math.ceil(inSize / s);
  const total = Math.max((out - 1) * s + k - inSize, 0);
  return { out, before: Math.floor(total / 2) };
}

/** CONV_2D (weights OHWI) and DEPTHWISE_CONV_2D (weights 1HWC, multiplier 1), as TFLite defines them. */
function conv2d(x: Tensor, w: Tensor, b: Float32Array | undefined, op: TfliteOperator): Tensor {
  const o = op.options;
  if (o.kind !== 'conv2d' && o.kind !== 'depthwiseConv2d') throw new Error('conv options');
  const depthwise = o.kind === 'depthwiseConv2d';
  if (depthwise && o.depthMultiplier !== 1) throw new Error('depthwise multiplier');
  const [n, h, wd, ci] = x.shape as [number, number, number, number];
  const [w0, kh, kw, w3] = w.shape as [number, number, number, number];
  const co = depthwise ? w3 : w0;
  if (w3 !== ci) throw new Error('conv channel mismatch');
  const ph = samePad(h, kh, o.strideH, o.padding);
  const pw = samePad(wd, kw, o.strideW, o.padding);
  const out = new Float32Array(n * ph.out * pw.out * co);
  for (let bn = 0; bn < n; bn++)
    for (let oy = 0; oy < ph.out; oy++)
      for (let ox = 0; ox < pw.out; ox++)
        for (let oc = 0; oc < co; oc++) {
          let acc = b ? (b[oc] as number) : 0;
          for (let ky = 0; ky < kh; ky++) {
            const iy = oy * o.strideH + ky - ph.before;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < kw; kx++) {
              const ix = ox * o.strideW + kx - pw.before;
              if (ix < 0 || ix >= wd) continue;
              const xBase = ((bn * h + iy) * wd + ix) * ci;
              if (depthwise) {
                acc += (x.data[xBase + oc] as number) * (w.data[(ky * kw + kx) * co + oc] as number);
                continue;
              }
              const wBase = ((oc * kh + ky) * kw + kx) * ci;
              for (let c = 0; c < ci; c++) acc += (x.data[xBase + c] as number) * (w.data[wBase + c] as number);
            }
          }
          out[((bn * ph.out + oy) * pw.out + ox) * co + oc] = act(acc, o.activation);
        }
  return { shape: [n, ph.out, pw.out, co], data: out };
}

function maxPool(x: Tensor, op: TfliteOperator): Tensor {
  const o = op.options;
  if (o.kind !== 'pool2d') throw new Error('pool options');
  const [n, h, wd, c] = x.shape as [number, number, number, number];
  const ph = samePad(h, o.filterH, o.strideH, o.padding);
  const pw = samePad(wd, o.filterW, o.strideW, o.padding);
  const out = new Float32Array(n * ph.out * pw.out * c);
  for (let bn = 0; bn < n; bn++)
    for (let oy = 0; oy < ph.out; oy++)
      for (let ox = 0; ox < pw.out; ox++)
        for (let ch = 0; ch < c; ch++) {
          let m = -Infinity;
          for (let ky = 0; ky < o.filterH; ky++) {
            const iy = oy * o.strideH + ky - ph.before;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < o.filterW; kx++) {
              const ix = ox * o.strideW + kx - pw.before;
              if (ix < 0 || ix >= wd) continue;
              m = Math.max(m, x.data[((bn * h + iy) * wd + ix) * c + ch] as number);
            }
          }
          out[((bn * ph.out + oy) * pw.out + ox) * c + ch] = act(m, o.activation);
        }
  return { shape: [n, ph.out, pw.out, c], data: out };
}

function fullyConnected(x: Tensor, w: Tensor, b: Float32Array | undefined, op: TfliteOperator): Tensor {
  const o = op.options;
  if (o.kind !== 'fullyConnected') throw new Error('fc options');
  const [units, features] = w.shape as [number, number];
  const batch = size(x.shape) / features; // TFLite flattens everything but the last weight dim
  const out = new Float32Array(batch * units);
  for (let bn = 0; bn < batch; bn++)
    for (let u = 0; u < units; u++) {
      let acc = b ? (b[u] as number) : 0;
      for (let f = 0; f < features; f++) acc += (x.data[bn * features + f] as number) * (w.data[u * features + f] as number);
      out[bn * units + u] = act(acc, o.activation);
    }
  return { shape: [batch, units], data: out };
}

/** Numpy-style broadcasting binary op. */
function binary(a: Tensor, b: Tensor, f: (x: number, y: number) => number, activation: Activation): Tensor {
  const rank = Math.max(a.shape.length, b.shape.length);
  const pad = (s: number[]): number[] => [...Array<number>(rank - s.length).fill(1), ...s];
  const sa = pad(a.shape);
  const sb = pad(b.shape);
  const shape = sa.map((d, i) => {
    const e = sb[i] as number;
    if (d !== e && d !== 1 && e !== 1) throw new Error(`broadcast [${a.shape}] vs [${b.shape}]`);
    return Math.max(d, e);
  });
  const strides = (s: number[]): number[] => {
    const st = new Array<number>(rank).fill(0);
    let acc = 1;
    for (let i = rank - 1; i >= 0; i--) {
      st[i] = (s[i] as number) === 1 ? 0 : acc;
      acc *= s[i] as number;
    }
    return st;
  };
  const stA = strides(sa);
  const stB = strides(sb);
  const out = new Float32Array(size(shape));
  const idx = new Array<number>(rank).fill(0);
  for (let k = 0; k < out.length; k++) {
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < rank; d++) {
      ia += (idx[d] as number) * (stA[d] as number);
      ib += (idx[d] as number) * (stB[d] as number);
    }
    out[k] = act(f(a.data[ia] as number, b.data[ib] as number), activation);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = (idx[d] as number) + 1;
      if ((idx[d] as number) < (shape[d] as number)) break;
      idx[d] = 0;
    }
  }
  return { shape, data: out };
}

function reduce(x: Tensor, axes: Int32Array, keepDims: boolean, init: number, f: (acc: number, v: number) => number): Tensor {
  const rank = x.shape.length;
  const ax = new Set(Array.from(axes, (a) => (a < 0 ? a + rank : a)));
  const keptShape = x.shape.map((d, i) => (ax.has(i) ? 1 : d));
  const out = new Float32Array(size(keptShape)).fill(init);
  const idx = new Array<number>(rank).fill(0);
  for (let k = 0; k < x.data.length; k++) {
    let o = 0;
    for (let d = 0; d < rank; d++) o = o * (keptShape[d] as number) + (ax.has(d) ? 0 : (idx[d] as number));
    out[o] = f(out[o] as number, x.data[k] as number);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d] = (idx[d] as number) + 1;
      if ((idx[d] as number) < (x.shape[d] as number)) break;
      idx[d] = 0;
    }
  }
  return { shape: keepDims ? keptShape : x.shape.filter((_, i) => !ax.has(i)), data: out };
}

function unary(x: Tensor, f: (v: number) => number): Tensor {
  return { shape: [...x.shape], data: x.data.map(f) };
}

/** Runs the graph on NHWC `input` (already normalised as the TFLite model expects). */
export function runTfliteReference(graph: TfliteGraph, input: Tensor): Map<string, Tensor> {
  const values = new Map<number, Tensor>();
  const get = (i: number | undefined): Tensor => {
    if (i === undefined) throw new Error('missing input');
    const v = values.get(i);
    if (v) return v;
    const t = graph.tensors[i];
    if (t?.data instanceof Float32Array) return { shape: t.shape, data: t.data };
    throw new Error(`tensor #${i} has no value`);
  };
  const constF = (i: number | undefined): Float32Array | undefined => {
    if (i === undefined || i < 0) return undefined;
    const d = graph.tensors[i]?.data;
    if (!(d instanceof Float32Array)) throw new Error(`tensor #${i} is not a float constant`);
    return d;
  };
  const axesOf = (i: number | undefined): Int32Array => {
    const d = i === undefined ? undefined : graph.tensors[i]?.data;
    if (!(d instanceof Int32Array)) throw new Error('reduction axes must be an int32 constant');
    return d;
  };
  values.set(graph.inputs[0] as number, input);
  for (const op of graph.operators) {
    const fused = op.options.kind === 'activation' ? op.options.activation : 'NONE';
    const keep = op.options.kind === 'reducer' && op.options.keepDims;
    let y: Tensor;
    switch (op.opcode) {
      case 'CONV_2D':
      case 'DEPTHWISE_CONV_2D':
        y = conv2d(get(op.inputs[0]), get(op.inputs[1]), constF(op.inputs[2]), op);
        break;
      case 'ABS':
        y = unary(get(op.inputs[0]), Math.abs);
        break;
      case 'RESHAPE': {
        // Flattens each batch row (the stored shape names the batch the file was exported with).
        const x = get(op.inputs[0]);
        const rows = x.shape[0] as number;
        y = { shape: [rows, size(x.shape) / rows], data: x.data };
        break;
      }
      case 'MAX_POOL_2D':
        y = maxPool(get(op.inputs[0]), op);
        break;
      case 'FULLY_CONNECTED':
        y = fullyConnected(get(op.inputs[0]), get(op.inputs[1]), constF(op.inputs[2]), op);
        break;
      case 'RELU':
        y = unary(get(op.inputs[0]), (v) => Math.max(0, v));
        break;
      case 'NEG':
        y = unary(get(op.inputs[0]), (v) => -v);
        break;
      case 'EXP':
        y = unary(get(op.inputs[0]), Math.exp);
        break;
      case 'ADD':
        y = binary(get(op.inputs[0]), get(op.inputs[1]), (a, b) => a + b, fused);
        break;
      case 'SUB':
        y = binary(get(op.inputs[0]), get(op.inputs[1]), (a, b) => a - b, fused);
        break;
      case 'MUL':
        y = binary(get(op.inputs[0]), get(op.inputs[1]), (a, b) => a * b, fused);
        break;
      case 'DIV':
        y = binary(get(op.inputs[0]), get(op.inputs[1]), (a, b) => a / b, fused);
        break;
      case 'REDUCE_MAX':
        y = reduce(get(op.inputs[0]), axesOf(op.inputs[1]), keep, -Infinity, Math.max);
        break;
      case 'SUM':
        y = reduce(get(op.inputs[0]), axesOf(op.inputs[1]), keep, 0, (a, v) => a + v);
        break;
      default:
        throw new Error(`reference: op ${op.opcode} not implemented`);
    }
    values.set(op.outputs[0] as number, y);
  }
  return new Map(graph.outputs.map((i) => [graph.tensors[i]?.name ?? String(i), get(i)]));
}
