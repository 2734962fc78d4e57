// `npm run models:occlusion [-- --model NAME ...]`: builds the occlusion mask dictionary of an
// embedder variant from LFW calibration faces (people in no pairs-dev pair) and registers it in the
// models manifest with that variant. Needs ../shared/data/lfw; the result is committed (it cannot be
// rebuilt on a fresh clone without the photos).
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { modelsDir } from '../../agent/paths.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import type { OcclusionDictionaryHeader, OcclusionPatternHeader } from '../../agent/recognition/occlusion-masks.js';
import { sha256, writeManifest } from '../build/build-models.js';
import { writeReadmeSection } from '../bench/readme-section.js';
import { buildEnsemble } from './build-ensemble.js';
import { calibrationPlainEmbedder, embedderHead } from './embedder-head.js';
import { CALIBRATION_OPTIONS, type CalibrationArgs, calibrationArgs, MULTI_DRAW_KINDS, occlusionCalibration } from './calibration.js';
import { FAR_GRID, farCurve, type FitOptions, fitClassifier, fitPattern, pairwiseDistances, PATTERNS, type PatternFit, samplesByPattern } from './fit.js';

const USAGE =
  'usage: npm run models:occlusion -- [--model NAME] [--lfw DIR] [--count N] [--seed S] [--draws D] [--drop 0,0.25] [--ridge R] [--lda-dims K] [--fc-share A] [--classifier-ridge L]';

interface Args extends CalibrationArgs {
  model?: string;
  fit: FitOptions;
  /** Ridge of the pattern classifier's least squares (on standardised features). */
  classifierRidge: number;
}

function parse(argv: readonly string[]): Args {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      ...CALIBRATION_OPTIONS,
      drop: { type: 'string', default: '0,0.25' },
      ridge: { type: 'string', default: '1' },
      'lda-dims': { type: 'string', default: '64' },
      'fc-share': { type: 'string', default: '0.5' },
      'classifier-ridge': { type: 'string', default: '100' },
    },
    strict: true,
  });
  const num = (name: string, v: string, ok: (n: number) => boolean): number => {
    const n = Number(v);
    if (!ok(n)) throw new Error(`--${name} ${v}: not valid; ${USAGE}`);
    return n;
  };
  return {
    ...(values.model ? { model: values.model } : {}),
    ...calibrationArgs(values, USAGE),
    fit: {
      dropFractions: (values.drop as string).split(',').map((v) => num('drop', v, (n) => n >= 0 && n < 1)),
      ridge: num('ridge', values.ridge as string, (n) => n > 0),
      ldaDims: num('lda-dims', values['lda-dims'] as string, (n) => Number.isInteger(n) && n >= 1),
      fcShare: num('fc-share', values['fc-share'] as string, (n) => n >= 0 && n < 1),
    },
    classifierRidge: num('classifier-ridge', values['classifier-ridge'] as string, (n) => n > 0),
  };
}

const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(2)}%` : '—');

export async function buildOcclusionDictionary(argv: readonly string[], log: (line: string) => void = (l) => console.log(l)): Promise<void> {
  const args = parse(argv);
  const registry = ModelRegistry.load();
  const analyzer = await FaceAnalyzer.create({ registry, ...(args.model ? { embedder: args.model } : {}) });
  try {
    const entry = analyzer.embedder.entry;
    log(`occlusion masks for ${entry.name} (${entry.sha256.slice(0, 12)}…), calibration from ${args.lfw}`);
    const cal = await occlusionCalibration(analyzer, args, log);
    // With views the masks act on the wide maps, and the classifier and the plain space's curve
    // read the chips' own (a second, cached calibration pass without views).
    const views = entry.chip?.views ?? [];
    const chipCal = views.length ? await occlusionCalibration(analyzer, args, log, { views: false }) : cal;
    if (chipCal.files.join('\n') !== cal.files.join('\n')) throw new Error(`${entry.name}: the calibration passes with and without views found faces in different photos`);
    const { fc } = embedderHead(registry.pathOf(entry));
    if (fc && fc.channels !== cal.featureShape[0]) throw new Error(`${entry.name}: fc has ${fc.channels} input channels, the feature map ${cal.featureShape[0]}`);
    const fit: FitOptions = { ...args.fit, ...(fc ? { fc } : {}) };
    // Every 5th calibration face is held out for validation (other people than the training faces).
    const isValidation = (face: number): boolean => face % 5 === 0;
    const byPattern = samplesByPattern(cal);
    const started = Date.now();
    const fits: PatternFit[] = [];
    for (const spec of PATTERNS) {
      const samples = byPattern.get(spec.name) ?? [];
      log(`pattern ${spec.name}: ${samples.length} occlusions (${[...new Set(samples.map((s) => s.kind))].join(', ')})`);
      fits.push(fitPattern(spec, cal, samples, isValidation, fit, log));
    }
    log('classifier: least squares on the standardised feature map');
    const classifier = fitClassifier(chipCal, samplesByPattern(chipCal), isValidation, args.classifierRidge, 0.01);

    // Blob layout: per pattern keep, mean, projection; then classifier mean, scale, weights.
    const parts: Float32Array[] = [];
    let floats = 0;
    const put = (a: Float32Array): number => {
      parts.push(a);
      floats += a.length;
      return floats - a.length;
    };
    const patterns: OcclusionPatternHeader[] = fits.map(({ pattern: p, far }) => ({
      name: p.name,
      regions: p.regions,
      kinds: p.kinds,
      dropped: p.dropped,
      blocks: p.blocks,
      far,
      offsets: { keep: put(p.keep), mean: put(p.mean), projection: put(p.projection) },
    }));
    // The plain space's impostor curve: the agent's ordinary embeddings (calibrationPlainEmbedder)
    // of the validation faces, clean, each against every other.
    // The plain space is the chips' own embeddings; with views the wide space gets its own curve.
    const impostorCurve = (c: typeof cal): number[] => {
      const plainOf = calibrationPlainEmbedder(c, registry.pathOf(entry), entry.name);
      return farCurve(pairwiseDistances(c.files.map((_, face) => face).filter(isValidation).map((face) => plainOf('clean', face))));
    };
    const plainFar = impostorCurve(chipCal);
    const wideFar = views.length ? impostorCurve(cal) : undefined;
    const classifierOffsets = { mean: put(classifier.mean), scale: put(classifier.scale), weights: put(classifier.weights) };
    const command = `npm run models:occlusion -- --model ${entry.name}${argv.filter((a) => !a.startsWith('--model')).length ? ` ${argv.join(' ')}` : ''}`.replace(/ --model \S+ --model/, ' --model');
    const header: OcclusionDictionaryHeader = {
      format: 'facegate-occlusion-masks/1',
      embedder: { name: entry.name, sha256: entry.sha256, ...(entry.chip?.views?.length ? { views: entry.chip.views } : {}) },
      featureShape: cal.featureShape,
      patterns,
      classifier: { classes: classifier.classes, offsets: classifierOffsets, minScore: classifier.minScore },
      far: { ...FAR_GRID, plain: plainFar, ...(wideFar ? { wide: wideFar } : {}) },
      floats,
      provenance: {
        command,
        calibration: `${relative(process.cwd(), args.lfw) || args.lfw}: first image of people in no pairs-dev pair, ${cal.files.length} faces, each clean and under every occluder kind (seed ${args.seed}${args.draws > 1 ? `; ${args.draws} draws of ${MULTI_DRAW_KINDS.join(', ')}` : ''}); every 5th face held out for validation`,
        fit: { ridge: fit.ridge, ldaDims: fit.ldaDims, fcShare: fc ? fit.fcShare : 0, dropFractions: fit.dropFractions },
        validation: Object.fromEntries(
          fits.map((f) => [f.pattern.name, { plain: f.plain, tried: f.validation.map((v) => ({ dropped: v.dropped, ...v.verification })), samples: f.pattern.samples }]),
        ),
        classifier: { ridge: args.classifierRidge, accuracy: classifier.accuracy, minScore: classifier.minScore, cleanTakenForOccluded: 1 - (classifier.accuracy.clean ?? 0) },
        seconds: Math.round((Date.now() - started) / 1000),
      },
    };
    const blob = new Float32Array(floats);
    let at = 0;
    for (const p of parts) {
      blob.set(p, at);
      at += p.length;
    }
    const base = join('occlusion', entry.name);
    const jsonText = `${JSON.stringify(header, null, 1)}\n`;
    const binBytes = new Uint8Array(blob.buffer);
    writeFileSync(join(modelsDir(), `${base}.json`), jsonText);
    writeFileSync(join(modelsDir(), `${base}.bin`), binBytes);
    writeManifest([
      {
        ...entry,
        occlusion: {
          path: base,
          sha256: { bin: sha256(binBytes), json: sha256(new TextEncoder().encode(jsonText)) },
          patterns: patterns.map((p) => p.name),
          command,
        },
      },
    ]);
    const tableText = [
      '| pattern | regions | occluder kinds (calibration occlusions) | elements dropped | validation accuracy, plain → masked | TAR @ FAR 1e-3, plain → masked | distance at FAR 1e-3 |',
      '| --- | --- | --- | ---: | --- | --- | ---: |',
      ...fits.map((f) => {
        const v = f.validation.find((x) => x.dropped === f.pattern.dropped)?.verification;
        return `| ${f.pattern.name} | ${f.pattern.regions.join(', ')} | ${f.pattern.kinds.join(', ')} (${f.pattern.samples} training) | ${f.pattern.dropped * 100}% | ${pct(f.plain.accuracy)} → ${pct(v?.accuracy ?? Number.NaN)} | ${pct(f.plain.tarAtFar1e3)} → ${pct(v?.tarAtFar1e3 ?? Number.NaN)} | ${(v?.thresholdFar1e3 ?? 0).toFixed(3)} |`;
      }),
    ].join('\n');
    const classifierText =
      `Pattern classifier on the validation faces (clean faces taken for occluded: ${pct(1 - (classifier.accuracy.clean ?? 0))}, min score ${classifier.minScore.toFixed(3)}), ` +
      `share of each variant predicted as its pattern: ${Object.entries(classifier.accuracy).map(([k, v]) => `${k} ${pct(v)}`).join(', ')}.`;
    console.log(`\n${tableText}\n\n${classifierText}\n`);
    writeReadmeSection(
      join(modelsDir(), 'README.md'),
      `models:occlusion:${entry.name}`,
      `### Occlusion mask dictionary of \`${entry.name}\`\n\nBuilt with \`${command}\` on ${new Date().toISOString().slice(0, 10)} in ${header.provenance.seconds} s of fitting (plus the calibration pass, cached): ${String(header.provenance.calibration)}. ` +
        `Validation pairs: each held-out face clean (gallery) against the same photo occluded (genuine) and against the other held-out faces occluded (impostors); the same photo on both sides makes these figures easier than LFW pairs — they choose the drop fraction and set the match threshold (FAR 1e-3), the LFW table below measures accuracy. ` +
        `Files: models/${base}.json (header) and .bin (${(binBytes.length / 1e6).toFixed(1)} MB of float32).` +
        (views.length
          ? ` Views ${JSON.stringify(views)}: masks and projections act on each face's wide maps (its chip and zoomed-out views averaged), and a face the classifier does not take for confidently clean is compared plainly by its wide embedding (the \`wide\` space); the classifier and the plain space read the chip's own.`
          : '') +
        `\n\n${tableText}\n\n${classifierText}`,
    );
    log(`wrote models/${base}.json and .bin (${(binBytes.length / 1e6).toFixed(1)} MB), the manifest entry of ${entry.name} and its section of models/README.md`);
  } finally {
    await analyzer.close();
  }
  // A new dictionary needs its space ensemble calibrated (from the same, now cached, calibration pass).
  await buildEnsemble(['--model', args.model ?? registry.defaultFor('embedder').name, '--lfw', args.lfw, '--count', String(args.count), '--seed', String(args.seed), '--draws', String(args.draws)], log);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildOcclusionDictionary(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`models:occlusion FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
