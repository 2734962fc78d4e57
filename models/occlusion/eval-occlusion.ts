// `npm run eval:occlusion`: the paper's Table 2/3 measured here. For LFW pairs-dev clean and with
// occluded probes (Occ-LFW = random40, Mask-LFW, Sunglasses-LFW, built by `facegate occlude`), the
// verification accuracy with no masking and with occlusion-aware matching (`facegate eval` does
// both in one run), each occluded set with the probes' landmarks detected on the probe (the
// agent's path) and taken from the clean original (FROM's protocol: recognition alone); and
// masked identification on the real masked photos (RMFD subset: gallery =
// unmasked photos, probes = masked photos; rank-1 and verification accuracy). Prints the table,
// writes JSON and the table into models/README.md.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { countPatterns, type EvalResult, maskedScore, newEvalCache, pickCentralFace, runVerificationEval } from '../../agent/evaluation/run-eval.js';
import { readPairsFile } from '../../agent/evaluation/pairs.js';
import { accuracyAt, kFoldVerification, type ScoredPair, tarAtFar, type VerificationReport } from '../../agent/evaluation/verification.js';
import { modelsDir } from '../../agent/paths.js';
import { euclideanDistance, type FaceEmbeddingResult } from '../../agent/recognition/embedder.js';
import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { thresholdsFor } from '../../agent/recognition/matcher.js';
import { CLEAN_PATTERN, OcclusionDictionary } from '../../agent/recognition/occlusion-masks.js';
import { fusionPath, ScoreFusion } from '../../agent/recognition/score-fusion.js';
import { warpChips } from '../../agent/vision/align.js';
import { writeReadmeSection } from '../bench/readme-section.js';
import type { RgbImage } from '../../agent/vision/image.js';

const USAGE = 'usage: npm run eval:occlusion -- [--models NAME,NAME] [--lfw DIR] [--occluded DIR] [--masked DIR] [--sets clean,random40,mask,sunglasses] [--alignments detected,clean-original] [--fuse NAME,NAME|none] [--json PATH] [--no-readme]';

const ALIGNMENTS = ['detected', 'clean-original'] as const;
type Alignment = (typeof ALIGNMENTS)[number];

/** Border added around the tight masked-face crops before detection (fraction of the side). */
const PAD = 0.3;

interface Row {
  set: string;
  probes: string;
  /** Where the probes' landmarks came from: the occluded probe itself (the agent's path) or its clean original (FROM's protocol). */
  alignment: Alignment;
  model: string;
  plain: number;
  plainStd: number;
  masked: number | null;
  maskedStd: number | null;
  noFace: number;
  images: number;
  probePatterns: Record<string, number> | null;
  /**
   * Accuracy of the agent's own decision instead of each fold's best threshold: the occlusion-aware
   * score at the false-accept rate of the embedder's match threshold (models/manifest.json); for
   * the fusion, the fused score through its calibration at the first embedder's.
   */
  atAgentThreshold?: number;
}

interface MaskedIdentification {
  model: string;
  people: number;
  gallery: number;
  probes: number;
  noFace: { gallery: number; probes: number };
  probePatterns: Record<string, number>;
  plain: IdentificationSummary;
  masked: IdentificationSummary | null;
}

interface IdentificationSummary {
  rank1: number;
  verification: VerificationReport;
  tarAtFar1e3AllPairs: number;
}

/** Probe × gallery scores as log10 FAR (plain and occlusion-aware) with each photo's person, for fusion; not in the JSON. */
interface IdentificationScores {
  probePeople: number[];
  galleryPeople: number[];
  plain: number[][];
  masked: number[][];
}

/** Two embedders' scores of the same comparisons fused: the mean of their log10 false-accept rates (the geometric mean of the FARs). */
function fuse(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new Error(`score fusion: ${a.length} against ${b.length} scores`);
  return a.map((v, i) => (v + (b[i] as number)) / 2);
}

/** A tight crop padded by PAD on every side with its own edge pixels, so the detector sees a whole face. */
async function padded(file: string): Promise<RgbImage> {
  const meta = await sharp(file).metadata();
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  const px = Math.round(PAD * w);
  const py = Math.round(PAD * h);
  const { data, info } = await sharp(file).removeAlpha().extend({ top: py, bottom: py, left: px, right: px, extendWith: 'copy' }).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** The face of a padded crop; without a detection, the original crop resized to the chip. */
async function embedCrop(analyzer: FaceAnalyzer, file: string): Promise<{ result: FaceEmbeddingResult; found: boolean }> {
  const image = await padded(file);
  const face = pickCentralFace(await analyzer.detect(image), image.width, image.height);
  if (face) return { result: (await analyzer.embedFaces(image, [face]))[0] as FaceEmbeddingResult, found: true };
  const { width, height } = analyzer.embedder.chip;
  // The original crop (inside the padding) resized to the chip.
  const sx = (width * (1 + 2 * PAD)) / image.width;
  const sy = (height * (1 + 2 * PAD)) / image.height;
  const [chip] = warpChips(analyzer.cv, image, [[sx, 0, -PAD * width, 0, sy, -PAD * height]], width, height);
  return { result: (await analyzer.embedder.embedFaces([chip as RgbImage]))[0] as FaceEmbeddingResult, found: false };
}

export async function maskedIdentification(analyzer: FaceAnalyzer, dir: string, log: (l: string) => void): Promise<MaskedIdentification & { scores?: IdentificationScores }> {
  const people = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const list = (p: string, sub: string): string[] => {
    const d = join(dir, p, sub);
    return existsSync(d) ? readdirSync(d).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().map((f) => join(d, f)) : [];
  };
  type Item = { person: number; face: FaceEmbeddingResult };
  const gallery: Item[] = [];
  const probes: Item[] = [];
  const noFace = { gallery: 0, probes: 0 };
  for (const [person, name] of people.entries()) {
    for (const [sub, into, key] of [['unmasked', gallery, 'gallery'], ['masked', probes, 'probes']] as const) {
      for (const file of list(name, sub)) {
        const { result, found } = await embedCrop(analyzer, file);
        if (!found) noFace[key]++;
        into.push({ person, face: result });
      }
    }
    log(`masked set: ${name} done`);
  }
  const masks = analyzer.occlusion;
  // Distance matrices (probe × gallery): plain distances, and with masks the log10 FAR of each
  // pair's distance in the space the probe's predicted occlusion chooses (see maskedScore).
  const plainD = probes.map((p) => gallery.map((g) => euclideanDistance(p.face.embedding, g.face.embedding)));
  const maskedD = masks ? probes.map((p) => gallery.map((g) => maskedScore(masks, g.face, p.face))) : undefined;
  const probePatterns = masks ? countPatterns(masks, probes.map((p) => p.face)) : {};
  // Rank-1 over the whole gallery; verification on balanced pairs (every genuine masked × unmasked
  // pair and as many impostor pairs, spread evenly over the other people's photos, LFW-style), with
  // 5 folds by probe so a threshold is never chosen on the probe it is tested on; TAR @ FAR on all pairs.
  const summarise = (d: number[][]): IdentificationSummary => summariseIdentification(d, probes.map((p) => p.person), gallery.map((g) => g.person));
  return {
    model: analyzer.embedder.entry.name,
    people: people.length,
    gallery: gallery.length,
    probes: probes.length,
    noFace,
    probePatterns,
    plain: summarise(plainD),
    masked: maskedD ? summarise(maskedD) : null,
    ...(masks && maskedD
      ? { scores: { probePeople: probes.map((p) => p.person), galleryPeople: gallery.map((g) => g.person), plain: plainD.map((r) => r.map((d) => masks.log10Far(CLEAN_PATTERN, d))), masked: maskedD } }
      : {}),
  };
}

/**
 * Rank-1 over the whole gallery; verification on balanced pairs (every genuine masked × unmasked
 * pair and as many impostor pairs, spread evenly over the other people's photos, LFW-style), with
 * 5 folds by probe so a threshold is never chosen on the probe it is tested on; TAR @ FAR on all
 * pairs. `d` is probe × gallery, lower = more alike.
 */
function summariseIdentification(d: readonly number[][], probePeople: readonly number[], galleryPeople: readonly number[]): IdentificationSummary {
  let hits = 0;
  const balanced: ScoredPair[] = [];
  const all: ScoredPair[] = [];
  probePeople.forEach((person, i) => {
    const row = d[i] as number[];
    let best = 0;
    const impostors: number[] = [];
    row.forEach((v, j) => {
      if (v < (row[best] as number)) best = j;
      const same = galleryPeople[j] === person;
      all.push({ fold: i % 5, same, distance: v });
      if (same) balanced.push({ fold: i % 5, same, distance: v });
      else impostors.push(v);
    });
    const genuine = row.length - impostors.length;
    for (let k = 0; k < genuine; k++) balanced.push({ fold: i % 5, same: false, distance: impostors[Math.floor(((k + 0.5) * impostors.length) / genuine)] as number });
    if (galleryPeople[best] === person) hits++;
  });
  return { rank1: hits / probePeople.length, verification: kFoldVerification(balanced), tarAtFar1e3AllPairs: tarAtFar(all, 1e-3).tar };
}

const pct = (v: number | null): string => (v === null ? '—' : `${(v * 100).toFixed(2)}%`);

function table(rows: readonly Row[], idents: readonly MaskedIdentification[]): string {
  const lines = [
    "| probe set | embedder | probe landmarks | no face (probes) | no masking | occlusion-aware matching | occlusion-aware, at the agent's threshold | probes predicted occluded |",
    '| --- | --- | --- | ---: | ---: | ---: | ---: | --- |',
    ...rows.map((r) => {
      const occluded = r.probePatterns ? Object.entries(r.probePatterns).filter(([k]) => k !== CLEAN_PATTERN).map(([k, v]) => `${k} ${v}`).join(', ') || 'none' : '—';
      return `| ${r.set} | ${r.model} | ${r.alignment === 'detected' ? 'detected' : 'clean original'} | ${r.noFace} | ${pct(r.plain)} ± ${pct(r.plainStd)} | ${r.masked === null ? '—' : `**${pct(r.masked)}** ± ${pct(r.maskedStd)}`} | ${pct(r.atAgentThreshold ?? null)} | ${occluded} |`;
    }),
  ];
  const first = idents[0];
  if (first) {
    lines.push(
      '',
      `Real masked faces (${first.people} people; gallery ${first.gallery} unmasked photos, probes ${first.probes} masked photos; tight crops padded ${PAD * 100}% with their edge pixels; no face detected: gallery ${first.noFace.gallery}, probes ${first.noFace.probes}, embedded from the crop itself):`,
      '',
      '| embedder | matching | rank-1 identification | verification accuracy (balanced masked × unmasked pairs, 5-fold thresholds) | TAR @ FAR 1e-3 (all pairs) |',
      '| --- | --- | ---: | ---: | ---: |',
    );
    for (const ident of idents) {
      lines.push(`| ${ident.model} | no masking | ${pct(ident.plain.rank1)} | ${pct(ident.plain.verification.meanAccuracy)} | ${pct(ident.plain.tarAtFar1e3AllPairs)} |`);
      if (ident.masked) {
        lines.push(
          `| ${ident.model} | occlusion-aware (${Object.keys(ident.probePatterns).length ? `probes: ${Object.entries(ident.probePatterns).map(([k, v]) => `${k} ${v}`).join(', ')}` : "each embedder's own prediction"}) | **${pct(ident.masked.rank1)}** | **${pct(ident.masked.verification.meanAccuracy)}** | ${pct(ident.masked.tarAtFar1e3AllPairs)} |`,
        );
      }
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      models: { type: 'string' },
      lfw: { type: 'string', default: join('..', 'shared', 'data', 'lfw') },
      occluded: { type: 'string', default: join('..', 'occluded') },
      masked: { type: 'string', default: join('..', 'shared', 'data', 'masked') },
      sets: { type: 'string', default: 'clean,random40,mask,sunglasses' },
      alignments: { type: 'string', default: ALIGNMENTS.join(',') },
      json: { type: 'string', default: join(modelsDir(), 'occlusion', 'eval-results.json') },
      fuse: { type: 'string' },
      'no-readme': { type: 'boolean' },
    },
    strict: true,
  });
  const lfw = values.lfw as string;
  if (!existsSync(join(lfw, 'pairs-dev.txt'))) throw new Error(`${lfw}/pairs-dev.txt not found: pass --lfw DIR (../shared/data/lfw); ${USAGE}`);
  const log = (l: string): void => console.log(`[eval:occlusion ${new Date().toISOString().slice(11, 19)}] ${l}`);
  const registry = ModelRegistry.load();
  // Default: every embedder with occlusion masks (the default embedder first), else the default one.
  const models = values.models
    ? (values.models as string).split(',')
    : [registry.defaultFor('embedder'), ...registry.models.filter((m) => m.role === 'embedder' && !m.default && m.occlusion)].map((m) => m.name);
  const alignments = (values.alignments as string).split(',').map((a) => {
    if (!(ALIGNMENTS as readonly string[]).includes(a)) throw new Error(`--alignments: unknown "${a}", expected ${ALIGNMENTS.join(' or ')}; ${USAGE}`);
    return a as Alignment;
  });
  // Score fusion of two embedders (each pair scored by the mean of their log10 FARs): by default
  // dlib-resnet with mobilefacenet when both are measured.
  const fusePair = values.fuse === 'none' ? [] : ((values.fuse as string | undefined) ?? 'dlib-resnet,mobilefacenet').split(',');
  if (fusePair.length !== 0 && fusePair.length !== 2) throw new Error(`--fuse: name two embedders (or none); ${USAGE}`);
  const fused = fusePair.length === 2 && fusePair.every((m) => models.includes(m)) ? (fusePair as [string, string]) : undefined;
  const folds = readPairsFile(join(lfw, 'pairs-dev.txt')).pairs.map((p) => ({ fold: p.fold, same: p.same }));
  /** Accuracy of the pairs' log10 FAR scores (in pairs-dev order) decided at one log10 FAR. */
  const atThreshold = (scores: readonly number[], log10Far: number): number => accuracyAt(scores.map((distance, i) => ({ ...(folds[i] as { fold: number; same: boolean }), distance })), log10Far);
  /** Per probe set and alignment, each embedder's pair scores (log10 FAR) and its row. */
  const runs = new Map<string, Map<string, { row: Row; scores: NonNullable<EvalResult['pairLog10Far']> }>>();
  const identScores = new Map<string, IdentificationScores>();
  const started = Date.now();
  const rows: Row[] = [];
  const idents: MaskedIdentification[] = [];
  for (const model of models) {
    const analyzer = await FaceAnalyzer.create({ embedder: model, registry });
    // The clean gallery photos (and the clean originals' landmarks) are embedded once per model.
    const cache = newEvalCache();
    try {
      if (!analyzer.occlusion) log(`${model} has no occlusion masks: only the no-masking column is measured (npm run models:occlusion -- --model ${model})`);
      const setNames: Record<string, string> = { clean: 'LFW (clean)', random40: 'Occ-LFW (random 40%)', mask: 'Mask-LFW', sunglasses: 'Sunglasses-LFW' };
      for (const set of (values.sets as string).split(',')) {
        const probeDir = set === 'clean' ? undefined : join(values.occluded as string, `${set}-lfw`);
        if (probeDir && !existsSync(probeDir)) {
          log(`skipping ${set}: ${probeDir} not found (build it: npx facegate occlude --images ${lfw}/images --out ${probeDir} --kind ${set} --seed 1 --pairs ${lfw}/pairs-dev.txt --probes-only)`);
          continue;
        }
        // Clean probes have one alignment; occluded ones are measured with each requested one.
        for (const alignment of probeDir ? alignments : (['detected'] as const)) {
          log(`${model}, ${set}: evaluating pairs-dev${probeDir ? ` with probes from ${probeDir}, landmarks ${alignment}` : ''}`);
          const r = await runVerificationEval(analyzer, {
            pairsFile: join(lfw, 'pairs-dev.txt'),
            imagesDir: join(lfw, 'images'),
            ...(probeDir ? { probeImagesDir: probeDir, alignProbesFromClean: alignment === 'clean-original' } : {}),
            cache,
            log,
          });
          const probeRoot = probeDir ?? join(lfw, 'images');
          rows.push({
            set: setNames[set] ?? set,
            probes: relative(process.cwd(), probeRoot),
            alignment,
            model: r.model,
            plain: r.report.meanAccuracy,
            plainStd: r.report.stdAccuracy,
            masked: r.masked?.report.meanAccuracy ?? null,
            maskedStd: r.masked?.report.stdAccuracy ?? null,
            noFace: r.noFace.files.filter((f) => f.startsWith(probeRoot)).length,
            images: r.images,
            probePatterns: r.masked?.probePatterns ?? null,
            ...(r.pairLog10Far && analyzer.occlusion ? { atAgentThreshold: atThreshold(r.pairLog10Far.masked, analyzer.occlusion.log10Far(CLEAN_PATTERN, thresholdsFor(analyzer.embedder.entry).match)) } : {}),
          });
          log(`${model}, ${set} (${alignment}): no masking ${pct(r.report.meanAccuracy)}, occlusion-aware ${pct(r.masked?.report.meanAccuracy ?? null)}`);
          const key = `${set}\u0000${alignment}`;
          if (r.pairLog10Far) runs.set(key, (runs.get(key) ?? new Map()).set(model, { row: rows.at(-1) as Row, scores: r.pairLog10Far }));
        }
      }
      const maskedDir = values.masked as string;
      if (existsSync(maskedDir)) {
        const { scores, ...ident } = await maskedIdentification(analyzer, maskedDir, log);
        idents.push(ident);
        if (scores) identScores.set(model, scores);
      }
      else log(`skipping the real masked faces: ${maskedDir} not found`);
    } finally {
      await analyzer.close();
    }
  }
  if (fused) {
    const [a, b] = fused;
    const model = `${a} + ${b} (score fusion)`;
    // The agent's decision: the fusion calibration and the first embedder's match threshold as a log10 FAR.
    const [ea, eb] = [registry.get(a), registry.get(b)];
    const curves = OcclusionDictionary.forEmbedder(registry.dir, ea);
    const agentDecision =
      existsSync(join(registry.dir, fusionPath(a, b))) && curves
        ? { score: ScoreFusion.load(registry.dir, ea, eb), threshold: curves.log10Far(CLEAN_PATTERN, thresholdsFor(ea).match) }
        : undefined;
    for (const perModel of runs.values()) {
      const x = perModel.get(a);
      const y = perModel.get(b);
      if (!x || !y) continue;
      const report = (fusedScores: number[]): VerificationReport => kFoldVerification(fusedScores.map((distance, i) => ({ ...(folds[i] as { fold: number; same: boolean }), distance })));
      const plain = report(fuse(x.scores.plain, y.scores.plain));
      const fusedMasked = fuse(x.scores.masked, y.scores.masked);
      const masked = report(fusedMasked);
      const atAgentThreshold = agentDecision ? atThreshold(fusedMasked.map((s) => agentDecision.score.calibratedLog10Far(s)), agentDecision.threshold) : undefined;
      rows.push({ ...x.row, model, plain: plain.meanAccuracy, plainStd: plain.stdAccuracy, masked: masked.meanAccuracy, maskedStd: masked.stdAccuracy, probePatterns: null, ...(atAgentThreshold !== undefined ? { atAgentThreshold } : {}) });
      if (atAgentThreshold !== undefined) log(`${x.row.set} (${x.row.alignment}), ${model}: ${(atAgentThreshold * 100).toFixed(2)}% at the agent's threshold (log10 FAR ${agentDecision?.threshold.toFixed(2)}), ${(masked.meanAccuracy * 100).toFixed(2)}% at each fold's best`);
    }
    const x = identScores.get(a);
    const y = identScores.get(b);
    const first = idents.find((i) => i.model === a);
    if (x && y && first) {
      const fuseRows = (p: number[][], q: number[][]): number[][] => p.map((r, i) => fuse(r, q[i] as number[]));
      idents.push({
        ...first,
        model,
        probePatterns: {},
        plain: summariseIdentification(fuseRows(x.plain, y.plain), x.probePeople, x.galleryPeople),
        masked: summariseIdentification(fuseRows(x.masked, y.masked), x.probePeople, x.galleryPeople),
      });
    }
  }
  const text = table(rows, idents);
  console.log(`\n${text}\n`);
  const command = `npm run eval:occlusion${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const jsonPath = resolve(values.json as string);
  writeFileSync(
    jsonPath,
    `${JSON.stringify({ date: new Date().toISOString(), command, machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? '?', node: process.version }, seconds: Math.round((Date.now() - started) / 1000), models, rows, maskedIdentification: idents }, null, 1)}\n`,
  );
  log(`wrote ${relative(process.cwd(), jsonPath)}`);
  if (!values['no-readme']) {
    writeReadmeSection(
      join(modelsDir(), 'README.md'),
      'eval:occlusion',
      `### Occlusion evaluation\n\nMeasured with \`${command}\` on ${new Date().toISOString().slice(0, 10)} (${Math.round((Date.now() - started) / 60000)} min; JSON: models/occlusion/eval-results.json). LFW pairs-dev, 5 identity-disjoint folds, clean gallery (first image of each pair) and occluded probe (second image). Probe landmarks *detected*: every image through the detector and aligner as in the agent (a probe without a detected face is embedded from a centred crop), so detection misses count. Probe landmarks *clean original*: each occluded probe aligned by the landmarks detected on the same photo before occlusion — the protocol of FROM and PDSN, which draw occluders on aligned faces — so the figure measures recognition alone (detection under occlusion is measured below). Occlusion-aware matching, as the agent matches: a probe predicted occluded is compared in its pattern's space, a probe confidently clean in the plain space, and a probe predicted clean without confidence in every space (plain and each pattern's, the *space ensemble*), the pair then scored by the mean of the log10 false-accept rates of those comparisons, mapped to the rate it has on calibration impostors and kept within half a decade of the plain space's (\`npm run models:ensemble\`); each score is a false-accept rate calibrated on held-out calibration faces, so one threshold serves all pairs. The last column counts the probes' predicted patterns and (*all spaces*) those matched by the ensemble.${fused ? ` Score fusion (${fused.join(' + ')}): both embedders measure every pair, each in its own space as above, and the pair is scored by the mean of the two log10 false-accept rates (equal weights, not tuned), as the agent scores each enrolled person when fusing (\`recognition.fuseWith\`, agent/recognition/score-fusion.ts; its own threshold is a false-accept rate, these rows use each fold's best threshold).` : ''} *At the agent's threshold*: the same occlusion-aware scores decided as the agent decides — at the false-accept rate of the embedder's match threshold (models/manifest.json; for the fusion, the fused score through its calibration at the first embedder's) — instead of at each fold's best threshold, which LFW's balanced pairs put at a higher false-accept rate.\n\n${text}`,
    );
    log('updated models/README.md');
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(`eval:occlusion FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
