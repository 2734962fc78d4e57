// Geometry, alignment and evaluation maths on hand-made inputs with known answers.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';

import { parsePairs } from '../agent/evaluation/pairs.js';
import { accuracyAt, bestThreshold, kFoldVerification, type ScoredPair, tarAtFar } from '../agent/evaluation/verification.js';
import {
  alignmentTransform,
  ARCFACE_112,
  type ChipTemplate,
  DLIB_CHIP_PADDING,
  DLIB_CHIP_POINT_INDICES,
  DLIB_CHIP_SIZE,
  dlibChipTransform,
  SPHEREFACE_112x96,
  transformPoints,
  warpChips,
} from '../agent/vision/align.js';
import {
  type Affine,
  applyAffine,
  type Box,
  invertAffine,
  nonMaxSuppression,
  overlap,
  type Point,
  similarityTransform,
  squareBox,
} from '../agent/vision/geometry.js';
import type { RgbImage } from '../agent/vision/image.js';
import { loadOpenCv, type OpenCv } from '../agent/vision/opencv.js';
import { loadTemplate } from '../agent/vision/templates.js';
import { seededRandom } from '../agent/util/seeded-random.js';

const close = (actual: number, expected: number, tol: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} differs from ${expected} by more than ${tol}`);

const closeAffine = (a: Affine, b: Affine, tol: number, what: string): void => a.forEach((v, i) => close(v, b[i] as number, tol, `${what}[${i}]`));

/** Similarity with scale s, rotation theta (radians), translation (tx, ty). */
const similarity = (s: number, theta: number, tx: number, ty: number): Affine => [
  s * Math.cos(theta), -s * Math.sin(theta), tx,
  s * Math.sin(theta), s * Math.cos(theta), ty,
];

/** Composition: (m ∘ n)(p) = m(n(p)). */
function compose(m: Affine, n: Affine): Affine {
  return [
    m[0] * n[0] + m[1] * n[3], m[0] * n[1] + m[1] * n[4], m[0] * n[2] + m[1] * n[5] + m[2],
    m[3] * n[0] + m[4] * n[3], m[3] * n[1] + m[4] * n[4], m[3] * n[2] + m[4] * n[5] + m[5],
  ];
}

const IDENTITY: Affine = [1, 0, 0, 0, 1, 0];


/** Solves A·x = b (small dense system) by Gaussian elimination with partial pivoting. */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i] as number]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs((M[r] as number[])[c] as number) > Math.abs((M[p] as number[])[c] as number)) p = r;
    [M[c], M[p]] = [M[p] as number[], M[c] as number[]];
    const pivot = (M[c] as number[])[c] as number;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = ((M[r] as number[])[c] as number) / pivot;
      for (let k = c; k <= n; k++) (M[r] as number[])[k] = ((M[r] as number[])[k] as number) - f * ((M[c] as number[])[k] as number);
    }
  }
  return M.map((row, i) => (row[n] as number) / (row[i] as number));
}

const FIVE: Point[] = [
  { x: 38.3, y: 51.7 },
  { x: 73.5, y: 51.5 },
  { x: 56.0, y: 71.7 },
  { x: 41.5, y: 92.4 },
  { x: 70.7, y: 92.2 },
];

const sse = (m: Affine, from: readonly Point[], to: readonly Point[]): number =>
  from.reduce((s, p, i) => {
    const q = applyAffine(m, p);
    return s + (q.x - (to[i] as Point).x) ** 2 + (q.y - (to[i] as Point).y) ** 2;
  }, 0);

describe('similarityTransform', () => {
  it('recovers a known rotation, scale and translation exactly from 5 points', () => {
    for (const [s, theta, tx, ty] of [[1.7, -0.35, 40, -25], [0.4, 2.8, -300, 512], [3, 0, 0, 0], [1, Math.PI / 2, 7, 9]] as const) {
      const truth = similarity(s, theta, tx, ty);
      const to = FIVE.map((p) => applyAffine(truth, p));
      closeAffine(similarityTransform(FIVE, to), truth, 1e-9, `s=${s} θ=${theta}`);
    }
  });

  it('is the least-squares fit when the points are noisy (normal equations)', () => {
    const random = seededRandom(7);
    const truth = similarity(2.3, 0.4, 120, 80);
    const to = FIVE.map((p) => {
      const q = applyAffine(truth, p);
      return { x: q.x + (random() - 0.5) * 6, y: q.y + (random() - 0.5) * 6 };
    });
    const m = similarityTransform(FIVE, to);
    // Unknowns (a, b, tx, ty): x' = a·x − b·y + tx, y' = b·x + a·y + ty. Rows of the design matrix:
    const rows: [number[], number][] = FIVE.flatMap((p, i) => [
      [[p.x, -p.y, 1, 0], (to[i] as Point).x] as [number[], number],
      [[p.y, p.x, 0, 1], (to[i] as Point).y] as [number[], number],
    ]);
    const AtA = [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => rows.reduce((s, [row]) => s + (row[r] as number) * (row[c] as number), 0)));
    const Atb = [0, 1, 2, 3].map((r) => rows.reduce((s, [row, y]) => s + (row[r] as number) * y, 0));
    const [a, b, tx, ty] = solve(AtA, Atb) as [number, number, number, number];
    closeAffine(m, [a, -b, tx, b, a, ty], 1e-9, 'vs normal equations');
    // And no nearby similarity does better (brute force around the answer).
    const best = sse(m, FIVE, to);
    for (let k = 0; k < 4; k++) {
      for (const step of [1e-3, -1e-3]) {
        const p = [a, b, tx, ty];
        p[k] = (p[k] as number) + step;
        const [pa, pb, ptx, pty] = p as [number, number, number, number];
        assert.ok(sse([pa, -pb, ptx, pb, pa, pty], FIVE, to) > best, `perturbing parameter ${k} by ${step} lowered the error`);
      }
    }
    // The noise is small (±3 px), so the fit maps every point near where the truth does.
    for (const p of FIVE) {
      const [q, t] = [applyAffine(m, p), applyAffine(truth, p)];
      assert.ok(Math.hypot(q.x - t.x, q.y - t.y) < 3, `fit strays ${Math.hypot(q.x - t.x, q.y - t.y)} px from the truth`);
    }
  });

  it('never reflects: a mirrored target still gives a rotation (positive determinant)', () => {
    const mirrored = FIVE.map((p) => ({ x: -p.x, y: p.y }));
    const m = similarityTransform(FIVE, mirrored);
    assert.ok(m[0] * m[4] - m[1] * m[3] >= 0);
    assert.equal(m[0], m[4]);
    assert.equal(m[1], -m[3]);
  });

  it('rejects unusable input', () => {
    assert.throws(() => similarityTransform(FIVE, FIVE.slice(0, 4)), /≥ 2 matching points, got 5 and 4/);
    assert.throws(() => similarityTransform(FIVE.slice(0, 1), FIVE.slice(0, 1)), /≥ 2 matching points/);
    assert.throws(() => similarityTransform([{ x: 1, y: 1 }, { x: 1, y: 1 }], FIVE.slice(0, 2)), /all the same/);
  });
});

describe('invertAffine', () => {
  it('round-trips general affine transforms and points', () => {
    const random = seededRandom(11);
    for (let n = 0; n < 20; n++) {
      const m = Array.from({ length: 6 }, (_, i) => (i === 2 || i === 5 ? (random() - 0.5) * 400 : (random() - 0.5) * 4)) as Affine;
      if (Math.abs(m[0] * m[4] - m[1] * m[3]) < 0.05) continue;
      const inv = invertAffine(m);
      closeAffine(compose(m, inv), IDENTITY, 1e-9, 'm ∘ m⁻¹');
      closeAffine(compose(inv, m), IDENTITY, 1e-9, 'm⁻¹ ∘ m');
      const p = { x: random() * 1000, y: random() * 1000 };
      const q = applyAffine(inv, applyAffine(m, p));
      close(q.x, p.x, 1e-8, 'x');
      close(q.y, p.y, 1e-8, 'y');
    }
    closeAffine(invertAffine(similarity(2, 0, 10, -4)), [0.5, 0, -5, 0, 0.5, 2], 1e-12, 'hand-computed');
  });

  it('rejects a singular transform', () => {
    assert.throws(() => invertAffine([1, 2, 3, 2, 4, 5]), /singular/);
  });
});

describe('boxes', () => {
  const A: Box = { x1: 0, y1: 0, x2: 10, y2: 10 };
  const B: Box = { x1: 1, y1: 1, x2: 11, y2: 11 }; // IoU with A = 81/119
  const C: Box = { x1: 20, y1: 20, x2: 30, y2: 30 }; // apart from everything
  const D: Box = { x1: 2, y1: 2, x2: 6, y2: 6 }; // inside A and B: IoU 0.16, overlap of the smaller 1

  it('overlap: union and min modes', () => {
    close(overlap(A, B), 81 / 119, 1e-12, 'IoU(A,B)');
    close(overlap(A, D), 16 / 100, 1e-12, 'IoU(A,D)');
    assert.equal(overlap(A, D, 'min'), 1);
    assert.equal(overlap(A, C), 0);
    assert.equal(overlap(A, { x1: 10, y1: 0, x2: 20, y2: 10 }), 0, 'touching edges');
  });

  it('nonMaxSuppression, union mode: keeps the best of each overlapping group, best first', () => {
    const boxes = [A, B, C, D];
    const scores = Float32Array.from([0.9, 0.8, 0.7, 0.95]);
    // D first; A overlaps D by IoU 0.16 (kept); B overlaps A by 0.68 (suppressed); C alone.
    assert.deepEqual(nonMaxSuppression(boxes, scores, 0.5), [3, 0, 2]);
    // A lower threshold: B is suppressed by A, and D (IoU 0.16 with A) survives 0.2 but not 0.1.
    assert.deepEqual(nonMaxSuppression(boxes, scores, 0.2), [3, 0, 2]);
    assert.deepEqual(nonMaxSuppression(boxes, scores, 0.1), [3, 2]);
    // A higher threshold than IoU(A, B) keeps B too.
    assert.deepEqual(nonMaxSuppression(boxes, scores, 0.7), [3, 0, 1, 2]);
  });

  it('nonMaxSuppression, min mode: a box inside a better one is suppressed', () => {
    const boxes = [A, B, C, D];
    const scores = [0.9, 0.8, 0.7, 0.95];
    assert.deepEqual(nonMaxSuppression(boxes, scores, 0.7, 'min'), [3, 2]);
    // With A the best, D (inside A) goes too.
    assert.deepEqual(nonMaxSuppression(boxes, [0.99, 0.8, 0.7, 0.95], 0.7, 'min'), [0, 2]);
  });

  it('nonMaxSuppression: overlap equal to the threshold is not suppressed; empty input', () => {
    const half: Box = { x1: 0, y1: 0, x2: 10, y2: 5 }; // IoU with A exactly 0.5
    assert.deepEqual(nonMaxSuppression([A, half], [0.6, 0.9], 0.5), [1, 0]);
    assert.deepEqual(nonMaxSuppression([A, half], [0.6, 0.9], 0.49), [1]);
    assert.deepEqual(nonMaxSuppression([], [], 0.5), []);
  });

  it('squareBox grows to the longer side around the centre', () => {
    assert.deepEqual(squareBox({ x1: 0, y1: 0, x2: 10, y2: 20 }), { x1: -5, y1: 0, x2: 15, y2: 20 });
    assert.deepEqual(squareBox({ x1: 10, y1: 40, x2: 50, y2: 50 }), { x1: 10, y1: 25, x2: 50, y2: 65 });
    assert.deepEqual(squareBox(A), A);
  });
});

describe('alignment', () => {
  let cv: OpenCv;
  before(async () => {
    cv = await loadOpenCv();
  });

  const DOT_COLOURS: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]];

  /** A dark image with one coloured dot per landmark (landmark i at pixel-centre coordinates). */
  async function dotImage(width: number, height: number, points: readonly Point[], radius: number): Promise<RgbImage> {
    // SVG pixel (i, j) covers [i, i+1): a dot centred at x + 0.5 has its pixel centroid at x,
    // the pixel-centre convention of OpenCV's warpAffine.
    const dots = points
      .map((p, i) => `<circle cx="${p.x + 0.5}" cy="${p.y + 0.5}" r="${radius}" fill="rgb(${(DOT_COLOURS[i] as number[]).join(',')})"/>`)
      .join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="black"/>${dots}</svg>`;
    const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 3);
    return { width: info.width, height: info.height, data: new Uint8Array(data) };
  }

  /** Brightness-weighted centroid of the pixels closest in hue to each dot colour. */
  function locateDots(img: RgbImage): (Point | undefined)[] {
    const acc = DOT_COLOURS.map(() => ({ x: 0, y: 0, w: 0 }));
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        const o = (y * img.width + x) * 3;
        const px = [img.data[o], img.data[o + 1], img.data[o + 2]] as [number, number, number];
        const w = Math.max(...px);
        if (w < 20) continue;
        const norm = px.map((v) => v / w);
        let best = 0;
        let bestD = Infinity;
        DOT_COLOURS.forEach((c, k) => {
          const d = c.reduce((s, v, ch) => s + (v / 255 - (norm[ch] as number)) ** 2, 0);
          if (d < bestD) [best, bestD] = [k, d];
        });
        const a = acc[best] as { x: number; y: number; w: number };
        a.x += x * w;
        a.y += y * w;
        a.w += w;
      }
    }
    return acc.map((a) => (a.w > 0 ? { x: a.x / a.w, y: a.y / a.w } : undefined));
  }

  async function checkTemplate(template: ChipTemplate, chipToImage: Affine, imageSize: [number, number]): Promise<void> {
    const scale = Math.hypot(chipToImage[0], chipToImage[3]);
    // Landmarks in the image: the template points carried by a known similarity.
    const landmarks = transformPoints(chipToImage, template.points);
    const img = await dotImage(imageSize[0], imageSize[1], landmarks, 2.2 * scale);
    // Sanity: the dots are where we put them in the source image.
    locateDots(img).forEach((p, i) => {
      assert.ok(p, `dot ${i} not drawn`);
      close(p.x, (landmarks[i] as Point).x, 0.05, `${template.name} source dot ${i} x`);
      close(p.y, (landmarks[i] as Point).y, 0.05, `${template.name} source dot ${i} y`);
    });
    const m = alignmentTransform(landmarks, template);
    closeAffine(m, invertAffine(chipToImage), 1e-9, `${template.name} alignment transform`);
    const [chip] = warpChips(cv, img, [m], template.width, template.height);
    assert.ok(chip);
    assert.deepEqual([chip.width, chip.height, chip.data.length], [template.width, template.height, template.width * template.height * 3]);
    locateDots(chip).forEach((p, i) => {
      assert.ok(p, `${template.name}: dot ${i} missing from the chip`);
      const t = template.points[i] as Point;
      close(p.x, t.x, 0.35, `${template.name} chip dot ${i} x`);
      close(p.y, t.y, 0.35, `${template.name} chip dot ${i} y`);
    });
  }

  it('warpChips puts synthetic landmarks on the dlib template points (rotated, scaled, shifted face)', async () => {
    const dlib = loadTemplate('dlib-150-mtcnn');
    assert.deepEqual([dlib.width, dlib.height], [150, 150]);
    await checkTemplate(dlib, similarity(2.4, 0.45, 210, 30), [640, 480]);
  });

  it('warpChips on the ArcFace 112 and the non-square SphereFace 112×96 templates', async () => {
    await checkTemplate(ARCFACE_112, similarity(1.8, -0.3, 100, 150), [400, 400]);
    await checkTemplate(SPHEREFACE_112x96, similarity(3.1, Math.PI / 2, 420, 60), [480, 420]);
  });

  it('warpChips fills what lies outside the image with black and returns [] for no faces', () => {
    const white: RgbImage = { width: 20, height: 20, data: new Uint8Array(20 * 20 * 3).fill(255) };
    // Shift the image 10 px right in a 30×20 chip: columns 0..9 outside, 10..29 inside.
    const [chip] = warpChips(cv, white, [[1, 0, 10, 0, 1, 0]], 30, 20);
    assert.ok(chip);
    const at = (x: number, y: number): number => chip.data[(y * 30 + x) * 3] as number;
    assert.equal(at(5, 10), 0);
    assert.equal(at(15, 10), 255);
    assert.equal(at(29, 19), 255);
    assert.deepEqual(warpChips(cv, white, [], 30, 20), []);
  });
});

describe('dlibChipTransform', () => {
  // dlib's mean face (dlib/image_transforms/interpolation.h), points 17..67 of the iBUG scheme.
  const MEAN_X = [
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004, 0.490127, 0.490127,
    0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395,
    0.639268, 0.726104, 0.642159, 0.556721, 0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
  ];
  const MEAN_Y = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454, 0.203352,
    0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578,
    0.727388, 0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
  ];
  const USED = [...Array.from({ length: 28 }, (_, k) => 27 + k), 60, 61, 62, 63, 64]; // nose, eyes, outer lip + upper inner lip

  /** 68 landmarks: the mean face in chip pixels, with garbage wherever dlib ignores the point. */
  function meanFace68(size = DLIB_CHIP_SIZE, padding = DLIB_CHIP_PADDING): Point[] {
    return Array.from({ length: 68 }, (_, i) => {
      if (!USED.includes(i)) return { x: 5000 + 37 * i, y: -3000 - 11 * i };
      const x = MEAN_X[i - 17] as number;
      const y = MEAN_Y[i - 17] as number;
      return { x: ((padding + x) / (2 * padding + 1)) * size, y: ((padding + y) / (2 * padding + 1)) * size };
    });
  }

  it('fits on dlib\'s 33 points: 17..67 without eyebrows and lower lip', () => {
    assert.equal(DLIB_CHIP_POINT_INDICES.length, 33);
    assert.deepEqual([...DLIB_CHIP_POINT_INDICES], USED);
  });

  it('maps the mean face onto itself (identity), ignoring the other 35 points', () => {
    closeAffine(dlibChipTransform(meanFace68()), IDENTITY, 1e-9, 'identity');
    // Other chip sizes and paddings too.
    closeAffine(dlibChipTransform(meanFace68(200, 0.4), 200, 0.4), IDENTITY, 1e-9, 'identity at 200 px, padding 0.4');
  });

  it('undoes a known similarity of the mean face', () => {
    const chipToImage = similarity(3.2, -0.5, 700, 240);
    const landmarks = meanFace68().map((p) => applyAffine(chipToImage, p));
    closeAffine(dlibChipTransform(landmarks), invertAffine(chipToImage), 1e-9, 'image → chip');
  });

  it('depends on a used point and not on an ignored one', () => {
    const base = dlibChipTransform(meanFace68());
    const eyebrow = meanFace68();
    eyebrow[20] = { x: -1e5, y: 1e5 };
    closeAffine(dlibChipTransform(eyebrow), base, 1e-12, 'eyebrow moved');
    const nose = meanFace68();
    nose[30] = { x: (nose[30] as Point).x + 30, y: (nose[30] as Point).y };
    assert.ok(Math.abs(dlibChipTransform(nose)[2] - base[2]) > 0.1, 'moving the nose tip should move the chip');
  });

  it('needs exactly 68 landmarks', () => {
    assert.throws(() => dlibChipTransform(meanFace68().slice(0, 67)), /68 landmarks, got 67/);
  });
});

describe('parsePairs', () => {
  const lfw = (name: string, i: number): string => join(name, `${name}_${String(i).padStart(4, '0')}.jpg`);

  it('reads folds, matched and mismatched pairs (tabs, CRLF, blank lines)', () => {
    const text = [
      '2\t2',
      'Alice\t1\t2',
      'Bob 3 12',
      'Alice 1 Bob 4',
      'Carol 2 Dave 1',
      '',
      'Eve 1 1000',
      'Frank 2 3',
      'Eve 5 Frank 6',
      'Gina 1 Alice 2',
      '',
    ].join('\r\n');
    const parsed = parsePairs(text);
    assert.equal(parsed.folds, 2);
    assert.equal(parsed.perFold, 2);
    assert.deepEqual(parsed.pairs, [
      { fold: 0, same: true, first: lfw('Alice', 1), second: lfw('Alice', 2) },
      { fold: 0, same: true, first: lfw('Bob', 3), second: lfw('Bob', 12) },
      { fold: 0, same: false, first: lfw('Alice', 1), second: lfw('Bob', 4) },
      { fold: 0, same: false, first: lfw('Carol', 2), second: lfw('Dave', 1) },
      { fold: 1, same: true, first: lfw('Eve', 1), second: lfw('Eve', 1000) },
      { fold: 1, same: true, first: lfw('Frank', 2), second: lfw('Frank', 3) },
      { fold: 1, same: false, first: lfw('Eve', 5), second: lfw('Frank', 6) },
      { fold: 1, same: false, first: lfw('Gina', 1), second: lfw('Alice', 2) },
    ]);
    assert.equal(lfw('Eve', 1000), join('Eve', 'Eve_1000.jpg'));
  });

  it('rejects a bad header', () => {
    for (const header of ['10', '10 300 1', 'ten 300', '1.5 2', '0 3', '2 0', '-1 2']) {
      assert.throws(() => parsePairs(`${header}\nA 1 2\nA 1 B 2\n`, 'p.txt'), /^Error: p\.txt: line 1 must be "folds n"/, `header "${header}"`);
    }
    assert.throws(() => parsePairs('', 'p.txt'), /p\.txt: line 1 must be "folds n" \(two positive integers\), got ""/);
    // A missing header: the first non-blank line (line 2 here) is taken as the header.
    assert.throws(() => parsePairs('\nA 1 2\nA 1 B 2\n', 'p.txt'), /p\.txt: line 2 must be "folds n" \(two positive integers\), got "A 1 2"/);
  });

  it('rejects a pair count that disagrees with the header', () => {
    assert.throws(() => parsePairs('1 2\nA 1 2\nB 1 2\nA 1 B 1\n', 'p.txt'), /p\.txt: header says 1×2×2 = 4 pairs, found 3/);
    assert.throws(() => parsePairs('1 1\nA 1 2\nA 1 B 1\nC 1 2\n'), /pairs file: header says 1×1×2 = 2 pairs, found 3/);
  });

  it('names the file line of a malformed pair, counting blank lines', () => {
    assert.throws(() => parsePairs('1 1\nA 1 2 3\nA 1 B 1\n', 'p.txt'), /p\.txt: line 2: a matched pair needs "name i j", got "A 1 2 3"/);
    assert.throws(() => parsePairs('1 1\nA 1 2\nA 1 B\n', 'p.txt'), /p\.txt: line 3: a mismatched pair needs "nameA i nameB j", got "A 1 B"/);
    assert.throws(() => parsePairs('1 1\nA 1 two\nA 1 B 1\n', 'p.txt'), /p\.txt: line 2: "two" is not an image number/);
    assert.throws(() => parsePairs('1 1\nA 1 2\nA 0 B 1\n', 'p.txt'), /p\.txt: line 3: "0" is not an image number/);
    // Blank lines (and CRLF) do not shift the reported line number.
    assert.throws(() => parsePairs('1 1\r\n\r\nA 1 2\r\n\r\n\r\nA 1 B 1.5\r\n', 'p.txt'), /p\.txt: line 6: "1\.5" is not an image number/);
    assert.throws(() => parsePairs('\n\n1 1\nA 1 2 2\nA 1 B 1\n', 'p.txt'), /p\.txt: line 4: a matched pair/);
  });
});

describe('verification metrics', () => {
  const sp = (fold: number, same: boolean, distance: number): ScoredPair => ({ fold, same, distance });

  it('bestThreshold: best accuracy, cut halfway between neighbours, first of equal bests', () => {
    // Sorted: 0.2S 0.3S 0.4D 0.5S 0.6D 0.7D: 5/6 correct cutting after 0.3 (or after 0.5).
    const pairs = [sp(0, true, 0.2), sp(0, true, 0.5), sp(0, false, 0.6), sp(0, true, 0.3), sp(0, false, 0.4), sp(0, false, 0.7)];
    const r = bestThreshold(pairs);
    close(r.threshold, 0.35, 1e-12, 'threshold');
    close(r.accuracy, 5 / 6, 1e-12, 'accuracy');
    close(accuracyAt(pairs, r.threshold), 5 / 6, 1e-12, 'accuracyAt');

    const separable = bestThreshold([sp(0, true, 0.1), sp(0, true, 0.2), sp(0, false, 0.8), sp(0, false, 0.9)]);
    close(separable.threshold, 0.5, 1e-12, 'separable threshold');
    assert.equal(separable.accuracy, 1);

    // Inverted scores: calling everything "different" is as good as it gets.
    const inverted = bestThreshold([sp(0, false, 0.1), sp(0, true, 0.9)]);
    assert.ok(inverted.threshold < 0.1);
    assert.equal(inverted.accuracy, 0.5);

    // A tie between a positive and a negative is never split.
    const tied = bestThreshold([sp(0, true, 0.5), sp(0, false, 0.5), sp(0, true, 0.1), sp(0, false, 0.9)]);
    assert.ok(tied.threshold < 0.5 || tied.threshold > 0.5);
    close(tied.accuracy, 3 / 4, 1e-12, 'tied accuracy');
    assert.deepEqual(bestThreshold([]), { threshold: -1e-6, accuracy: 0 });
  });

  // Fold 0: 0.2S 0.45S 0.6D 0.8D; fold 1: 0.3S 0.5D 0.7S 0.9D.
  const twoFolds = [
    sp(0, true, 0.2), sp(0, true, 0.45), sp(0, false, 0.6), sp(0, false, 0.8),
    sp(1, true, 0.3), sp(1, true, 0.7), sp(1, false, 0.5), sp(1, false, 0.9),
  ];

  it('kFoldVerification: each fold is scored at the threshold chosen on the others', () => {
    const r = kFoldVerification(twoFolds, [0.25]);
    assert.equal(r.folds.length, 2);
    // Fold 0 is tested at fold 1's best cut (0.4, between 0.3 and 0.5): 0.45S falls outside → 3/4.
    assert.equal(r.folds[0]?.fold, 0);
    close(r.folds[0]?.threshold ?? NaN, 0.4, 1e-12, 'fold 0 threshold');
    close(r.folds[0]?.accuracy ?? NaN, 0.75, 1e-12, 'fold 0 accuracy');
    // Fold 1 at fold 0's cut (0.525, between 0.45 and 0.6): 0.7S rejected, 0.5D accepted → 2/4.
    close(r.folds[1]?.threshold ?? NaN, 0.525, 1e-12, 'fold 1 threshold');
    close(r.folds[1]?.accuracy ?? NaN, 0.5, 1e-12, 'fold 1 accuracy');
    close(r.meanAccuracy, 0.625, 1e-12, 'mean');
    close(r.stdAccuracy, 0.125, 1e-12, 'std');
    // All 8 together: cut between 0.45 and 0.5 gets 7/8.
    close(r.overallThreshold, 0.475, 1e-12, 'overall threshold');
    close(accuracyAt(twoFolds, r.overallThreshold), 7 / 8, 1e-12, 'overall accuracy');
    assert.deepEqual(r.tarAtFar, [tarAtFar(twoFolds, 0.25)]);
  });

  it('tarAtFar: the most positives accepted while at most FAR·negatives are', () => {
    // Negatives 0.5 0.6 0.8 0.9; positives 0.2 0.3 0.45 0.7.
    const cases: [number, number, number][] = [
      [0, 0.5, 0.75], // accept d < 0.5
      [0.001, 0.5, 0.75],
      [0.25, 0.6, 0.75], // one negative (0.5) accepted
      [0.5, 0.8, 1], // two negatives accepted; 0.7S now in
      [1, Infinity, 1],
    ];
    for (const [far, threshold, tar] of cases) {
      const r = tarAtFar(twoFolds, far);
      assert.equal(r.threshold, threshold, `threshold at FAR ${far}`);
      close(r.tar, tar, 1e-12, `TAR at FAR ${far}`);
      assert.equal(r.negatives, 4);
      const accepted = twoFolds.filter((p) => !p.same && p.distance < r.threshold).length;
      assert.ok(accepted <= far * 4, `FAR ${far}: ${accepted} negatives accepted`);
    }
    // Tied negatives: the cut cannot fall between them, so fewer are accepted, never more.
    const tied = [sp(0, false, 0.5), sp(0, false, 0.5), sp(0, false, 0.9), sp(0, true, 0.4), sp(0, true, 0.7)];
    const r = tarAtFar(tied, 0.34);
    assert.equal(r.threshold, 0.5);
    close(r.tar, 0.5, 1e-12, 'tied TAR');
    // No negatives: everything is accepted; no positives: TAR 0.
    assert.equal(tarAtFar([sp(0, true, 3)], 0.1).tar, 1);
    assert.equal(tarAtFar([sp(0, false, 3)], 0.1).tar, 0);
  });
});
