// Verification metrics from pair distances: N-fold accuracy with the threshold chosen on the
// other folds (the LFW protocol), and TAR at a fixed FAR.

export interface ScoredPair {
  fold: number;
  same: boolean;
  distance: number;
}

/** Accuracy of "same if distance ≤ t" over pairs. */
export function accuracyAt(pairs: readonly ScoredPair[], t: number): number {
  let ok = 0;
  for (const p of pairs) if (p.distance <= t === p.same) ok++;
  return pairs.length ? ok / pairs.length : 0;
}

/** The threshold with the best accuracy on `pairs` (midpoints between sorted distances). */
export function bestThreshold(pairs: readonly ScoredPair[]): { threshold: number; accuracy: number } {
  const sorted = [...pairs].sort((a, b) => a.distance - b.distance);
  const totalSame = sorted.filter((p) => p.same).length;
  // Sweep: below the cut everything is "same". correct = sameBelow + (diffTotal - diffBelow).
  let sameBelow = 0;
  let diffBelow = 0;
  const diffTotal = sorted.length - totalSame;
  let best = { threshold: (sorted[0]?.distance ?? 0) - 1e-6, correct: diffTotal };
  for (let i = 0; i < sorted.length; i++) {
    const p = sorted[i] as ScoredPair;
    if (p.same) sameBelow++;
    else diffBelow++;
    const next = sorted[i + 1];
    if (next && next.distance === p.distance) continue;
    const correct = sameBelow + diffTotal - diffBelow;
    if (correct > best.correct) best = { threshold: next ? (p.distance + next.distance) / 2 : p.distance + 1e-6, correct };
  }
  return { threshold: best.threshold, accuracy: sorted.length ? best.correct / sorted.length : 0 };
}

export interface FoldResult {
  fold: number;
  threshold: number;
  accuracy: number;
}

export interface VerificationReport {
  folds: FoldResult[];
  meanAccuracy: number;
  stdAccuracy: number;
  /** Threshold chosen on all pairs together (the agent's default). */
  overallThreshold: number;
  tarAtFar: { far: number; tar: number; threshold: number; negatives: number }[];
}

export function kFoldVerification(pairs: readonly ScoredPair[], fars: readonly number[] = [1e-3]): VerificationReport {
  const foldIds = [...new Set(pairs.map((p) => p.fold))].sort((a, b) => a - b);
  const folds = foldIds.map((fold) => {
    const { threshold } = bestThreshold(pairs.filter((p) => p.fold !== fold));
    return { fold, threshold, accuracy: accuracyAt(pairs.filter((p) => p.fold === fold), threshold) };
  });
  const mean = folds.reduce((s, f) => s + f.accuracy, 0) / Math.max(1, folds.length);
  const std = Math.sqrt(folds.reduce((s, f) => s + (f.accuracy - mean) ** 2, 0) / Math.max(1, folds.length));
  return {
    folds,
    meanAccuracy: mean,
    stdAccuracy: std,
    overallThreshold: bestThreshold(pairs).threshold,
    tarAtFar: fars.map((far) => tarAtFar(pairs, far)),
  };
}

/** True accept rate at the largest threshold whose false accept rate stays ≤ far. */
export function tarAtFar(pairs: readonly ScoredPair[], far: number): { far: number; tar: number; threshold: number; negatives: number } {
  const neg = pairs.filter((p) => !p.same).map((p) => p.distance).sort((a, b) => a - b);
  const pos = pairs.filter((p) => p.same).map((p) => p.distance);
  const allowed = Math.floor(far * neg.length);
  // Accept distance < neg[allowed]: exactly `allowed` negatives accepted (ties excluded).
  const threshold = neg.length === 0 ? Infinity : (neg[allowed] ?? Infinity);
  const tar = pos.length ? pos.filter((d) => d < threshold).length / pos.length : 0;
  return { far, tar, threshold, negatives: neg.length };
}
