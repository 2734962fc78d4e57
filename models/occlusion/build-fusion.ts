// `npm run models:fusion [-- --embedders A,B]`: calibrates the score fusion of two embedders
// (agent/recognition/score-fusion.ts). Every pair of different people among the occlusion
// calibration faces (LFW people in no pairs-dev pair, clean) is scored as the agent scores it —
// each embedder's distance as a log10 FAR on its own plain-space curve, the two averaged — and the
// fused scores' own false-accept curve is written to models/occlusion/A+B.fusion.json. The agent
// maps a fused score through it, so its match threshold keeps the false-accept rate it has with
// the primary embedder alone. Needs ../shared/data/lfw and both embedders' occlusion dictionaries;
// the result is committed.
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { modelsDir } from '../../agent/paths.js';
import { euclideanDistance } from '../../agent/recognition/embedder.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { CLEAN_PATTERN, type OcclusionDictionary } from '../../agent/recognition/occlusion-masks.js';
import { FUSION_FORMAT, type FusionCalibrationFile, fusionCommand, fusionPath } from '../../agent/recognition/score-fusion.js';
import { calibrationPlainEmbedder } from './embedder-head.js';
import { CALIBRATION_OPTIONS, type CalibrationArgs, calibrationArgs, occlusionCalibration } from './calibration.js';
import { FAR_GRID, farCurve } from './fit.js';

const USAGE = 'usage: npm run models:fusion -- [--embedders A,B] [--lfw DIR] [--count N] [--seed S] [--draws D]';

interface Side {
  name: string;
  sha256: string;
  /** Clean plain embedding per calibration photo. */
  embeddings: Map<string, Float32Array>;
  curves: OcclusionDictionary;
}

async function embedSide(registry: ModelRegistry, name: string, calibration: CalibrationArgs, log: (line: string) => void): Promise<Side> {
  const analyzer = await FaceAnalyzer.create({ registry, embedder: name });
  try {
    const entry = analyzer.embedder.entry;
    const curves = analyzer.occlusion;
    if (!curves) throw new Error(`${name} has no occlusion dictionary (npm run models:occlusion -- --model ${name})`);
    const cal = await occlusionCalibration(analyzer, calibration, log);
    const plainOf = calibrationPlainEmbedder(cal, registry.pathOf(entry), name);
    const embeddings = new Map(cal.files.map((file, i) => [file, plainOf('clean', i)]));
    return { name, sha256: entry.sha256, embeddings, curves };
  } finally {
    await analyzer.close();
  }
}

export async function buildFusion(argv: readonly string[], log: (line: string) => void = (l) => console.log(l)): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      embedders: { type: 'string', default: 'dlib-resnet,mobilefacenet' },
      // The occlusion dictionaries' calibration options, so their cached calibration faces are reused.
      lfw: CALIBRATION_OPTIONS.lfw,
      count: CALIBRATION_OPTIONS.count,
      seed: CALIBRATION_OPTIONS.seed,
      draws: CALIBRATION_OPTIONS.draws,
    },
    strict: true,
  });
  const names = (values.embedders as string).split(',');
  if (names.length !== 2 || names[0] === names[1] || names.some((n) => !n)) throw new Error(`--embedders: name two different embedders; ${USAGE}`);
  const [primaryName, companionName] = names as [string, string];
  const calibration = calibrationArgs(values, USAGE);
  const registry = ModelRegistry.load();
  const started = Date.now();
  const a = await embedSide(registry, primaryName, calibration, log);
  const b = await embedSide(registry, companionName, calibration, log);
  const files = [...a.embeddings.keys()].filter((f) => b.embeddings.has(f));
  log(`${files.length} calibration faces embedded by both; scoring ${((files.length * (files.length - 1)) / 2).toLocaleString('en')} impostor pairs`);
  const ea = files.map((f) => a.embeddings.get(f) as Float32Array);
  const eb = files.map((f) => b.embeddings.get(f) as Float32Array);
  const fused = new Float64Array((files.length * (files.length - 1)) / 2);
  const single = [new Float64Array(fused.length), new Float64Array(fused.length)];
  let n = 0;
  for (let i = 0; i < files.length; i++) {
    for (let j = i + 1; j < files.length; j++, n++) {
      const fa = a.curves.log10Far(CLEAN_PATTERN, euclideanDistance(ea[i] as Float32Array, ea[j] as Float32Array));
      const fb = b.curves.log10Far(CLEAN_PATTERN, euclideanDistance(eb[i] as Float32Array, eb[j] as Float32Array));
      fused[n] = (fa + fb) / 2;
      (single[0] as Float64Array)[n] = fa;
      (single[1] as Float64Array)[n] = fb;
    }
  }
  fused.sort();
  const curve = farCurve(Array.from(fused));
  // How far the fused curve sits from the diagonal: the share of impostors under a few scores.
  const shareAt = (scores: Float64Array, t: number): number => scores.reduce((s, v) => s + (v <= t ? 1 : 0), 0) / scores.length;
  const checks = [-3, -2.5, -2, -1.5].map((t) => ({
    log10Far: t,
    impostorsBelow: { fused: shareAt(fused, t), [a.name]: shareAt(single[0] as Float64Array, t), [b.name]: shareAt(single[1] as Float64Array, t) },
  }));
  const file: FusionCalibrationFile = {
    format: FUSION_FORMAT,
    embedders: [
      { name: a.name, sha256: a.sha256 },
      { name: b.name, sha256: b.sha256 },
    ],
    far: { ...FAR_GRID, fused: curve },
    provenance: {
      command: `${fusionCommand(a.name, b.name)}${argv.some((x) => !x.startsWith('--embedders')) ? ` (${argv.join(' ')})` : ''}`,
      calibration: `${relative(process.cwd(), calibration.lfw) || calibration.lfw}: first image of people in no pairs-dev pair, ${files.length} faces, clean, every pair of them (${fused.length} impostor pairs)`,
      scores: 'each embedder: log10 FAR of the plain-space distance on its occlusion dictionary\'s curve; fused: their mean',
      checks,
      seconds: Math.round((Date.now() - started) / 1000),
    },
  };
  const out = join(modelsDir(), fusionPath(a.name, b.name));
  writeFileSync(out, `${JSON.stringify(file, null, 1)}\n`);
  for (const c of checks) {
    log(`score ≤ ${c.log10Far}: impostors fused ${(c.impostorsBelow.fused * 100).toFixed(3)}%, ${a.name} ${((c.impostorsBelow[a.name] as number) * 100).toFixed(3)}%, ${b.name} ${((c.impostorsBelow[b.name] as number) * 100).toFixed(3)}%`);
  }
  log(`wrote ${relative(process.cwd(), out)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildFusion(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`models:fusion FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
