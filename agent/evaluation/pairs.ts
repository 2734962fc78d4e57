// LFW View-2 pairs files: a header line "folds n", then per fold n matched lines "name i j"
// and n mismatched lines "nameA i nameB j" (whitespace separated).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface VerificationPair {
  fold: number;
  same: boolean;
  first: string;
  second: string;
}

export interface PairsFile {
  folds: number;
  perFold: number;
  pairs: VerificationPair[];
}

/** LFW's file naming: Name/Name_0001.jpg. */
export const lfwImagePath = (name: string, index: number): string => join(name, `${name}_${String(index).padStart(4, '0')}.jpg`);

export function parsePairs(text: string, source = 'pairs file'): PairsFile {
  // Blank lines are skipped, but errors name the line number in the file.
  const numbered = text.split(/\r?\n/).map((l, i) => ({ text: l.trim(), no: i + 1 })).filter((l) => l.text.length > 0);
  const lines = numbered.map((l) => l.text);
  const lineNo = (k: number): number => (numbered[k] as { no: number }).no;
  const header = (lines[0] ?? '').split(/\s+/).map(Number);
  const [folds, perFold] = header;
  if (header.length !== 2 || !Number.isInteger(folds) || !Number.isInteger(perFold) || folds < 1 || perFold < 1) {
    throw new Error(`${source}: line ${lines.length ? lineNo(0) : 1} must be "folds n" (two positive integers), got "${lines[0] ?? ''}"`);
  }
  const expected = folds * perFold * 2;
  if (lines.length - 1 !== expected) throw new Error(`${source}: header says ${folds}×${perFold}×2 = ${expected} pairs, found ${lines.length - 1}`);
  const pairs: VerificationPair[] = [];
  for (let k = 1; k < lines.length; k++) {
    const f = (lines[k] as string).split(/\s+/);
    const index = k - 1;
    const fold = Math.floor(index / (2 * perFold));
    const same = index % (2 * perFold) < perFold;
    const num = (s: string | undefined): number => {
      const v = Number(s);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${source}: line ${lineNo(k)}: "${s}" is not an image number`);
      return v;
    };
    if (same) {
      if (f.length !== 3) throw new Error(`${source}: line ${lineNo(k)}: a matched pair needs "name i j", got "${lines[k]}"`);
      pairs.push({ fold, same, first: lfwImagePath(f[0] as string, num(f[1])), second: lfwImagePath(f[0] as string, num(f[2])) });
    } else {
      if (f.length !== 4) throw new Error(`${source}: line ${lineNo(k)}: a mismatched pair needs "nameA i nameB j", got "${lines[k]}"`);
      pairs.push({ fold, same, first: lfwImagePath(f[0] as string, num(f[1])), second: lfwImagePath(f[2] as string, num(f[3])) });
    }
  }
  return { folds, perFold, pairs };
}

export const readPairsFile = (file: string): PairsFile => parsePairs(readFileSync(file, 'utf8'), file);
