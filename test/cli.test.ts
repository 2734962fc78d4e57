// The `facegate` command line, run as a child process (node + the tsx loader on agent/main.ts):
// output shapes, the --draw PNG, embeddings, same/different verdicts, model listing and errors.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';

import { ModelRegistry } from '../agent/inference/model-registry.js';
import { type CliResult, parseJson, runCli, stderrLines } from './support/cli.js';
import { samplePath } from './support/samples.js';

interface JsonPoint {
  x: number;
  y: number;
}
interface JsonFace {
  box: { x: number; y: number; w: number; h: number };
  score: number;
  landmarks: Record<string, JsonPoint>;
  embedding?: number[];
}
const LANDMARK_NAMES = ['leftEye', 'rightEye', 'nose', 'mouthLeft', 'mouthRight'];

let dir: string;
const file = (name: string): string => join(dir, name);

/** CLI runs, started in `before` two at a time (this machine has 2 cores) and awaited by the tests. */
const runs = new Map<string, Promise<CliResult>>();
const result = (name: string): Promise<CliResult> => {
  const r = runs.get(name);
  if (!r) throw new Error(`no CLI run named ${name}`);
  return r;
};

before(async () => {
  // Build missing models once here, so parallel CLI processes never build them concurrently.
  const registry = ModelRegistry.load();
  await registry.ensure(registry.models);

  dir = await mkdtemp(join(tmpdir(), 'facegate-cli-'));
  await Promise.all([
    // Half-size sample3 (3 faces) and its mirror image.
    sharp(samplePath(3)).resize(960).jpeg({ quality: 92 }).toFile(file('s3.jpg')),
    sharp(samplePath(3)).resize(960).flop().jpeg({ quality: 92 }).toFile(file('s3-mirrored.jpg')),
    // Two different people: sample1's right woman and sample6's left woman.
    sharp(samplePath(1)).extract({ left: 1400, top: 130, width: 380, height: 400 }).jpeg({ quality: 92 }).toFile(file('person-a.jpg')),
    sharp(samplePath(6)).extract({ left: 180, top: 430, width: 360, height: 400 }).jpeg({ quality: 92 }).toFile(file('person-b.jpg')),
  ]);

  const jobs: [string, string[]][] = [
    ['detect', ['detect', samplePath(4), '--draw', file('drawn.png')]],
    ['embed', ['embed', file('s3.jpg')]],
    ['embed-mirror-landmarks', ['embed', '--mirror-landmarks', file('s3.jpg')]],
    ['compare-different', ['compare', file('person-a.jpg'), file('person-b.jpg')]],
    ['compare-mirror', ['compare', file('s3.jpg'), file('s3-mirrored.jpg')]],
    ['compare-mirror-noflip', ['compare', '--no-flip', file('s3.jpg'), file('s3-mirrored.jpg')]],
    ['models', ['models', 'list', '--json']],
    ['unknown-model', ['embed', '--model', 'no-such-net', file('s3.jpg')]],
    ['detector-as-embedder', ['compare', '--model', 'mtcnn-onet', file('person-a.jpg'), file('person-b.jpg')]],
  ];
  // Two lanes, each running its jobs one after the other.
  const lanes: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
  jobs.forEach(([name, args], i) => {
    const run = (lanes[i % 2] as Promise<unknown>).then(() => runCli(args));
    lanes[i % 2] = run.catch(() => undefined);
    runs.set(name, run);
  });
});

after(async () => {
  await Promise.allSettled(runs.values());
  if (dir) await rm(dir, { recursive: true, force: true });
});

function ok(r: CliResult, what: string): void {
  assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.stderr}`);
}

function assertFaceShape(f: JsonFace, where: string): void {
  assert.deepEqual(Object.keys(f.box).sort(), ['h', 'w', 'x', 'y'], where);
  for (const v of Object.values(f.box)) assert.equal(typeof v, 'number', where);
  assert.ok(f.box.w > 0 && f.box.h > 0, where);
  assert.ok(f.score > 0.7 && f.score <= 1, `${where}: score ${f.score}`);
  assert.deepEqual(Object.keys(f.landmarks), LANDMARK_NAMES, where);
  for (const name of LANDMARK_NAMES) {
    const p = f.landmarks[name] as JsonPoint;
    assert.deepEqual(Object.keys(p).sort(), ['x', 'y'], `${where} ${name}`);
    assert.ok(p.x > f.box.x - 0.1 * f.box.w && p.x < f.box.x + 1.1 * f.box.w, `${where}: ${name} x outside the box`);
    assert.ok(p.y > f.box.y - 0.1 * f.box.h && p.y < f.box.y + 1.1 * f.box.h, `${where}: ${name} y outside the box`);
  }
  const lm = f.landmarks as Record<(typeof LANDMARK_NAMES)[number], JsonPoint>;
  assert.ok((lm.leftEye as JsonPoint).x < (lm.rightEye as JsonPoint).x, `${where}: eyes swapped`);
}

describe('facegate detect', () => {
  it('prints JSON: image size and per face a box, a score and the 5 named landmarks', async () => {
    const r = await result('detect');
    ok(r, 'detect');
    const out = parseJson(r) as { image: string; width: number; height: number; detectMs: number; faces: JsonFace[] };
    assert.equal(out.image, samplePath(4));
    assert.deepEqual([out.width, out.height], [1920, 1448]);
    assert.equal(typeof out.detectMs, 'number');
    assert.equal(out.faces.length, 4, 'sample4 shows 4 faces');
    out.faces.forEach((f, i) => assertFaceShape(f, `face ${i}`));
    for (let i = 1; i < out.faces.length; i++) assert.ok((out.faces[i - 1] as JsonFace).score >= (out.faces[i] as JsonFace).score, 'best score first');
  });

  it('--draw writes a PNG of the same size with the boxes drawn on it', async () => {
    const r = await result('detect');
    ok(r, 'detect');
    const out = parseJson(r) as { faces: JsonFace[] };
    const meta = await sharp(file('drawn.png')).metadata();
    assert.equal(meta.format, 'png');
    assert.deepEqual([meta.width, meta.height], [1920, 1448]);
    const { data, info } = await sharp(file('drawn.png')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    // The left edge of every box is drawn in the box colour (#00e676).
    for (const f of out.faces) {
      const x = Math.round(f.box.x);
      const y = Math.round(f.box.y + f.box.h / 2);
      const o = (y * info.width + x) * info.channels;
      const px = [data[o], data[o + 1], data[o + 2]] as [number, number, number];
      assert.ok(px[0] < 60 && px[1] > 190 && px[2] > 80 && px[2] < 160, `box edge at ${x},${y} is ${px.join(',')}, not green`);
    }
  });
});

describe('facegate embed', () => {
  it('gives one 128-d embedding per face, distinct per person', async () => {
    const r = await result('embed');
    ok(r, 'embed');
    const out = parseJson(r) as { image: string; model: string; template: string; faces: JsonFace[] };
    assert.equal(out.image, file('s3.jpg'));
    assert.equal(out.model, 'dlib-resnet');
    assert.equal(out.template, 'dlib-150-mtcnn');
    assert.equal(out.faces.length, 3, 'sample3 shows 3 faces');
    for (const [i, f] of out.faces.entries()) {
      assertFaceShape(f, `face ${i}`);
      const e = f.embedding as number[];
      assert.ok(Array.isArray(e), `face ${i}: no embedding`);
      assert.equal(e.length, 128, `face ${i}`);
      assert.ok(e.every((v) => Number.isFinite(v)), `face ${i}: non-finite values`);
      const norm = Math.hypot(...e);
      assert.ok(norm > 0.2 && norm < 5, `face ${i}: embedding norm ${norm}`);
    }
    const dist = (a: number[], b: number[]): number => Math.hypot(...a.map((v, k) => v - (b[k] as number)));
    for (let i = 0; i < 3; i++) {
      for (let j = i + 1; j < 3; j++) {
        const d = dist(out.faces[i]?.embedding as number[], out.faces[j]?.embedding as number[]);
        assert.ok(d > 0.3, `faces ${i} and ${j} of sample3 are different people, distance ${d}`);
      }
    }
  });

  it('--mirror-landmarks moves the landmarks a little, the faces and their boxes stay', async () => {
    const [plain, mirrored] = [await result('embed'), await result('embed-mirror-landmarks')];
    ok(mirrored, 'embed --mirror-landmarks');
    const [a, b] = [parseJson(plain) as { faces: JsonFace[] }, parseJson(mirrored) as { faces: JsonFace[] }];
    assert.deepEqual(b.faces.map((f) => f.box), a.faces.map((f) => f.box));
    let moved = 0;
    for (const [i, f] of a.faces.entries()) {
      const g = b.faces[i] as JsonFace;
      const eyes = Math.hypot((f.landmarks.rightEye as JsonPoint).x - (f.landmarks.leftEye as JsonPoint).x, (f.landmarks.rightEye as JsonPoint).y - (f.landmarks.leftEye as JsonPoint).y);
      for (const k of LANDMARK_NAMES) {
        const d = Math.hypot((f.landmarks[k] as JsonPoint).x - (g.landmarks[k] as JsonPoint).x, (f.landmarks[k] as JsonPoint).y - (g.landmarks[k] as JsonPoint).y);
        assert.ok(d < 0.15 * eyes, `face ${i} ${k} moved ${d.toFixed(1)} px (eyes ${eyes.toFixed(1)} px apart)`);
        if (d > 0.2) moved++;
      }
    }
    assert.ok(moved > 0, 'the averaged landmarks are not the plain ones');
  });
});

interface CompareOut {
  image1: { file: string; faces: number; face: JsonFace };
  image2: { file: string; faces: number; face: JsonFace };
  model: string;
  distance: number;
  similarity: number;
  threshold: number;
  verdict: 'same' | 'different';
}

describe('facegate compare', () => {
  it('says "different" for two different people', async () => {
    const r = await result('compare-different');
    ok(r, 'compare');
    const out = parseJson(r) as CompareOut;
    assert.equal(out.image1.faces, 1);
    assert.equal(out.image2.faces, 1);
    assert.equal(out.verdict, 'different');
    assert.ok(out.distance > out.threshold, `distance ${out.distance} vs threshold ${out.threshold}`);
    assert.ok(out.similarity < 1);
  });

  for (const [name, label] of [['compare-mirror', 'flip-averaged'], ['compare-mirror-noflip', '--no-flip']] as const) {
    it(`says "same" for a photo and its mirror image (${label})`, async () => {
      const r = await result(name);
      ok(r, 'compare');
      const out = parseJson(r) as CompareOut;
      assert.equal(out.image1.faces, 3);
      assert.equal(out.image2.faces, 3);
      // The largest face of the mirror image is the mirrored largest face.
      const [a, b] = [out.image1.face.box, out.image2.face.box];
      assert.ok(Math.abs(960 - (a.x + a.w) - b.x) < 0.1 * a.w && Math.abs(a.y - b.y) < 0.1 * a.h, `boxes ${JSON.stringify(a)} / ${JSON.stringify(b)}`);
      assert.equal(out.verdict, 'same');
      assert.ok(out.distance < out.threshold / 2, `distance ${out.distance} vs threshold ${out.threshold}`);
    });
  }
});

describe('facegate models list --json', () => {
  it('lists the registered models with roles and default flags', async () => {
    const r = await result('models');
    ok(r, 'models list');
    const rows = parseJson(r) as { name: string; role: string; default: boolean; file: string; bytes: number; ready: boolean }[];
    assert.deepEqual(
      rows.map((m) => [m.name, m.role, m.default]),
      [
        ['mtcnn-pnet', 'detector', true],
        ['mtcnn-rnet', 'detector', true],
        ['mtcnn-onet', 'detector', true],
        ['dlib-resnet', 'embedder', true],
        ['dlib-resnet-rec-0.25', 'embedder', false],
        ['mobilefacenet', 'embedder', false],
        ['mobilefacenet-occ', 'embedder', false],
      ],
    );
    for (const m of rows) {
      assert.ok(m.file.endsWith('.onnx') && m.bytes > 0, m.name);
      assert.equal(m.ready, true, `${m.name} should be built and verified`);
    }
  });
});

describe('model selection errors', () => {
  it('an unknown --model exits 1 with one error line listing the registered models', async () => {
    const r = await result('unknown-model');
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    const lines = stderrLines(r);
    assert.equal(lines.length, 1, r.stderr);
    const msg = (JSON.parse(lines[0] as string) as { msg: string }).msg;
    assert.match(msg, /unknown model "no-such-net"/);
    for (const name of ['mtcnn-pnet', 'mtcnn-rnet', 'mtcnn-onet', 'dlib-resnet']) assert.ok(msg.includes(name), `${name} not listed: ${msg}`);
  });

  it('a detector given as --model is refused', async () => {
    const r = await result('detector-as-embedder');
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /model mtcnn-onet is a detector, not an embedder/);
  });
});
