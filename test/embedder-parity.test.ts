// Parity: the ONNX dlib ResNet built by models/build/dlib-resnet.ts against face-api's own
// faceRecognitionNet (TF.js CPU backend) on identical 150×150 RGB pixels: face chips cropped
// from face-api's demo photos plus one random-noise image.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';

import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

import { buildDlibResnet, decodeTfjsWeights, readDlibResnetWeights } from '../models/build/dlib-resnet.js';

const SIZE = 150;
const MIN_COSINE = 0.9999;
const MAX_ABS_DIFF = 1e-5; // measured ≤ 4e-7 (descriptor values are ~0.01..0.3)

// Minimal typed view of the parts of face-api's CommonJS bundle this test uses.
interface TfTensor {
  dispose(): void;
}
interface FaceApi {
  tf: {
    setBackend(name: string): Promise<boolean>;
    ready(): Promise<void>;
    getBackend(): string;
    tensor3d(values: Float32Array, shape: [number, number, number], dtype: 'float32'): TfTensor;
  };
  nets: {
    faceRecognitionNet: {
      loadFromDisk(dir: string): Promise<void>;
      computeFaceDescriptor(input: TfTensor): Promise<Float32Array | Float32Array[]>;
    };
  };
}

function isFaceApi(v: unknown): v is FaceApi {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as Partial<Record<keyof FaceApi, unknown>>;
  return typeof m.tf === 'object' && m.tf !== null && typeof m.nets === 'object' && m.nets !== null;
}

const require = createRequire(import.meta.url);
const faceApiDir = dirname(require.resolve('@vladmandic/face-api/package.json'));

/** Rough square face crops in the full-resolution demo photos: [sample, centreX, centreY, side]. */
const FACES: ReadonlyArray<readonly [number, number, number, number]> = [
  [1, 518, 446, 400],
  [1, 946, 504, 400],
  [2, 998, 384, 350],
  [3, 1152, 360, 375],
  [4, 360, 336, 375],
  [5, 1498, 504, 375],
  [6, 1608, 432, 375],
];

interface Chip {
  label: string;
  hwc: Float32Array; // [150,150,3] RGB 0..255, as face-api consumes it
}

async function faceChip(sample: number, cx: number, cy: number, side: number): Promise<Chip> {
  const { data, info } = await sharp(join(faceApiDir, 'demo', `sample${sample}.jpg`))
    .extract({ left: Math.round(cx - side / 2), top: Math.round(cy - side / 2), width: side, height: side })
    .resize(SIZE, SIZE)
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  assert.equal(info.width * info.height * info.channels, SIZE * SIZE * 3);
  return { label: `sample${sample}@${cx},${cy}`, hwc: Float32Array.from(data) };
}

function noiseChip(seed: number): Chip {
  let s = seed >>> 0;
  const hwc = new Float32Array(SIZE * SIZE * 3);
  for (let i = 0; i < hwc.length; i++) {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    hwc[i] = ((t ^ (t >>> 14)) >>> 0) % 256;
  }
  return { label: 'noise', hwc };
}

function toChw(hwc: Float32Array, into: Float32Array, offset: number): void {
  const plane = SIZE * SIZE;
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) into[offset + c * plane + p] = hwc[p * 3 + c] as number;
}

function compare(a: Float32Array, b: Float32Array): { cosine: number; maxAbs: number } {
  assert.equal(a.length, b.length);
  let dot = 0;
  let na = 0;
  let nb = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    dot += x * y;
    na += x * x;
    nb += y * y;
    maxAbs = Math.max(maxAbs, Math.abs(x - y));
  }
  return { cosine: dot / Math.sqrt(na * nb), maxAbs };
}

describe('dlib ResNet ONNX embedder matches face-api faceRecognitionNet', () => {
  let session: ort.InferenceSession;
  let faceapi: FaceApi;
  const chips: Chip[] = [];
  const reference: Float32Array[] = [];

  before(async () => {
    const { manifest, weights } = readDlibResnetWeights();
    session = await ort.InferenceSession.create(buildDlibResnet(manifest, weights));

    const loaded: unknown = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
    if (!isFaceApi(loaded)) throw new Error('unexpected face-api module shape');
    faceapi = loaded;
    await faceapi.tf.setBackend('cpu');
    await faceapi.tf.ready();
    assert.equal(faceapi.tf.getBackend(), 'cpu');
    await faceapi.nets.faceRecognitionNet.loadFromDisk(join(faceApiDir, 'model'));

    for (const [s, cx, cy, side] of FACES) chips.push(await faceChip(s, cx, cy, side));
    chips.push(noiseChip(1234));
    for (const chip of chips) {
      const t = faceapi.tf.tensor3d(chip.hwc, [SIZE, SIZE, 3], 'float32');
      const d = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t);
      t.dispose();
      assert.ok(d instanceof Float32Array && d.length === 128, `face-api descriptor for ${chip.label}`);
      reference.push(d);
    }
  });

  it('face-api reference descriptors are distinct per chip (the comparison is not degenerate)', () => {
    for (let i = 0; i < reference.length; i++)
      for (let j = i + 1; j < reference.length; j++) {
        const a = reference[i] as Float32Array;
        const b = reference[j] as Float32Array;
        const dist = Math.sqrt(a.reduce((acc, v, k) => acc + (v - (b[k] as number)) ** 2, 0));
        assert.ok(dist > 0.2, `${chips[i]?.label} vs ${chips[j]?.label}: euclidean ${dist}`);
      }
  });

  it('declares the contract inputs and outputs', () => {
    assert.deepEqual(session.inputNames, ['input']);
    assert.deepEqual([...session.outputNames].sort(), ['embedding', 'features']);
  });

  it('batch-1 embeddings match face-api per chip', async () => {
    for (const [i, chip] of chips.entries()) {
      const input = new Float32Array(3 * SIZE * SIZE);
      toChw(chip.hwc, input, 0);
      const out = await session.run({ input: new ort.Tensor('float32', input, [1, 3, SIZE, SIZE]) });
      const embedding = out.embedding;
      assert.ok(embedding);
      assert.deepEqual(embedding.dims, [1, 128]);
      const { cosine, maxAbs } = compare(embedding.data as Float32Array, reference[i] as Float32Array);
      console.log(`${chip.label}: 1 - cosine ${(1 - cosine).toExponential(2)}, max |diff| ${maxAbs.toExponential(2)}`);
      assert.ok(cosine >= MIN_COSINE, `${chip.label}: cosine ${cosine} < ${MIN_COSINE}`);
      assert.ok(maxAbs <= MAX_ABS_DIFF, `${chip.label}: max abs diff ${maxAbs} > ${MAX_ABS_DIFF}`);
    }
  });

  it('a dynamic batch gives the same embeddings and [n,256,2,2] features whose mean × fc is the embedding', async () => {
    const n = chips.length;
    const input = new Float32Array(n * 3 * SIZE * SIZE);
    chips.forEach((chip, i) => toChw(chip.hwc, input, i * 3 * SIZE * SIZE));
    const out = await session.run({ input: new ort.Tensor('float32', input, [n, 3, SIZE, SIZE]) });
    const embedding = out.embedding;
    const features = out.features;
    assert.ok(embedding && features);
    assert.deepEqual(embedding.dims, [n, 128]);
    assert.deepEqual(features.dims, [n, 256, 2, 2]);

    const emb = embedding.data as Float32Array;
    const feat = features.data as Float32Array;
    const { manifest, weights } = readDlibResnetWeights();
    const fc = decodeTfjsWeights(manifest, weights).get('fc');
    assert.ok(fc);
    assert.deepEqual(fc.shape, [256, 128]);
    for (let b = 0; b < n; b++) {
      const row = emb.subarray(b * 128, (b + 1) * 128);
      const { cosine, maxAbs } = compare(row, reference[b] as Float32Array);
      assert.ok(cosine >= MIN_COSINE && maxAbs <= MAX_ABS_DIFF, `batched ${chips[b]?.label}: cosine ${cosine}, max abs ${maxAbs}`);

      const mean = new Float64Array(256);
      for (let c = 0; c < 256; c++) {
        let sum = 0;
        for (let p = 0; p < 4; p++) sum += feat[(b * 256 + c) * 4 + p] as number;
        mean[c] = sum / 4;
      }
      for (let o = 0; o < 128; o++) {
        let v = 0;
        for (let c = 0; c < 256; c++) v += (mean[c] as number) * (fc.data[c * 128 + o] as number);
        assert.ok(Math.abs(v - (row[o] as number)) < 1e-4, `features → embedding mismatch at batch ${b}, dim ${o}`);
      }
    }
  });
});
