// Fits the 5-point template that makes an MTCNN-aligned chip look like dlib's own chip.
//
// dlib's descriptor was trained on chips from get_face_chip_details (33 of the 68 landmarks,
// padding 0.25, 150 px). MTCNN's 5 points follow another annotation convention, so reading eye
// centres etc. off dlib's mean face gives a different chip. Here, on calibration faces (LFW
// people who appear in no evaluation pair) where both landmark sets exist — MTCNN's 5 points and
// face-api's 68-point net — each face's dlib chip transform is computed from its 68 points, the
// MTCNN points are mapped into that chip, and the template is their per-point mean.
//
//   npx tsx models/calibrate/fit-dlib-template.ts [--lfw ../shared/data/lfw] [--count 400]
//
// Writes models/templates/dlib-150-mtcnn.json (committed: it needs ../shared to rebuild).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { DLIB_CHIP_PADDING, DLIB_CHIP_SIZE, dlibChipTransform, transformPoints } from '../../agent/vision/align.js';
import type { Point } from '../../agent/vision/geometry.js';
import { decodeImage, type RgbImage } from '../../agent/vision/image.js';
import { pickCentralFace } from '../../agent/evaluation/run-eval.js';
import { templateFile } from '../../agent/vision/templates.js';

// The parts of face-api's CommonJS bundle used here.
interface TfTensor {
  dispose(): void;
}
interface FaceLandmarks68 {
  positions: { x: number; y: number }[];
}
interface FaceApi {
  tf: {
    setBackend(name: string): Promise<boolean>;
    ready(): Promise<void>;
    tensor3d(values: Int32Array, shape: [number, number, number], dtype: 'int32'): TfTensor;
  };
  nets: { faceLandmark68Net: { loadFromDisk(dir: string): Promise<void>; detectLandmarks(input: TfTensor): Promise<FaceLandmarks68 | FaceLandmarks68[]> } };
}

const require = createRequire(import.meta.url);

/** The square crop face-api's landmark net sees: the detection box, made square, clipped. */
function crop(image: RgbImage, box: { x1: number; y1: number; x2: number; y2: number }): { data: Int32Array; x: number; y: number; w: number; h: number } {
  const x = Math.max(0, Math.round(box.x1));
  const y = Math.max(0, Math.round(box.y1));
  const w = Math.min(image.width, Math.round(box.x2)) - x;
  const h = Math.min(image.height, Math.round(box.y2)) - y;
  const data = new Int32Array(w * h * 3);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w * 3; c++) data[r * w * 3 + c] = image.data[((y + r) * image.width + x) * 3 + c] as number;
  }
  return { data, x, y, w, h };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { lfw: { type: 'string', default: join('..', 'shared', 'data', 'lfw') }, count: { type: 'string', default: '400' } } });
  const lfw = values.lfw as string;
  const count = Number(values.count);
  const pairsText = readFileSync(join(lfw, 'pairs-dev.txt'), 'utf8');
  const inPairs = new Set(pairsText.split('\n').slice(1).flatMap((l) => { const f = l.trim().split(/\s+/); return f.length === 3 ? [f[0]] : f.length === 4 ? [f[0], f[2]] : []; }));
  const people = readdirSync(join(lfw, 'images'), { withFileTypes: true }).filter((d) => d.isDirectory() && !inPairs.has(d.name)).map((d) => d.name).sort();
  const files = people.flatMap((p) => readdirSync(join(lfw, 'images', p)).filter((f) => f.endsWith('.jpg')).sort().slice(0, 1).map((f) => join(lfw, 'images', p, f)));
  const step = Math.max(1, Math.floor(files.length / count));
  const chosen = files.filter((_, i) => i % step === 0).slice(0, count);
  console.error(`${people.length} people outside the pairs; using ${chosen.length} images (every ${step}th)`);

  const faceapi = require(join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'dist', 'face-api.node-wasm.js')) as FaceApi;
  await faceapi.tf.setBackend('cpu');
  await faceapi.tf.ready();
  await faceapi.nets.faceLandmark68Net.loadFromDisk(join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'model'));

  const analyzer = await FaceAnalyzer.create({ template: 'dlib-150-naive' });
  const inChip: Point[][] = [];
  for (const file of chosen) {
    const image = await decodeImage(file);
    const face = pickCentralFace(await analyzer.detect(image), image.width, image.height);
    if (!face) continue;
    const c = crop(image, face.box);
    const t = faceapi.tf.tensor3d(c.data, [c.h, c.w, 3], 'int32');
    const result = await faceapi.nets.faceLandmark68Net.detectLandmarks(t);
    t.dispose();
    const marks = Array.isArray(result) ? result[0] : result;
    if (!marks || marks.positions.length !== 68) continue;
    const pts68 = marks.positions.map((p) => ({ x: p.x + c.x, y: p.y + c.y }));
    inChip.push(transformPoints(dlibChipTransform(pts68, DLIB_CHIP_SIZE, DLIB_CHIP_PADDING), face.landmarks));
  }
  await analyzer.close();

  const mean = (k: number, axis: 'x' | 'y'): number => inChip.reduce((s, ps) => s + (ps[k] as Point)[axis], 0) / inChip.length;
  const std = (k: number, axis: 'x' | 'y'): number => {
    const m = mean(k, axis);
    return Math.sqrt(inChip.reduce((s, ps) => s + ((ps[k] as Point)[axis] - m) ** 2, 0) / inChip.length);
  };
  const points = [0, 1, 2, 3, 4].map((k) => [Number(mean(k, 'x').toFixed(4)), Number(mean(k, 'y').toFixed(4))] as [number, number]);
  const spread = [0, 1, 2, 3, 4].map((k) => [Number(std(k, 'x').toFixed(3)), Number(std(k, 'y').toFixed(3))]);
  const out = {
    name: 'dlib-150-mtcnn',
    width: DLIB_CHIP_SIZE,
    height: DLIB_CHIP_SIZE,
    points,
    fittedOn: {
      method: 'mean of MTCNN landmarks mapped into each face\'s dlib chip (get_face_chip_details from face-api 68-point landmarks, padding 0.25)',
      faces: inChip.length,
      images: chosen.length,
      data: 'LFW deep-funneled, first image of people in no pairs-dev pair (every Nth)',
      perPointStdPx: spread,
      command: 'npx tsx models/calibrate/fit-dlib-template.ts --count ' + count,
    },
  };
  writeFileSync(templateFile('dlib-150-mtcnn'), `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 2));
}

await main();
