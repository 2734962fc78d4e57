// Float64 linear algebra for least-squares re-fitting: Gram matrix accumulation, Cholesky
// factorisation and triangular solves, in plain TypeScript (row-major, lower triangle).

/** Accumulates G += a aᵀ (lower triangle only) for one row a of length n; zeros are skipped. */
export function accumulateGram(g: Float64Array, a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const ai = a[i] as number;
    if (ai === 0) continue;
    const row = i * n;
    for (let j = 0; j <= i; j++) g[row + j] = (g[row + j] as number) + ai * (a[j] as number);
  }
}

/** Copies the lower triangle to the upper one. */
export function symmetrize(g: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) g[j * n + i] = g[i * n + j] as number;
}

/** The sub-matrix of rows/columns `idx` of the n×n matrix g. */
export function subMatrix(g: Float64Array, n: number, idx: readonly number[]): Float64Array {
  const m = idx.length;
  const out = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    const row = (idx[i] as number) * n;
    for (let j = 0; j < m; j++) out[i * m + j] = g[row + (idx[j] as number)] as number;
  }
  return out;
}

/**
 * In-place Cholesky factorisation A = L Lᵀ of a symmetric positive definite n×n matrix (lower
 * triangle read and overwritten with L). Throws if A is not positive definite.
 */
export function cholesky(a: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j] as number;
    for (let k = 0; k < j; k++) d -= (a[rj + k] as number) ** 2;
    if (!(d > 0)) throw new Error(`cholesky: matrix is not positive definite (pivot ${j}: ${d})`);
    const ljj = Math.sqrt(d);
    a[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j] as number;
      for (let k = 0; k < j; k++) s -= (a[ri + k] as number) * (a[rj + k] as number);
      a[ri + j] = s / ljj;
    }
  }
}

/** Solves L Lᵀ x = b in place (b of length n), L from cholesky(). */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    let s = b[i] as number;
    for (let k = 0; k < i; k++) s -= (l[ri + k] as number) * (b[k] as number);
    b[i] = s / (l[ri + i] as number);
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i] as number;
    for (let k = i + 1; k < n; k++) s -= (l[k * n + i] as number) * (b[k] as number);
    b[i] = s / (l[i * n + i] as number);
  }
}

/**
 * Ridge least squares from normal equations: solves (G + λ·mean(diag G)·I) x = r + λ·p for each
 * right-hand side r in `rhs` (each of length n) and its prior p in `prior` (default 0: plain
 * ridge; otherwise the solution is pulled towards p instead of 0). G is not modified.
 */
export function solveNormalEquations(g: Float64Array, n: number, rhs: Float64Array[], ridge: number, prior?: readonly Float64Array[], scaleOver = n): Float64Array[] {
  const a = Float64Array.from(g);
  // λ is relative to the mean of the first `scaleOver` diagonal entries (a constant column's
  // entry, the row count, would otherwise set the scale).
  let trace = 0;
  for (let i = 0; i < scaleOver; i++) trace += a[i * n + i] as number;
  const lambda = ridge * Math.max(trace / scaleOver, 1e-12);
  for (let i = 0; i < n; i++) a[i * n + i] = (a[i * n + i] as number) + lambda;
  cholesky(a, n);
  return rhs.map((r, k) => {
    const x = Float64Array.from(r);
    const p = prior?.[k];
    if (p) for (let i = 0; i < n; i++) x[i] = (x[i] as number) + lambda * (p[i] as number);
    choleskySolve(a, n, x);
    return x;
  });
}
