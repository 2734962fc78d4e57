// The refitted MobileFaceNet head's files (models/heads/): written by models/occlusion/robust-head.ts,
// read by the model build, which folds the head into the mobilefacenet-occ graph.
import { join } from 'node:path';
import { modelsDir } from '../../agent/paths.js';
import type { ValidationRow } from '../occlusion/robust-head-validation.js';
import type { RobustHead } from './mobilefacenet.js';

/** The head's files: a JSON header (provenance, sizes, validation) and the float32 weights. */
export const ROBUST_HEAD_NAME = 'mobilefacenet-occ';
export const robustHeadFiles = (dir = modelsDir()): { header: string; weights: string } => ({
  header: join(dir, 'heads', `${ROBUST_HEAD_NAME}.json`),
  weights: join(dir, 'heads', `${ROBUST_HEAD_NAME}.bin`),
});

export interface RobustHeadHeader {
  model: string;
  base: 'mobilefacenet';
  built: string;
  dims: number;
  cells: number;
  outputs: number;
  /** Byte layout of the .bin: float32 basis [outputs × dims], weight [dims·cells × outputs], bias [outputs]. */
  layout: string;
  fit: { lfw: string; faces: number; heldOut: number; variants: string[]; seed: number; ridge: number; cleanWeight: number; rectWeight?: number; samples: number; seconds: number };
  /** Held-out faces: mean cosine between each variant's embedding and the clean photo's, before and after. */
  validation: { variant: string; original: number; robust: number }[];
  /** Verification on the validation people (left out of the fit), MobileFaceNet and the head; absent in heads fitted before it existed. */
  verification?: { people: number; photos: number; rows: ValidationRow[] };
}

export function packRobustHead(head: RobustHead): Uint8Array {
  const all = new Float32Array(head.basis.length + head.weight.length + head.bias.length);
  all.set(head.basis, 0);
  all.set(head.weight, head.basis.length);
  all.set(head.bias, head.basis.length + head.weight.length);
  return new Uint8Array(all.buffer);
}

/** Reads a head written by packRobustHead; sizes checked against its header. */
export function unpackRobustHead(bytes: Uint8Array, header: Pick<RobustHeadHeader, 'dims' | 'cells' | 'outputs'>, label: string): RobustHead {
  const { dims, cells, outputs } = header;
  const expected = outputs * dims + dims * cells * outputs + outputs;
  if (bytes.length !== expected * 4) throw new Error(`${label}: ${bytes.length} bytes, expected ${expected * 4} for ${dims} dims × ${cells} cells → ${outputs}`);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return {
    dims,
    basis: all.slice(0, outputs * dims),
    weight: all.slice(outputs * dims, outputs * dims + dims * cells * outputs),
    bias: all.slice(outputs * dims + dims * cells * outputs),
  };
}

