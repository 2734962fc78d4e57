// `npm run bench:compression`: the paper's table measured here. For pruning ratios 0, 0.1 … 0.5 and
// both methods (l1, reconstruct): parameters and MACs (from the graph), file size, embedder latency
// (median, batch 1 and 8, sessions as the agent creates them), faces/s and LFW pairs-dev accuracy
// (5-fold, flip-averaged, the agent's defaults). Then the paper's LResNet50E-IR with seeded random
// weights, pruned by the same tool: parameters, MACs and latency (no accuracy: no trained weights).
// Writes models/compress/results/bench-compression.json, models/compress/results/compression.png
// and the section between the bench:compression markers of models/README.md.
//
//   npm run bench:compression [-- --lfw ../shared/data/lfw] [--skip-lresnet] [--extra name=0.25|name=ratios.json ...]
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createSession, type ModelSession } from '../../agent/inference/onnx-session.js';
import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { modelsDir } from '../../agent/paths.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { graphStats } from '../onnx/graph-stats.js';
import { CACHE_DIR, DEFAULT_LFW, evaluatePairs, lfwPairsChips } from './lfw.js';
import { buildLResNet50EIR, LRESNET_INPUT } from './lresnet50e-ir.js';
import { type BlockRatios, pruneL1, type PruneMethod } from './prune.js';
import { pruneReconstruct } from './reconstruct.js';
import sharp from 'sharp';
import { lineChartSvg } from './sensitivity.js';
import { DEFAULT_CALIB_COUNT, loadCalibration, readRatiosFile, variantKey } from './tool.js';

const RATIOS = [0, 0.1, 0.2, 0.3, 0.4, 0.5];
const METHODS: PruneMethod[] = ['l1', 'reconstruct'];
const RESULTS_DIR = join(modelsDir(), 'compress', 'results');
const START = '<!-- bench:compression:start -->';
const END = '<!-- bench:compression:end -->';
const PAPER_LFW: Record<string, number> = { '0': 99.38, '0.1': 98.85, '0.2': 98.8, '0.3': 98.67, '0.4': 98.17, '0.5': 97.8 };

interface Row {
  name: string;
  ratio: number | null;
  method: PruneMethod | 'none';
  perBlock?: Record<string, number>;
  params: number;
  macs: number;
  bytes: number;
  sha256: string;
  ms1: number;
  ms8: number;
  facesPerSecond1: number;
  facesPerSecond8: number;
  speedup1: number;
  accuracy: number | null;
  std: number | null;
  drop: number | null;
  pruneSeconds: number | null;
}

const log = (line: string): void => {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
};
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function readJson<T>(file: string, fallback: T): T {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : fallback;
}

/** Median latency of each model at batch 1 and 8, measured round-robin (fair under load drift). */
async function latencies(models: { name: string; bytes: Uint8Array }[], input: { c: number; h: number; w: number }, runs: { b1: number; b8: number; rounds: number }): Promise<Map<string, { ms1: number; ms8: number }>> {
  const sessions: ModelSession[] = [];
  for (const m of models) sessions.push(await createSession(m.name, m.bytes));
  const times = models.map(() => ({ b1: [] as number[], b8: [] as number[] }));
  const feed = (n: number): Record<string, { data: Float32Array; dims: number[] }> => {
    const data = new Float32Array(n * input.c * input.h * input.w);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 256;
    return { input: { data, dims: [n, input.c, input.h, input.w] } };
  };
  const f1 = feed(1);
  const f8 = feed(8);
  try {
    for (const s of sessions) {
      await s.run(f1);
      await s.run(f8);
    }
    for (let round = 0; round < runs.rounds; round++) {
      for (const [i, s] of sessions.entries()) {
        for (let k = 0; k < runs.b1; k++) {
          const t = performance.now();
          await s.run(f1);
          times[i]?.b1.push(performance.now() - t);
        }
        for (let k = 0; k < runs.b8; k++) {
          const t = performance.now();
          await s.run(f8);
          times[i]?.b8.push(performance.now() - t);
        }
      }
    }
  } finally {
    for (const s of sessions) await s.release();
  }
  return new Map(models.map((m, i) => [m.name, { ms1: median(times[i]?.b1 ?? []), ms8: median(times[i]?.b8 ?? []) }]));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lfw: { type: 'string', default: DEFAULT_LFW },
      landmarks: { type: 'string', default: '/tmp/facegate-lfw-landmarks.json' },
      'skip-lresnet': { type: 'boolean', default: false },
      'skip-accuracy': { type: 'boolean', default: false },
      extra: { type: 'string', multiple: true, default: [] },
      'from-json': { type: 'boolean', default: false },
    },
  });
  if (values['from-json']) {
    // Re-render the README section and the plot from a previous run's numbers.
    const saved = JSON.parse(readFileSync(join(RESULTS_DIR, 'bench-compression.json'), 'utf8')) as { env: Record<string, string | number>; rows: Row[]; lresnet: LResNetRow[] };
    await writePlot(saved.rows);
    writeReadme(saved.rows, saved.lresnet, saved.env);
    return;
  }
  const started = Date.now();
  const load = os.loadavg()[0] ?? 0;
  mkdirSync(RESULTS_DIR, { recursive: true });
  mkdirSync(join(CACHE_DIR, 'variants'), { recursive: true });
  const registry = ModelRegistry.load();
  const parent = registry.get('dlib-resnet');
  await registry.ensure([parent], log);
  const original = new Uint8Array(readFileSync(registry.pathOf(parent)));

  const analyzer = await FaceAnalyzer.create({ embedder: parent.name, flipAverage: false });
  const data = values['skip-accuracy'] ? undefined : await lfwPairsChips(analyzer, values.lfw as string, values.landmarks as string, log);
  const calib = await loadCalibration(analyzer, values.lfw as string, DEFAULT_CALIB_COUNT, log);
  await analyzer.close();

  // Variants: built once and cached by their recipe; accuracy cached by the file's sha256.
  const accuracyCache = join(CACHE_DIR, 'accuracy.json');
  const accCache = readJson<Record<string, { accuracy: number; std: number }>>(accuracyCache, {});
  const variants: { name: string; ratio: number | null; method: PruneMethod | 'none'; perBlock?: Record<string, number>; bytes: Uint8Array; pruneSeconds: number | null }[] = [];
  const recipes: { name: string; ratios: BlockRatios; method: PruneMethod }[] = [];
  for (const r of RATIOS) for (const m of METHODS) if (r > 0) recipes.push({ name: `dlib-resnet-${m}-${r}`, ratios: r, method: m });
  for (const e of values.extra as string[]) {
    const [name, file] = e.split('=');
    if (!name || !file) throw new Error(`--extra expects name=ratios.json, got ${e}`);
    const method: PruneMethod = name.includes('l1') ? 'l1' : 'reconstruct';
    // name=0.25 (a uniform ratio) or name=ratios.json (per-block ratios).
    recipes.push({ name, ratios: Number.isFinite(Number(file)) ? Number(file) : readRatiosFile(file), method });
  }
  variants.push({ name: 'dlib-resnet', ratio: 0, method: 'none', bytes: original, pruneSeconds: null });
  const timings = readJson<Record<string, number>>(join(CACHE_DIR, 'prune-seconds.json'), {});
  for (const rec of recipes) {
    const key = variantKey(original, rec.ratios, rec.method, calib.label);
    const file = join(CACHE_DIR, 'variants', `${rec.name}-${key}.onnx`);
    let bytes: Uint8Array;
    if (existsSync(file)) bytes = new Uint8Array(readFileSync(file));
    else {
      log(`pruning ${rec.name}`);
      const t = performance.now();
      bytes = rec.method === 'l1' ? pruneL1(original, rec.ratios).bytes : (await pruneReconstruct(original, rec.ratios, calib.chips, { log })).bytes;
      timings[key] = (performance.now() - t) / 1000;
      writeFileSync(file, bytes);
      writeFileSync(join(CACHE_DIR, 'prune-seconds.json'), JSON.stringify(timings, null, 2));
    }
    variants.push({
      name: rec.name,
      ratio: typeof rec.ratios === 'number' ? rec.ratios : null,
      method: rec.method,
      ...(typeof rec.ratios === 'number' ? {} : { perBlock: rec.ratios }),
      bytes,
      pruneSeconds: timings[key] ?? null,
    });
  }
  if (data) {
    for (const v of variants) {
      const key = sha(v.bytes);
      if (accCache[key]) continue;
      const t = performance.now();
      const report = await evaluatePairs(v.bytes, data, { flip: true });
      accCache[key] = { accuracy: report.meanAccuracy, std: report.stdAccuracy };
      writeFileSync(accuracyCache, JSON.stringify(accCache, null, 2));
      log(`${v.name}: LFW pairs-dev ${(report.meanAccuracy * 100).toFixed(2)}% (${((performance.now() - t) / 1000).toFixed(0)} s)`);
    }
  }
  log('latency (round-robin over all variants)');
  const lat = await latencies(variants, { c: 3, h: 150, w: 150 }, { b1: 10, b8: 3, rounds: 12 });
  const base = lat.get('dlib-resnet') as { ms1: number; ms8: number };
  const baseAcc = accCache[sha(original)]?.accuracy ?? null;
  const rows: Row[] = [];
  for (const v of variants) {
    const stats = await graphStats(v.bytes, { input: [1, 3, 150, 150] });
    const l = lat.get(v.name) as { ms1: number; ms8: number };
    const acc = accCache[sha(v.bytes)];
    rows.push({
      name: v.name,
      ratio: v.ratio,
      method: v.method,
      ...(v.perBlock ? { perBlock: v.perBlock } : {}),
      params: stats.params,
      macs: stats.macs,
      bytes: v.bytes.length,
      sha256: sha(v.bytes),
      ms1: l.ms1,
      ms8: l.ms8,
      facesPerSecond1: 1000 / l.ms1,
      facesPerSecond8: 8000 / l.ms8,
      speedup1: base.ms1 / l.ms1,
      accuracy: acc?.accuracy ?? null,
      std: acc?.std ?? null,
      drop: acc && baseAcc !== null ? (baseAcc - acc.accuracy) * 100 : null,
      pruneSeconds: v.pruneSeconds,
    });
  }

  // The paper's backbone with random weights.
  // --skip-lresnet keeps the previous run's LResNet rows (they need no data and change rarely).
  const previous = readJson<{ lresnet?: LResNetRow[] }>(join(RESULTS_DIR, 'bench-compression.json'), {});
  const lresnet: LResNetRow[] = values['skip-lresnet'] ? (previous.lresnet ?? []) : [];
  if (!values['skip-lresnet']) {
    log('LResNet50E-IR (random weights)');
    const full = buildLResNet50EIR();
    const models = RATIOS.map((r) => ({ name: `lresnet50e-ir-l1-${r}`, bytes: r === 0 ? full : pruneL1(full, r).bytes, ratio: r }));
    const l = await latencies(models, { c: 3, h: LRESNET_INPUT.height, w: LRESNET_INPUT.width }, { b1: 2, b8: 1, rounds: 2 });
    const b = l.get(models[0]?.name ?? '') as { ms1: number; ms8: number };
    for (const m of models) {
      const stats = await graphStats(m.bytes, { input: [1, 3, LRESNET_INPUT.height, LRESNET_INPUT.width] });
      const x = l.get(m.name) as { ms1: number; ms8: number };
      lresnet.push({ ratio: m.ratio, params: stats.params, macs: stats.macs, bytes: m.bytes.length, ms1: x.ms1, ms8: x.ms8, speedup1: b.ms1 / x.ms1 });
    }
  }

  const env = {
    date: new Date().toISOString().slice(0, 10),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    node: process.version,
    loadAverageAtStart: Number(load.toFixed(2)),
    seconds: Math.round((Date.now() - started) / 1000),
    calibration: calib.label,
  };
  writeFileSync(join(RESULTS_DIR, 'bench-compression.json'), `${JSON.stringify({ env, rows, lresnet }, null, 2)}\n`);

  await writePlot(rows);
  writeReadme(rows, lresnet, env);
  log(`done in ${env.seconds} s`);
}

interface LResNetRow {
  ratio: number;
  params: number;
  macs: number;
  bytes: number;
  ms1: number;
  ms8: number;
  speedup1: number;
}

async function writePlot(rows: Row[]): Promise<void> {
  const uniform = rows.filter((r) => r.ratio !== null);
  const series = (m: PruneMethod, f: (r: Row) => number | null): [number, number][] =>
    uniform.filter((r) => r.method === m || r.method === 'none').map((r) => [r.ratio as number, f(r)] as [number, number | null]).filter((p): p is [number, number] => p[1] !== null).sort((a, b) => a[0] - b[0]);
  const accSvg = lineChartSvg({
    title: 'dlib-resnet pruned: LFW pairs-dev accuracy (no retraining) vs the paper (retrained)',
    xLabel: 'pruning ratio (conv1 filters removed per residual block)',
    yLabel: 'accuracy %',
    series: [
      { name: 'l1', points: series('l1', (r) => (r.accuracy === null ? null : r.accuracy * 100)) },
      { name: 'reconstruct', points: series('reconstruct', (r) => (r.accuracy === null ? null : r.accuracy * 100)) },
      { name: 'paper (retrained)', points: RATIOS.map((r) => [r, PAPER_LFW[String(r)] as number]), dashed: true },
    ],
    height: 420,
  });
  const speedSvg = lineChartSvg({
    title: 'dlib-resnet pruned: speed-up (median latency, batch 1, CPU)',
    xLabel: 'pruning ratio (conv1 filters removed per residual block)',
    yLabel: 'speed-up ×',
    series: [
      { name: 'l1', points: series('l1', (r) => r.speedup1) },
      { name: 'reconstruct', points: series('reconstruct', (r) => r.speedup1) },
      { name: 'target 1.6×', points: [[0, 1.6], [0.5, 1.6]], dashed: true },
    ],
    height: 360,
  });
  const a = await sharp(Buffer.from(accSvg)).png().toBuffer();
  const b = await sharp(Buffer.from(speedSvg)).png().toBuffer();
  const png = await sharp({ create: { width: 900, height: 780, channels: 3, background: 'white' } })
    .composite([{ input: a, top: 0, left: 0 }, { input: b, top: 420, left: 0 }])
    .png()
    .toBuffer();
  writeFileSync(join(RESULTS_DIR, 'compression.png'), png);
}

/** The issue's targets, evaluated on the measured rows. */
function targetLines(rows: Row[]): string[] {
  const measured = rows.filter((r) => r.drop !== null && r.method !== 'none');
  const within = measured.filter((r) => (r.drop as number) <= 0.5).sort((a, b) => b.speedup1 - a.speedup1)[0];
  const fastest = measured.filter((r) => r.speedup1 >= 1.6).sort((a, b) => (a.drop as number) - (b.drop as number))[0];
  const at05 = measured.filter((r) => r.ratio === 0.5).sort((a, b) => (a.drop as number) - (b.drop as number))[0];
  const out = ['Targets (issue 4):'];
  out.push(
    within
      ? `- ≥ 1.6× faster at ≤ 0.5 points lost: ${within.speedup1 >= 1.6 ? 'MET' : 'MISSED'} — the fastest variant within 0.5 points is ${within.name} (${within.speedup1.toFixed(2)}×, −${(within.drop as number).toFixed(2)} points)${fastest ? `; the most accurate variant at ≥ 1.6× is ${fastest.name} (−${(fastest.drop as number).toFixed(2)} points)` : ''}.`
      : '- ≥ 1.6× faster at ≤ 0.5 points lost: MISSED — no pruned variant stays within 0.5 points.',
  );
  if (at05) out.push(`- ratio 0.5 within 1.0 point: ${(at05.drop as number) <= 1 ? 'MET' : 'MISSED'} — best ${at05.name}, −${(at05.drop as number).toFixed(2)} points (paper −1.58 after 40 epochs of retraining).`);
  return out;
}

function writeReadme(rows: Row[], lresnet: LResNetRow[], env: Record<string, string | number>): void {
  const f = (v: number, d = 2): string => v.toFixed(d);
  const pct = (v: number | null): string => (v === null ? '–' : `${(v * 100).toFixed(2)}%`);
  const lines: string[] = [
    START,
    '## Compression (structured filter pruning)',
    '',
    `Measured with \`npm run bench:compression\` on ${env.date}: ${env.cpu}, ${env.cores} cores, Node ${env.node}; 1-min load average at start ${env.loadAverageAtStart} (the machine was shared: latencies are medians of round-robin runs over all variants, so they compare with each other; absolute values run high). Sessions as the agent creates them (models/README.md benchmark). Accuracy: LFW pairs-dev, 5 folds, flip averaging on, landmarks from MTCNN exactly as \`facegate eval\` (same alignment and no-face fallback; the unpruned row reproduces \`facegate eval\`).`,
    `Calibration for \`reconstruct\`: ${env.calibration}. Speed-up = unpruned median batch-1 latency ÷ this model's. Pruning ratio r removes round(r·C) of the C conv1 filters of each of the 14 residual blocks (and conv2's matching input channels); block outputs (tied to the shortcut) are kept.`,
    '',
    '| model | ratio | method | params | MACs | file | ms b1 | ms b8 | faces/s b1 | faces/s b8 | speed-up b1 | LFW pairs-dev | Δ points | prune s |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) =>
      `| ${r.name} | ${r.ratio ?? 'per-block'} | ${r.method} | ${(r.params / 1e6).toFixed(2)} M | ${(r.macs / 1e6).toFixed(1)} M | ${(r.bytes / 1e6).toFixed(1)} MB | ${f(r.ms1)} | ${f(r.ms8, 1)} | ${f(r.facesPerSecond1, 0)} | ${f(r.facesPerSecond8, 0)} | ${f(r.speedup1)}× | ${pct(r.accuracy)} | ${r.drop === null ? '–' : r.method === 'none' ? '0' : (r.drop >= 0 ? '−' : '+') + f(Math.abs(r.drop))} | ${r.pruneSeconds === null ? '' : f(r.pruneSeconds, 0)} |`,
    ),
    '',
    'Paper (LResNet50E-IR, retrained 40 epochs on CASIA-WebFace), LFW: 99.38 / 98.85 / 98.80 / 98.67 / 98.17 / 97.80 at ratios 0 … 0.5; 43.54% faster for −0.76 points.',
    '',
    '![accuracy and speed-up vs pruning ratio](compress/results/compression.png)',
    '',
    ...targetLines(rows),
    '',
  ];
  if (lresnet.length) {
    lines.push(
      '### The paper\'s backbone: LResNet50E-IR, seeded random weights (112×96)',
      '',
      'Built by `models/compress/lresnet50e-ir.ts`, pruned by the same tool (l1). Its accuracy cannot be measured: there are no trained weights (the paper retrains each pruned network on CASIA-WebFace).',
      '',
      '| ratio | params | MACs | file | ms b1 | ms b8 | speed-up b1 | paper LFW (retrained) |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...lresnet.map((r) => `| ${r.ratio} | ${(r.params / 1e6).toFixed(2)} M | ${(r.macs / 1e9).toFixed(2)} G | ${(r.bytes / 1e6).toFixed(0)} MB | ${f(r.ms1, 0)} | ${f(r.ms8, 0)} | ${f(r.speedup1)}× | ${PAPER_LFW[String(r.ratio)] ?? ''}% |`),
      '',
    );
  }
  lines.push(
    'How the variants are made (`models/compress/`): `l1` ranks each block\'s conv1 filters by L1 norm (conv bias and scale are folded into the weights) and removes the lowest with conv2\'s matching input channels, as the paper does before retraining. `reconstruct` (no retraining) goes block by block from the input side: it runs the already-pruned network on the calibration faces (ONNX copies with the needed tensors exposed as outputs, onnxruntime), chooses the channels to keep by greedy backward elimination on the block\'s least-squares problem (each step drops the channel whose removal, with the others re-fitted, raises the error least: group Optimal Brain Surgeon updates of the inverse Gram matrix), and re-fits conv2\'s weights and bias by ridge least squares (Float64 normal equations + Cholesky in TypeScript) so the block\'s pre-activation output matches the unpruned network\'s; blocks with ratio 0 behind pruned ones are re-fitted too. Up to 20000 sampled output positions per block. (`--head-refit` also re-fits the embedding layer to the unpruned network\'s embeddings in closed form; not a measured gain, off by default.) The block output channels tied to the shortcut are not pruned (stage-wide pruning of those channels is not implemented).',
    '',
    'Latency does not follow MACs. onnxruntime\'s CPU convolutions (MLAS, channel blocks of 8) run the 29/58/115/230-channel layers that ratio 0.1 leaves slower than the unpruned 32/64/128/256 ones, so ratios 0.1–0.3 are slower than the unpruned network despite 9–27% fewer MACs; ratios that keep multiples of 8 (0.25: 24/48/96/192, 0.5: 16/32/64/128) are faster. A separate round-robin check with the same session settings (batch 1, l1 variants, kept channels per stage): 32/56/112/232 → 1.07×, 24/48/96/192 → 1.18×, 24/48/104/208 → 1.13×, 16/48/96/192 → 1.30×, 16/32/96/192 → 1.38×, 16/32/64/128 → 1.64×. With the block outputs left intact, 1.6× needs about half of every block\'s filters, where least-squares recovery without retraining still loses about 2.6 points; pruning the tied stage channels (shortcut + every block of a stage, the paper\'s other option) is not implemented here.',
    '',
    'Commands: `npx facegate models prune --model dlib-resnet --ratio 0.3 --method reconstruct --out NAME` (registers models/pruned/NAME.onnx in models/manifest.json; `--ratios-per-block FILE` for per-block ratios); `npx facegate models sensitivity --model dlib-resnet` (curves, plot and derived per-block ratios); `npm run bench:compression` (this section; `-- --from-json` re-renders it from the saved numbers).',
    '',
  );
  lines.push(
    'Sensitivity (`npx facegate models sensitivity --model dlib-resnet --ratios 0.25,0.5 --folds 1 --targets 0.25,0.375,0.5`): l1 pruning of one block at a time, accuracy drop on pairs-dev fold 1 (600 pairs, flip off, best threshold on the fold; ±0.17 points is one pair). Rows `…-sens-T` use the per-block ratios derived for overall ratio T (MAC-weighted, greedy in steps of 0.25 so channel counts stay multiples of 8; `models/compress/results/sensitivity-ratios-T.json`), pruned with `reconstruct`. Fold 1 is also part of the 5-fold accuracy above (the split is only used to pick ratios).',
    '',
    '![sensitivity of each block](compress/results/sensitivity.png)',
    '',
    'Full numbers: `models/compress/results/bench-compression.json`, `models/compress/results/sensitivity.json`.',
    END,
  );
  const readme = join(modelsDir(), 'README.md');
  const text = existsSync(readme) ? readFileSync(readme, 'utf8') : '# facegate models\n';
  const section = lines.join('\n');
  const s = text.indexOf(START);
  const e = text.indexOf(END);
  const out = s >= 0 && e > s ? text.slice(0, s) + section + text.slice(e + END.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(readme, out);
}

await main();
