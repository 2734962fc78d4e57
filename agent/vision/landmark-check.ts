// Landmark sanity: whether MTCNN's 5 points look like a face's layout. At loose O-Net thresholds
// (needed for faces behind masks and sunglasses) some candidates are texture that O-Net scores a
// little, and its landmarks then come out collapsed, swapped or with the nose outside the face;
// a real face, occluded or not, keeps the layout. Checked in the face's own frame (x along the
// eye line, y down from it), so rolled heads pass the same way as upright ones.
import type { Box, Point } from './geometry.js';

export interface LandmarkCheckOptions {
  /** Smallest distance between the eyes, as a fraction of the box width (frontal faces: ~0.4). */
  minEyeDistance: number;
  /** Largest roll of the eye line, degrees (MTCNN itself finds faces up to ~45°). */
  maxRollDegrees: number;
}

export const DEFAULT_LANDMARK_CHECK: Readonly<LandmarkCheckOptions> = Object.freeze({ minEyeDistance: 0.25, maxRollDegrees: 60 });

/** Left eye, right eye, nose, left mouth corner, right mouth corner (image left = smaller x). */
type Landmarks = readonly [Point, Point, Point, Point, Point];

/**
 * Why the landmarks of a face are implausible, or null when they are plausible: eyes at least
 * `minEyeDistance` × box width apart, eye line rolled at most `maxRollDegrees`, nose below the eye
 * line, above the mouth corners' midpoint and between the eyes across the face, mouth corners
 * below the eye line and in left-right order.
 */
export function landmarkProblem(face: { box: Box; landmarks: Landmarks }, options: LandmarkCheckOptions = DEFAULT_LANDMARK_CHECK): string | null {
  const [le, re, nose, ml, mr] = face.landmarks;
  const dx = re.x - le.x;
  const dy = re.y - le.y;
  const eyes = Math.hypot(dx, dy);
  const width = face.box.x2 - face.box.x1;
  if (!(eyes >= options.minEyeDistance * width)) return `eyes ${eyes.toFixed(1)} px apart, under ${options.minEyeDistance} × the box width ${width.toFixed(1)}`;
  const roll = (Math.atan2(dy, dx) * 180) / Math.PI;
  if (Math.abs(roll) > options.maxRollDegrees) return `eye line rolled ${roll.toFixed(0)}°`;
  // Face frame: origin at the eye midpoint, unit = eye distance, eyes at (±0.5, 0).
  const ox = (le.x + re.x) / 2;
  const oy = (le.y + re.y) / 2;
  const cos = dx / eyes;
  const sin = dy / eyes;
  const local = (p: Point): Point => ({ x: ((p.x - ox) * cos + (p.y - oy) * sin) / eyes, y: (-(p.x - ox) * sin + (p.y - oy) * cos) / eyes });
  const n = local(nose);
  const l = local(ml);
  const r = local(mr);
  const mouthY = (l.y + r.y) / 2;
  if (!(l.y > 0 && r.y > 0)) return 'a mouth corner is not below the eye line';
  if (!(l.x < r.x)) return 'mouth corners swapped';
  if (!(n.y > 0)) return 'nose not below the eye line';
  if (!(n.y < mouthY)) return 'nose not above the mouth';
  if (!(n.x > -0.5 && n.x < 0.5)) return 'nose not between the eyes';
  return null;
}

export const landmarksPlausible = (face: { box: Box; landmarks: Landmarks }, options: LandmarkCheckOptions = DEFAULT_LANDMARK_CHECK): boolean =>
  landmarkProblem(face, options) === null;
