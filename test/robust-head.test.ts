// The refitted MobileFaceNet head (mobilefacenet-occ, models/occlusion/robust-head.ts):
//  1. the graph the build folds it into computes exactly the head's formula on the map's per-cell
//     contributions, which sum to the network's own embedding;
//  2. its weight file round-trips and a wrong size is a clear error;
//  3. the occlusion tools take its plain embeddings from its output, not from its fc, and its mask
//     dictionary (MobileFaceNet's masks, its own plain-space curves) belongs to it alone;
//  4. the shipped mobilefacenet-occ embedder, through the agent's path, matches a face with its
//     mirror image and tells the demo photos' people apart at its recorded threshold.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import ort from 'onnxruntime-node';

import { buildMobileFaceNet, MOBILEFACENET_CELLS, readMobileFaceNetTflite, type RobustHead } from '../models/build/mobilefacenet.js';
import { packRobustHead, ROBUST_HEAD_NAME, unpackRobustHead } from '../models/build/robust-head-file.js';
import { calibrationPlainEmbedder, embedderHead } from '../models/occlusion/embedder-head.js';
import type { OcclusionCalibration } from '../models/occlusion/calibration.js';
import { ModelRegistry } from '../agent/inference/model-registry.js';
import { OcclusionDictionary } from '../agent/recognition/occlusion-masks.js';
import { euclideanDistance } from '../agent/recognition/embedder.js';
import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { decodeImage, mirrorImage, type RgbImage } from '../agent/vision/image.js';
import { chipsToChw } from '../agent/vision/mtcnn.js';

const sampleDir = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');
const SIZE = 112;
const OUTPUTS = 192;


const unit = (v: Float32Array): Float32Array => {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
};

/** A small head with seeded pseudo-random weights (its values do not matter, only the arithmetic). */
function seededHead(dims: number): RobustHead {
  let state = 12345;
  const next = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31 - 0.5;
  };
  return {
    dims,
    basis: Float32Array.from({ length: OUTPUTS * dims }, next),
    weight: Float32Array.from({ length: dims * MOBILEFACENET_CELLS * OUTPUTS }, next),
    bias: Float32Array.from({ length: OUTPUTS }, next),
  };
}

describe('refitted MobileFaceNet head (mobilefacenet-occ)', () => {
  let analyzer: FaceAnalyzer;
  let chips: RgbImage[];

  before(async () => {
    analyzer = await FaceAnalyzer.create({ embedder: ROBUST_HEAD_NAME, occlusionMasks: false, fuseWith: 'none' });
    chips = [];
    for (const n of [1, 2, 3]) {
      const image = await decodeImage(join(sampleDir, `sample${n}.jpg`));
      chips.push(...analyzer.chips(image, (await analyzer.detect(image)).slice(0, 2)).chips);
    }
  });
  after(async () => {
    await analyzer.close();
  });

  it('folds the head into the graph exactly: the cells sum to the embedding, the head applies to them', async () => {
    const head = seededHead(3);
    const session = await ort.InferenceSession.create(buildMobileFaceNet(readMobileFaceNetTflite(), 'test', { robustHead: head, cellsOutput: true }));
    const plain = await ort.InferenceSession.create(buildMobileFaceNet(readMobileFaceNetTflite(), 'test'));
    try {
      const input = new ort.Tensor('float32', chipsToChw(chips), [chips.length, 3, SIZE, SIZE]);
      const out = await session.run({ input });
      const reference = (await plain.run({ input })).embedding?.data as Float32Array;
      const cells = out.cells?.data as Float32Array;
      const raw = out.raw?.data as Float32Array;
      const embedding = out.embedding?.data as Float32Array;
      const per = OUTPUTS * MOBILEFACENET_CELLS;
      for (let n = 0; n < chips.length; n++) {
        const c = cells.subarray(n * per, (n + 1) * per);
        const r = raw.subarray(n * OUTPUTS, (n + 1) * OUTPUTS);
        // The per-cell contributions add up to the network's unnormalised embedding…
        const sums = Float32Array.from({ length: OUTPUTS }, (_, o) => c.subarray(o * MOBILEFACENET_CELLS, (o + 1) * MOBILEFACENET_CELLS).reduce((s, v) => s + v, 0));
        const sumDiff = sums.reduce((m, v, o) => Math.max(m, Math.abs(v - (r[o] as number)) / (Math.abs(r[o] as number) + 1)), 0);
        assert.ok(sumDiff < 1e-4, `chip ${n}: the cells sum to the raw embedding within ${sumDiff}`);
        // …whose direction is the original network's embedding.
        const u = unit(Float32Array.from(r));
        const plainDiff = u.reduce((m, v, o) => Math.max(m, Math.abs(v - (reference[n * OUTPUTS + o] as number))), 0);
        assert.ok(plainDiff < 1e-5, `chip ${n}: raw embedding vs mobilefacenet's differ by ${plainDiff}`);
        // The head: reduce each cell by the basis, divide by the raw length, weight, bias, unit length.
        const length = Math.hypot(...r);
        const y = Float64Array.from(head.bias);
        for (let j = 0; j < head.dims; j++)
          for (let cell = 0; cell < MOBILEFACENET_CELLS; cell++) {
            let x = 0;
            for (let o = 0; o < OUTPUTS; o++) x += (head.basis[o * head.dims + j] as number) * (c[o * MOBILEFACENET_CELLS + cell] as number);
            x /= length;
            for (let o = 0; o < OUTPUTS; o++) y[o] = (y[o] as number) + x * (head.weight[(j * MOBILEFACENET_CELLS + cell) * OUTPUTS + o] as number);
          }
        const want = unit(Float32Array.from(y));
        const got = embedding.subarray(n * OUTPUTS, (n + 1) * OUTPUTS);
        const diff = want.reduce((m, v, o) => Math.max(m, Math.abs(v - (got[o] as number))), 0);
        assert.ok(diff < 1e-4, `chip ${n}: the graph's head output differs from the formula by ${diff}`);
        assert.ok(Math.abs(Math.hypot(...got) - 1) < 1e-5, `chip ${n}: unit length`);
      }
    } finally {
      await session.release();
      await plain.release();
    }
  });

  it('round-trips its weight file and names a file of the wrong size', () => {
    const head = seededHead(2);
    const header = { dims: 2, cells: MOBILEFACENET_CELLS, outputs: OUTPUTS };
    const back = unpackRobustHead(packRobustHead(head), header, 'heads/x.bin');
    assert.deepEqual([...back.basis], [...head.basis]);
    assert.deepEqual([...back.weight], [...head.weight]);
    assert.deepEqual([...back.bias], [...head.bias]);
    assert.throws(() => unpackRobustHead(packRobustHead(head).subarray(4), header, 'heads/x.bin'), /heads\/x\.bin: \d+ bytes, expected/);
    assert.throws(() => unpackRobustHead(packRobustHead(head), { ...header, dims: 3 }, 'heads/x.bin'), /heads\/x\.bin/);
  });

  it('matches a face with its mirror image and tells the demo photos’ people apart at its recorded threshold', async () => {
    const threshold = analyzer.embedder.entry.threshold;
    assert.ok(threshold !== undefined && threshold > 0.3 && threshold < 1.5, `${ROBUST_HEAD_NAME} has a recorded threshold (${threshold})`);
    assert.ok(chips.length >= 4, `expected at least 4 face chips, got ${chips.length}`);
    const own = await analyzer.embedder.embed(chips);
    const flipped = await analyzer.embedder.embed(chips.map((chip) => mirrorImage(chip)));
    const same = own.map((e, i) => euclideanDistance(e, flipped[i] as Float32Array));
    const different: number[] = [];
    for (let i = 0; i < own.length; i++) for (let j = i + 1; j < own.length; j++) different.push(euclideanDistance(own[i] as Float32Array, own[j] as Float32Array));
    assert.ok(Math.max(...same) < threshold, `face vs its mirror image: ${same.map((d) => d.toFixed(3)).join(', ')} (threshold ${threshold})`);
    assert.ok(Math.min(...different) > threshold, `different people: smallest distance ${Math.min(...different).toFixed(3)} (threshold ${threshold})`);
  });

  it('gives the occlusion tools its own output as the plain embedding, and the fc path to MobileFaceNet', async () => {
    const registry = ModelRegistry.load();
    const occFile = registry.pathOf(registry.get(ROBUST_HEAD_NAME));
    const plainFile = registry.pathOf(registry.get('mobilefacenet'));
    assert.equal(embedderHead(occFile).fcMakesEmbedding, false);
    assert.equal(embedderHead(plainFile).fcMakesEmbedding, true);
    const featureShape: [number, number, number] = [512, 2, 1];
    const features = new Map([['clean' as const, Float32Array.from({ length: 2 * 1024 }, (_, i) => Math.sin(i))]]);
    const cal: OcclusionCalibration = { files: ['a.jpg', 'b.jpg'], featureShape, features, coverage: new Map() };
    assert.throws(() => calibrationPlainEmbedder(cal, occFile, ROBUST_HEAD_NAME), /mobilefacenet-occ: its embedding is not the fc of its features.*delete the cache/);
    const stored = Float32Array.from({ length: 2 * OUTPUTS }, (_, i) => i);
    const fromOutput = calibrationPlainEmbedder({ ...cal, embeddings: new Map([['clean', stored]]) }, occFile, ROBUST_HEAD_NAME);
    assert.deepEqual([...fromOutput('clean', 1)], [...stored.subarray(OUTPUTS)]);
    // MobileFaceNet: the fc on the map's mean, unit length, whatever is stored.
    const viaFc = calibrationPlainEmbedder({ ...cal, embeddings: new Map([['clean', stored]]) }, plainFile, 'mobilefacenet')('clean', 0);
    assert.ok(Math.abs(Math.hypot(...viaFc) - 1) < 1e-5, 'unit length through the fc');
    assert.notDeepEqual([...viaFc], [...stored.subarray(0, OUTPUTS)]);
  });

  it('has a mask dictionary of its own, refused to MobileFaceNet whose masks it shares', () => {
    const registry = ModelRegistry.load();
    const entry = registry.get(ROBUST_HEAD_NAME);
    const info = entry.occlusion;
    assert.ok(info, `${ROBUST_HEAD_NAME} has occlusion masks in models/manifest.json`);
    const own = OcclusionDictionary.forEmbedder(registry.dir, entry);
    assert.ok(own?.patterns.has('lower-face') && own.patterns.has('eyes'));
    const plain = registry.get('mobilefacenet');
    assert.throws(() => OcclusionDictionary.load(join(registry.dir, info.path), { name: plain.name, sha256: plain.sha256 }), /belong to embedder mobilefacenet-occ .*not to mobilefacenet/);
    // Its plain space is its own: another impostor curve than MobileFaceNet's.
    const mfn = OcclusionDictionary.forEmbedder(registry.dir, plain);
    assert.notEqual(own?.log10Far('clean', 0.9), mfn?.log10Far('clean', 0.9));
  });
});
