// Zoomed-out views (a model's manifest `chip.views`): besides its aligned chip, each face is cut
// smaller, with more of its surroundings, from the frame; its wide representation is the mean of both.
//  1. the view's transform is the alignment of the landmarks spread about their centre;
//  2. one run embeds all chips; each face keeps its chip's results and carries the mean over chip
//     and views (embedding and both feature maps) as `wide`;
//  3. through the analyzer, a model with views (mobilefacenet-occ) keeps the chip's embedding as the
//     plain one and adds the wide one; a model without views is unchanged;
//  4. masks fitted without the views refuse a model that now averages them, and the manifest
//     drops them when the views change.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { readManifest, writeManifest } from '../models/build/build-models.js';
import type { ModelEntry } from '../models/manifest-types.js';
import { ModelRegistry } from '../agent/inference/model-registry.js';
import type { FaceEmbeddingResult } from '../agent/recognition/embedder.js';
import { embedWithViews, FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { pickCentralFace } from '../agent/evaluation/run-eval.js';
import { ImageOccluder } from '../agent/occlusion/occlude-set.js';
import { CLEAN_PATTERN, OcclusionDictionary, WIDE_SPACE } from '../agent/recognition/occlusion-masks.js';
import { alignmentTransform, warpChips, zoomedView } from '../agent/vision/align.js';
import { applyAffine, type Point } from '../agent/vision/geometry.js';
import { decodeImage, type RgbImage } from '../agent/vision/image.js';
import { loadTemplate } from '../agent/vision/templates.js';

const sampleDir = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');

describe('zoomed-out view transform', () => {
  const template = loadTemplate('arcface-112');
  const landmarks: Point[] = [
    { x: 210.3, y: 180.2 },
    { x: 268.9, y: 176.5 },
    { x: 241.0, y: 214.7 },
    { x: 218.4, y: 247.9 },
    { x: 263.2, y: 245.1 },
  ];

  it('is the alignment of the landmarks spread by the scale about their centroid', () => {
    for (const scale of [1.07, 1.2, 0.9]) {
      const cx = landmarks.reduce((s, p) => s + p.x, 0) / 5;
      const cy = landmarks.reduce((s, p) => s + p.y, 0) / 5;
      const spread = landmarks.map((p) => ({ x: cx + (p.x - cx) * scale, y: cy + (p.y - cy) * scale }));
      const want = alignmentTransform(spread, template);
      const got = zoomedView(alignmentTransform(landmarks, template), template, scale);
      got.forEach((v, k) => assert.ok(Math.abs(v - (want[k] as number)) < 1e-9, `scale ${scale}, coefficient ${k}: ${v} vs ${want[k]}`));
    }
  });

  it('keeps the face centre and shrinks the face by the scale; refuses a scale that is not positive', () => {
    const base = alignmentTransform(landmarks, template);
    const view = zoomedView(base, template, 1.25);
    const [a, b] = [applyAffine(base, landmarks[0] as Point), applyAffine(base, landmarks[1] as Point)];
    const [c, d] = [applyAffine(view, landmarks[0] as Point), applyAffine(view, landmarks[1] as Point)];
    assert.ok(Math.abs(Math.hypot(d.x - c.x, d.y - c.y) * 1.25 - Math.hypot(b.x - a.x, b.y - a.y)) < 1e-9);
    assert.deepEqual(zoomedView(base, template, 1).map((v) => Number(v.toFixed(9))), base.map((v) => Number(v.toFixed(9))));
    assert.throws(() => zoomedView(base, template, 0), /view scale 0: a positive number/);
    assert.throws(() => zoomedView(base, template, Number.NaN), /view scale NaN/);
  });
});

describe('averaging views', () => {
  const chip = (tag: number): RgbImage => ({ width: 1, height: 1, data: Uint8Array.of(tag, 0, 0) });
  const fake = async (chips: RgbImage[]): Promise<FaceEmbeddingResult[]> => {
    calls.push(chips.length);
    return chips.map((c) => {
      const t = c.data[0] as number;
      return { embedding: Float32Array.of(t, 2 * t), model: 'm', features: Float32Array.of(t), ...(t < 100 ? { mirrorFeatures: Float32Array.of(-t) } : {}) };
    });
  };
  let calls: number[] = [];

  it('embeds every chip in one run; each face keeps its chip and carries the mean over chip and views as wide', async () => {
    calls = [];
    const out = await embedWithViews([[chip(1), chip(3)], [chip(10)], [chip(4), chip(6), chip(8)]], fake);
    assert.deepEqual(calls, [6]);
    assert.deepEqual([...(out[0]?.embedding ?? [])], [1, 2], 'the plain embedding is the chip\'s');
    assert.deepEqual([...(out[0]?.wide?.embedding ?? [])], [2, 4]);
    assert.deepEqual([...(out[1]?.embedding ?? [])], [10, 20]);
    assert.equal(out[1]?.wide, undefined, 'a face without views has no wide representation');
    assert.deepEqual([...(out[2]?.embedding ?? [])], [4, 8]);
    assert.deepEqual([...(out[2]?.features ?? [])], [4]);
    assert.deepEqual([...(out[2]?.wide?.embedding ?? [])], [6, 12]);
    assert.deepEqual([...(out[2]?.wide?.features ?? [])], [6]);
    assert.deepEqual([...(out[2]?.wide?.mirrorFeatures ?? [])], [-6]);
    assert.equal(out[0]?.model, 'm');
  });

  it('leaves single chips as the embedder returns them, and drops a map a view lacks', async () => {
    calls = [];
    const single = await embedWithViews([[chip(5)], [chip(7)]], fake);
    assert.deepEqual(calls, [2]);
    assert.deepEqual([...(single[1]?.mirrorFeatures ?? [])], [-7]);
    const mixed = await embedWithViews([[chip(5), chip(150)]], fake);
    assert.deepEqual([...(mixed[0]?.wide?.features ?? [])], [77.5]);
    assert.equal(mixed[0]?.wide?.mirrorFeatures, undefined);
    assert.deepEqual([...(mixed[0]?.mirrorFeatures ?? [])], [-5], 'the chip keeps its own');
  });
});

describe('views through the analyzer (real models)', { timeout: 300_000 }, () => {
  let occ: FaceAnalyzer;
  let plain: FaceAnalyzer;
  let image: RgbImage;

  before(async () => {
    occ = await FaceAnalyzer.create({ embedder: 'mobilefacenet-occ', occlusionMasks: false, fuseWith: 'none' });
    plain = await FaceAnalyzer.create({ embedder: 'mobilefacenet', occlusionMasks: false, fuseWith: 'none' });
    image = await decodeImage(join(sampleDir, 'sample2.jpg'));
  });
  after(async () => {
    await occ?.close();
    await plain?.close();
  });

  it('mobilefacenet-occ keeps each face\'s chip embedding and adds the mean over its chip and zoomed-out view as wide', async () => {
    const views = occ.embedder.chip.views ?? [];
    assert.deepEqual(views, [1.07], 'the manifest gives mobilefacenet-occ one view at 1.07');
    const faces = (await occ.detect(image)).slice(0, 2);
    assert.ok(faces.length >= 1, 'a face in sample2.jpg');
    const { items, transforms } = occ.faceChips(image, faces);
    assert.equal(items.length, faces.length);
    for (const [i, item] of items.entries()) {
      assert.equal(item.views?.length, 1);
      const [want] = warpChips(occ.cv, image, [zoomedView(transforms[i] as never, occ.template, 1.07)], 112, 112);
      assert.deepEqual(item.views?.[0]?.data, want?.data, 'the view is cut from the frame, not from the chip');
      assert.notDeepEqual(item.views?.[0]?.data, item.chip.data);
    }
    const averaged = await occ.embedChips(items);
    const [chips, viewsOnly] = [await occ.embedder.embedFaces(items.map((i) => i.chip)), await occ.embedder.embedFaces(items.map((i) => i.views?.[0] as RgbImage))];
    for (const [i, r] of averaged.entries()) {
      const a = chips[i]?.embedding as Float32Array;
      const b = viewsOnly[i]?.embedding as Float32Array;
      assert.deepEqual([...r.embedding], [...a], `face ${i}: the plain embedding is the chip's (its threshold is the chip's)`);
      const wide = r.wide?.embedding ?? assert.fail(`face ${i} has a wide embedding`);
      wide.forEach((v, k) => assert.ok(Math.abs(v - ((a[k] as number) + (b[k] as number)) / 2) < 1e-6, `face ${i}, element ${k}`));
      assert.equal(r.wide?.features?.length, r.features?.length);
      const cos = a.reduce((s, x, k) => s + x * (b[k] as number), 0) / Math.hypot(...a) / Math.hypot(...b);
      assert.ok(cos > 0.8 && cos < 0.9999, `chip and view are the same face seen differently (cosine ${cos.toFixed(4)})`);
    }
    const analyzed = await occ.embedFaces(image, faces);
    analyzed.forEach((f, i) => {
      assert.deepEqual([...f.embedding], [...(averaged[i]?.embedding ?? [])]);
      assert.deepEqual([...(f.wide?.embedding ?? [])], [...(averaged[i]?.wide?.embedding ?? [])]);
    });
  });

  it('a model without views embeds the chip alone', async () => {
    assert.equal(plain.embedder.chip.views, undefined);
    const faces = (await plain.detect(image)).slice(0, 1);
    const { items } = plain.faceChips(image, faces);
    assert.equal(items[0]?.views, undefined);
    const [viaAnalyzer] = await plain.embedChips(items);
    const [direct] = await plain.embedder.embedFaces([items[0]?.chip as RgbImage]);
    assert.deepEqual([...(viaAnalyzer?.embedding ?? [])], [...(direct?.embedding ?? [])]);
    assert.equal(viaAnalyzer?.wide, undefined);
  });
});

describe('views only where matching reads them (the agent\'s probes)', { timeout: 300_000 }, () => {
  it('a face taken for confidently clean is embedded from its chip alone; one that is not gets its views, as enrollment does', async () => {
    const analyzer = await FaceAnalyzer.create({ embedder: 'mobilefacenet-occ', fuseWith: 'none' });
    try {
      const masks = analyzer.occlusion ?? assert.fail('mobilefacenet-occ has masks');
      const image = await decodeImage(join(sampleDir, 'sample2.jpg'));
      const face = pickCentralFace(await analyzer.detect(image), image.width, image.height) ?? assert.fail('a face in sample2.jpg');
      const occluder = new ImageOccluder(analyzer.detector, sampleDir, ['sample2.jpg', 'sample3.jpg']);
      const close = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, k) => Math.abs(v - (b[k] as number)) < 1e-4);
      let clean = 0;
      let uncertain = 0;
      for (const [kind, seed] of [['none', 0], ['random40', 3], ['hand', 3], ['random40', 4], ['hand', 4], ['object', 3]] as const) {
        const shown = kind === 'none' ? image : (await occluder.occlude('sample2.jpg', image, kind, seed, face)).image;
        const { items } = analyzer.faceChips(shown, [face]);
        const [lazy] = await analyzer.embedChips(items, undefined, { views: 'uncertain' });
        const [all] = await analyzer.embedChips(items);
        assert.ok(lazy && all?.wide);
        assert.ok(close(lazy.embedding, all.embedding), `${kind}: the same chip embedding`);
        if (masks.readsWide(lazy)) {
          uncertain++;
          assert.ok(lazy.wide && close(lazy.wide.embedding, all.wide.embedding), `${kind} ${seed}: the same wide embedding as enrollment's`);
        } else {
          clean++;
          assert.equal(lazy.wide, undefined, `${kind} ${seed}: taken for clean, no views embedded`);
        }
      }
      assert.ok(clean >= 1 && uncertain >= 1, `${clean} faces taken for clean, ${uncertain} not`);
    } finally {
      await analyzer.close();
    }
  });
});

describe('the wide space of a dictionary fitted with views', () => {
  it('mobilefacenet-occ: masks read the wide representation, with its own rising impostor curve; without views the plain space serves', () => {
    const registry = ModelRegistry.load();
    const occ = OcclusionDictionary.forEmbedder(registry.dir, registry.get('mobilefacenet-occ')) ?? assert.fail('mobilefacenet-occ has masks');
    assert.equal(occ.plainSpace, WIDE_SPACE);
    assert.deepEqual(occ.header.embedder.views, [1.07]);
    const wide = occ.header.far.wide ?? assert.fail('far.wide');
    assert.ok(wide.every((d, k) => k === 0 || d >= (wide[k - 1] as number)), 'rising');
    assert.ok(occ.log10Far(WIDE_SPACE, 0.5) < occ.log10Far(WIDE_SPACE, 1.2));
    const face: FaceEmbeddingResult = { embedding: Float32Array.of(1), model: 'mobilefacenet-occ', features: Float32Array.of(2), wide: { embedding: Float32Array.of(3), features: Float32Array.of(4) } };
    assert.equal(occ.representation(face), face.wide);
    const { wide: _, ...chipOnly } = face;
    assert.equal(occ.representation(chipOnly), undefined, 'a face embedded without views has no representation for these masks');
    const dlib = OcclusionDictionary.forEmbedder(registry.dir, registry.get('dlib-resnet')) ?? assert.fail('dlib-resnet has masks');
    assert.equal(dlib.plainSpace, CLEAN_PATTERN);
    assert.equal(dlib.representation(face), face);
    assert.throws(() => dlib.log10Far(WIDE_SPACE, 0.5), /no wide space \(the masks were fitted without views\)/);
  });
});

describe('views belong to the calibration', () => {
  it('masks fitted without views refuse the model once it averages views', () => {
    const registry = ModelRegistry.load();
    const entry = registry.get('mobilefacenet');
    assert.ok(entry.occlusion, 'mobilefacenet has a mask dictionary');
    assert.ok(OcclusionDictionary.forEmbedder(registry.dir, entry));
    const withViews: ModelEntry = { ...entry, chip: { ...(entry.chip as NonNullable<ModelEntry['chip']>), views: [1.07] } };
    assert.throws(() => OcclusionDictionary.forEmbedder(registry.dir, withViews), /fitted on mobilefacenet averaging views \[\], and its manifest entry now averages \[1\.07\]: rebuild them/);
  });

  it('a rebuild keeps the masks only when the file and the views are unchanged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'facegate-views-manifest-'));
    try {
      const entry = ModelRegistry.load().get('mobilefacenet');
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ models: [entry] }));
      const { occlusion: _, ...rebuilt } = entry;
      writeManifest([rebuilt], dir);
      assert.deepEqual(readManifest(dir).models[0]?.occlusion, entry.occlusion, 'same file, same views: kept');
      writeManifest([{ ...rebuilt, chip: { ...(entry.chip as NonNullable<ModelEntry['chip']>), views: [1.07] } }], dir);
      assert.equal(readManifest(dir).models[0]?.occlusion, undefined, 'views changed: dropped');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
