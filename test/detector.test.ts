// MTCNN detector on real photos: the faces a person sees in face-api's demo photos, with rough
// boxes, must each be found exactly once, with nothing else; landmarks must be plausible; faceless
// and tiny images must give no detection.
//
// The expected faces (agent/evaluation/sample-faces.ts) were recorded by looking at the photos
// (and at `facegate detect --draw` drawings): centre and rough face width in full-resolution pixels.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';

import { matchesExpected as matches, SAMPLE_PHOTO_FACES as PHOTOS } from '../agent/evaluation/sample-faces.js';
import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { type Box, type Point, boxHeight, boxWidth, overlap } from '../agent/vision/geometry.js';
import { decodeImage, mirrorImage, type RgbImage } from '../agent/vision/image.js';
import { type DetectedFace, MtcnnDetector, type MtcnnSessions, PUBLISHED_MTCNN_OPTIONS, unmirrorFace } from '../agent/vision/mtcnn.js';
import { samplePath } from './support/samples.js';
import { seededRandom } from '../agent/util/seeded-random.js';

const describeBox = (f: DetectedFace): string =>
  `[centre ${((f.box.x1 + f.box.x2) / 2).toFixed(0)},${((f.box.y1 + f.box.y2) / 2).toFixed(0)} ` +
  `size ${boxWidth(f.box).toFixed(0)}×${boxHeight(f.box).toFixed(0)} score ${f.score.toFixed(3)}]`;

const grow = (b: Box, by: number): Box => {
  const dx = boxWidth(b) * by;
  const dy = boxHeight(b) * by;
  return { x1: b.x1 - dx, y1: b.y1 - dy, x2: b.x2 + dx, y2: b.y2 + dy };
};
const inside = (p: Point, b: Box): boolean => p.x >= b.x1 && p.x <= b.x2 && p.y >= b.y1 && p.y <= b.y2;
const mid = (a: Point, b: Point): Point => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });

/**
 * Landmark sanity for one face. In the face's own frame (x along the eye line, y from the eyes
 * to the mouth, so tilted heads count too): left eye left of right eye, left mouth corner left of
 * right one, both eyes above both mouth corners, nose between the eye and mouth lines. For
 * upright faces (roll < 20°) the same in image axes.
 */
function checkLandmarks(f: DetectedFace, where: string): void {
  const [le, re, nose, ml, mr] = f.landmarks;
  const roomy = grow(f.box, 0.1);
  for (const [i, p] of f.landmarks.entries()) {
    assert.ok(inside(p, roomy), `${where}: landmark ${i} (${p.x.toFixed(0)},${p.y.toFixed(0)}) outside the box ${describeBox(f)}`);
  }
  const eyes = mid(le, re);
  const mouth = mid(ml, mr);
  const down = { x: mouth.x - eyes.x, y: mouth.y - eyes.y };
  const len = Math.hypot(down.x, down.y);
  assert.ok(len > 0.15 * boxWidth(f.box), `${where}: eyes and mouth collapse together`);
  const d = { x: down.x / len, y: down.y / len };
  const r = { x: d.y, y: -d.x }; // the face's own "right" (image x for an upright face)
  const along = (p: Point): number => (p.x - eyes.x) * d.x + (p.y - eyes.y) * d.y;
  const across = (p: Point): number => (p.x - eyes.x) * r.x + (p.y - eyes.y) * r.y;
  assert.ok(across(le) < across(re), `${where}: left eye is not left of the right eye (face frame)`);
  assert.ok(across(ml) < across(mr), `${where}: mouth corners swapped (face frame)`);
  assert.ok(Math.max(along(le), along(re)) < Math.min(along(ml), along(mr)), `${where}: an eye is not above the mouth (face frame)`);
  assert.ok(along(nose) > 0 && along(nose) < len, `${where}: nose not between the eye and mouth lines (face frame)`);

  const roll = (Math.atan2(re.y - le.y, re.x - le.x) * 180) / Math.PI;
  assert.ok(Math.abs(roll) < 60, `${where}: eye line rolled ${roll.toFixed(0)}°, faces in these photos are upright-ish`);
  if (Math.abs(roll) < 20) {
    assert.ok(le.x < re.x, `${where}: left eye x ≥ right eye x`);
    assert.ok(ml.x < mr.x, `${where}: left mouth corner x ≥ right mouth corner x`);
    assert.ok(Math.max(le.y, re.y) < Math.min(ml.y, mr.y), `${where}: eyes not above the mouth corners`);
    assert.ok(nose.y > Math.min(le.y, re.y) && nose.y < Math.max(ml.y, mr.y), `${where}: nose not between eye and mouth heights`);
  }
}


function image(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 3);
  }
  return { width, height, data };
}

describe('MTCNN detector', () => {
  let analyzer: FaceAnalyzer;
  before(async () => {
    analyzer = await FaceAnalyzer.create();
  });
  after(async () => {
    await analyzer?.close();
  });

  for (const photo of PHOTOS) {
    it(`finds the ${photo.faces.length} face(s) of sample${photo.sample}.jpg and nothing else`, async () => {
      const img = await decodeImage(samplePath(photo.sample));
      assert.equal(img.width, photo.width);
      assert.equal(img.height, photo.height);
      const faces = await analyzer.detect(img);
      const listing = faces.map(describeBox).join(' ');

      for (const e of photo.faces) {
        const hits = faces.filter((f) => matches(f.box, e));
        assert.equal(hits.length, 1, `sample${photo.sample}: "${e.label}" matched by ${hits.length} detections; detections: ${listing}`);
      }
      const known = [...photo.faces, ...(photo.optional ?? [])];
      for (const f of faces) {
        const owners = known.filter((e) => matches(f.box, e));
        assert.equal(owners.length, 1, `sample${photo.sample}: detection ${describeBox(f)} matches ${owners.length} expected faces (false positive?)`);
      }
      // Optional faces may be found, but never twice.
      for (const e of photo.optional ?? []) {
        assert.ok(faces.filter((f) => matches(f.box, e)).length <= 1, `sample${photo.sample}: "${e.label}" detected twice`);
      }
      assert.ok(faces.length >= photo.faces.length && faces.length <= known.length);

      for (const [i, f] of faces.entries()) {
        const where = `sample${photo.sample} face ${i} ${describeBox(f)}`;
        assert.ok(f.score >= analyzer.detector.options.thresholds[2] && f.score <= 1, `${where}: score out of range`);
        checkLandmarks(f, where);
      }
      // Best score first.
      for (let i = 1; i < faces.length; i++) assert.ok((faces[i - 1] as DetectedFace).score >= (faces[i] as DetectedFace).score);
    });
  }

  it('finds no face in a crop of the dark wall above the people of sample1', async () => {
    const { data, info } = await sharp(samplePath(1)).extract({ left: 600, top: 0, width: 600, height: 380 }).raw().toBuffer({ resolveWithObject: true });
    const faces = await analyzer.detect({ width: info.width, height: info.height, data: new Uint8Array(data) });
    assert.deepEqual(faces.map(describeBox), []);
  });

  it('finds no face in a smooth gradient or in noise', async () => {
    const gradient = image(640, 480, (x, y) => [Math.round((x / 639) * 255), Math.round((y / 479) * 255), 128]);
    const random = seededRandom(42);
    const noise = image(480, 360, () => [random() * 256, random() * 256, random() * 256].map(Math.floor) as [number, number, number]);
    const grey = image(200, 200, () => [128, 128, 128]);
    for (const [name, img] of [['gradient', gradient], ['noise', noise], ['flat grey', grey]] as const) {
      const faces = await analyzer.detect(img);
      assert.deepEqual(faces.map(describeBox), [], `${name} image`);
    }
  });

  it('returns no face, without error, for images smaller than P-Net\'s 12 px window', async () => {
    for (const [w, h] of [[1, 1], [11, 11], [10, 40], [40, 8]] as const) {
      assert.deepEqual(await analyzer.detect(image(w, h, () => [200, 150, 120])), [], `${w}×${h}`);
    }
    // A face photo shrunk below 12 px too.
    const { data, info } = await sharp(samplePath(3)).resize(11, 8, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual(await analyzer.detect({ width: info.width, height: info.height, data: new Uint8Array(data) }), []);
  });

  it('the default (tighter) NMS overlaps find the faces the published overlaps find, landmarks close on average', async () => {
    const published = await FaceAnalyzer.create({ detector: { nms: { ...PUBLISHED_MTCNN_OPTIONS.nms } } });
    try {
      assert.notDeepEqual(analyzer.detector.options.nms, published.detector.options.nms);
      const shifts: number[] = [];
      for (const photo of PHOTOS) {
        const img = await decodeImage(samplePath(photo.sample));
        const [ours, theirs] = [await analyzer.detect(img), await published.detect(img)];
        assert.equal(ours.length, theirs.length, `sample${photo.sample}: ${ours.length} faces with the default overlaps, ${theirs.length} with the published`);
        for (const e of photo.faces) {
          const [a, b] = [ours.find((f) => matches(f.box, e)), theirs.find((f) => matches(f.box, e))];
          assert.ok(a && b, `sample${photo.sample} "${e.label}": found by default ${Boolean(a)}, by published ${Boolean(b)}`);
          // Each face's largest landmark shift, in eye distances. O-Net sees a different
          // surviving candidate box, so single faces move (up to ~0.2 on a tilted head here).
          const eyes = Math.hypot(b.landmarks[1].x - b.landmarks[0].x, b.landmarks[1].y - b.landmarks[0].y);
          shifts.push(Math.max(...a.landmarks.map((p, k) => Math.hypot(p.x - (b.landmarks[k]?.x ?? 0), p.y - (b.landmarks[k]?.y ?? 0)))) / eyes);
        }
      }
      const mean = shifts.reduce((x, y) => x + y, 0) / shifts.length;
      assert.ok(mean <= 0.1, `mean largest landmark shift ${mean.toFixed(3)} eye distances over ${shifts.length} faces`);
      assert.ok(Math.max(...shifts) <= 0.3, `largest landmark shift ${Math.max(...shifts).toFixed(3)} eye distances`);
    } finally {
      await published.close();
    }
  });

  it('mirror-averaged landmarks: a photo and its mirror image give nearly mirror-symmetric points', async () => {
    // O-Net alone is not left-right symmetric; averaging each face's points with those of its
    // crop's mirror image (mirrorLandmarks, off by default) makes the two views agree more.
    assert.equal(analyzer.detector.options.mirrorLandmarks, false);
    const single = analyzer;
    const averagedAnalyzer = await FaceAnalyzer.create({ detector: { mirrorLandmarks: true } });
    try {
      const asymmetry = async (a: FaceAnalyzer): Promise<number[]> => {
        const out: number[] = [];
        for (const photo of PHOTOS) {
          const img = await decodeImage(samplePath(photo.sample));
          const direct = await a.detect(img);
          const back = (await a.detect(mirrorImage(img))).map((f) => unmirrorFace(f, img.width));
          for (const f of direct) {
            checkLandmarks(f, `sample${photo.sample} ${describeBox(f)}, mirrorLandmarks ${a.detector.options.mirrorLandmarks}`);
            const g = back.find((x) => overlap(x.box, f.box) > 0.5);
            if (!g) continue;
            const eyes = Math.hypot(f.landmarks[1].x - f.landmarks[0].x, f.landmarks[1].y - f.landmarks[0].y);
            out.push(f.landmarks.reduce((t, p, i) => t + Math.hypot(p.x - (g.landmarks[i] as Point).x, p.y - (g.landmarks[i] as Point).y), 0) / 5 / eyes);
          }
        }
        return out;
      };
      const mean = (v: number[]): number => v.reduce((x, y) => x + y, 0) / v.length;
      const [averaged, plain] = [await asymmetry(averagedAnalyzer), await asymmetry(single)];
      assert.ok(averaged.length >= 15 && plain.length >= 15, `faces found on both views: ${averaged.length}, ${plain.length}`);
      // Measured: 0.030 against 0.049 eye distances over the 20 faces.
      assert.ok(mean(averaged) < 0.75 * mean(plain), `mean disagreement ${mean(averaged).toFixed(3)} (averaged) against ${mean(plain).toFixed(3)} (O-Net alone)`);
    } finally {
      await averagedAnalyzer.close();
    }
  });

  it('rejects NMS overlaps outside (0, 1] with an error that names them', () => {
    const sessions = {} as MtcnnSessions;
    assert.throws(() => new MtcnnDetector(sessions, { nms: { pnetLevel: 0.5, pnetPyramid: 0.5, rnet: 0, onet: 0.7, regressBeforePyramid: true } }), /mtcnn\.nms overlaps must be in \(0, 1\].*"rnet":0/);
    assert.throws(() => new MtcnnDetector(sessions, { nms: { pnetLevel: 1.5, pnetPyramid: 0.5, rnet: 0.5, onet: 0.7, regressBeforePyramid: false } }), /mtcnn\.nms/);
  });

  it('still finds the face of a tight crop that barely exceeds the smallest face size', async () => {
    // sample3's middle face, 400 px crop scaled to 60 px: the face is ~35 px, above minFaceSize 20.
    const { data, info } = await sharp(samplePath(3))
      .extract({ left: 972, top: 154, width: 400, height: 400 })
      .resize(60, 60)
      .raw()
      .toBuffer({ resolveWithObject: true });
    const faces = await analyzer.detect({ width: info.width, height: info.height, data: new Uint8Array(data) });
    assert.equal(faces.length, 1, `detections: ${faces.map(describeBox).join(' ')}`);
    const f = faces[0] as DetectedFace;
    assert.ok(Math.abs((f.box.x1 + f.box.x2) / 2 - 30) < 10 && Math.abs((f.box.y1 + f.box.y2) / 2 - 30) < 12, describeBox(f));
  });
});
