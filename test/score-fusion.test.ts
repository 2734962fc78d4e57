// Score fusion of two embedders (dlib's ResNet + MobileFaceNet, the agent's default) with the
// committed calibration (models/occlusion/dlib-resnet+mobilefacenet.fusion.json) and the real
// models: the calibration belongs to its pair of models (a mismatch is a clear error), enrollment
// stores both embedders' embeddings (and every occlusion pattern's), the fused matcher names the
// enrolled people on clean and masked photos and nobody else, and identities enrolled with one
// embedder only are still matched by it, and re-embedded from kept photos.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEMO_PEOPLE, enrollDemoPeople } from '../agent/demo.js';
import { pickCentralFace } from '../agent/evaluation/run-eval.js';
import { ModelRegistry } from '../agent/inference/model-registry.js';
import { ImageOccluder } from '../agent/occlusion/occlude-set.js';
import { enrollFromImages, reembedFromPhotos } from '../agent/recognition/enrollment.js';
import { type AnalyzedFace, FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { Gallery } from '../agent/recognition/gallery.js';
import { Matcher, thresholdsFor } from '../agent/recognition/matcher.js';
import { OcclusionAwareMatcher } from '../agent/recognition/occlusion-matcher.js';
import { calibratedCompanions, FusedMatcher, fusionPath, resolveCompanion, ScoreFusion } from '../agent/recognition/score-fusion.js';
import { decodeImage } from '../agent/vision/image.js';
import { samplePath } from './support/samples.js';

describe('score fusion calibration', () => {
  const registry = ModelRegistry.load();
  const dlib = registry.get('dlib-resnet');
  const mfn = registry.get('mobilefacenet');

  it('auto picks the calibrated companion; none and a name are taken as given', () => {
    assert.deepEqual(calibratedCompanions(registry.dir, 'dlib-resnet'), ['mobilefacenet', 'mobilefacenet-occ']);
    assert.equal(resolveCompanion(registry.dir, 'dlib-resnet', 'auto'), 'mobilefacenet');
    assert.equal(resolveCompanion(registry.dir, 'dlib-resnet-rec-0.25', 'auto'), undefined, 'no calibrated pair: one embedder');
    assert.equal(resolveCompanion(registry.dir, 'dlib-resnet', 'none'), undefined);
    assert.equal(resolveCompanion(registry.dir, 'dlib-resnet', 'mobilefacenet'), 'mobilefacenet');
  });

  it('belongs to its pair of models: refuses a changed model, a missing file or a broken curve, naming the rebuild command', () => {
    const fusion = ScoreFusion.load(registry.dir, dlib, mfn);
    assert.equal(fusion.primary, 'dlib-resnet');
    assert.equal(fusion.companion, 'mobilefacenet');
    // The fused score's FAR rises with the score, and stays a log10 FAR below the curve's first point.
    let last = Number.NEGATIVE_INFINITY;
    for (let s = -7; s <= 0; s += 0.05) {
      const far = fusion.calibratedLog10Far(s);
      assert.ok(far >= last - 1e-12 && far <= 0, `score ${s.toFixed(2)} → ${far}`);
      last = far;
    }
    // Fusing lowers impostors' scores less than genuine ones': a fused score of -2 is rarer among impostors than 1e-2.
    assert.ok(fusion.calibratedLog10Far(-2) < -2, `calibrated FAR of a fused -2: ${fusion.calibratedLog10Far(-2)}`);
    assert.throws(() => ScoreFusion.load(registry.dir, { name: 'dlib-resnet', sha256: '0'.repeat(64) }, mfn), /calibrated for dlib-resnet .* not dlib-resnet \(sha256 000000000000…\).*npm run models:fusion -- --embedders dlib-resnet,mobilefacenet/);
    assert.throws(() => ScoreFusion.load(registry.dir, mfn, dlib), /mobilefacenet\+dlib-resnet\.fusion\.json not found \(rebuild it: npm run models:fusion -- --embedders mobilefacenet,dlib-resnet\)/);
    const dir = mkdtempSync(join(tmpdir(), 'facegate-fusion-'));
    try {
      mkdirSync(join(dir, 'occlusion'));
      const cal = JSON.parse(readFileSync(join(registry.dir, fusionPath('dlib-resnet', 'mobilefacenet')), 'utf8')) as { far: { fused: number[] } };
      cal.far.fused.reverse();
      writeFileSync(join(dir, fusionPath('dlib-resnet', 'mobilefacenet')), JSON.stringify(cal));
      assert.throws(() => ScoreFusion.load(dir, dlib, mfn), /no rising far\.fused curve/);
      writeFileSync(join(dir, fusionPath('dlib-resnet', 'mobilefacenet')), '{ not json');
      assert.throws(() => ScoreFusion.load(dir, dlib, mfn), /is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('score fusion with the real embedders', { timeout: 300_000 }, () => {
  let analyzer: FaceAnalyzer;
  let single: FaceAnalyzer;
  const dirs: string[] = [];
  const tempDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'facegate-fusion-gallery-'));
    dirs.push(d);
    return d;
  };

  before(async () => {
    analyzer = await FaceAnalyzer.create({ fuseWith: 'auto' });
    single = await FaceAnalyzer.create({ fuseWith: 'none' });
  });
  after(async () => {
    await analyzer?.close();
    await single?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** The fused matcher the agent builds (agent.ts createMatcher), on the analyzer's default thresholds. */
  function fusedMatcher(gallery: Gallery): FusedMatcher {
    const fusion = analyzer.fusion;
    assert.ok(fusion);
    const entry = analyzer.embedder.entry;
    const other = fusion.companion.embedder.entry;
    const m = new FusedMatcher(
      { matcher: new OcclusionAwareMatcher(entry.name, thresholdsFor(entry), analyzer.occlusion), curves: fusion.curves[0] },
      { matcher: new OcclusionAwareMatcher(other.name, thresholdsFor(other), fusion.companion.occlusion), curves: fusion.curves[1] },
      fusion.score,
      thresholdsFor(entry),
    );
    m.reload(gallery, true);
    return m;
  }

  it("runs the companion on its own chips and refuses fusing a model with itself", async () => {
    const fusion = analyzer.fusion;
    assert.ok(fusion, 'fuseWith auto fuses dlib-resnet with mobilefacenet');
    assert.equal(fusion.companion.embedder.entry.name, 'mobilefacenet');
    assert.equal(single.fusion, undefined);
    const image = await decodeImage(samplePath(1));
    const faces = await analyzer.detect(image);
    const { items } = analyzer.faceChips(image, faces);
    assert.equal(items.length, faces.length);
    for (const it of items) {
      assert.deepEqual([it.chip.width, it.chip.height], [150, 150]);
      assert.deepEqual([it.companionChip?.width, it.companionChip?.height], [112, 112]);
    }
    const [face] = await analyzer.embedFaces(image, faces.slice(0, 1));
    assert.equal(face?.model, 'dlib-resnet');
    assert.equal(face?.companion?.model, 'mobilefacenet');
    assert.equal(face?.companion?.embedding.length, 192);
    // Paused (GPU pressure): no companion result. A failing companion (here a chip of the wrong
    // size) leaves the faces to the embedder alone when the caller handles the error, else throws.
    const paused = await analyzer.embedChips(items, undefined, { skip: true });
    assert.equal(paused.length, items.length);
    assert.ok(paused.every((r) => r.companion === undefined && r.model === 'dlib-resnet'));
    const broken = items.map((i) => ({ ...i, companionChip: i.chip }));
    const errors: string[] = [];
    const alone = await analyzer.embedChips(broken, undefined, { onError: (err) => errors.push(err.message) });
    assert.ok(alone.every((r) => r.companion === undefined));
    assert.equal(errors.length, 1);
    assert.match(errors[0] as string, /chip 0 is 150×150; model mobilefacenet needs 112×112/);
    await assert.rejects(analyzer.embedChips(broken), /model mobilefacenet needs 112×112/);
    // The agent's auto: fusion only where the embedder runs on a GPU; a named companion fuses anywhere.
    const cpuAuto = await FaceAnalyzer.create({ fuseWith: 'auto', autoFusionOnCpu: false });
    assert.equal(cpuAuto.embedder.provider, 'cpu');
    assert.equal(cpuAuto.fusion, undefined);
    assert.deepEqual(cpuAuto.sessionsInfo.map((m) => m.model), ['mtcnn-pnet', 'mtcnn-rnet', 'mtcnn-onet', 'dlib-resnet']);
    await cpuAuto.close();
    const cpuNamed = await FaceAnalyzer.create({ fuseWith: 'mobilefacenet', autoFusionOnCpu: false });
    assert.equal(cpuNamed.fusion?.companion.embedder.entry.name, 'mobilefacenet');
    await cpuNamed.close();
    await assert.rejects(FaceAnalyzer.create({ embedder: 'mobilefacenet', fuseWith: 'mobilefacenet' }), /fuseWith: mobilefacenet is already the embedder/);
    await assert.rejects(FaceAnalyzer.create({ fuseWith: 'mtcnn-onet' }), /fuseWith: mtcnn-onet is a detector, not an embedder/);
  });

  it('enrolls both embedders; names the enrolled people clean and masked, and nobody else', async () => {
    const dir = tempDir();
    const gallery = Gallery.open(dir);
    try {
      const people = await enrollDemoPeople(analyzer, gallery, dir);
      assert.deepEqual(people, DEMO_PEOPLE);
      const summary = gallery.list().find((i) => i.name === people[0]);
      assert.deepEqual(summary?.models, { 'dlib-resnet': 1, mobilefacenet: 1 });
      assert.deepEqual(Object.keys(summary?.occlusionEmbeddings ?? {}).sort(), ['dlib-resnet', 'mobilefacenet']);
      const matcher = fusedMatcher(gallery);
      assert.equal(matcher.identitiesWithoutCompanion(), 0);
      assert.equal(matcher.identitiesWithoutPatterns(), 0);

      // Clean: the people of sample1, left to right; the faces of the other photos are strangers.
      const clean = (await analyzer.analyze(await decodeImage(samplePath(1)))).sort((a, b) => a.box.x1 - b.box.x1);
      assert.deepEqual(clean.map((f) => matcher.match(f).identity), DEMO_PEOPLE);
      for (const f of clean) assert.ok(matcher.match(f).log10Far < matcher.log10Thresholds.match);
      // The other photos: where both embedders alone agree (on a person, or on nobody) the fusion
      // agrees with them; samples 2, 5 and 6 show nobody enrolled (sample3 and sample4 show some of
      // sample1's people again).
      const alone = [analyzer.embedder, analyzer.fusion?.companion.embedder].map((e) => {
        const m = Matcher.forModel(e?.entry ?? assert.fail('embedder'));
        m.reload(gallery, true);
        return m;
      }) as [Matcher, Matcher];
      let agreed = 0;
      for (const n of [2, 3, 4, 5, 6]) {
        for (const f of await analyzer.analyze(await decodeImage(samplePath(n)))) {
          const m = matcher.match(f);
          const where = `sample${n} face at ${Math.round(f.box.x1)},${Math.round(f.box.y1)}`;
          if ([2, 5, 6].includes(n)) assert.equal(m.identity, null, `${where} taken for ${m.identity} (log10 FAR ${m.log10Far.toFixed(2)})`);
          const [a, b] = [alone[0].match(f.embedding).identity, alone[1].match((f.companion ?? assert.fail('companion')).embedding).identity];
          if (a !== b) continue;
          assert.equal(m.identity, a, `${where}: both embedders say ${a}, the fusion ${m.identity}`);
          agreed++;
        }
      }
      assert.ok(agreed >= 10, `${agreed} faces both embedders agree on`);

      // Masked: each enrolled crop with a synthetic face mask, matched as its person.
      const files = people.map((p) => `${p}.jpg`);
      const occluder = new ImageOccluder(analyzer.detector, dir, files);
      // Cleo's head is tilted far enough that dlib's classifier misses her mask (MobileFaceNet's sees it).
      let seen = 0;
      let right = 0;
      for (const [i, file] of files.entries()) {
        const image = await decodeImage(join(dir, file));
        const face = pickCentralFace(await analyzer.detect(image), image.width, image.height);
        assert.ok(face, `${file}: a face`);
        const masked = (await occluder.occlude(file, image, 'mask', 5, face)).image;
        const probe = pickCentralFace(await analyzer.analyze(masked), masked.width, masked.height) as AnalyzedFace | undefined;
        assert.ok(probe, `${file} masked: a face`);
        const m = matcher.match(probe);
        if (m.masked) seen++;
        if (m.identity === people[i]) right++;
        else assert.equal(m.identity, null, `${file} masked: taken for ${m.identity} (log10 FAR ${m.log10Far.toFixed(2)})`);
        // Without the companion's result (paused or failed) the primary decides alone, as the plain matcher would.
        const alone = matcher.match({ ...probe, companion: undefined });
        const primary = new OcclusionAwareMatcher('dlib-resnet', thresholdsFor(analyzer.embedder.entry), analyzer.occlusion);
        primary.reload(gallery, true);
        assert.equal(alone.identity, primary.match(probe).identity);
      }
      assert.ok(seen >= 2 && right >= 2, `masks seen on ${seen} of 3 faces, ${right} of 3 masked people named`);
    } finally {
      gallery.close();
    }
  });

  it('matches identities enrolled with one embedder by it alone, and re-embeds them from kept photos', async () => {
    const dir = tempDir();
    const gallery = Gallery.open(dir, { keepPhotos: true });
    try {
      // Enrolled before fusion: dlib-resnet embeddings only, photos kept.
      const people = await enrollDemoPeople(single, gallery, dir);
      assert.deepEqual(gallery.needsReenrollment('mobilefacenet'), [...people].sort());
      const before = fusedMatcher(gallery);
      assert.equal(before.identitiesWithoutCompanion(), people.length);
      const clean = (await analyzer.analyze(await decodeImage(samplePath(1)))).sort((a, b) => a.box.x1 - b.box.x1);
      assert.deepEqual(clean.map((f) => before.match(f).identity), DEMO_PEOPLE, 'matched by dlib-resnet alone');

      const { reembedded, needReenrollment } = await reembedFromPhotos(analyzer, gallery);
      assert.deepEqual(reembedded.sort(), [...people].sort());
      assert.deepEqual(needReenrollment, []);
      assert.deepEqual(gallery.needsReenrollment('mobilefacenet'), []);
      // Only the missing embedder's embeddings were added.
      assert.deepEqual(gallery.list().find((i) => i.name === people[0])?.models, { 'dlib-resnet': 1, mobilefacenet: 1 });
      const after = fusedMatcher(gallery);
      assert.equal(after.identitiesWithoutCompanion(), 0);
      assert.deepEqual(clean.map((f) => after.match(f).identity), DEMO_PEOPLE, 'matched by both');
      // A second enrollment of a fused analyzer adds both embedders' embeddings.
      await enrollFromImages(analyzer, gallery, people[0] as string, [join(dir, `${people[0]}.jpg`)]);
      assert.deepEqual(gallery.list().find((i) => i.name === people[0])?.models, { 'dlib-resnet': 2, mobilefacenet: 2 });
    } finally {
      gallery.close();
    }
  });
});
