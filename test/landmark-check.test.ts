// The landmark sanity check on hand-made layouts (each rule on its own, rolled faces) and on the
// faces MTCNN finds in face-api's demo photos (all of them plausible).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import type { Box, Point } from '../agent/vision/geometry.js';
import { decodeImage } from '../agent/vision/image.js';
import { DEFAULT_LANDMARK_CHECK, landmarkProblem, landmarksPlausible } from '../agent/vision/landmark-check.js';
import { PUBLISHED_MTCNN_OPTIONS } from '../agent/vision/mtcnn.js';
import { samplePath } from './support/samples.js';

type Marks = [Point, Point, Point, Point, Point];
const box: Box = { x1: 0, y1: 0, x2: 100, y2: 120 };
/** A frontal face in a 100×120 box: eyes 40 px apart at y 45, nose at y 70, mouth at y 90. */
const frontal: Marks = [
  { x: 30, y: 45 },
  { x: 70, y: 45 },
  { x: 50, y: 70 },
  { x: 35, y: 90 },
  { x: 65, y: 90 },
];
const face = (landmarks: Marks): { box: Box; landmarks: Marks } => ({ box, landmarks });
const replace = (i: number, p: Point): Marks => frontal.map((q, k) => (k === i ? p : q)) as Marks;
/** The frontal layout rotated by `deg` about the box centre. */
const rolled = (deg: number): Marks => {
  const a = (deg * Math.PI) / 180;
  return frontal.map((p) => {
    const x = p.x - 50;
    const y = p.y - 60;
    return { x: 50 + x * Math.cos(a) - y * Math.sin(a), y: 60 + x * Math.sin(a) + y * Math.cos(a) };
  }) as Marks;
};

describe('landmark sanity check', () => {
  it('accepts a frontal layout and the same face rolled up to the limit', () => {
    assert.equal(landmarkProblem(face(frontal)), null);
    for (const deg of [-55, -30, 15, 45, 55]) assert.equal(landmarkProblem(face(rolled(deg))), null, `${deg}°`);
  });

  it('rejects each broken rule with its reason', () => {
    const cases: [string, Marks, RegExp][] = [
      ['eyes too close', replace(1, { x: 50, y: 45 }), /eyes .* apart/],
      ['rolled too far', rolled(80), /rolled/],
      ['nose above the eyes', replace(2, { x: 50, y: 40 }), /nose not below the eye line/],
      ['nose below the mouth', replace(2, { x: 50, y: 95 }), /nose not above the mouth/],
      ['nose outside the eyes', replace(2, { x: 75, y: 70 }), /nose not between the eyes/],
      ['mouth corners swapped', [frontal[0], frontal[1], frontal[2], frontal[4], frontal[3]], /mouth corners swapped/],
      ['mouth corner above the eyes', replace(3, { x: 35, y: 40 }), /mouth corner is not below/],
    ];
    for (const [what, marks, reason] of cases) {
      const problem = landmarkProblem(face(marks));
      assert.ok(problem !== null && reason.test(problem), `${what}: got ${String(problem)}`);
      assert.equal(landmarksPlausible(face(marks)), false, what);
    }
  });

  it('follows its options: the eye distance limit is a fraction of the box width', () => {
    const close = replace(1, { x: 55, y: 45 }); // eyes 25 px apart in a 100 px box, nose at x 50 still between them
    assert.equal(landmarksPlausible(face(close), { ...DEFAULT_LANDMARK_CHECK, minEyeDistance: 0.2 }), true);
    assert.equal(landmarksPlausible(face(close), { ...DEFAULT_LANDMARK_CHECK, minEyeDistance: 0.3 }), false);
    assert.equal(landmarksPlausible(face(rolled(50)), { ...DEFAULT_LANDMARK_CHECK, maxRollDegrees: 40 }), false);
  });

  describe('on the faces of the demo photos', () => {
    let analyzer: FaceAnalyzer;
    before(async () => {
      analyzer = await FaceAnalyzer.create({ detector: PUBLISHED_MTCNN_OPTIONS });
    });
    after(async () => {
      await analyzer?.close();
    });
    it('every face the published detector finds in sample1..6 is plausible', async () => {
      let count = 0;
      for (let n = 1; n <= 6; n++) {
        for (const f of await analyzer.detect(await decodeImage(samplePath(n)))) {
          assert.equal(landmarkProblem(f), null, `sample${n} face at ${f.box.x1.toFixed(0)},${f.box.y1.toFixed(0)}`);
          count++;
        }
      }
      assert.ok(count >= 20, `only ${count} faces`);
    });
  });
});
