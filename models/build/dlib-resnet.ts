// Builds the dlib ResNet face descriptor (face-api.js `faceRecognitionNet`, 150×150 → 128-d)
// as an ONNX model from the TF.js weights shipped in @vladmandic/face-api.
//
// ONNX contract:
//   input  `input`     float32 [batch,3,150,150], NCHW, RGB, raw pixels 0..255
//                      (normalisation (x - meanRgb) / 255 happens inside the graph)
//   output `embedding` float32 [batch,128]  — face-api's descriptor, NOT L2-normalised
//   output `features`  float32 [batch,256,2,2] — last feature map (after the final block's
//                      ReLU), before the spatial mean
//
// Node naming scheme (the pruning tool relies on it):
//   normalize/sub, normalize/div           input normalisation
//   conv32_down/conv, conv32_down/relu     7×7/2 stem conv (bias + scale layer folded in)
//   pool                                   3×3/2 max pool
//   <block>/conv1, <block>/conv1/relu      first conv of a residual block
//   <block>/conv2                          second conv of a residual block (no ReLU)
//   <block>/shortcut/avgpool               (down blocks) 2×2/2 average pool of the block input
//   <block>/shortcut/pad_channels          (down blocks, when channels double) zero channels
//   <block>/conv2/pad_spatial              (down blocks, when the conv path is 1 smaller) zero
//                                          row at the bottom + zero column at the right
//   <block>/add, <block>/relu              residual sum and output
//   head/mean, head/fc                     spatial mean and the 256×128 fully connected layer
// where <block> is one of conv32_1..3, conv64_down, conv64_1..3, conv128_down, conv128_1..2,
// conv256_down, conv256_1..2, conv256_down_out. Conv initializers are `<node>/weight`,
// `<node>/bias`; the fc matrix is `head/fc/weight`.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { GraphBuilder } from '../onnx/graph-builder.js';

const PACKAGE = '@vladmandic/face-api';
const MANIFEST_FILE = 'face_recognition_model-weights_manifest.json';
const INPUT_SIZE = 150;
const MEAN_RGB = [122.782, 117.001, 104.298] as const;
const INPUT_DIVISOR = 255;

/** Blocks in order: [name, kind]. Output channels come from the weights. */
const BLOCKS: ReadonlyArray<readonly [string, 'residual' | 'down']> = [
  ['conv32_1', 'residual'],
  ['conv32_2', 'residual'],
  ['conv32_3', 'residual'],
  ['conv64_down', 'down'],
  ['conv64_1', 'residual'],
  ['conv64_2', 'residual'],
  ['conv64_3', 'residual'],
  ['conv128_down', 'down'],
  ['conv128_1', 'residual'],
  ['conv128_2', 'residual'],
  ['conv256_down', 'down'],
  ['conv256_1', 'residual'],
  ['conv256_2', 'residual'],
  ['conv256_down_out', 'down'],
];

interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
  quantization?: { dtype: 'uint8' | 'uint16'; scale: number; min: number };
}

interface Tensor {
  shape: number[];
  data: Float32Array;
}

// ---------------------------------------------------------------------------------------------
// Manifest parsing

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseEntry(v: unknown, where: string): WeightEntry {
  if (!isRecord(v)) throw new Error(`${where}: expected an object`);
  const { name, shape, dtype, quantization } = v;
  if (typeof name !== 'string' || name === '') throw new Error(`${where}: "name" must be a non-empty string`);
  const at = `${where} (${name})`;
  if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isInteger(d) && d > 0)) {
    throw new Error(`${at}: "shape" must be an array of positive integers`);
  }
  if (dtype !== 'float32') throw new Error(`${at}: dtype ${JSON.stringify(dtype)} is not supported (float32 only)`);
  if (quantization === undefined) return { name, shape, dtype };
  if (!isRecord(quantization)) throw new Error(`${at}: "quantization" must be an object`);
  const q = quantization;
  if (q.dtype !== 'uint8' && q.dtype !== 'uint16') {
    throw new Error(`${at}: quantization dtype ${JSON.stringify(q.dtype)} is not supported (uint8/uint16 with scale/min)`);
  }
  if (typeof q.scale !== 'number' || !Number.isFinite(q.scale) || typeof q.min !== 'number' || !Number.isFinite(q.min)) {
    throw new Error(`${at}: quantization needs finite numeric "scale" and "min"`);
  }
  return { name, shape, dtype, quantization: { dtype: q.dtype, scale: q.scale, min: q.min } };
}

/**
 * Decodes a TF.js weights manifest against the concatenated bytes of all its groups' `paths`
 * (in manifest order). Entries are packed back to back: quantised ones take 1 (uint8) or 2
 * (uint16, little-endian) bytes per value and dequantise as q*scale + min; unquantised float32
 * ones take 4 little-endian bytes per value.
 */
export function decodeTfjsWeights(manifest: unknown, weights: Uint8Array): Map<string, Tensor> {
  if (!Array.isArray(manifest) || manifest.length === 0) {
    throw new Error('weights manifest: expected a non-empty array of weight groups');
  }
  const entries: WeightEntry[] = [];
  manifest.forEach((group: unknown, gi) => {
    if (!isRecord(group)) throw new Error(`weights manifest group ${gi}: expected an object`);
    if (!Array.isArray(group.paths) || !group.paths.every((p) => typeof p === 'string')) {
      throw new Error(`weights manifest group ${gi}: "paths" must be an array of file names`);
    }
    if (!Array.isArray(group.weights)) throw new Error(`weights manifest group ${gi}: "weights" must be an array`);
    group.weights.forEach((w: unknown, wi) => entries.push(parseEntry(w, `weights manifest group ${gi} weight ${wi}`)));
  });

  const view = new DataView(weights.buffer, weights.byteOffset, weights.byteLength);
  const out = new Map<string, Tensor>();
  let offset = 0;
  for (const e of entries) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    const bytesPer = e.quantization ? (e.quantization.dtype === 'uint8' ? 1 : 2) : 4;
    const size = count * bytesPer;
    if (offset + size > weights.byteLength) {
      throw new Error(`weights: ${e.name} needs bytes ${offset}..${offset + size} but the weight data has ${weights.byteLength}`);
    }
    const data = new Float32Array(count);
    if (e.quantization) {
      const { scale, min, dtype } = e.quantization;
      for (let i = 0; i < count; i++) {
        const q = dtype === 'uint8' ? view.getUint8(offset + i) : view.getUint16(offset + 2 * i, true);
        data[i] = q * scale + min;
      }
    } else {
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(offset + 4 * i, true);
    }
    if (out.has(e.name)) throw new Error(`weights manifest: duplicate weight ${e.name}`);
    out.set(e.name, { shape: e.shape, data });
    offset += size;
  }
  if (offset !== weights.byteLength) {
    throw new Error(`weights: manifest describes ${offset} bytes but the weight data has ${weights.byteLength}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Graph

class Weights {
  constructor(private readonly map: Map<string, Tensor>) {}

  get(name: string, rank: number): Tensor {
    const t = this.map.get(name);
    if (!t) throw new Error(`weights: missing ${name}`);
    if (t.shape.length !== rank) throw new Error(`weights: ${name} has shape [${t.shape.join(',')}], expected rank ${rank}`);
    return t;
  }
}

/**
 * Folds face-api's conv layer (conv2d + bias, then scale layer x*w + b) into one ONNX conv:
 * W'[o,i,y,x] = filters[y,x,i,o] * w[o];  b'[o] = bias[o] * w[o] + b[o].
 */
function foldedConv(weights: Weights, prefix: string): { weight: Float32Array; bias: Float32Array; dims: number[] } {
  const filters = weights.get(`${prefix}/conv/filters`, 4);
  const bias = weights.get(`${prefix}/conv/bias`, 1);
  const sw = weights.get(`${prefix}/scale/weights`, 1);
  const sb = weights.get(`${prefix}/scale/biases`, 1);
  const [kh, kw, cin, cout] = filters.shape as [number, number, number, number];
  for (const [n, t] of [['conv/bias', bias], ['scale/weights', sw], ['scale/biases', sb]] as const) {
    if (t.shape[0] !== cout) throw new Error(`weights: ${prefix}/${n} has ${t.shape[0]} values, expected ${cout}`);
  }
  const weight = new Float32Array(cout * cin * kh * kw);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) {
          const src = ((y * kw + x) * cin + i) * cout + o;
          weight[((o * cin + i) * kh + y) * kw + x] = (filters.data[src] as number) * (sw.data[o] as number);
        }
  const b = new Float32Array(cout);
  for (let o = 0; o < cout; o++) b[o] = (bias.data[o] as number) * (sw.data[o] as number) + (sb.data[o] as number);
  return { weight, bias: b, dims: [cout, cin, kh, kw] };
}

/** TF padding → ONNX pads [top,left,bottom,right]; TF SAME puts the odd extra pad at the end. */
function tfPads(padding: 'same' | 'valid', inSize: number, k: number, stride: number): { pads: number[]; outSize: number } {
  if (padding === 'valid') return { pads: [0, 0, 0, 0], outSize: Math.floor((inSize - k) / stride) + 1 };
  const outSize = Math.ceil(inSize / stride);
  const total = Math.max((outSize - 1) * stride + k - inSize, 0);
  const before = Math.floor(total / 2);
  const after = total - before;
  return { pads: [before, before, after, after], outSize };
}

interface Value {
  name: string;
  channels: number;
  size: number; // square spatial size
}

/** Builds the ONNX model. `manifest` is the parsed weights manifest JSON, `weights` the .bin bytes. */
export function buildDlibResnet(manifest: unknown, weights: Uint8Array): Uint8Array {
  const w = new Weights(decodeTfjsWeights(manifest, weights));
  const g = new GraphBuilder('dlib_resnet_face_descriptor');

  const convLayer = (x: Value, prefix: string, nodeName: string, stride: number, padding: 'same' | 'valid', relu: boolean): Value => {
    const folded = foldedConv(w, prefix);
    const [cout, cin, kh, kw] = folded.dims as [number, number, number, number];
    if (cin !== x.channels) throw new Error(`weights: ${prefix}/conv/filters expects ${cin} input channels, got ${x.channels}`);
    if (kh !== kw) throw new Error(`weights: ${prefix}/conv/filters is not square (${kh}×${kw})`);
    const { pads, outSize } = tfPads(padding, x.size, kh, stride);
    const weightName = g.initializer(`${nodeName}/weight`, folded.weight, folded.dims);
    const biasName = g.initializer(`${nodeName}/bias`, folded.bias, [cout]);
    let out = g.conv(x.name, weightName, biasName, { kernelShape: [kh, kw], strides: [stride, stride], pads }, nodeName);
    if (relu) out = g.op('Relu', [out], {}, `${nodeName}/relu`);
    return { name: out, channels: cout, size: outSize };
  };

  const residual = (x: Value, block: string): Value => {
    const c1 = convLayer(x, `${block}/conv1`, `${block}/conv1`, 1, 'same', true);
    const c2 = convLayer(c1, `${block}/conv2`, `${block}/conv2`, 1, 'same', false);
    if (c2.channels !== x.channels || c2.size !== x.size) throw new Error(`${block}: residual shape mismatch`);
    const sum = g.op('Add', [c2.name, x.name], {}, `${block}/add`);
    return { name: g.op('Relu', [sum], {}, `${block}/relu`), channels: x.channels, size: x.size };
  };

  const residualDown = (x: Value, block: string): Value => {
    const c1 = convLayer(x, `${block}/conv1`, `${block}/conv1`, 2, 'valid', true);
    let c2 = convLayer(c1, `${block}/conv2`, `${block}/conv2`, 1, 'same', false);
    // Shortcut: 2×2/2 'valid' average pool, then zero channels appended when the block widens.
    let shortcut: Value = {
      name: g.op('AveragePool', [x.name], { kernel_shape: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0] }, `${block}/shortcut/avgpool`),
      channels: x.channels,
      size: Math.floor((x.size - 2) / 2) + 1,
    };
    if (shortcut.channels !== c2.channels) {
      if (c2.channels !== 2 * shortcut.channels) throw new Error(`${block}: cannot pad ${shortcut.channels} channels to ${c2.channels}`);
      const pads = g.constInt64(`${block}/shortcut/pad_channels/pads`, [0, 0, 0, 0, 0, shortcut.channels, 0, 0]);
      shortcut = {
        name: g.op('Pad', [shortcut.name, pads], { mode: 'constant' }, `${block}/shortcut/pad_channels`),
        channels: c2.channels,
        size: shortcut.size,
      };
    }
    // face-api concatenates one zero row (bottom) and one zero column (right) to the conv path
    // when its spatial size differs from the pooled shortcut.
    if (c2.size !== shortcut.size) {
      if (c2.size + 1 !== shortcut.size) throw new Error(`${block}: conv path ${c2.size} vs shortcut ${shortcut.size}`);
      const pads = g.constInt64(`${block}/conv2/pad_spatial/pads`, [0, 0, 0, 0, 0, 0, 1, 1]);
      c2 = { name: g.op('Pad', [c2.name, pads], { mode: 'constant' }, `${block}/conv2/pad_spatial`), channels: c2.channels, size: shortcut.size };
    }
    const sum = g.op('Add', [shortcut.name, c2.name], {}, `${block}/add`);
    return { name: g.op('Relu', [sum], {}, `${block}/relu`), channels: c2.channels, size: c2.size };
  };

  const input = g.input('input', ['batch', 3, INPUT_SIZE, INPUT_SIZE]);
  const mean = g.constFloat('normalize/mean', [...MEAN_RGB], [1, 3, 1, 1]);
  const divisor = g.constFloat('normalize/divisor', [INPUT_DIVISOR], []);
  const centred = g.op('Sub', [input, mean], {}, 'normalize/sub');
  const normalized = g.op('Div', [centred, divisor], {}, 'normalize/div');

  let x = convLayer({ name: normalized, channels: 3, size: INPUT_SIZE }, 'conv32_down', 'conv32_down/conv', 2, 'valid', true);
  x = {
    name: g.op('MaxPool', [x.name], { kernel_shape: [3, 3], strides: [2, 2], pads: [0, 0, 0, 0] }, 'pool'),
    channels: x.channels,
    size: Math.floor((x.size - 3) / 2) + 1,
  };
  for (const [block, kind] of BLOCKS) x = kind === 'down' ? residualDown(x, block) : residual(x, block);

  const fc = w.get('fc', 2);
  if (fc.shape[0] !== x.channels) throw new Error(`weights: fc has shape [${fc.shape.join(',')}], expected [${x.channels}, n]`);
  const embeddingSize = fc.shape[1] as number;
  const pooled = g.op('ReduceMean', [x.name], { axes: [2, 3], keepdims: 0 }, 'head/mean');
  const fcWeight = g.initializer('head/fc/weight', fc.data, fc.shape);
  const embedding = g.op('MatMul', [pooled, fcWeight], {}, 'head/fc');

  g.output(embedding, 'embedding', ['batch', embeddingSize]);
  g.output(x.name, 'features', ['batch', x.channels, x.size, x.size]);

  return g.toBytes({
    producerName: 'facegate/models/build/dlib-resnet.ts',
    producerVersion: '1',
    docString:
      'dlib ResNet face descriptor (dlib_face_recognition_resnet_model_v1 via face-api.js faceRecognitionNet). ' +
      'input: float32 [batch,3,150,150] RGB 0..255; embedding: [batch,128] (not L2-normalised); ' +
      `features: [batch,${x.channels},${x.size},${x.size}].`,
    metadata: {
      source_package: `${PACKAGE}@${facePackageVersion()}`,
      source_files: `model/${MANIFEST_FILE}, model/face_recognition_model.bin`,
      source_architecture: 'face-api.js src/faceRecognitionNet (FaceRecognitionNet.ts, residualLayer.ts, convLayer.ts)',
      license:
        'Weights: dlib_face_recognition_resnet_model_v1 by Davis King, released into the public domain ' +
        '(github.com/davisking/dlib-models README; training data: FaceScrub, VGG Face and scraped images). ' +
        'Converted TF.js weights and architecture code: face-api.js / @vladmandic/face-api, MIT.',
      input_layout: 'NCHW RGB float32, raw pixel values 0..255, 150x150',
      input_normalization: `(x - [${MEAN_RGB.join(', ')}]) / ${INPUT_DIVISOR}, per RGB channel, inside the graph`,
      embedding: `[batch,${embeddingSize}] face-api descriptor, not L2-normalised (face-api match threshold: euclidean 0.6)`,
      features: `[batch,${x.channels},${x.size},${x.size}] output of the last block (post-ReLU), before the spatial mean`,
      folding: 'conv bias and scale layer folded into conv weights/bias',
    },
  });
}

function facePackageDir(): string {
  return dirname(createRequire(import.meta.url).resolve(`${PACKAGE}/package.json`));
}

function facePackageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(join(facePackageDir(), 'package.json'), 'utf8'));
  return isRecord(pkg) && typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/** Reads the face recognition manifest and the concatenated bytes of all its groups' paths. */
export function readDlibResnetWeights(): { manifest: unknown; weights: Uint8Array } {
  const modelDir = join(facePackageDir(), 'model');
  const manifest: unknown = JSON.parse(readFileSync(join(modelDir, MANIFEST_FILE), 'utf8'));
  if (!Array.isArray(manifest)) throw new Error(`${MANIFEST_FILE}: expected an array of weight groups`);
  const parts: Uint8Array[] = [];
  for (const group of manifest) {
    if (!isRecord(group) || !Array.isArray(group.paths)) throw new Error(`${MANIFEST_FILE}: every group needs "paths"`);
    for (const p of group.paths) {
      if (typeof p !== 'string') throw new Error(`${MANIFEST_FILE}: paths must be strings`);
      parts.push(readFileSync(join(modelDir, p)));
    }
  }
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const weights = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    weights.set(p, offset);
    offset += p.byteLength;
  }
  return { manifest, weights };
}
