// Channel selection for `reconstruct` by greedy backward elimination on the block's least-squares
// problem (group Optimal Brain Surgeon, Hassibi & Stork 1993; ThiNet's greedy selection, Luo et
// al. 2017, with the re-fit of the remaining channels taken into account): starting from the
// ridge solution over all channels, repeatedly remove the channel whose removal, with the other
// channels re-fitted, raises the squared error least. The contribution score ranks each channel
// alone with the original weights; this one sees correlated channels (one can stand in for another).
//
// With H = (G + λI)⁻¹ and W = H·AᵀY, removing the unknowns S of one channel raises the ridge
// objective by Σ_out W_Sᵀ (H_SS)⁻¹ W_S, and the exact update is W −= H_:S (H_SS)⁻¹ W_S,
// H −= H_:S (H_SS)⁻¹ H_S:.
import { cholesky, choleskySolve } from './linalg.js';

/** Inverse of a symmetric positive definite n×n matrix (full, row-major) via Cholesky. */
export function spdInverse(a: Float64Array, n: number): Float64Array {
  const l = Float64Array.from(a);
  cholesky(l, n);
  // M = L⁻¹ (lower), row by row: M_i = (e_i − Σ_{k<i} L_ik M_k) / L_ii.
  const m = new Float64Array(n * n);
  const t = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    t.fill(0, 0, i);
    const ri = i * n;
    for (let k = 0; k < i; k++) {
      const lik = l[ri + k] as number;
      if (lik === 0) continue;
      const rk = k * n;
      for (let j = 0; j <= k; j++) t[j] = (t[j] as number) + lik * (m[rk + j] as number);
    }
    const lii = l[ri + i] as number;
    for (let j = 0; j < i; j++) m[ri + j] = -(t[j] as number) / lii;
    m[ri + i] = 1 / lii;
  }
  // A⁻¹ = MᵀM, lower triangle accumulated row by row of M, then mirrored.
  const h = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    const rr = r * n;
    for (let a1 = 0; a1 <= r; a1++) {
      const v = m[rr + a1] as number;
      if (v === 0) continue;
      const ra = a1 * n;
      for (let b = 0; b <= a1; b++) h[ra + b] = (h[ra + b] as number) + v * (m[rr + b] as number);
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) h[j * n + i] = h[i * n + j] as number;
  return h;
}

/**
 * Channels to keep (ascending) out of `inner`, each owning the unknowns c·kk … c·kk+kk−1 of the
 * normal equations G (n×n, the last unknown: the constant, never removed), AᵀY (n×cout).
 * `ridge` is relative to the mean diagonal of G, as in solveNormalEquations.
 */
export function greedyKeep(g: Float64Array, n: number, aty: Float64Array, cout: number, inner: number, kk: number, keep: number, ridge: number): number[] {
  if (inner * kk + 1 !== n) throw new Error(`greedyKeep: ${inner} channels × ${kk} taps + 1 ≠ ${n} unknowns`);
  const a = Float64Array.from(g);
  let trace = 0;
  for (let i = 0; i < n; i++) trace += a[i * n + i] as number;
  const lambda = ridge * Math.max(trace / n, 1e-12);
  for (let i = 0; i < n; i++) a[i * n + i] = (a[i * n + i] as number) + lambda;
  const h = spdInverse(a, n);
  // W = H·AᵀY (n×cout).
  const w = new Float64Array(n * cout);
  for (let i = 0; i < n; i++) {
    const wi = i * cout;
    for (let k = 0; k < n; k++) {
      const hik = h[i * n + k] as number;
      if (hik === 0) continue;
      const rk = k * cout;
      for (let o = 0; o < cout; o++) w[wi + o] = (w[wi + o] as number) + hik * (aty[rk + o] as number);
    }
  }
  const alive = new Array<boolean>(inner).fill(true);
  const hs = new Float64Array(kk * kk);
  const x = new Float64Array(kk);
  const inv = new Float64Array(kk * kk);
  const b = new Float64Array(n * kk);
  let active: number[] = Array.from({ length: n }, (_, i) => i);
  for (let left = inner; left > keep; left--) {
    // The cheapest channel to remove.
    let best = -1;
    let bestCost = Infinity;
    for (let c = 0; c < inner; c++) {
      if (!alive[c]) continue;
      const s0 = c * kk;
      for (let i = 0; i < kk; i++) for (let j = 0; j < kk; j++) hs[i * kk + j] = h[(s0 + i) * n + s0 + j] as number;
      cholesky(hs, kk);
      let cost = 0;
      for (let o = 0; o < cout; o++) {
        for (let i = 0; i < kk; i++) x[i] = w[(s0 + i) * cout + o] as number;
        choleskySolve(hs, kk, x);
        for (let i = 0; i < kk; i++) cost += (x[i] as number) * (w[(s0 + i) * cout + o] as number);
      }
      if (cost < bestCost) {
        bestCost = cost;
        best = c;
      }
    }
    alive[best] = false;
    const s0 = best * kk;
    // inv = (H_SS)⁻¹, B = H_:S · inv over the active unknowns.
    for (let i = 0; i < kk; i++) for (let j = 0; j < kk; j++) hs[i * kk + j] = h[(s0 + i) * n + s0 + j] as number;
    inv.set(spdInverse(hs, kk));
    for (const i of active) {
      for (let j = 0; j < kk; j++) {
        let s = 0;
        for (let k = 0; k < kk; k++) s += (h[i * n + s0 + k] as number) * (inv[k * kk + j] as number);
        b[i * kk + j] = s;
      }
    }
    // W −= B·W_S and H −= B·H_S: (the removed rows become 0 and are dropped from `active`).
    active = active.filter((i) => i < s0 || i >= s0 + kk);
    for (const i of active) {
      for (let k = 0; k < kk; k++) {
        const bik = b[i * kk + k] as number;
        if (bik === 0) continue;
        const ws = (s0 + k) * cout;
        const wi = i * cout;
        for (let o = 0; o < cout; o++) w[wi + o] = (w[wi + o] as number) - bik * (w[ws + o] as number);
        const hsr = (s0 + k) * n;
        const hi = i * n;
        // Whole rows (contiguous, fast); entries of removed unknowns are never read again.
        for (let j = 0; j < n; j++) h[hi + j] = (h[hi + j] as number) - bik * (h[hsr + j] as number);
      }
    }
  }
  return alive.flatMap((v, c) => (v ? [c] : []));
}
