// `facegate eval` with occluded probes: each probe is either detected on its own (the agent's
// path) or aligned by the landmarks of its clean original (FROM's protocol, recognition alone).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { newEvalCache, runVerificationEval } from '../agent/evaluation/run-eval.js';
import { SAMPLE_PHOTO_FACES } from '../agent/evaluation/sample-faces.js';
import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { samplePath } from './support/samples.js';

/** Four people, each a face of the sample photos cut LFW-style (250×250, face in the middle); image 2 is image 1 mirrored. */
async function writeLfwLikeSet(root: string): Promise<string[]> {
  const faces = SAMPLE_PHOTO_FACES.flatMap((p) => p.faces.map((f) => ({ sample: p.sample, photo: p, face: f }))).slice(0, 4);
  const names: string[] = [];
  for (const [k, { sample, photo, face }] of faces.entries()) {
    const name = `Person_${String.fromCharCode(65 + k)}`;
    names.push(name);
    mkdirSync(join(root, 'images', name), { recursive: true });
    mkdirSync(join(root, 'probes', name), { recursive: true });
    const side = Math.round(2.2 * face.side);
    const left = Math.max(0, Math.min(photo.width - side, Math.round(face.cx - side / 2)));
    const top = Math.max(0, Math.min(photo.height - side, Math.round(face.cy - side / 2)));
    const crop = await sharp(samplePath(sample)).extract({ left, top, width: side, height: side }).resize(250, 250).jpeg({ quality: 95 }).toBuffer();
    await sharp(crop).toFile(join(root, 'images', name, `${name}_0001.jpg`));
    const mirrored = await sharp(crop).flop().toBuffer();
    await sharp(mirrored).toFile(join(root, 'images', name, `${name}_0002.jpg`));
    // The probe: the mirrored photo with the whole face under a grey board, so no detector finds it.
    const board = await sharp({ create: { width: 210, height: 220, channels: 3, background: { r: 120, g: 120, b: 120 } } }).png().toBuffer();
    await sharp(mirrored).composite([{ input: board, left: 20, top: 20 }]).jpeg({ quality: 95 }).toFile(join(root, 'probes', name, `${name}_0002.jpg`));
  }
  const [a, b, c, d] = names as [string, string, string, string];
  writeFileSync(join(root, 'pairs.txt'), `1 2\n${a} 1 2\n${b} 1 2\n${a} 1 ${c} 2\n${b} 1 ${d} 2\n`);
  return names;
}

describe('facegate eval with occluded probes', () => {
  let dir: string;
  let analyzer: FaceAnalyzer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'facegate-eval-'));
    await writeLfwLikeSet(dir);
    analyzer = await FaceAnalyzer.create();
  });
  after(async () => {
    await analyzer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const options = (): { pairsFile: string; imagesDir: string; probeImagesDir: string } => ({
    pairsFile: join(dir, 'pairs.txt'),
    imagesDir: join(dir, 'images'),
    probeImagesDir: join(dir, 'probes'),
  });

  it('detects each probe on the occluded photo by default, and falls back to a centred crop where it finds none', async () => {
    const r = await runVerificationEval(analyzer, options());
    assert.equal(r.probeAlignment, 'detected');
    const probesWithoutFace = r.noFace.files.filter((f) => f.startsWith(join(dir, 'probes')));
    assert.equal(probesWithoutFace.length, 4, `every boarded-up probe should lack a face, got ${JSON.stringify(r.noFace.files)}`);
    assert.equal(r.pairs, 4);
  });

  it('aligns each probe by its clean original with --align-probes-from-clean', async () => {
    const r = await runVerificationEval(analyzer, { ...options(), alignProbesFromClean: true });
    assert.equal(r.probeAlignment, 'clean-original');
    assert.deepEqual(r.noFace.files, [], 'the clean originals all have a face');
    assert.equal(r.images, 6, 'the two gallery photos the pairs name and four probes');
  });

  it('reuses the gallery embeddings of an earlier run that shares its cache', async () => {
    const cache = newEvalCache();
    const first = await runVerificationEval(analyzer, { ...options(), alignProbesFromClean: true, cache });
    const lines: string[] = [];
    const second = await runVerificationEval(analyzer, { ...options(), cache, log: (l) => lines.push(l) });
    assert.match(lines.join('\n'), /embedded 4\/4 images \(2 from earlier runs\)/, 'only the probes, aligned another way, are embedded again');
    assert.equal(second.probeAlignment, 'detected');
    assert.equal(second.noFace.count, 4, 'the detected alignment still finds no face on the boarded-up probes');
    assert.equal(first.noFace.count, 0);
    const third = await runVerificationEval(analyzer, { ...options(), alignProbesFromClean: true, cache, log: (l) => lines.push(l) });
    assert.deepEqual(third.report, first.report, 'a run served wholly from the cache gives the same figures');
  });

  it('refuses clean alignment without occluded probes', async () => {
    const { pairsFile, imagesDir } = options();
    await assert.rejects(runVerificationEval(analyzer, { pairsFile, imagesDir, alignProbesFromClean: true }), /needs --probe-images/);
  });
});
