// Face alignment: a similarity transform from the 5 MTCNN landmarks to an embedder's template,
// warped with OpenCV. The chip geometry decides the embedder's accuracy, so each embedder names
// its template (see models/templates/ for the derived dlib one and how it was fitted).
import { type Affine, type Point, applyAffine, invertAffine, similarityTransform } from './geometry.js';
import type { RgbImage } from './image.js';
import { type OpenCv, withMats } from './opencv.js';

export interface ChipTemplate {
  name: string;
  width: number;
  height: number;
  /** Where the 5 landmarks (left eye, right eye, nose, left/right mouth corner) land in the chip. */
  points: readonly [Point, Point, Point, Point, Point];
}

const pts = (xy: readonly (readonly [number, number])[]): ChipTemplate['points'] =>
  xy.map(([x, y]) => ({ x, y })) as unknown as ChipTemplate['points'];

/** ArcFace/InsightFace 112×112 template. */
export const ARCFACE_112: ChipTemplate = {
  name: 'arcface-112',
  width: 112,
  height: 112,
  points: pts([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]),
};

/** SphereFace/CosFace 112×96 template (the paper's input size). */
export const SPHEREFACE_112x96: ChipTemplate = {
  name: 'sphereface-112x96',
  width: 96,
  height: 112,
  points: pts([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]]),
};

// dlib's mean face shape (points 17..67 of the iBUG 68-point scheme, unit square), from
// dlib/image_transforms/interpolation.h get_face_chip_details.
const DLIB_MEAN_FACE_X = [
  0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004, 0.490127, 0.490127,
  0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
  0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395,
  0.639268, 0.726104, 0.642159, 0.556721, 0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
  0.553364, 0.490127, 0.42689,
];
const DLIB_MEAN_FACE_Y = [
  0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454, 0.203352,
  0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
  0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578,
  0.727388, 0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
  0.784792, 0.824182, 0.831803, 0.824182,
];

/** dlib's chip defaults for its ResNet face descriptor. */
export const DLIB_CHIP_SIZE = 150;
export const DLIB_CHIP_PADDING = 0.25;

/** Mean-face point i (0..67, i ≥ 17) in chip pixels, as get_face_chip_details places it. */
function dlibMeanFacePoint(i: number, size: number, padding: number): Point {
  const x = DLIB_MEAN_FACE_X[i - 17] as number;
  const y = DLIB_MEAN_FACE_Y[i - 17] as number;
  return { x: ((padding + x) / (2 * padding + 1)) * size, y: ((padding + y) / (2 * padding + 1)) * size };
}

/** The 68-point indices dlib fits the chip to: 17..67 without eyebrows and lower lip (33 points). */
export const DLIB_CHIP_POINT_INDICES: readonly number[] = Array.from({ length: 51 }, (_, k) => k + 17).filter(
  (i) => !(i >= 17 && i <= 26) && !(i >= 55 && i <= 59) && !(i >= 65 && i <= 67),
);

/**
 * dlib's own chip geometry from 68 landmarks (get_face_chip_details): least squares from the
 * mean face to the landmarks, returned as the image → chip transform.
 */
export function dlibChipTransform(landmarks68: readonly Point[], size = DLIB_CHIP_SIZE, padding = DLIB_CHIP_PADDING): Affine {
  if (landmarks68.length !== 68) throw new Error(`dlib chip needs 68 landmarks, got ${landmarks68.length}`);
  const from = DLIB_CHIP_POINT_INDICES.map((i) => dlibMeanFacePoint(i, size, padding));
  const to = DLIB_CHIP_POINT_INDICES.map((i) => landmarks68[i] as Point);
  return invertAffine(similarityTransform(from, to));
}

/**
 * A naive 5-point dlib template read straight off the mean face (eye centres, nose tip, mouth
 * corners). Kept as the baseline the derived template is measured against: MTCNN's points follow
 * another annotation convention, so this one is not what dlib's chips look like.
 */
export function naiveDlibTemplate(size = DLIB_CHIP_SIZE, padding = DLIB_CHIP_PADDING): ChipTemplate {
  const mean = (ids: number[]): Point => {
    const ps = ids.map((i) => dlibMeanFacePoint(i, size, padding));
    return { x: ps.reduce((s, p) => s + p.x, 0) / ps.length, y: ps.reduce((s, p) => s + p.y, 0) / ps.length };
  };
  return {
    name: 'dlib-150-naive',
    width: size,
    height: size,
    points: [mean([36, 37, 38, 39, 40, 41]), mean([42, 43, 44, 45, 46, 47]), mean([30]), mean([48]), mean([54])],
  };
}

/** Image → chip transform for a face's 5 landmarks. */
export function alignmentTransform(landmarks: readonly Point[], template: ChipTemplate): Affine {
  if (landmarks.length !== 5) throw new Error(`alignment needs 5 landmarks, got ${landmarks.length}`);
  return similarityTransform(landmarks, template.points);
}

/**
 * The transform of a zoomed-out view: the chip of `transform`, shrunk by 1/scale about the
 * template's landmark centroid (the face's centre stays put, more of its surroundings come in).
 */
export function zoomedView(transform: Affine, template: ChipTemplate, scale: number): Affine {
  if (!(scale > 0)) throw new Error(`view scale ${scale}: a positive number`);
  const cx = template.points.reduce((s, p) => s + p.x, 0) / template.points.length;
  const cy = template.points.reduce((s, p) => s + p.y, 0) / template.points.length;
  const [a, b, c, d, e, f] = transform;
  const z = 1 / scale;
  return [a * z, b * z, cx + (c - cx) * z, d * z, e * z, cy + (f - cy) * z];
}

/** Maps points through a transform (e.g. landmarks into chip coordinates). */
export const transformPoints = (m: Affine, points: readonly Point[]): Point[] => points.map((p) => applyAffine(m, p));

/**
 * Warps one chip per transform out of `image` (bilinear, black outside the image). One OpenCV
 * image is made per call, so pass all faces of a frame together.
 */
export function warpChips(cv: OpenCv, image: RgbImage, transforms: readonly Affine[], width: number, height: number): RgbImage[] {
  if (transforms.length === 0) return [];
  return withMats((track) => {
    const src = track(new cv.Mat(image.height, image.width, cv.CV_8UC3));
    src.data.set(image.data);
    return transforms.map((m) => {
      const matrix = track(cv.matFromArray(2, 3, cv.CV_64FC1, m));
      const dst = track(new cv.Mat());
      cv.warpAffine(src, dst, matrix, new cv.Size(width, height), cv.INTER_LINEAR, cv.BORDER_CONSTANT, [0, 0, 0, 0]);
      return { width, height, data: new Uint8Array(dst.data) };
    });
  });
}
