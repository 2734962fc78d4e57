// Compares chip templates and flip averaging on a pairs file without re-running the detector for
// each variant: landmarks are detected once (cached as JSON), then every variant only re-warps
// and re-embeds. Variants: the fitted and naive dlib templates, the fitted one zoomed/shifted, and
// flip averaging on/off.
//
//   npx tsx models/calibrate/sweep-template.ts [--lfw ../shared/data/lfw] [--cache /tmp/lfw-landmarks.json] [--json out.json]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pickCentralFace } from '../../agent/evaluation/run-eval.js';
import { readPairsFile } from '../../agent/evaluation/pairs.js';
import { kFoldVerification } from '../../agent/evaluation/verification.js';
import { euclideanDistance } from '../../agent/recognition/embedder.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { alignmentTransform, type ChipTemplate, warpChips } from '../../agent/vision/align.js';
import type { Point } from '../../agent/vision/geometry.js';
import { decodeImage } from '../../agent/vision/image.js';
import { loadTemplate } from '../../agent/vision/templates.js';

type Landmarks = [Point, Point, Point, Point, Point];

/** The template scaled about its centroid (zoom > 1: the face fills more of the chip) and shifted. */
function variant(t: ChipTemplate, name: string, zoom: number, dx: number, dy: number): ChipTemplate {
  const cx = t.points.reduce((s, p) => s + p.x, 0) / 5;
  const cy = t.points.reduce((s, p) => s + p.y, 0) / 5;
  return { ...t, name, points: t.points.map((p) => ({ x: cx + (p.x - cx) * zoom + dx, y: cy + (p.y - cy) * zoom + dy })) as unknown as ChipTemplate['points'] };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lfw: { type: 'string', default: join('..', 'shared', 'data', 'lfw') },
      cache: { type: 'string', default: '/tmp/facegate-lfw-landmarks.json' },
      json: { type: 'string' },
    },
  });
  const lfw = values.lfw as string;
  const pairs = readPairsFile(join(lfw, 'pairs-dev.txt'));
  const files = [...new Set(pairs.pairs.flatMap((p) => [p.first, p.second]))].sort();
  const analyzer = await FaceAnalyzer.create({ flipAverage: false });

  let landmarks: Record<string, Landmarks | null>;
  if (existsSync(values.cache as string)) {
    landmarks = JSON.parse(readFileSync(values.cache as string, 'utf8')) as Record<string, Landmarks | null>;
  } else {
    landmarks = {};
    for (const f of files) {
      const img = await decodeImage(join(lfw, 'images', f));
      landmarks[f] = pickCentralFace(await analyzer.detect(img), img.width, img.height)?.landmarks ?? null;
    }
    writeFileSync(values.cache as string, JSON.stringify(landmarks));
  }
  const missing = files.filter((f) => !landmarks[f]);
  console.error(`${files.length} images, ${missing.length} without a face (left out of this sweep)`);

  const fitted = loadTemplate('dlib-150-mtcnn');
  const variants: { template: ChipTemplate; flip: boolean }[] = [
    { template: fitted, flip: true },
    { template: fitted, flip: false },
    { template: loadTemplate('dlib-150-naive'), flip: true },
    { template: loadTemplate('dlib-150-naive'), flip: false },
    ...[0.96, 0.98, 1.02, 1.04].map((z) => ({ template: variant(fitted, `fitted zoom ${z}`, z, 0, 0), flip: true })),
    ...[-2, 2].map((dy) => ({ template: variant(fitted, `fitted dy ${dy}`, 1, 0, dy), flip: true })),
  ];
  const rows: { template: string; flip: boolean; accuracy: number; std: number; tar: number }[] = [];
  for (const v of variants) {
    const emb = new Map<string, Float32Array>();
    const embedder = analyzer.embedder;
    const saved = embedder.options.flipAverage;
    (embedder.options as { flipAverage: boolean }).flipAverage = v.flip;
    for (const f of files) {
      const lm = landmarks[f];
      if (!lm) continue;
      const img = await decodeImage(join(lfw, 'images', f));
      const [chip] = warpChips(analyzer.cv, img, [alignmentTransform(lm, v.template)], v.template.width, v.template.height);
      const [e] = await embedder.embed([chip as NonNullable<typeof chip>]);
      emb.set(f, e as Float32Array);
    }
    (embedder.options as { flipAverage: boolean }).flipAverage = saved;
    const scored = pairs.pairs
      .filter((p) => emb.has(p.first) && emb.has(p.second))
      .map((p) => ({ fold: p.fold, same: p.same, distance: euclideanDistance(emb.get(p.first) as Float32Array, emb.get(p.second) as Float32Array) }));
    const r = kFoldVerification(scored);
    rows.push({ template: v.template.name, flip: v.flip, accuracy: r.meanAccuracy, std: r.stdAccuracy, tar: r.tarAtFar[0]?.tar ?? 0 });
    console.log(`| ${v.template.name} | ${v.flip ? 'on' : 'off'} | ${(r.meanAccuracy * 100).toFixed(2)}% ± ${(r.stdAccuracy * 100).toFixed(2)} | ${((r.tarAtFar[0]?.tar ?? 0) * 100).toFixed(2)}% |`);
  }
  await analyzer.close();
  if (values.json) writeFileSync(values.json, `${JSON.stringify(rows, null, 2)}\n`);
}

await main();
