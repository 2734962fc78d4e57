// A face's own coordinate frame, from MTCNN's 5 landmarks: origin at the eye midpoint, x along
// the eye line (towards the image-right eye), y down the face, one unit = the distance between
// the eyes. Occluders are drawn in this frame, so they follow the face's position, size and roll.
import type { Point } from '../vision/geometry.js';
import type { DetectedFace } from '../vision/mtcnn.js';

export interface FaceFrame {
  /** Eye midpoint in image pixels. */
  origin: Point;
  /** Roll of the eye line, degrees (SVG rotate()). */
  angleDeg: number;
  /** Pixels per face unit (the inter-ocular distance). */
  scale: number;
  /** Nose tip and mouth centre, in face units (eyes are at (±0.5, 0) by construction). */
  nose: Point;
  mouth: Point;
  /** Mouth corners in face units. */
  mouthLeft: Point;
  mouthRight: Point;
  /** Estimated chin depth (face units below the eye line): the mouth sits ~0.62 of the way down. */
  chinY: number;
}

export function faceFrame(landmarks: DetectedFace['landmarks']): FaceFrame {
  const [le, re, nose, ml, mr] = landmarks;
  const origin = { x: (le.x + re.x) / 2, y: (le.y + re.y) / 2 };
  const dx = re.x - le.x;
  const dy = re.y - le.y;
  const scale = Math.hypot(dx, dy);
  if (!(scale > 1)) throw new Error(`landmarks too close together to place an occluder (eyes ${scale.toFixed(1)} px apart)`);
  const angle = Math.atan2(dy, dx);
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const toFace = (p: Point): Point => {
    const x = p.x - origin.x;
    const y = p.y - origin.y;
    return { x: (x * cos + y * sin) / scale, y: (-x * sin + y * cos) / scale };
  };
  const mouthLeft = toFace(ml);
  const mouthRight = toFace(mr);
  const mouth = { x: (mouthLeft.x + mouthRight.x) / 2, y: (mouthLeft.y + mouthRight.y) / 2 };
  return { origin, angleDeg: (angle * 180) / Math.PI, scale, nose: toFace(nose), mouth, mouthLeft, mouthRight, chinY: Math.max(mouth.y * 1.6, mouth.y + 0.45) };
}

/** Face units → image pixels. */
export function toImage(frame: FaceFrame, p: Point): Point {
  const a = (frame.angleDeg * Math.PI) / 180;
  const x = p.x * frame.scale;
  const y = p.y * frame.scale;
  return { x: frame.origin.x + x * Math.cos(a) - y * Math.sin(a), y: frame.origin.y + x * Math.sin(a) + y * Math.cos(a) };
}

/** The SVG transform that maps face units onto the image. */
export const frameTransform = (f: FaceFrame): string =>
  `translate(${f.origin.x.toFixed(2)} ${f.origin.y.toFixed(2)}) rotate(${f.angleDeg.toFixed(3)}) scale(${f.scale.toFixed(4)})`;
