// Verifies the TFLite -> ONNX conversion of MobileFaceNet (models/build/mobilefacenet.ts):
//  1. numerically, against the literal NHWC reference interpreter of the TFLite graph, on aligned
//     face chips of face-api's demo photos (the head folding included);
//  2. the `features` output: its cell mean through head/fc/weight is the embedding, so the
//     occlusion masks act on a map the embedding really comes from;
//  3. semantically, through the agent's own path (MTCNN, alignment to the ArcFace template): a face
//     and its mirror image match, different people in the demo photos do not.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import ort from 'onnxruntime-node';

import { buildMobileFaceNet, MOBILEFACENET_FEATURES, readMobileFaceNetTflite } from '../models/build/mobilefacenet.js';
import { GraphBuilder } from '../models/onnx/graph-builder.js';
import { readTflite } from '../models/tflite/reader.js';
import { euclideanDistance } from '../agent/recognition/embedder.js';
import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { decodeImage, mirrorImage, type RgbImage } from '../agent/vision/image.js';
import { chipsToChw } from '../agent/vision/mtcnn.js';
import { runTfliteReference } from './support/tflite-reference.js';

const sampleDir = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');
const SIZE = 112;


/** The same pixels as the TFLite graph wants them: NHWC, (x − 127.5) / 128. */
function nhwcNormalised(chips: readonly RgbImage[]): Float32Array {
  const out = new Float32Array(chips.length * SIZE * SIZE * 3);
  chips.forEach((chip, n) => {
    for (let i = 0; i < SIZE * SIZE * 3; i++) out[n * SIZE * SIZE * 3 + i] = ((chip.data[i] as number) - 127.5) * 0.0078125;
  });
  return out;
}

const unit = (v: Float32Array): Float32Array => {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
};

describe('MobileFaceNet conversion', () => {
  let analyzer: FaceAnalyzer;
  let chips: RgbImage[];
  let onnxBytes: Uint8Array;
  let session: ort.InferenceSession;

  before(async () => {
    analyzer = await FaceAnalyzer.create({ embedder: 'mobilefacenet', occlusionMasks: false });
    chips = [];
    for (const n of [1, 2, 3]) {
      const image = await decodeImage(join(sampleDir, `sample${n}.jpg`));
      const faces = await analyzer.detect(image);
      chips.push(...analyzer.chips(image, faces.slice(0, 2)).chips);
    }
    onnxBytes = buildMobileFaceNet(readMobileFaceNetTflite(), 'test');
    session = await ort.InferenceSession.create(onnxBytes);
  });
  after(async () => {
    await session.release();
    await analyzer.close();
  });

  it('matches the TFLite graph run literally, op by op, on aligned face chips', async () => {
    assert.ok(chips.length >= 4, `expected at least 4 face chips from the demo photos, got ${chips.length}`);
    const probe = chips.slice(0, 2);
    const out = await session.run({ input: new ort.Tensor('float32', chipsToChw(probe), [probe.length, 3, SIZE, SIZE]) });
    const onnx = out.embedding?.data as Float32Array;
    const graph = readTflite(readMobileFaceNetTflite());
    const reference = runTfliteReference(graph, { shape: [probe.length, SIZE, SIZE, 3], data: nhwcNormalised(probe) }).get('embeddings');
    assert.ok(reference, 'the reference run has an "embeddings" output');
    for (let n = 0; n < probe.length; n++) {
      const want = unit(reference.data.slice(n * 192, (n + 1) * 192));
      const got = onnx.slice(n * 192, (n + 1) * 192);
      const cosine = want.reduce((s, v, k) => s + v * (got[k] as number), 0);
      assert.ok(cosine > 0.99999, `chip ${n}: cosine ${cosine} between the ONNX and the reference embedding`);
      assert.ok(Math.abs(Math.hypot(...got) - 1) < 1e-5, `chip ${n}: the ONNX embedding has unit length`);
    }
  });

  it('makes the embedding from the mean of its `features` cells through head/fc/weight', async () => {
    const out = await session.run({ input: new ort.Tensor('float32', chipsToChw(chips), [chips.length, 3, SIZE, SIZE]) });
    const features = out.features;
    assert.deepEqual([...(features?.dims ?? [])], [chips.length, ...MOBILEFACENET_FEATURES]);
    const fc = GraphBuilder.fromBytes(onnxBytes).graph.initializers.get('head/fc/weight');
    assert.ok(fc?.data instanceof Float32Array);
    const [c, h, w] = MOBILEFACENET_FEATURES;
    const cells = h * w;
    const outputs = fc.dims[1] as number;
    for (let n = 0; n < chips.length; n++) {
      const map = (features?.data as Float32Array).subarray(n * c * cells, (n + 1) * c * cells);
      const raw = new Float32Array(outputs);
      for (let ch = 0; ch < c; ch++) {
        let mean = 0;
        for (let k = 0; k < cells; k++) mean += (map[ch * cells + k] as number) / cells;
        for (let o = 0; o < outputs; o++) raw[o] = (raw[o] as number) + mean * (fc.data[ch * outputs + o] as number);
      }
      const rebuilt = unit(raw);
      const embedding = (out.embedding?.data as Float32Array).subarray(n * outputs, (n + 1) * outputs);
      const maxDiff = rebuilt.reduce((m, v, k) => Math.max(m, Math.abs(v - (embedding[k] as number))), 0);
      assert.ok(maxDiff < 1e-5, `chip ${n}: the embedding rebuilt from the features differs by ${maxDiff}`);
    }
  });

  it('matches a face with its mirror image and tells the demo photos’ people apart', async () => {
    const threshold = analyzer.embedder.entry.threshold;
    assert.ok(threshold !== undefined && threshold > 0.5 && threshold < 1.5, `mobilefacenet has a recorded threshold (${threshold})`);
    const mirrored = chips.map((chip) => mirrorImage(chip));
    const own = await analyzer.embedder.embed(chips);
    const flipped = await analyzer.embedder.embed(mirrored);
    const same = own.map((e, i) => euclideanDistance(e, flipped[i] as Float32Array));
    const different: number[] = [];
    for (let i = 0; i < own.length; i++) for (let j = i + 1; j < own.length; j++) different.push(euclideanDistance(own[i] as Float32Array, own[j] as Float32Array));
    assert.ok(Math.max(...same) < threshold, `face vs its mirror image: distances ${same.map((d) => d.toFixed(3)).join(', ')} (threshold ${threshold})`);
    assert.ok(Math.min(...different) > threshold, `different people: smallest distance ${Math.min(...different).toFixed(3)} (threshold ${threshold})`);
  });
});
