// Structured filter pruning (models/compress): exactness at ratio 0 and for zero-weight filters,
// the pruned graph's shapes and counts in onnxruntime, and least-squares reconstruction beating
// plain L1 on held-out calibration faces. Uses only photos shipped in npm packages.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';

import { ModelRegistry } from '../agent/inference/model-registry.js';
import { createSession } from '../agent/inference/onnx-session.js';
import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import type { Point } from '../agent/vision/geometry.js';
import type { RgbImage } from '../agent/vision/image.js';
import { type ChipSet, chipBatch, concatChips } from '../models/compress/activations.js';
import { cholesky, choleskySolve } from '../models/compress/linalg.js';
import { mirrorChips } from '../models/compress/lfw.js';
import { buildLResNet50EIR } from '../models/compress/lresnet50e-ir.js';
import { findBlocks, l1Norms, prunedCount, pruneL1 } from '../models/compress/prune.js';
import { blockOutputError, pruneReconstruct } from '../models/compress/reconstruct.js';
import { GraphBuilder, type Initializer } from '../models/onnx/graph-builder.js';
import { samplePath } from './support/samples.js';

let original: Uint8Array;
/** Chips per detected face: [face][augmentation]. */
let faces: RgbImage[][] = [];

async function embed(bytes: Uint8Array, chips: ChipSet): Promise<{ embedding: Float32Array; features: Float32Array }> {
  const s = await createSession('t', bytes);
  try {
    const out = await s.run({ input: { data: chipBatch(chips, 0, chips.count), dims: [chips.count, 3, chips.height, chips.width] } });
    return { embedding: out.embedding?.data as Float32Array, features: out.features?.data as Float32Array };
  } finally {
    await s.release();
  }
}

const toSet = (chips: readonly RgbImage[]): ChipSet => {
  const first = chips[0] as RgbImage;
  const data = new Uint8Array(chips.length * first.data.length);
  chips.forEach((c, i) => data.set(c.data, i * first.data.length));
  return { width: first.width, height: first.height, count: chips.length, data };
};

before(async () => {
  const registry = ModelRegistry.load();
  const entry = registry.get('dlib-resnet');
  await registry.ensure([entry]);
  original = new Uint8Array(readFileSync(registry.pathOf(entry)));
  const analyzer = await FaceAnalyzer.create({ embedder: 'dlib-resnet', flipAverage: false });
  try {
    for (const n of [1, 2, 3, 4, 5, 6]) {
      // Half size: faster detection, faces still ≥ 60 px.
      const { data, info } = await sharp(samplePath(n)).resize(960).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const image: RgbImage = { width: info.width, height: info.height, data: new Uint8Array(data) };
      for (const f of await analyzer.detect(image)) {
        // Augmentations: the aligned chip and landmark shifts of ±2 px (x and y).
        const shifts: [number, number][] = [[0, 0], [2, 0], [-2, 0], [0, 2], [0, -2]];
        const variants = shifts.map(([dx, dy]) => ({ landmarks: f.landmarks.map((p) => ({ x: p.x + dx, y: p.y + dy })) as [Point, Point, Point, Point, Point] }));
        faces.push(analyzer.chips(image, variants).chips);
      }
    }
  } finally {
    await analyzer.close();
  }
  faces = faces.filter((f) => f.length === 5);
});

describe('pruning graph surgery', () => {
  it('finds the 14 residual blocks of the dlib ResNet', () => {
    const blocks = findBlocks(GraphBuilder.fromBytes(original).graph);
    assert.deepEqual(blocks.map((b) => b.name), ['conv32_1', 'conv32_2', 'conv32_3', 'conv64_down', 'conv64_1', 'conv64_2', 'conv64_3', 'conv128_down', 'conv128_1', 'conv128_2', 'conv256_down', 'conv256_1', 'conv256_2', 'conv256_down_out']);
  });

  it('ratio 0 reproduces the original outputs exactly (graph rewritten)', async () => {
    assert.ok(faces.length >= 6, `expected faces in the sample photos, found ${faces.length}`);
    const chips = toSet(faces.slice(0, 4).map((f) => f[0] as RgbImage));
    const rewritten = pruneL1(original, 0, { metadata: { note: 'ratio 0' } }).bytes;
    assert.notDeepEqual(rewritten, original);
    const a = await embed(original, chips);
    const b = await embed(rewritten, chips);
    assert.deepEqual(b.embedding, a.embedding);
    assert.deepEqual(b.features, a.features);
  });

  it('pruning filters whose weights are zero leaves the outputs unchanged', async () => {
    const { graph, info } = GraphBuilder.fromBytes(original);
    const ratio = 0.25;
    for (const b of findBlocks(graph)) {
      // Zero the weights and bias of the last round(0.25·C) conv1 filters: they output relu(0) = 0.
      const w = graph.initializers.get(b.w1) as Initializer;
      const per = w.data.length / b.inner;
      const bias = graph.initializers.get(b.b1 as string) as Initializer;
      for (let o = b.inner - prunedCount(b.inner, ratio); o < b.inner; o++) {
        (w.data as Float32Array).fill(0, o * per, (o + 1) * per);
        (bias.data as Float32Array)[o] = 0;
      }
    }
    const zeroed = graph.toBytes(info);
    // The zeroed filters have the smallest L1 norms, so they are the ones removed.
    for (const b of findBlocks(graph)) assert.equal(Math.min(...l1Norms(graph, b)), 0);
    const { bytes: pruned, kept } = pruneL1(zeroed, ratio);
    for (const b of findBlocks(graph)) assert.deepEqual(kept[b.name], Array.from({ length: b.inner - prunedCount(b.inner, ratio) }, (_, i) => i));
    const chips = toSet(faces.slice(0, 4).map((f) => f[0] as RgbImage));
    const a = await embed(zeroed, chips);
    const p = await embed(pruned, chips);
    const maxDiff = a.embedding.reduce((m, v, i) => Math.max(m, Math.abs(v - (p.embedding[i] as number))), 0);
    assert.ok(maxDiff < 1e-5, `embedding differs by ${maxDiff}`);
  });

  it('the pruned graph loads in onnxruntime with the expected shapes and counts', async () => {
    const ratio = 0.5;
    const { graph: before } = GraphBuilder.fromBytes(original);
    const { bytes } = pruneL1(original, ratio);
    const { graph } = GraphBuilder.fromBytes(bytes);
    let removedParams = 0;
    for (const b of findBlocks(before)) {
      const w1 = before.initializers.get(b.w1) as Initializer;
      const w2 = before.initializers.get(b.w2) as Initializer;
      const keep = b.inner - prunedCount(b.inner, ratio);
      const [cout2 = 0, , kh = 0, kw = 0] = w2.dims;
      assert.deepEqual(graph.initializers.get(b.w1)?.dims, [keep, ...w1.dims.slice(1)]);
      assert.deepEqual(graph.initializers.get(b.b1 as string)?.dims, [keep]);
      assert.deepEqual(graph.initializers.get(b.w2)?.dims, [cout2, keep, kh, kw]);
      assert.deepEqual(graph.initializers.get(b.b2 as string)?.dims, [cout2]);
      removedParams += (b.inner - keep) * ((w1.dims[1] as number) * (w1.dims[2] as number) * (w1.dims[3] as number) + 1 + cout2 * kh * kw);
    }
    const count = (g: GraphBuilder): number => [...g.initializers.values()].reduce((s, i) => s + (i.data instanceof Float32Array ? i.data.length : 0), 0);
    assert.equal(count(graph), count(before) - removedParams);
    assert.equal(graph.nodes.length, before.nodes.length);
    const out = await embed(bytes, toSet(faces.slice(0, 3).map((f) => f[0] as RgbImage)));
    assert.equal(out.embedding.length, 3 * 128);
    assert.equal(out.features.length, 3 * 256 * 2 * 2);
    assert.ok(out.embedding.every(Number.isFinite));
  });

  it('prunes the LResNet50E-IR builder\'s blocks (PReLU slopes included)', async () => {
    const full = buildLResNet50EIR(7);
    const blocks = findBlocks(GraphBuilder.fromBytes(full).graph);
    assert.equal(blocks.length, 24);
    assert.ok(blocks.every((b) => b.between.length === 1));
    const { graph } = GraphBuilder.fromBytes(pruneL1(full, 0.5).bytes);
    assert.deepEqual(graph.initializers.get('stage4_1/conv1/prelu/slope')?.dims, [256, 1, 1]);
  });
});

describe('linear algebra', () => {
  it('Cholesky solves a symmetric positive definite system', () => {
    const a = Float64Array.from([4, 12, -16, 12, 37, -43, -16, -43, 98]);
    const x = Float64Array.from([1, 2, 3]);
    const b = Float64Array.from([0, 1, 2].map((i) => [0, 1, 2].reduce((s, j) => s + (a[i * 3 + j] as number) * (x[j] as number), 0)));
    cholesky(a, 3);
    choleskySolve(a, 3, b);
    b.forEach((v, i) => assert.ok(Math.abs(v - (x[i] as number)) < 1e-9));
  });
});

describe('reconstruction', () => {
  it('lowers the block output error compared with plain L1 on held-out faces', async (t) => {
    // Faces alternate between the calibration and the held-out set; each face with its shifts and
    // mirror images (never the same person in both sets' augmentations).
    const calib = toSet(faces.filter((_, i) => i % 2 === 0).flat());
    const held = toSet(faces.filter((_, i) => i % 2 === 1).flat());
    const calibSet = concatChips([calib, mirrorChips(calib)]);
    const ratios = { conv64_1: 0.5 };
    const l1 = pruneL1(original, ratios).bytes;
    const rec = await pruneReconstruct(original, ratios, calibSet, { maxSamples: 2000, refitUnpruned: false });
    for (const block of Object.keys(ratios)) {
      const eL1 = await blockOutputError(original, l1, block, held);
      const eRec = await blockOutputError(original, rec.bytes, block, held);
      t.diagnostic(`${block} at 0.5, held-out relative error: l1 ${eL1.toFixed(4)}, reconstruct ${eRec.toFixed(4)}`);
      assert.ok(eRec < 0.8 * eL1, `${block}: reconstruct ${eRec.toFixed(4)} vs l1 ${eL1.toFixed(4)} (held-out, ${held.count} chips)`);
    }
    // And on the calibration set the re-fit beats the sliced weights with the same channels.
    for (const b of rec.blocks) assert.ok(b.errRefit < b.errSlice);
  });
});

