// `npm run models:ensemble [-- --model NAME]`: calibrates the space ensemble of an embedder's
// occlusion dictionary (agent/recognition/occlusion-masks.ts, SpaceEnsembleHeader) and writes it
// into the dictionary's header (models/occlusion/NAME.json; the manifest's checksum follows).
//
// From the occlusion calibration faces held out of the dictionary's fit (every 5th; LFW people in
// no pairs-dev pair), each clean and under every occluder kind:
//   - the clean-output floor: the classifier's clean output below which a face is not taken for
//     confidently clean, set so that `--uncertain-clean` of the clean faces fall below it;
//   - the calibration: every face that takes the ensemble (predicted clean with a clean output
//     below the floor; any variant) against every other
//     person's clean face, scored as the agent scores it — `--ensemble-plain W` × the plain space's
//     log10 FAR + the rest shared by every pattern's space (ensembleMean) — and the FAR curve of
//     those scores;
//   - the pairing with the plain space (`--with-plain W`, 0 turns it off): every face predicted
//     occluded against every other person's clean face, scored by (1 − W)·its pattern space's
//     log10 FAR + W·the plain space's, and per pattern the FAR curve of those scores. Patterns
//     named by `--unpaired` (default lower-face: face masks) keep their own space alone.
// For an embedder with views the plain space here is the wide one (its calibration faces' wide
// embeddings), as for the agent's faces not taken for confidently clean.
// Needs ../shared/data/lfw (the calibration pass is cached); the result is committed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { modelsDir } from '../../agent/paths.js';
import { euclideanDistance } from '../../agent/recognition/embedder.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { CLEAN_PATTERN, ensembleMean, type OcclusionDictionaryHeader, type OcclusionPrediction, pairedMean } from '../../agent/recognition/occlusion-masks.js';
import { sha256, writeManifest } from '../build/build-models.js';
import { calibrationPlainEmbedder } from './embedder-head.js';
import { CALIBRATION_OPTIONS, type CalibrationVariant, calibrationArgs, MULTI_DRAW_KINDS, occlusionCalibration } from './calibration.js';
import { farCurve } from './fit.js';

const USAGE = 'usage: npm run models:ensemble -- [--model NAME] [--lfw DIR] [--count N] [--seed S] [--draws D] [--uncertain-clean FRACTION] [--max-gain DECADES] [--ensemble-plain WEIGHT|equal] [--with-plain WEIGHT] [--unpaired PATTERN,PATTERN|none]';

/** Fewest impostor pairs the ensemble's curve is made from. */
const MIN_PAIRS = 10_000;
/**
 * Fewest impostor pairs a pattern's pairing curve is made from: FAR 1e-3 still rests on 5 pairs.
 * Fewer faces are predicted with the side and upper-face patterns (their own curves rest on few too).
 */
const PAIRING_MIN_PAIRS = 5_000;

export async function buildEnsemble(argv: readonly string[], log: (line: string) => void = (l) => console.log(l)): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      ...CALIBRATION_OPTIONS,
      'uncertain-clean': { type: 'string', default: '0.02' },
      'max-gain': { type: 'string', default: '0.5' },
      // The plain space against the pattern spaces together, as in the pairing: an unsure face is
      // mostly one the classifier cannot place, where the plain space is the surest single
      // witness (`equal`: every space weighs the same, as before).
      'ensemble-plain': { type: 'string', default: '0.5' },
      'with-plain': { type: 'string', default: '0.5' },
      // A face mask is predicted with confidence (no hedge needed), and a real mask corrupts the
      // plain space: paired, rank-1 on the real masked photos fell 40.34% → 33.52% (dlib).
      unpaired: { type: 'string', default: 'lower-face' },
    },
    strict: true,
  });
  const calibration = calibrationArgs(values, USAGE);
  const uncertain = Number(values['uncertain-clean']);
  const maxGain = Number(values['max-gain']);
  if (!(maxGain >= 0)) throw new Error(`--max-gain ${String(values['max-gain'])}: a number of decades ≥ 0; ${USAGE}`);
  const plainWeight = Number(values['with-plain']);
  if (!(plainWeight >= 0 && plainWeight < 1)) throw new Error(`--with-plain ${String(values['with-plain'])}: a weight in [0, 1) (0: no pairing); ${USAGE}`);
  const ensemblePlain = values['ensemble-plain'] === 'equal' ? undefined : Number(values['ensemble-plain']);
  if (ensemblePlain !== undefined && !(ensemblePlain >= 0 && ensemblePlain <= 1)) throw new Error(`--ensemble-plain ${String(values['ensemble-plain'])}: a weight in [0, 1] or "equal"; ${USAGE}`);
  if (!(uncertain >= 0 && uncertain < 0.5)) throw new Error(`--uncertain-clean ${String(values['uncertain-clean'])}: a fraction in [0, 0.5); ${USAGE}`);
  const registry = ModelRegistry.load();
  const analyzer = await FaceAnalyzer.create({ registry, ...(values.model ? { embedder: values.model } : {}) });
  try {
    const entry = analyzer.embedder.entry;
    const dictionary = analyzer.occlusion;
    if (!dictionary || !entry.occlusion) throw new Error(`${entry.name} has no occlusion dictionary (npm run models:occlusion -- --model ${entry.name})`);
    const started = Date.now();
    const cal = await occlusionCalibration(analyzer, calibration, log);
    // The classifier reads the chips' own maps (with views, a second cached pass without them).
    const chipCal = entry.chip?.views?.length ? await occlusionCalibration(analyzer, calibration, log, { views: false }) : cal;
    const f = cal.featureShape[0] * cal.featureShape[1] * cal.featureShape[2];
    // The faces held out of the dictionary's fit (build-dictionary.ts: every 5th).
    const faces = cal.files.map((_, face) => face).filter((face) => face % 5 === 0);
    const patterns = [...dictionary.patterns.keys()];
    // The plain space of faces not taken for confidently clean (with views, the wide one: the calibration's embeddings are wide then).
    const spaces = [dictionary.plainSpace, ...patterns];
    const plainOf = calibrationPlainEmbedder(cal, registry.pathOf(entry), entry.name);
    const mapOf = (variant: CalibrationVariant, face: number, from = cal): Float32Array => (from.features.get(variant) as Float32Array).subarray(face * f, (face + 1) * f);
    const predict = (variant: CalibrationVariant, face: number): OcclusionPrediction => dictionary.predictOriented(mapOf(variant, face, chipCal));
    const embed = (variant: CalibrationVariant, face: number): Float32Array[] => [plainOf(variant, face), ...patterns.map((p) => dictionary.maskedEmbeddingOriented(p, mapOf(variant, face)))];

    // The clean-output floor, from the clean faces' classifier outputs.
    const cleanOutputs = faces
      .map((face) => predict('clean', face))
      .map((p) => (p.pattern === CLEAN_PATTERN ? p.score : -1))
      .sort((a, b) => a - b);
    const cleanMinScore = Math.max(0, cleanOutputs[Math.min(cleanOutputs.length - 1, Math.floor(uncertain * cleanOutputs.length))] as number);
    const header = JSON.parse(readFileSync(`${join(modelsDir(), entry.occlusion.path)}.json`, 'utf8')) as OcclusionDictionaryHeader;

    const unpaired = new Set(values.unpaired === 'none' ? [] : String(values.unpaired).split(','));
    for (const p of unpaired) if (!dictionary.patterns.has(p)) throw new Error(`--unpaired: ${entry.name} has no pattern "${p}" (have ${patterns.join(', ')}); ${USAGE}`);
    const gallery = faces.map((face) => embed('clean', face));
    const scores: number[] = [];
    const paired = new Map<string, number[]>();
    const taken: Record<string, { faces: number; ensemble: number }> = {};
    for (const variant of cal.features.keys()) {
      const share = (taken[variant] = { faces: 0, ensemble: 0 });
      for (const [j, face] of faces.entries()) {
        share.faces++;
        const prediction = predict(variant, face);
        const ensemble = prediction.pattern === CLEAN_PATTERN && prediction.score < cleanMinScore;
        if (ensemble) share.ensemble++;
        else if (prediction.pattern === CLEAN_PATTERN || plainWeight === 0 || unpaired.has(prediction.pattern)) continue;
        const probe = embed(variant, face);
        const far = (g: Float32Array[], s: number): number => dictionary.log10Far(spaces[s] as string, euclideanDistance(g[s] as Float32Array, probe[s] as Float32Array));
        if (ensemble) {
          for (const [i, g] of gallery.entries()) {
            if (i === j) continue;
            let sum = 0;
            for (let s = 1; s < spaces.length; s++) sum += far(g, s);
            scores.push(ensembleMean(ensemblePlain, far(g, 0), sum, spaces.length - 1));
          }
          continue;
        }
        // Predicted occluded: its pattern's space paired with the plain space.
        const s = spaces.indexOf(prediction.pattern);
        const list = paired.get(prediction.pattern) ?? [];
        paired.set(prediction.pattern, list);
        for (const [i, g] of gallery.entries()) if (i !== j) list.push(pairedMean(plainWeight, far(g, s), far(g, 0)));
      }
    }
    const withPlain = Object.fromEntries([...paired].filter(([, list]) => list.length >= PAIRING_MIN_PAIRS).map(([pattern, list]) => [pattern, farCurve(list.sort((a, b) => a - b))]));
    if (scores.length < MIN_PAIRS) throw new Error(`${entry.name}: only ${scores.length} impostor pairs took the ensemble; too few to calibrate it`);
    scores.sort((a, b) => a - b);
    const command = `npm run models:ensemble -- --model ${entry.name}${argv.filter((a) => !a.startsWith('--model')).length ? ` ${argv.join(' ')}` : ''}`.replace(/ --model \S+ --model/, ' --model');
    header.ensemble = {
      cleanMinScore,
      far: farCurve(scores),
      maxGain,
      ...(ensemblePlain !== undefined ? { plainWeight: ensemblePlain } : {}),
      ...(Object.keys(withPlain).length ? { withPlain: { weight: plainWeight, far: withPlain } } : {}),
      provenance: {
        command,
        calibration: `${relative(process.cwd(), values.lfw as string) || values.lfw}: the ${faces.length} occlusion calibration faces held out of the dictionary's fit (every 5th; people in no pairs-dev pair), each clean and under every occluder kind (seed ${calibration.seed}${calibration.draws > 1 ? `; ${calibration.draws} draws of ${MULTI_DRAW_KINDS.join(', ')}` : ''})`,
        cleanMinScore: `the classifier's clean output below which ${uncertain * 100}% of the held-out clean faces fall`,
        withPlain:
          plainWeight === 0
            ? 'off'
            : `${unpaired.size ? `patterns ${[...unpaired].join(', ')} unpaired (their own space alone); ` : ''}each other face predicted occluded against every other held-out face clean, scored by ${1 - plainWeight} × its pattern space's log10 FAR + ${plainWeight} × the plain space's; impostor pairs per pattern: ${[...paired].map(([p, l]) => `${p} ${l.length}${l.length < PAIRING_MIN_PAIRS ? ' (too few: that pattern keeps its own space)' : ''}`).join(', ')}`,
        maxGain: `the ensemble lowers a comparison's log10 FAR by at most ${maxGain} below the plain space's`,
        scores: `each face taking the ensemble against every other held-out face clean (${scores.length} impostor pairs): ${ensemblePlain === undefined ? `the mean over ${spaces.join(', ')}` : `${ensemblePlain} × ${spaces[0]} + ${1 - ensemblePlain} × the mean over ${spaces.slice(1).join(', ')}`} of the distance's log10 FAR in that space`,
        takenForEnsemble: taken,
        seconds: Math.round((Date.now() - started) / 1000),
      },
    };
    const jsonText = `${JSON.stringify(header, null, 1)}\n`;
    writeFileSync(`${join(modelsDir(), entry.occlusion.path)}.json`, jsonText);
    writeManifest([{ ...entry, occlusion: { ...entry.occlusion, sha256: { ...entry.occlusion.sha256, json: sha256(new TextEncoder().encode(jsonText)) } } }]);
    const pct = (v: { faces: number; ensemble: number }): string => `${((100 * v.ensemble) / Math.max(1, v.faces)).toFixed(1)}%`;
    log(`${entry.name}: clean-output floor ${cleanMinScore.toFixed(3)}; faces taking the ensemble: ${Object.entries(taken).map(([k, v]) => `${k} ${pct(v)}`).join(', ')}`);
    log(`${entry.name}: pairing with the plain space (weight ${plainWeight}): ${Object.keys(withPlain).join(', ') || 'none'}; impostor pairs ${[...paired].map(([p, l]) => `${p} ${l.length}`).join(', ')}`);
    log(`${entry.name}: ${scores.length} impostor pairs; mean log10 FAR at FAR 1e-3 ${(header.ensemble.far[40] as number).toFixed(3)}, at 1e-2 ${(header.ensemble.far[60] as number).toFixed(3)}; wrote ${entry.occlusion.path}.json`);
  } finally {
    await analyzer.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  buildEnsemble(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`models:ensemble failed: ${(err as Error).message}`);
    process.exit(1);
  });
}
