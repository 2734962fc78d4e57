// Verification on the validation people (models/compress/lfw.ts validationFiles: people in no
// evaluation pair with two or more photos), whom the robust-head fit leaves out: every photo clean
// as the gallery, every other photo of the same person as a genuine probe and every photo of the
// others as an impostor, probes clean and under each occluder. It ranks fit settings without
// reading the LFW pairs that report the final figures.
import { dirname } from 'node:path';
import { kFoldVerification, type ScoredPair, tarAtFar } from '../../agent/evaluation/verification.js';
import type { CalibrationVariant } from './calibration.js';
import type { CalibrationFace, CellPass } from './robust-head-passes.js';

/** The probe sets: clean, six rectangle draws (reported together), a mask, sunglasses. */
export const VALIDATION_VARIANTS: CalibrationVariant[] = ['clean', 'random40', 'random40#1', 'random40#2', 'random40#3', 'random40#4', 'random40#5', 'mask', 'sunglasses'];
const VALIDATION_SETS: { set: string; variants: CalibrationVariant[] }[] = [
  { set: 'clean', variants: ['clean'] },
  { set: 'random40', variants: VALIDATION_VARIANTS.filter((v) => v.startsWith('random40')) },
  { set: 'mask', variants: ['mask'] },
  { set: 'sunglasses', variants: ['sunglasses'] },
];

export interface ValidationScore {
  /** Mean accuracy over 5 person-disjoint folds, the threshold chosen on the other four; balanced genuine/impostor pairs. */
  accuracy: number;
  /** True accept rate at FAR 1e-3 over all impostor pairs. */
  tarAtFar3: number;
}

export interface ValidationRow {
  set: string;
  genuine: number;
  impostors: number;
  scores: Record<string, ValidationScore>;
}

/** Embeds one chip's two passes (chip, mirror image) into a flip-averaged unit embedding. */
export type PairEmbedder = (passes: [CellPass, CellPass]) => Float32Array;

/** Verification per probe set for each named embedder; `faces` hold VALIDATION_VARIANTS in order. */
export function validateEmbedders(faces: readonly CalibrationFace[], embedders: Record<string, PairEmbedder>): ValidationRow[] {
  const people = [...new Set(faces.map((f) => dirname(f.file)))].sort();
  const personOf = faces.map((f) => people.indexOf(dirname(f.file)));
  const fold = (face: number): number => (personOf[face] as number) % 5;
  return VALIDATION_SETS.map(({ set, variants }) => {
    const scores: Record<string, ValidationScore> = {};
    let genuine = 0, impostors = 0;
    for (const [name, embed] of Object.entries(embedders)) {
      const gallery = faces.map((f) => embed(f.passes[0] as [CellPass, CellPass]));
      const balanced: ScoredPair[] = [];
      const all: ScoredPair[] = [];
      for (const variant of variants) {
        const v = VALIDATION_VARIANTS.indexOf(variant);
        const probes = faces.map((f) => embed(f.passes[v] as [CellPass, CellPass]));
        const same: ScoredPair[] = [], other: ScoredPair[] = [];
        gallery.forEach((g, i) =>
          probes.forEach((p, j) => {
            if (i === j) return;
            const pair = { fold: fold(i), same: personOf[i] === personOf[j], distance: distance(g, p) };
            (pair.same ? same : other).push(pair);
          }),
        );
        // Balanced for accuracy: every k-th impostor pair (a fixed, even spread over the people).
        const step = Math.max(1, Math.floor(other.length / Math.max(1, same.length)));
        balanced.push(...same, ...other.filter((_, k) => k % step === 0).slice(0, same.length));
        all.push(...same, ...other);
      }
      const report = kFoldVerification(balanced);
      scores[name] = { accuracy: report.meanAccuracy, tarAtFar3: tarAtFar(all, 1e-3).tar };
      genuine = all.filter((p) => p.same).length;
      impostors = all.length - genuine;
    }
    return { set, genuine, impostors, scores };
  });
}

function distance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += ((a[k] as number) - (b[k] as number)) ** 2;
  return Math.sqrt(s);
}
