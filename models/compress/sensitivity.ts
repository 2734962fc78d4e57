// Sensitivity analysis (Li et al. 2017 §4.2, the paper's per-block ratios): prune one block at a
// time at several ratios, measure the verification accuracy drop on a validation split, plot the
// curves, and derive per-block ratios for a target overall ratio (sensitive blocks pruned less).
import sharp from 'sharp';
import type { VerificationReport } from '../../agent/evaluation/verification.js';
import { GraphBuilder } from '../onnx/graph-builder.js';
import { findBlocks, prunedCount, pruneL1, type PruneMethod } from './prune.js';

export interface SensitivityPoint {
  ratio: number;
  accuracy: number;
  /** Accuracy points lost against the unpruned model on the same split (positive = worse). */
  drop: number;
}

export interface SensitivityResult {
  model: string;
  method: PruneMethod;
  split: string;
  baseline: number;
  ratios: number[];
  blocks: { block: string; inner: number; macs: number; points: SensitivityPoint[] }[];
  seconds: number;
}

/** MACs of each block's two convs at batch 1 (what pruning its filters scales), from the graph. */
export function blockMacs(perNode: readonly { name: string; macs: number }[], blocks: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const b of blocks) out[b] = perNode.filter((n) => n.name === `${b}/conv1` || n.name === `${b}/conv2`).reduce((s, n) => s + n.macs, 0);
  return out;
}

export async function sensitivity(
  model: { name: string; bytes: Uint8Array },
  ratios: readonly number[],
  evaluate: (bytes: Uint8Array) => Promise<VerificationReport>,
  macsPerBlock: Record<string, number>,
  options: { method?: PruneMethod; prune?: (bytes: Uint8Array, ratios: Record<string, number>) => Promise<Uint8Array>; split: string; log?: (line: string) => void },
): Promise<SensitivityResult> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const prune = options.prune ?? (async (b: Uint8Array, r: Record<string, number>) => pruneL1(b, r).bytes);
  const baseline = (await evaluate(model.bytes)).meanAccuracy;
  log(`sensitivity: baseline ${(baseline * 100).toFixed(2)}% on ${options.split}`);
  const blocks = findBlocks(GraphBuilder.fromBytes(model.bytes).graph);
  const out: SensitivityResult['blocks'] = [];
  for (const b of blocks) {
    const points: SensitivityPoint[] = [];
    for (const r of ratios) {
      if (prunedCount(b.inner, r) === 0) continue;
      const acc = (await evaluate(await prune(model.bytes, { [b.name]: r }))).meanAccuracy;
      points.push({ ratio: r, accuracy: acc, drop: (baseline - acc) * 100 });
      log(`sensitivity: ${b.name} ratio ${r}: ${(acc * 100).toFixed(2)}% (drop ${((baseline - acc) * 100).toFixed(2)})`);
    }
    out.push({ block: b.name, inner: b.inner, macs: macsPerBlock[b.name] ?? 0, points });
  }
  return { model: model.name, method: options.method ?? 'l1', split: options.split, baseline, ratios: [...ratios], blocks: out, seconds: (performance.now() - started) / 1000 };
}

/** Accuracy drop of a block at ratio r, interpolated linearly (0 at r = 0), clamped at ≥ 0. */
function dropAt(points: readonly SensitivityPoint[], r: number): number {
  const pts = [{ ratio: 0, drop: 0 }, ...points].sort((a, b) => a.ratio - b.ratio);
  if (r <= 0) return 0;
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1] as { ratio: number; drop: number };
    const b = pts[i] as { ratio: number; drop: number };
    if (r <= b.ratio) return Math.max(0, a.drop + ((b.drop - a.drop) * (r - a.ratio)) / (b.ratio - a.ratio));
  }
  return Infinity;
}

/**
 * Per-block ratios whose MAC-weighted mean equals `target` (the fraction of block-conv MACs a
 * uniform ratio `target` removes), chosen greedily: in steps of `step`, raise the ratio of the block
 * whose next step costs the least predicted accuracy per MAC saved; no block beyond the largest
 * measured ratio. Predicted drops are summed across blocks (the usual independence assumption).
 */
export function deriveRatios(result: SensitivityResult, target: number, step = 0.05): { ratios: Record<string, number>; predictedDrop: number; achieved: number } {
  const total = result.blocks.reduce((s, b) => s + b.macs, 0);
  const ratios: Record<string, number> = Object.fromEntries(result.blocks.map((b) => [b.block, 0]));
  const maxR = Math.max(...result.ratios);
  let saved = 0;
  let predicted = 0;
  while (saved < target * total - 1e-9) {
    let best: { block: string; cost: number; gain: number } | undefined;
    for (const b of result.blocks) {
      const r = ratios[b.block] as number;
      const next = Math.round((r + step) * 1000) / 1000;
      if (next > maxR + 1e-9 || b.macs === 0) continue;
      const cost = dropAt(b.points, next) - dropAt(b.points, r);
      const gain = step * b.macs;
      // Tie-break flat (noisy, zero-drop) curves by preferring blocks that are pruned less so far.
      const score = (cost + 1e-3 * next) / gain;
      if (!best || score < best.cost / best.gain) best = { block: b.block, cost: score * gain, gain };
    }
    if (!best) break;
    const r = ratios[best.block] as number;
    ratios[best.block] = Math.round((r + step) * 1000) / 1000;
    saved += best.gain;
    predicted += dropAt(result.blocks.find((b) => b.block === best.block)?.points ?? [], ratios[best.block] as number) - dropAt(result.blocks.find((b) => b.block === best.block)?.points ?? [], r);
  }
  return { ratios, predictedDrop: predicted, achieved: saved / total };
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39'];

/** A line chart as SVG. Series: name and points (x, y). */
export function lineChartSvg(opts: { title: string; xLabel: string; yLabel: string; series: { name: string; points: [number, number][]; dashed?: boolean }[]; width?: number; height?: number }): string {
  const W = opts.width ?? 900;
  const H = opts.height ?? 540;
  const m = { l: 70, r: 200, t: 40, b: 55 };
  const all = opts.series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(0, ...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const sx = (x: number): number => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const sy = (y: number): number => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="13">`, `<rect width="${W}" height="${H}" fill="white"/>`];
  parts.push(`<text x="${W / 2 - m.r / 2}" y="24" text-anchor="middle" font-size="16">${esc(opts.title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const y = y0 + ((y1 - y0) * i) / 5;
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${sy(y)}" y2="${sy(y)}" stroke="#ddd"/>`, `<text x="${m.l - 6}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`);
    const x = x0 + ((x1 - x0) * i) / 5;
    parts.push(`<text x="${sx(x)}" y="${H - m.b + 18}" text-anchor="middle">${x.toFixed(2)}</text>`);
  }
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="black"/>`, `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="black"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  opts.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length] as string;
    const d = s.points.map((p, k) => `${k ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const p of s.points) parts.push(`<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="3" fill="${c}"/>`);
    const ly = m.t + 10 + i * 18;
    parts.push(`<line x1="${W - m.r + 12}" x2="${W - m.r + 34}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`, `<text x="${W - m.r + 40}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export const svgToPng = (svg: string): Promise<Buffer> => sharp(Buffer.from(svg)).png().toBuffer();

export function sensitivitySvg(result: SensitivityResult): string {
  return lineChartSvg({
    title: `Sensitivity of ${result.model} (${result.method}, one block at a time; ${result.split})`,
    xLabel: 'pruning ratio of the block',
    yLabel: 'accuracy drop (points)',
    series: result.blocks.map((b) => ({ name: b.block, points: [[0, 0] as [number, number], ...b.points.map((p) => [p.ratio, p.drop] as [number, number])] })),
  });
}
