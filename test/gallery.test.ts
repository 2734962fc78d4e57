// The gallery (SQLite), the matcher, and `facegate enroll` / `facegate identities` as child
// processes with real models: one face per image or nothing is written.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import sharp from 'sharp';

import { ModelRegistry } from '../agent/inference/model-registry.js';
import { reembedFromPhotos } from '../agent/recognition/enrollment.js';
import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { Gallery } from '../agent/recognition/gallery.js';
import { LATEST_VERSION } from '../agent/recognition/gallery-migrations.js';
import { Matcher, thresholdsFor } from '../agent/recognition/matcher.js';
import { decodeImage } from '../agent/vision/image.js';
import { type CliResult, parseJson, runCli } from './support/cli.js';
import { samplePath } from './support/samples.js';

let root: string;
let n = 0;
const freshDir = (): string => join(root, `g${n++}`);

const vec = (...values: number[]): Float32Array => {
  const v = new Float32Array(8);
  values.forEach((x, i) => (v[i] = x));
  return v;
};

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'facegate-gallery-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('Gallery', () => {
  it('creates and migrates a new file, enrolls, lists, removes', () => {
    const dir = freshDir();
    const g = Gallery.open(dir);
    try {
      assert.ok(existsSync(join(dir, 'gallery.sqlite')));
      assert.equal(g.schemaVersion(), LATEST_VERSION);
      assert.deepEqual(g.list(), []);
      g.enroll('Alice', [
        { embedding: vec(1), model: 'm1', source: 'a1.jpg' },
        { embedding: vec(0.9), model: 'm1', source: 'a2.jpg' },
      ]);
      g.enroll(' Bob ', [{ embedding: vec(0, 1), model: 'm1', source: 'b.jpg' }]);
      g.enroll('Alice', [{ embedding: vec(0, 0, 1), model: 'm2', source: 'a3.jpg' }]);
      const list = g.list();
      assert.deepEqual(
        list.map((i) => [i.name, i.embeddings, i.models]),
        [
          ['Alice', 3, { m1: 2, m2: 1 }],
          ['Bob', 1, { m1: 1 }],
        ],
      );
      const alice = list[0];
      assert.ok(alice && Date.parse(alice.updatedAt) >= Date.parse(alice.createdAt));
      const stored = g.embeddingsFor('m1');
      assert.deepEqual(stored.map((s) => s.identity), ['Alice', 'Alice', 'Bob']);
      assert.deepEqual(Array.from(stored[0]?.embedding ?? []), Array.from(vec(1)));
      assert.equal(g.remove('Bob'), true);
      assert.equal(g.remove('Bob'), false);
      assert.deepEqual(g.list().map((i) => i.name), ['Alice']);
      assert.equal(g.embeddingsFor('m1').length, 2);
    } finally {
      g.close();
    }
    // Reopening an up-to-date file migrates nothing and keeps the data.
    const again = Gallery.open(dir);
    assert.deepEqual(again.list().map((i) => i.name), ['Alice']);
    again.close();
  });

  it('enrolls all items in one transaction: a bad item stores none', () => {
    const g = Gallery.open(freshDir());
    try {
      g.enroll('Alice', [{ embedding: vec(1), model: 'm1', source: 'a.jpg' }]);
      const v = g.version();
      assert.throws(() => g.enroll('Carol', [{ embedding: vec(1), model: 'm1', source: 'c1.jpg' }, { embedding: new Float32Array(4), model: 'm1', source: 'c2.jpg' }]), /c2\.jpg: model m1 embeddings in the gallery have 8 values/);
      assert.throws(() => g.enroll('Carol', [{ embedding: vec(Number.NaN), model: 'm1', source: 'c3.jpg' }]), /non-finite/);
      assert.throws(() => g.enroll('  ', [{ embedding: vec(1), model: 'm1', source: 'x.jpg' }]), /name is empty/);
      assert.deepEqual(g.list().map((i) => i.name), ['Alice']);
      assert.equal(g.version(), v);
    } finally {
      g.close();
    }
  });

  it('names the identities that need re-enrollment for a model', () => {
    const g = Gallery.open(freshDir());
    try {
      g.enroll('Alice', [{ embedding: vec(1), model: 'old-net', source: 'a.jpg' }, { embedding: vec(1), model: 'new-net', source: 'a.jpg' }]);
      g.enroll('Bob', [{ embedding: vec(0, 1), model: 'old-net', source: 'b.jpg' }]);
      assert.deepEqual(g.needsReenrollment('new-net'), ['Bob']);
      assert.deepEqual(g.needsReenrollment('old-net'), []);
      assert.deepEqual(g.needsReenrollment('other'), ['Alice', 'Bob']);
    } finally {
      g.close();
    }
  });

  it('stores photos only with keepPhotos', () => {
    const dir = freshDir();
    const photo = new Uint8Array([0xff, 0xd8, 1, 2, 3]);
    const without = Gallery.open(dir);
    without.enroll('Alice', [{ embedding: vec(1), model: 'm1', photo, source: 'a.jpg' }]);
    assert.deepEqual(without.photosFor('Alice'), []);
    assert.equal(without.list()[0]?.photos, 0);
    without.close();
    const db = new BetterSqlite3(join(dir, 'gallery.sqlite'), { readonly: true });
    assert.equal((db.prepare('SELECT count(*) AS n FROM photos').get() as { n: number }).n, 0);
    db.close();

    const keep = Gallery.open(dir, { keepPhotos: true });
    keep.enroll('Bob', [{ embedding: vec(0, 1), model: 'm1', photo, source: 'b.jpg' }]);
    const photos = keep.photosFor('Bob');
    assert.equal(photos.length, 1);
    assert.deepEqual(photos[0] && [photos[0].model, photos[0].source, Array.from(photos[0].photo)], ['m1', 'b.jpg', Array.from(photo)]);
    assert.equal(keep.remove('Bob'), true);
    keep.close();
    const db2 = new BetterSqlite3(join(dir, 'gallery.sqlite'), { readonly: true });
    assert.equal((db2.prepare('SELECT count(*) AS n FROM photos').get() as { n: number }).n, 0, 'photos go with their identity');
    db2.close();
  });

  it('version() changes on every write, also seen by a second instance on the same file', () => {
    const dir = freshDir();
    const writer = Gallery.open(dir);
    const reader = Gallery.open(dir);
    try {
      const v0 = reader.version();
      writer.enroll('Alice', [{ embedding: vec(1), model: 'm1', source: 'a.jpg' }]);
      const v1 = reader.version();
      assert.notEqual(v1, v0);
      assert.deepEqual(reader.list().map((i) => i.name), ['Alice']);
      writer.remove('Alice');
      assert.notEqual(reader.version(), v1);
      assert.equal(writer.remove('nobody'), false);
      assert.equal(reader.version(), writer.version());
    } finally {
      writer.close();
      reader.close();
    }
  });

  it('refuses a file written by a newer schema', () => {
    const dir = freshDir();
    Gallery.open(dir).close();
    const db = new BetterSqlite3(join(dir, 'gallery.sqlite'));
    db.pragma(`user_version = ${LATEST_VERSION + 1}`);
    db.close();
    assert.throws(() => Gallery.open(dir), /newer than this facegate understands/);
  });
});

describe('Matcher', () => {
  it('decides match / uncertain / unknown by the thresholds, with the second-best identity', () => {
    const m = new Matcher('m1', { match: 0.5, unknown: 0.8 });
    m.load([
      { identity: 'Alice', embedding: vec(0) },
      { identity: 'Alice', embedding: vec(0.1) },
      { identity: 'Bob', embedding: vec(2) },
    ]);
    assert.equal(m.identities, 2);
    const hit = m.match(vec(0.05));
    assert.equal(hit.identity, 'Alice');
    assert.equal(hit.unknown, false);
    assert.ok(Math.abs(hit.distance - 0.05) < 1e-6);
    assert.equal(hit.secondBest?.identity, 'Bob');
    assert.ok(Math.abs((hit.secondBest?.distance ?? 0) - 1.95) < 1e-6);
    const uncertain = m.match(vec(0.1 + 0.6));
    assert.deepEqual([uncertain.identity, uncertain.unknown], [null, false]);
    const unknown = m.match(vec(1.05));
    assert.deepEqual([unknown.identity, unknown.unknown], [null, true]);
    assert.deepEqual(new Matcher('m1', { match: 0.5, unknown: 0.8 }).match(vec(0)), { identity: null, distance: Number.POSITIVE_INFINITY, unknown: true });
  });

  it('takes its defaults from the manifest threshold', () => {
    assert.deepEqual(thresholdsFor({ threshold: 0.6111 }), { match: 0.6111, unknown: 0.6111 + 0.1 });
    assert.deepEqual(thresholdsFor({ threshold: 0.6111 }, { unknown: 0.9 }), { match: 0.6111, unknown: 0.9 });
    const entry = ModelRegistry.load().defaultFor('embedder');
    assert.equal(Matcher.forModel(entry).thresholds.match, entry.threshold ?? 0.6);
    assert.throws(() => thresholdsFor({ threshold: 0.6 }, { unknown: 0.5 }), /unknown threshold/);
  });

  it('WebAssembly SIMD and JavaScript kernels agree', () => {
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
    const rows = Array.from({ length: 300 }, (_, i) => ({ identity: `p${i % 37}`, embedding: Float32Array.from({ length: 130 }, rand) }));
    const simd = new Matcher('m', { match: 8, unknown: 9 });
    const js = new Matcher('m', { match: 8, unknown: 9 }, { simd: false });
    simd.load(rows);
    js.load(rows);
    assert.equal(simd.kernel, 'wasm-simd');
    assert.equal(js.kernel, 'js');
    for (let i = 0; i < 20; i++) {
      const q = Float32Array.from({ length: 130 }, rand);
      const a = simd.match(q);
      const b = js.match(q);
      assert.equal(a.identity, b.identity);
      assert.equal(a.secondBest?.identity, b.secondBest?.identity);
      assert.ok(Math.abs(a.distance - b.distance) < 1e-4);
    }
  });

  it('loads one model only and reloads when the gallery version changes', () => {
    const dir = freshDir();
    const g = Gallery.open(dir);
    const writer = Gallery.open(dir);
    try {
      g.enroll('Alice', [{ embedding: vec(0), model: 'm1', source: 'a.jpg' }]);
      g.enroll('Bob', [{ embedding: vec(0.01), model: 'm2', source: 'b.jpg' }]);
      const m = new Matcher('m1', { match: 0.5, unknown: 0.8 });
      assert.equal(m.reload(g), true);
      assert.equal(m.reload(g), false, 'no change, no reload');
      assert.equal(m.size, 1);
      assert.equal(m.match(vec(0.01)).identity, 'Alice', 'never matches an embedding of another model');
      writer.enroll('Carol', [{ embedding: vec(0.011), model: 'm1', source: 'c.jpg' }]);
      assert.equal(m.reload(g), true, 'a write by another connection is seen');
      assert.equal(m.match(vec(0.011)).identity, 'Carol');
    } finally {
      g.close();
      writer.close();
    }
  });
});

describe('facegate enroll / identities (CLI)', () => {
  let dir: string;
  const file = (name: string): string => join(dir, name);
  const runs = new Map<string, Promise<CliResult>>();
  const result = (name: string): Promise<CliResult> => runs.get(name) ?? Promise.reject(new Error(`no run ${name}`));

  before(async () => {
    const registry = ModelRegistry.load();
    await registry.ensure(registry.models);
    dir = await mkdtemp(join(tmpdir(), 'facegate-enroll-'));
    await Promise.all([
      // One face: sample1's right woman.
      sharp(samplePath(1)).extract({ left: 1400, top: 130, width: 380, height: 400 }).jpeg({ quality: 92 }).toFile(file('one-face.jpg')),
      // No face: a generated gradient.
      sharp(Buffer.from(Array.from({ length: 320 * 240 * 3 }, (_, i) => (i * 7) % 251)), { raw: { width: 320, height: 240, channels: 3 } }).png().toFile(file('no-face.png')),
    ]);
    // Two at a time (2 cores).
    runs.set('zero', runCli(['enroll', '--name', 'Nobody', file('one-face.jpg'), file('no-face.png'), '--data-dir', file('data-zero')]));
    runs.set('several', runCli(['enroll', '--name', 'Crowd', file('one-face.jpg'), samplePath(1), '--data-dir', file('data-several')]));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('an image without a face: error naming the file, nothing written', async () => {
    const r = await result('zero');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /no-face\.png: no face found/);
    assert.doesNotMatch(r.stderr, /one-face\.jpg/);
    assert.equal(r.stdout, '');
    assert.equal(existsSync(join(file('data-zero'), 'gallery.sqlite')), false);
  });

  it('an image with several faces: error naming the file, nothing written', async () => {
    const r = await result('several');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /sample1\.jpg: 3 faces found/);
    assert.equal(existsSync(join(file('data-several'), 'gallery.sqlite')), false);
  });

  it('enrolls a crop with one face; lists and removes it', async () => {
    const data = file('data-ok');
    const enrolled = await runCli(['enroll', '--name', 'Alice', file('one-face.jpg'), '--data-dir', data]);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    const model = ModelRegistry.load().defaultFor('embedder').name;
    // `--fuse-with auto` (the default, as the agent's recognition.fuseWith): the companion embeds it too.
    assert.deepEqual(parseJson(enrolled) as { embeddings: unknown; fusedWith: unknown }, { ...(parseJson(enrolled) as object), embeddings: { [model]: 1, mobilefacenet: 1 }, fusedWith: 'mobilefacenet' });
    const single = await runCli(['enroll', '--name', 'Alice', file('one-face.jpg'), '--data-dir', file('data-single'), '--fuse-with', 'none']);
    assert.equal(single.code, 0, single.stderr);
    assert.deepEqual(parseJson(single) as { embeddings: unknown; fusedWith: unknown }, { ...(parseJson(single) as object), embeddings: { [model]: 1 }, fusedWith: null });

    // Another model's embedding, written directly: listing against that model flags Alice.
    const g = Gallery.open(data);
    g.enroll('Bob', [{ embedding: new Float32Array(128).fill(0.01), model: 'another-net', source: 'b.jpg' }]);
    g.close();
    // The data directory from env FACEGATE_DATA_DIR.
    process.env.FACEGATE_DATA_DIR = data;
    const env = await runCli(['identities', 'list', '--json']).finally(() => delete process.env.FACEGATE_DATA_DIR);
    assert.equal(env.code, 0, env.stderr);
    const out = parseJson(env) as { model: string; identities: { name: string; models: Record<string, number>; photos: number; needsReenrollment: boolean }[] };
    assert.equal(out.model, model);
    assert.deepEqual(
      out.identities.map((i) => [i.name, i.models, i.photos, i.needsReenrollment]),
      [
        ['Alice', { [model]: 1, mobilefacenet: 1 }, 0, false],
        ['Bob', { 'another-net': 1 }, 0, true],
      ],
    );
    assert.match(env.stderr, /Bob/, 'the identities needing re-enrollment are logged');

    const removed = await runCli(['identities', 'remove', 'Alice', '--data-dir', data]);
    assert.equal(removed.code, 0, removed.stderr);
    const missing = await runCli(['identities', 'remove', 'Alice', '--data-dir', data]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no identity named .{0,2}"Alice/);
    const table = await runCli(['identities', 'list', '--data-dir', data]);
    assert.match(table.stdout, /^Bob +1 +another-net:1 +0 +\S+ +RE-ENROLL$/m);
    const none = await runCli(['identities', 'list', '--json', '--data-dir', file('data-none')]);
    assert.deepEqual((parseJson(none) as { identities: unknown[] }).identities, []);
    assert.equal(existsSync(file('data-none')), false, 'listing does not create a gallery');
    const g2 = Gallery.open(data);
    assert.deepEqual(g2.list().map((i) => i.name), ['Bob']);
    g2.close();
  });

  it('re-embeds identities of another model from their kept photos; names those without photos', async () => {
    const data = file('data-reembed');
    const photo = await readFile(file('one-face.jpg'));
    const g = Gallery.open(data, { keepPhotos: true });
    const analyzer = await FaceAnalyzer.create();
    try {
      g.enroll('Alice', [{ embedding: new Float32Array(64).fill(0.1), model: 'old-net', photo, source: 'one-face.jpg' }]);
      g.enroll('Bob', [{ embedding: new Float32Array(64).fill(0.2), model: 'old-net', source: 'b.jpg' }]);
      const model = analyzer.embedder.entry.name;
      assert.deepEqual(g.needsReenrollment(model), ['Alice', 'Bob']);
      assert.deepEqual(await reembedFromPhotos(analyzer, g), { reembedded: ['Alice'], needReenrollment: ['Bob'] });
      assert.deepEqual(g.needsReenrollment(model), ['Bob']);
      assert.deepEqual(g.list().find((i) => i.name === 'Alice')?.models, { 'old-net': 1, [model]: 1 });
      // The re-embedded photo matches itself under the new model.
      const m = Matcher.forModel(analyzer.embedder.entry);
      m.reload(g);
      const [face] = await analyzer.analyze(await decodeImage(file('one-face.jpg')));
      assert.equal(face && m.match(face.embedding).identity, 'Alice');
    } finally {
      g.close();
      await analyzer.close();
    }
  });
});
