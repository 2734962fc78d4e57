// The faces a person sees in face-api's demo photos (node_modules/@vladmandic/face-api/demo/
// sample1..6.jpg), recorded by looking at the photos and at `facegate detect --draw` drawings:
// centre and rough face width in full-resolution pixels. The detector test checks each photo
// against them; the detector evaluation uses them as the true faces of the demo video's frames.
import { type Box, boxHeight, boxWidth, overlap } from '../vision/geometry.js';

export interface ExpectedFace {
  /** What the face is, for failure messages. */
  label: string;
  /** Face centre, pixels. */
  cx: number;
  cy: number;
  /** Rough face width, pixels. */
  side: number;
}

export interface ExpectedPhoto {
  sample: number;
  width: number;
  height: number;
  /** Faces that must each be detected exactly once. */
  faces: ExpectedFace[];
  /**
   * Faces a person sees but MTCNN may reasonably miss (profile, strongly pitched head): a detection
   * there is allowed, not required. Anything else is a false positive.
   */
  optional?: ExpectedFace[];
}

export const SAMPLE_PHOTO_FACES: ExpectedPhoto[] = [
  {
    sample: 1,
    width: 1920,
    height: 1280,
    faces: [
      { label: 'left woman with black bow, head tilted', cx: 505, cy: 475, side: 200 },
      { label: 'middle dark-haired woman, head tilted', cx: 930, cy: 540, side: 215 },
      { label: 'right strawberry-blonde woman, head tilted ~45°', cx: 1580, cy: 325, side: 210 },
    ],
  },
  {
    sample: 2,
    width: 1920,
    height: 1367,
    faces: [{ label: 'right woman, frontal, looking down', cx: 1540, cy: 285, side: 205 }],
    optional: [
      // Looking steeply down, one eye under her hair: O-Net scores ~0.53 on the whole photo
      // (below the 0.7 threshold) and ~0.84 on a crop of her; either outcome is acceptable.
      { label: 'middle woman, head pitched far down', cx: 980, cy: 350, side: 180 },
      // Pure profile: MTCNN is a frontal detector and does not find her.
      { label: 'left woman in profile', cx: 450, cy: 290, side: 190 },
    ],
  },
  {
    sample: 3,
    width: 1920,
    height: 1350,
    faces: [
      { label: 'left curly blonde woman', cx: 687, cy: 460, side: 210 },
      { label: 'middle blonde woman with ponytail', cx: 1172, cy: 354, side: 230 },
      { label: 'right dark-haired woman', cx: 1593, cy: 429, side: 200 },
    ],
  },
  {
    sample: 4,
    width: 1920,
    height: 1448,
    faces: [
      { label: 'far-left woman, head tilted', cx: 343, cy: 333, side: 190 },
      { label: 'second woman, head tilted', cx: 742, cy: 179, side: 180 },
      { label: 'third woman', cx: 1069, cy: 297, side: 175 },
      { label: 'right blonde woman', cx: 1347, cy: 268, side: 160 },
    ],
  },
  {
    sample: 5,
    width: 1920,
    height: 1398,
    faces: [
      { label: 'bottom-left woman', cx: 463, cy: 1015, side: 200 },
      { label: 'woman left of centre, half profile', cx: 678, cy: 540, side: 170 },
      { label: 'top woman', cx: 872, cy: 219, side: 165 },
      { label: 'woman right of centre', cx: 1202, cy: 315, side: 170 },
      { label: 'right woman', cx: 1503, cy: 527, side: 200 },
    ],
  },
  {
    sample: 6,
    width: 1920,
    height: 1537,
    faces: [
      { label: 'left woman, green dress', cx: 359, cy: 627, side: 215 },
      { label: 'second woman, red dress', cx: 761, cy: 479, side: 200 },
      { label: 'third woman, striped dress', cx: 1270, cy: 446, side: 200 },
      { label: 'right woman, green top', cx: 1586, cy: 407, side: 215 },
    ],
  },
];

/** Centre within a quarter face of the expected one; box sides within 0.6..1.6 face widths. */
export function matchesExpected(box: Box, e: ExpectedFace): boolean {
  const cx = (box.x1 + box.x2) / 2;
  const cy = (box.y1 + box.y2) / 2;
  const sizeOk = (s: number): boolean => s >= 0.6 * e.side && s <= 1.6 * e.side;
  return Math.abs(cx - e.cx) <= 0.25 * e.side && Math.abs(cy - e.cy) <= 0.25 * e.side && sizeOk(boxWidth(box)) && sizeOk(boxHeight(box));
}

/** `e` seen in a frame where its photo is scaled by `scale` and shifted by (dx, dy). */
export function placeExpected(e: ExpectedFace, scale: number, dx: number, dy: number): ExpectedFace {
  return { label: e.label, cx: e.cx * scale + dx, cy: e.cy * scale + dy, side: e.side * scale };
}

/** The expected face as a square box of its rough width. */
export const expectedBox = (e: ExpectedFace): Box => ({ x1: e.cx - e.side / 2, y1: e.cy - e.side / 2, x2: e.cx + e.side / 2, y2: e.cy + e.side / 2 });

/**
 * Detections that are not a true face: each one of which less than half lies on every expected
 * face (required or optional; intersection over the smaller box < 0.5), and each one beyond the
 * first on the same face (a duplicate is a spurious track too). Looser than matchesExpected: an
 * off-centre box on a real face (a profile, a pitched head) is not a false face.
 */
export function falseFaces<F extends { box: Box }>(detections: readonly F[], truth: readonly ExpectedFace[]): F[] {
  const taken = new Set<number>();
  const wrong: F[] = [];
  for (const d of detections) {
    const i = truth.findIndex((e, k) => !taken.has(k) && overlap(d.box, expectedBox(e), 'min') >= 0.5);
    if (i < 0) wrong.push(d);
    else taken.add(i);
  }
  return wrong;
}
