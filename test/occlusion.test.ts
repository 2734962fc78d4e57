// Occlusion synthesis (`facegate occlude`): occluders follow the detected landmarks, cover what
// their kind covers and nothing that it does not, and a seed fixes the result.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { faceFrame } from '../agent/occlusion/face-frame.js';
import { ImageOccluder, occludeImageSet, targetImages } from '../agent/occlusion/occlude-set.js';
import { makeOccluder, type OccluderKind, parseOccluderKind, type TextureSource } from '../agent/occlusion/occluders.js';
import { coveredFraction, renderOcclusion } from '../agent/occlusion/render.js';
import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { seededRandom } from '../agent/util/seeded-random.js';
import type { Point } from '../agent/vision/geometry.js';
import { decodeImage, type RgbImage } from '../agent/vision/image.js';
import type { DetectedFace } from '../agent/vision/mtcnn.js';
import { samplePath } from './support/samples.js';

/** Textures cut from the photo itself (the set tool cuts them from other photos). */
async function selfTextures(image: RgbImage): Promise<TextureSource> {
  const patch = async (left: number, top: number): Promise<{ png: Buffer; width: number; height: number }> => ({
    png: await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).extract({ left, top, width: 64, height: 64 }).png().toBuffer(),
    width: 64,
    height: 64,
  });
  const bg = await patch(0, 0);
  const skin = await patch(Math.floor(image.width / 2), Math.floor(image.height / 2));
  return { background: () => bg, skin: () => skin };
}

/** Mean coverage (0..1) in a small disc around a point. */
function coverageAt(coverage: Uint8Array, width: number, p: Point, radius = 2): number {
  let sum = 0;
  let n = 0;
  for (let y = Math.round(p.y) - radius; y <= Math.round(p.y) + radius; y++) {
    for (let x = Math.round(p.x) - radius; x <= Math.round(p.x) + radius; x++) {
      sum += coverage[y * width + x] as number;
      n++;
    }
  }
  return sum / (255 * n);
}

describe('occlusion synthesis', () => {
  let analyzer: FaceAnalyzer;
  let photo: RgbImage;
  let faces: DetectedFace[];
  let textures: TextureSource;
  const dirs: string[] = [];

  before(async () => {
    analyzer = await FaceAnalyzer.create({ detector: { minFaceSize: 40 } });
    photo = await decodeImage(samplePath(2));
    faces = (await analyzer.detect(photo)).filter((f) => f.box.x2 - f.box.x1 > 80);
    assert.ok(faces.length >= 1, 'sample2 has a face of 80 px or more');
    textures = await selfTextures(photo);
  });
  after(async () => {
    await analyzer.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function render(kind: OccluderKind, face: DetectedFace, seed: number): Promise<{ coverage: Uint8Array; image: RgbImage }> {
    const frame = faceFrame(face.landmarks);
    const occluder = makeOccluder(kind, { frame, box: face.box, random: seededRandom(seed), textures });
    return renderOcclusion(photo, occluder, frame);
  }

  it('a face mask covers the mouth corners and the nose tip, never the eyes', async () => {
    for (const [i, face] of faces.entries()) {
      for (const seed of [1, 2, 3, 4]) {
        const { coverage } = await render('mask', face, seed * 10 + i);
        const [le, re, nose, ml, mr] = face.landmarks;
        assert.ok(coverageAt(coverage, photo.width, ml) > 0.9 && coverageAt(coverage, photo.width, mr) > 0.9, `face ${i} seed ${seed}: mouth corners covered`);
        assert.ok(coverageAt(coverage, photo.width, nose) > 0.5, `face ${i} seed ${seed}: nose tip covered`);
        assert.equal(coverageAt(coverage, photo.width, le), 0, `face ${i} seed ${seed}: left eye visible`);
        assert.equal(coverageAt(coverage, photo.width, re), 0, `face ${i} seed ${seed}: right eye visible`);
      }
    }
  });

  it('sunglasses cover both eyes and leave the mouth corners visible', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const face = faces[0] as DetectedFace;
      const { coverage } = await render('sunglasses', face, seed);
      const [le, re, , ml, mr] = face.landmarks;
      assert.ok(coverageAt(coverage, photo.width, le) > 0.9 && coverageAt(coverage, photo.width, re) > 0.9, `seed ${seed}: eyes covered`);
      assert.equal(coverageAt(coverage, photo.width, ml) + coverageAt(coverage, photo.width, mr), 0, `seed ${seed}: mouth visible`);
    }
  });

  it('a scarf covers the mouth, not the eyes; a hand or an object covers part of the face', async () => {
    const face = faces[0] as DetectedFace;
    const [le, re, , ml, mr] = face.landmarks;
    const scarf = await render('scarf', face, 5);
    assert.ok(coverageAt(scarf.coverage, photo.width, ml) > 0.9 && coverageAt(scarf.coverage, photo.width, mr) > 0.9);
    assert.equal(coverageAt(scarf.coverage, photo.width, le) + coverageAt(scarf.coverage, photo.width, re), 0);
    for (const kind of ['hand', 'object'] as const) {
      const { coverage } = await render(kind, face, 6);
      const part = coveredFraction(coverage, photo.width, photo.height, face.box);
      assert.ok(part > 0.03 && part < 0.7, `${kind} covers ${(part * 100).toFixed(1)}% of the face box`);
    }
  });

  it('random40 covers 40% of the face box, inside it', async () => {
    const face = faces[0] as DetectedFace;
    for (const seed of [1, 2, 3]) {
      const { coverage } = await render('random40', face, seed);
      const inBox = coveredFraction(coverage, photo.width, photo.height, face.box);
      assert.ok(Math.abs(inBox - 0.4) < 0.02, `seed ${seed}: ${(inBox * 100).toFixed(1)}% of the box`);
      const everywhere = coveredFraction(coverage, photo.width, photo.height, { x1: 0, y1: 0, x2: photo.width, y2: photo.height });
      const boxArea = (face.box.x2 - face.box.x1) * (face.box.y2 - face.box.y1);
      assert.ok(Math.abs(everywhere * photo.width * photo.height - inBox * boxArea) / boxArea < 0.02, 'nothing outside the box');
    }
  });

  it('the seed fixes the result; another seed changes it', async () => {
    const face = faces[0] as DetectedFace;
    const a = await render('mask', face, 42);
    const b = await render('mask', face, 42);
    const c = await render('mask', face, 43);
    assert.ok(Buffer.from(a.image.data).equals(Buffer.from(b.image.data)));
    assert.ok(!Buffer.from(a.image.data).equals(Buffer.from(c.image.data)));
  });

  it('occludes a set: same relative paths, a record per photo, deterministic; probes-only needs pairs', async () => {
    const src = mkdtempSync(join(tmpdir(), 'facegate-occ-src-'));
    const out1 = mkdtempSync(join(tmpdir(), 'facegate-occ-out-'));
    const out2 = mkdtempSync(join(tmpdir(), 'facegate-occ-out-'));
    dirs.push(src, out1, out2);
    // Two single-face crops in an LFW layout, plus a pairs file naming them.
    for (const [k, face] of faces.slice(0, 1).entries()) {
      for (const n of [1, 2]) {
        const side = Math.round((face.box.x2 - face.box.x1) * 2.2);
        const left = Math.max(0, Math.round((face.box.x1 + face.box.x2) / 2 - side / 2));
        const top = Math.max(0, Math.round((face.box.y1 + face.box.y2) / 2 - side / 2));
        mkdirSync(join(src, `P${k}`), { recursive: true });
        await sharp(samplePath(2)).extract({ left, top, width: Math.min(side, photo.width - left), height: Math.min(side, photo.height - top) }).jpeg().toFile(join(src, `P${k}`, `P${k}_000${n}.jpg`));
      }
    }
    const pairs = join(src, 'pairs.txt');
    writeFileSync(pairs, '1\t1\nP0\t1\t2\nP0\t2\tP0\t1\n');
    assert.throws(() => targetImages({ imagesDir: src, probesOnly: true }), /needs --pairs/);
    assert.deepEqual(targetImages({ imagesDir: src, pairsFile: pairs, probesOnly: true }), ['P0/P0_0001.jpg', 'P0/P0_0002.jpg']);
    const r1 = await occludeImageSet(analyzer.detector, { imagesDir: src, outDir: out1, kind: 'sunglasses', seed: 3 });
    await occludeImageSet(analyzer.detector, { imagesDir: src, outDir: out2, kind: 'sunglasses', seed: 3 });
    assert.equal(r1.images, 2);
    assert.equal(r1.noFace, 0);
    for (const f of ['P0/P0_0001.jpg', 'P0/P0_0002.jpg']) {
      assert.ok(existsSync(join(out1, f)));
      assert.ok(readFileSync(join(out1, f)).equals(readFileSync(join(out2, f))), `${f} is the same for the same seed`);
    }
    const manifest = JSON.parse(readFileSync(join(out1, 'occlusion.json'), 'utf8')) as { kind: string; files: { file: string; coverage: number }[] };
    assert.equal(manifest.kind, 'sunglasses');
    assert.ok(manifest.files.every((f) => f.coverage > 0.05 && f.coverage < 0.4));
    // One photo's occluder does not depend on which other photos are in the run.
    const single = new ImageOccluder(analyzer.detector, src, ['P0/P0_0001.jpg', 'P0/P0_0002.jpg']);
    const again = await single.occlude('P0/P0_0002.jpg', await decodeImage(join(src, 'P0/P0_0002.jpg')), 'sunglasses', 3);
    assert.equal(again.record.variant, (r1.files[1] as { variant: string }).variant);
  });

  it('rejects an unknown kind by name', () => {
    assert.throws(() => parseOccluderKind('helmet'), /unknown occluder kind "helmet".*random40, mask, sunglasses, scarf, hand, object/);
  });
});
