// `npm run eval:occlusion-oracle`: how far can masking go with this embedder, knowing exactly which
// pixels an occluder covers? For LFW pairs-dev with occluded probes (built by `facegate occlude`),
// every probe aligned by its clean original's landmarks (FROM's protocol), the verification
// accuracy with no masking and with the occluded pixels — read off the difference between the
// probe and its clean original, so an oracle the agent never has — painted grey in both the probe
// and the gallery chip, so the embedder compares the same visible part of both faces. An upper
// bound for any masking of the input image; the feature masks of occlusion-aware matching
// (models/occlusion/fit.ts) are measured by `npm run eval:occlusion`. Prints a table, writes JSON
// and a section of models/README.md.
import { existsSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readPairsFile } from '../../agent/evaluation/pairs.js';
import { cachedCentralFace } from '../../agent/evaluation/run-eval.js';
import { kFoldVerification, type ScoredPair, type VerificationReport } from '../../agent/evaluation/verification.js';
import { modelsDir } from '../../agent/paths.js';
import { euclideanDistance } from '../../agent/recognition/embedder.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { decodeImage, type RgbImage } from '../../agent/vision/image.js';
import type { DetectedFace } from '../../agent/vision/mtcnn.js';
import { writeReadmeSection } from '../bench/readme-section.js';
import { DEFAULT_LFW } from '../compress/lfw.js';
import { changedPixels } from './calibration.js';

const USAGE = 'usage: npm run eval:occlusion-oracle -- [--lfw DIR] [--occluded DIR] [--sets random40,mask] [--model NAME] [--limit PAIRS] [--json PATH] [--no-readme]';
const GREY = 128;

interface SetResult {
  set: string;
  pairs: number;
  /** Pairs left out because the clean original of a photo has no detected face. */
  skipped: number;
  /** Mean share of the probe chip's pixels the occluder changed. */
  occludedShare: number;
  plain: VerificationReport;
  oracle: VerificationReport;
}

function paintGrey(chip: RgbImage, where: Uint8Array): RgbImage {
  const data = new Uint8Array(chip.data);
  for (let i = 0; i < where.length; i++) if (where[i]) data.fill(GREY, 3 * i, 3 * i + 3);
  return { ...chip, data };
}

/** `faces`: the clean photos' detected faces, shared by the sets. */
async function measureSet(analyzer: FaceAnalyzer, faces: Map<string, DetectedFace | null>, lfw: string, probeDir: string, set: string, limit: number | undefined, log: (l: string) => void): Promise<SetResult> {
  const images = join(lfw, 'images');
  // --limit takes pairs spread evenly over the file, so every fold (and both kinds of pair) is in.
  const all = readPairsFile(join(lfw, 'pairs-dev.txt')).pairs;
  const pairs = limit === undefined || limit >= all.length ? all : Array.from({ length: limit }, (_, i) => all[Math.floor((i * all.length) / limit)] as (typeof all)[number]);
  const cleanFace = (rel: string): Promise<DetectedFace | undefined> => cachedCentralFace(analyzer, faces, rel, () => decodeImage(join(images, rel)));
  const chip = async (dir: string, rel: string, face: DetectedFace): Promise<RgbImage> => analyzer.chips(await decodeImage(join(dir, rel)), [face]).chips[0] as RgbImage;
  const plain: ScoredPair[] = [];
  const oracle: ScoredPair[] = [];
  let skipped = 0;
  let share = 0;
  for (const [n, p] of pairs.entries()) {
    const [gFace, qFace] = [await cleanFace(p.first), await cleanFace(p.second)];
    if (!gFace || !qFace) {
      skipped++;
      continue;
    }
    const gallery = await chip(images, p.first, gFace);
    const probe = await chip(probeDir, p.second, qFace);
    const occluded = changedPixels(await chip(images, p.second, qFace), probe);
    share += occluded.reduce((s, v) => s + v, 0) / occluded.length;
    const [g, q, gm, qm] = await analyzer.embedder.embedFaces([gallery, probe, paintGrey(gallery, occluded), paintGrey(probe, occluded)]);
    plain.push({ fold: p.fold, same: p.same, distance: euclideanDistance(g?.embedding ?? [], q?.embedding ?? []) });
    oracle.push({ fold: p.fold, same: p.same, distance: euclideanDistance(gm?.embedding ?? [], qm?.embedding ?? []) });
    if ((n + 1) % 500 === 0) log(`${set}: ${n + 1}/${pairs.length} pairs`);
  }
  const measured = pairs.length - skipped;
  return { set, pairs: measured, skipped, occludedShare: share / Math.max(1, measured), plain: kFoldVerification(plain), oracle: kFoldVerification(oracle) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lfw: { type: 'string', default: DEFAULT_LFW },
      occluded: { type: 'string', default: join('..', 'occluded') },
      sets: { type: 'string', default: 'random40,mask' },
      model: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'string', default: join(modelsDir(), 'occlusion', 'oracle-results.json') },
      'no-readme': { type: 'boolean' },
    },
    strict: true,
  });
  const lfw = values.lfw as string;
  if (!existsSync(join(lfw, 'pairs-dev.txt'))) throw new Error(`${lfw}/pairs-dev.txt not found: pass --lfw DIR; ${USAGE}`);
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new Error(`--limit ${values.limit}: expected a positive number of pairs; ${USAGE}`);
  const log = (l: string): void => console.log(`[eval:occlusion-oracle ${new Date().toISOString().slice(11, 19)}] ${l}`);
  const started = Date.now();
  const analyzer = await FaceAnalyzer.create({ ...(values.model ? { embedder: values.model } : {}), occlusionMasks: false });
  const results: SetResult[] = [];
  const faces = new Map<string, DetectedFace | null>();
  try {
    for (const set of (values.sets as string).split(',')) {
      const dir = join(values.occluded as string, `${set}-lfw`);
      if (!existsSync(dir)) throw new Error(`${dir} not found: build it with npx facegate occlude --images ${lfw}/images --out ${dir} --kind ${set} --seed 1 --pairs ${lfw}/pairs-dev.txt --probes-only`);
      results.push(await measureSet(analyzer, faces, lfw, dir, set, limit, log));
    }
  } finally {
    await analyzer.close();
  }
  const pct = (v: number): string => `${(v * 100).toFixed(2)}%`;
  const model = analyzer.embedder.entry.name;
  const table = [
    '| probe set | pairs | probe chip occluded | no masking | occluded pixels grey in probe and gallery (oracle) |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...results.map((r) => `| ${r.set} | ${r.pairs} | ${pct(r.occludedShare)} | ${pct(r.plain.meanAccuracy)} ± ${pct(r.plain.stdAccuracy)} | ${pct(r.oracle.meanAccuracy)} ± ${pct(r.oracle.stdAccuracy)} |`),
  ].join('\n');
  console.log(`\n${table}\n`);
  const command = `npm run eval:occlusion-oracle${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const jsonPath = resolve(values.json as string);
  writeFileSync(jsonPath, `${JSON.stringify({ date: new Date().toISOString(), command, model, seconds: Math.round((Date.now() - started) / 1000), results }, null, 1)}\n`);
  log(`wrote ${relative(process.cwd(), jsonPath)}`);
  if (!values['no-readme'] && limit === undefined) {
    writeReadmeSection(
      join(modelsDir(), 'README.md'),
      'eval:occlusion-oracle',
      `### How far input masking can go (oracle)\n\nMeasured with \`${command}\` on ${new Date().toISOString().slice(0, 10)} (${model}; JSON: models/occlusion/oracle-results.json). LFW pairs-dev, every probe aligned by its clean original's landmarks; "oracle": the pixels the occluder changed (read off the probe and its clean original, which the agent never has) painted grey in both the probe and the gallery chip, so both faces show the embedder the same visible part. It bounds what masking the input image can recover with this embedder.\n\n${table}`,
    );
    log('updated models/README.md');
  }
}

main().catch((err: unknown) => {
  console.error(`eval:occlusion-oracle FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
