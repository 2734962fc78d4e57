// OpenCV (the opencv-js WebAssembly build) for resizing, the image pyramid and warpAffine.
// The package's own typings describe the whole API loosely; this narrow interface names exactly
// what facegate uses, so the compiler checks our calls.
import { createRequire } from 'node:module';

export interface CvMat {
  rows: number;
  cols: number;
  data: Uint8Array;
  data32F: Float32Array;
  roi(rect: CvRect): CvMat;
  copyTo(dst: CvMat): void;
  delete(): void;
}
export interface CvSize { width: number; height: number }
export interface CvRect { x: number; y: number; width: number; height: number }
export type CvScalar = [number, number, number, number];

export interface OpenCv {
  Mat: { new (): CvMat; new (rows: number, cols: number, type: number, scalar?: CvScalar): CvMat };
  Size: new (width: number, height: number) => CvSize;
  Rect: new (x: number, y: number, width: number, height: number) => CvRect;
  Scalar: new (a: number, b: number, c: number, d: number) => CvScalar;
  matFromArray(rows: number, cols: number, type: number, array: ArrayLike<number>): CvMat;
  resize(src: CvMat, dst: CvMat, size: CvSize, fx: number, fy: number, interpolation: number): void;
  warpAffine(src: CvMat, dst: CvMat, m: CvMat, size: CvSize, flags: number, borderMode: number, borderValue: CvScalar): void;
  copyMakeBorder(src: CvMat, dst: CvMat, top: number, bottom: number, left: number, right: number, borderType: number, value: CvScalar): void;
  flip(src: CvMat, dst: CvMat, flipCode: number): void;
  CV_8UC3: number;
  CV_64FC1: number;
  INTER_LINEAR: number;
  INTER_AREA: number;
  BORDER_CONSTANT: number;
}

let loading: Promise<OpenCv> | undefined;

/** Loads the opencv-js runtime once (≈0.2 s: it compiles its WebAssembly on first use). */
export function loadOpenCv(): Promise<OpenCv> {
  loading ??= new Promise<OpenCv>((resolve, reject) => {
    const require = createRequire(import.meta.url);
    const mod = require('@techstark/opencv-js') as OpenCv & { then?: unknown };
    const ready = (): boolean => typeof mod.Mat === 'function' && typeof mod.matFromArray === 'function';
    const done = (): void => {
      // The Emscripten module is a thenable whose then() hands back the module itself, so a
      // promise resolved with it would chase it forever. Once initialised it is a plain object.
      delete mod.then;
      resolve(mod);
    };
    if (ready()) return done();
    // Poll: the runtime may fire its init hook before a caller could set it.
    const started = Date.now();
    const poll = setInterval(() => {
      if (ready()) {
        clearInterval(poll);
        done();
      } else if (Date.now() - started > 30_000) {
        clearInterval(poll);
        reject(new Error('opencv-js did not initialise within 30 s'));
      }
    }, 5);
  });
  return loading;
}

/** Runs `fn` and deletes every Mat it registered, also when it throws (opencv-js has no GC). */
export function withMats<T>(fn: (track: <M extends CvMat>(m: M) => M) => T): T {
  const mats: CvMat[] = [];
  try {
    return fn((m) => {
      mats.push(m);
      return m;
    });
  } finally {
    for (const m of mats) m.delete();
  }
}
