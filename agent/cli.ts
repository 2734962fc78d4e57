// The `facegate` command line. Command output (JSON, tables) goes to stdout, logs to stderr.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { resolveDataDir } from './data-dir.js';
import { formatEvalTable, runVerificationEval } from './evaluation/run-eval.js';
import { ModelRegistry } from './inference/model-registry.js';
import { FacegateAgent } from './agent.js';
import { checkConfigFile } from './config/config-check.js';
import { resolveConfigFile } from './config/config-file.js';
import { loadConfig, parseCameraFlag } from './config/load-config.js';
import { runDemo } from './demo.js';
import { createLogger, effectiveLogLevel } from './logging.js';
import { projectRoot } from './paths.js';
import { cosineSimilarity, euclideanDistance } from './recognition/embedder.js';
import { embedEnrollmentImages } from './recognition/enrollment.js';
import { type AnalyzedFace, FaceAnalyzer, type FaceAnalyzerOptions } from './recognition/face-analyzer.js';
import { Gallery, validateIdentityName } from './recognition/gallery.js';
import { occludeImageSet } from './occlusion/occlude-set.js';
import { OCCLUDER_KINDS, type OccluderKind, parseOccluderKind } from './occlusion/occluders.js';
import { attachServiceHooks } from './service/service-hooks.js';
import { drawDetections } from './vision/draw.js';
import { decodeImage } from './vision/image.js';
import type { DetectedFace } from './vision/mtcnn.js';

const log = createLogger();

/** dlib's published verification threshold, used until `facegate eval` has measured one. */
const FALLBACK_THRESHOLD = 0.6;

const positiveNumber = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got "${v}"`);
  return n;
};

interface AnalyzerFlags {
  model?: string;
  minFace?: number;
  flip?: boolean;
  template?: string;
  mirrorLandmarks?: boolean;
  fuseWith?: string;
}

function analyzerOptions(flags: AnalyzerFlags): FaceAnalyzerOptions {
  return {
    embedder: flags.model,
    template: flags.template,
    flipAverage: flags.flip,
    ...(flags.fuseWith ? { fuseWith: flags.fuseWith } : {}),
    detector: { ...(flags.minFace ? { minFaceSize: flags.minFace } : {}), ...(flags.mirrorLandmarks ? { mirrorLandmarks: true } : {}) },
    log: (line) => log.info(line),
  };
}

const round = (v: number, digits = 2): number => Number(v.toFixed(digits));

function faceJson(f: DetectedFace): Record<string, unknown> {
  return {
    box: { x: round(f.box.x1), y: round(f.box.y1), w: round(f.box.x2 - f.box.x1), h: round(f.box.y2 - f.box.y1) },
    score: round(f.score, 4),
    landmarks: Object.fromEntries(
      (['leftEye', 'rightEye', 'nose', 'mouthLeft', 'mouthRight'] as const).map((k, i) => [k, { x: round(f.landmarks[i]?.x ?? 0), y: round(f.landmarks[i]?.y ?? 0) }]),
    ),
  };
}

const printJson = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
};

async function withAnalyzer<T>(flags: AnalyzerFlags, fn: (a: FaceAnalyzer) => Promise<T>): Promise<T> {
  const analyzer = await FaceAnalyzer.create(analyzerOptions(flags));
  try {
    return await fn(analyzer);
  } finally {
    await analyzer.close();
  }
}

/** The largest face of an image, or an error naming the file. */
async function largestFace(analyzer: FaceAnalyzer, file: string): Promise<{ face: AnalyzedFace; count: number }> {
  const faces = await analyzer.analyze(await decodeImage(file));
  if (faces.length === 0) throw new Error(`no face found in ${file}`);
  const area = (f: DetectedFace): number => (f.box.x2 - f.box.x1) * (f.box.y2 - f.box.y1);
  const face = faces.reduce((a, b) => (area(b) > area(a) ? b : a));
  return { face, count: faces.length };
}

export function buildCli(): Command {
  const program = new Command('facegate')
    .description('Edge face recognition agent: finds, aligns and recognises faces, and reports identities over MQTT')
    .version((JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version)
    .showHelpAfterError();

  const withModelFlags = (cmd: Command): Command =>
    cmd
      .option('--model <name>', 'embedder model name (see `facegate models list`)')
      .option('--min-face <px>', 'smallest face to detect, in pixels', positiveNumber)
      .option('--template <name>', 'chip template (default: the embedder\'s own)')
      .option('--no-flip', 'do not average the embeddings of each chip and its mirror image')
      .option('--mirror-landmarks', "average each face's landmarks with O-Net's on the mirror image of its crop (recognition.detector.mirrorLandmarks)");

  program
    .command('detect')
    .description('detect faces and their 5 landmarks; prints JSON')
    .argument('<image>', 'JPEG/PNG/WebP image')
    .option('--draw <out.png>', 'also write the image with boxes and landmarks drawn')
    .option('--min-face <px>', 'smallest face to detect, in pixels', positiveNumber)
    .action(async (image: string, flags: AnalyzerFlags & { draw?: string }) => {
      await withAnalyzer(flags, async (analyzer) => {
        const img = await decodeImage(image);
        const started = performance.now();
        const faces = await analyzer.detect(img);
        const ms = performance.now() - started;
        if (flags.draw) writeFileSync(flags.draw, await drawDetections(img, faces));
        printJson({ image, width: img.width, height: img.height, detectMs: round(ms, 1), faces: faces.map(faceJson) });
      });
    });

  withModelFlags(program.command('embed'))
    .description('detect, align and embed every face; prints JSON with one embedding per face')
    .argument('<image>', 'JPEG/PNG/WebP image')
    .action(async (image: string, flags: AnalyzerFlags) => {
      await withAnalyzer(flags, async (analyzer) => {
        const faces = await analyzer.analyze(await decodeImage(image));
        printJson({
          image,
          model: analyzer.embedder.entry.name,
          template: analyzer.template.name,
          faces: faces.map((f) => ({ ...faceJson(f), embedding: Array.from(f.embedding, (v) => round(v, 6)) })),
        });
      });
    });

  withModelFlags(program.command('compare'))
    .description('compare the largest face of two images: distance, similarity and the same/different verdict')
    .argument('<image1>')
    .argument('<image2>')
    .action(async (image1: string, image2: string, flags: AnalyzerFlags) => {
      await withAnalyzer(flags, async (analyzer) => {
        const a = await largestFace(analyzer, image1);
        const b = await largestFace(analyzer, image2);
        const distance = euclideanDistance(a.face.embedding, b.face.embedding);
        const threshold = analyzer.embedder.entry.threshold ?? FALLBACK_THRESHOLD;
        printJson({
          image1: { file: image1, faces: a.count, face: faceJson(a.face) },
          image2: { file: image2, faces: b.count, face: faceJson(b.face) },
          model: analyzer.embedder.entry.name,
          distance: round(distance, 4),
          similarity: round(cosineSimilarity(a.face.embedding, b.face.embedding), 4),
          threshold: round(threshold, 4),
          verdict: distance <= threshold ? 'same' : 'different',
        });
      });
    });

  const models = program.command('models').description('the registered networks');
  models
    .command('list')
    .description('list registered models')
    .option('--json', 'print JSON')
    .action((flags: { json?: boolean }) => {
      const registry = ModelRegistry.load();
      const missing = new Set(registry.problems().map((p) => p.entry.name));
      const rows = registry.models.map((m) => ({
        name: m.name,
        role: m.role,
        file: m.file,
        bytes: m.bytes,
        default: m.default,
        params: m.params ?? null,
        macs: m.macs ?? null,
        threshold: m.threshold ?? null,
        ready: !missing.has(m.name),
        generated: m.generated,
        prunedFrom: m.pruning?.from ?? null,
        ratio: m.pruning ? (m.pruning.ratio ?? m.pruning.perBlock ?? null) : null,
        method: m.pruning?.method ?? null,
      }));
      if (flags.json) return printJson(rows);
      const header = ['name', 'role', 'file', 'size', 'default', 'MACs', 'pruning', 'ready'];
      const pruning = (r: (typeof rows)[number]): string =>
        r.method ? `${typeof r.ratio === 'number' ? r.ratio : 'per-block'} ${r.method} of ${r.prunedFrom}` : '';
      const table = rows.map((r) => [r.name, r.role, r.file, `${(r.bytes / 1e6).toFixed(2)} MB`, r.default ? 'yes' : '', r.macs ? `${(r.macs / 1e6).toFixed(1)} M` : '', pruning(r), r.ready ? 'yes' : r.generated ? 'build on first use' : 'missing']);
      const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] as string).length)));
      for (const r of [header, ...table]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i] as number)).join('  ')}\n`);
    });
  models
    .command('prune')
    .description('structured filter pruning of an embedder\'s residual blocks; writes models/pruned/<out>.onnx and registers it')
    .requiredOption('--model <name>', 'registered embedder to prune')
    .option('--ratio <r>', 'fraction of each residual block\'s conv1 filters to remove (0 ≤ r < 1)', (v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0 || n >= 1) throw new InvalidArgumentError(`expected a ratio in [0, 1), got "${v}"`);
      return n;
    })
    .option('--ratios-per-block <file>', 'JSON {"<block>": ratio} (e.g. from `models sensitivity`)')
    .option('--method <method>', 'l1 (rank filters by L1 norm) or reconstruct (choose channels and re-fit conv2 by least squares on calibration faces)', 'l1')
    .option('--calib <dir>', 'calibration faces for reconstruct: an LFW-layout folder (people in no pair) or a folder of photos', join('..', 'shared', 'data', 'lfw'))
    .option('--calib-count <n>', 'calibration images (LFW layout: at most one per person in no pair, 1468)', positiveNumber, 1500)
    .option('--selection <how>', 'reconstruct: kept channels chosen by greedy least-squares elimination (greedy) or by each channel\'s contribution (contribution)', 'greedy')
    .option('--samples <n>', 'reconstruct: most sampled output positions (regression rows) per block', positiveNumber, 20000)
    .option('--head-refit', 'reconstruct: also re-fit the embedding layer (head/fc) to the unpruned network\'s embeddings (not a measured gain on LFW)')
    .option('--default', 'make the result the default embedder')
    .requiredOption('--out <name>', 'name of the new model')
    .action(async (flags: { model: string; ratio?: number; ratiosPerBlock?: string; method: string; calib: string; calibCount: number; selection: string; samples: number; headRefit?: boolean; default?: boolean; out: string }) => {
      if ((flags.ratio === undefined) === (flags.ratiosPerBlock === undefined)) throw new Error('give exactly one of --ratio and --ratios-per-block');
      if (flags.method !== 'l1' && flags.method !== 'reconstruct') throw new Error(`--method must be l1 or reconstruct, got "${flags.method}"`);
      if (flags.selection !== 'greedy' && flags.selection !== 'contribution') throw new Error(`--selection must be greedy or contribution, got "${flags.selection}"`);
      const { pruneRegistered, readRatiosFile, setDefaultEmbedder } = await import('../models/compress/tool.js');
      const ratios = flags.ratio ?? readRatiosFile(flags.ratiosPerBlock as string);
      const command = ['facegate models prune', `--model ${flags.model}`, flags.ratio !== undefined ? `--ratio ${flags.ratio}` : `--ratios-per-block ${flags.ratiosPerBlock}`, `--method ${flags.method}`, ...(flags.method === 'reconstruct' ? [`--calib ${flags.calib}`, `--calib-count ${flags.calibCount}`, `--selection ${flags.selection}`, `--samples ${flags.samples}`, ...(flags.headRefit ? ['--head-refit'] : [])] : []), `--out ${flags.out}`].join(' ');
      const entry = await pruneRegistered({ model: flags.model, ratios, method: flags.method, calib: flags.calib, calibCount: flags.calibCount, selection: flags.selection, samples: flags.samples, head: flags.headRefit === true, out: flags.out, command, log: (line) => log.info(line) });
      if (flags.default) setDefaultEmbedder(entry.name);
      printJson({ name: entry.name, file: entry.file, bytes: entry.bytes, params: entry.params, macs: entry.macs, sha256: entry.sha256, pruning: entry.pruning, default: flags.default === true || entry.default });
    });
  models
    .command('sensitivity')
    .description('prune one residual block at a time at several ratios, measure the accuracy drop on a validation split of LFW pairs-dev, plot it and derive per-block ratios')
    .requiredOption('--model <name>', 'registered embedder')
    .option('--ratios <list>', 'comma-separated ratios per block', '0.25,0.5,0.75')
    .option('--lfw <dir>', 'LFW folder (pairs-dev.txt, images/)', join('..', 'shared', 'data', 'lfw'))
    .option('--folds <list>', 'validation folds of pairs-dev (1-based)', '1,2')
    .option('--flip', 'flip-average embeddings (slower; off by default for the analysis)')
    .option('--landmarks <file>', 'landmarks cache of the pairs-dev images', '/tmp/facegate-lfw-landmarks.json')
    .option('--targets <list>', 'overall ratios to derive per-block ratios for', '0.1,0.2,0.3,0.4,0.5')
    .option('--step <r>', 'ratio step of the derived per-block ratios (0.25 keeps channel counts multiples of 8, which onnxruntime runs fastest)', positiveNumber, 0.25)
    .option('--out <prefix>', 'output prefix: <prefix>.json, <prefix>.png, <prefix>-ratios-<target>.json', join('models', 'compress', 'results', 'sensitivity'))
    .action(async (flags: { model: string; ratios: string; lfw: string; folds: string; flip?: boolean; landmarks: string; targets: string; step: number; out: string }) => {
      const list = (v: string): number[] => v.split(',').map((x) => Number(x.trim())).filter((x) => Number.isFinite(x));
      const { sensitivityRegistered } = await import('../models/compress/tool.js');
      await sensitivityRegistered({
        model: flags.model,
        ratios: list(flags.ratios),
        lfw: flags.lfw,
        folds: list(flags.folds).map((f) => f - 1),
        flip: flags.flip === true,
        landmarks: flags.landmarks,
        target: list(flags.targets),
        step: flags.step,
        out: flags.out,
        log: (line) => log.info(line),
      });
    });
  models
    .command('build')
    .description('build the generated ONNX models from the installed npm packages (same as `npm run models`)')
    .action(async () => {
      const { buildModels } = await import('../models/build/build-models.js');
      await buildModels((line) => log.info(line));
    });

  withModelFlags(program.command('eval'))
    .description('verification accuracy on an LFW-format pairs file (N-fold, TAR@FAR)')
    .requiredOption('--pairs <file>', 'pairs file (header "folds n")')
    .requiredOption('--images <dir>', 'image folder (Name/Name_0001.jpg)')
    .option('--probe-images <dir>', 'read the second image of each pair from this folder')
    .option('--align-probes-from-clean', 'with --probe-images: align each probe by the landmarks of its clean original in --images (recognition alone, as FROM/PDSN occlude aligned faces)')
    .option('--json <out>', 'write the full result as JSON')
    .option('--record-threshold', "store the threshold chosen on all pairs as the embedder's default in models/manifest.json")
    .action(async (flags: AnalyzerFlags & { pairs: string; images: string; probeImages?: string; alignProbesFromClean?: boolean; json?: string; recordThreshold?: boolean }) => {
      await withAnalyzer(flags, async (analyzer) => {
        const result = await runVerificationEval(analyzer, {
          pairsFile: flags.pairs,
          imagesDir: flags.images,
          probeImagesDir: flags.probeImages,
          alignProbesFromClean: flags.alignProbesFromClean,
          jsonOut: flags.json,
          log: (line) => log.info(line),
        });
        process.stdout.write(`${formatEvalTable(result)}\n`);
        if (flags.recordThreshold) {
          const { readManifest, writeManifest } = await import('../models/build/build-models.js');
          const entry = readManifest().models.find((m) => m.name === result.model);
          if (!entry) throw new Error(`model ${result.model} is not in the manifest`);
          const threshold = Number(result.report.overallThreshold.toFixed(4));
          writeManifest([{ ...entry, threshold }]);
          log.info(`recorded threshold ${threshold} for ${result.model} in models/manifest.json`);
        }
      });
    });

  program
    .command('occlude')
    .description('write an occluded copy of a photo set (masks, sunglasses, scarves, hands, objects, 40% rectangles), placed by the detected landmarks')
    .requiredOption('--images <dir>', 'photo folder (LFW layout or any tree of JPEG/PNG/WebP)')
    .requiredOption('--out <dir>', 'output folder (same relative paths, plus occlusion.json)')
    .requiredOption('--kind <kind>', `occluder: ${OCCLUDER_KINDS.join('|')}`, parseOccluderKind)
    .option('--seed <n>', 'random seed (each photo is seeded by the seed and its path)', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${v}"`);
      return n;
    }, 1)
    .option('--pairs <file>', 'occlude only the images this LFW pairs file names')
    .option('--probes-only', 'with --pairs: occlude only the second image of each pair (clean gallery, occluded probe)')
    .option('--limit <n>', 'only the first N images', positiveNumber)
    .option('--min-face <px>', 'smallest face to detect, in pixels', positiveNumber)
    .action(async (flags: AnalyzerFlags & { images: string; out: string; kind: OccluderKind; seed: number; pairs?: string; probesOnly?: boolean; limit?: number }) => {
      await withAnalyzer(flags, async (analyzer) => {
        const result = await occludeImageSet(analyzer.detector, {
          imagesDir: flags.images,
          outDir: flags.out,
          kind: flags.kind,
          seed: flags.seed,
          pairsFile: flags.pairs,
          probesOnly: flags.probesOnly,
          limit: flags.limit,
          log: (line) => log.info(line),
        });
        printJson({ out: flags.out, kind: result.kind, seed: result.seed, images: result.images, noFace: result.noFace, meanCoverage: round(result.meanCoverage, 3), variants: result.variants });
      });
    });

  withModelFlags(program.command('enroll'))
    .description('enroll a person from photos: each image must show exactly one face; nothing is written if one does not')
    .requiredOption('--name <name>', 'identity name')
    .argument('<images...>', 'JPEG/PNG/WebP images, one face each')
    .option('--data-dir <dir>', 'data directory (default: env FACEGATE_DATA_DIR, else ./.facegate-data)')
    .option('--keep-photos', 'also store the photos in the gallery (allows re-embedding with another model)')
    .option('--fuse-with <name>', "also embed with this second embedder, for the agent's score fusion (recognition.fuseWith): a model, auto or none", 'auto')
    .action(async (images: string[], flags: AnalyzerFlags & { name: string; dataDir?: string; keepPhotos?: boolean }) => {
      const name = validateIdentityName(flags.name);
      const dataDir = resolveDataDir(flags.dataDir);
      await withAnalyzer(flags, async (analyzer) => {
        const { items, images: enrolled } = await embedEnrollmentImages(analyzer, images, flags.keepPhotos ?? false);
        const gallery = Gallery.open(dataDir, { keepPhotos: flags.keepPhotos ?? false });
        try {
          gallery.enroll(name, items);
          const summary = gallery.list().find((i) => i.name === name);
          log.info(`enrolled ${name} from ${items.length} image(s) into ${gallery.file}`);
          printJson({
            name,
            model: analyzer.embedder.entry.name,
            fusedWith: analyzer.fusedWith,
            gallery: gallery.file,
            images: enrolled.map((e) => ({ file: e.file, box: { x: round(e.box.x), y: round(e.box.y), w: round(e.box.w), h: round(e.box.h) }, score: round(e.score, 4) })),
            embeddings: summary?.models ?? {},
          });
        } finally {
          gallery.close();
        }
      });
    });

  const identities = program.command('identities').description('the enrolled gallery');
  identities
    .command('list')
    .description('enrolled identities: embeddings per model; flags those lacking an embedding of the embedder in use')
    .option('--json', 'print JSON')
    .option('--data-dir <dir>', 'data directory (default: env FACEGATE_DATA_DIR, else ./.facegate-data)')
    .option('--model <name>', 'embedder to check against (default: the default embedder)')
    .action((flags: { json?: boolean; dataDir?: string; model?: string }) => {
      const registry = ModelRegistry.load();
      const embedder = flags.model ? registry.get(flags.model) : registry.defaultFor('embedder');
      if (embedder.role !== 'embedder') throw new Error(`model ${embedder.name} is a ${embedder.role}, not an embedder`);
      const dataDir = resolveDataDir(flags.dataDir);
      if (!Gallery.exists(dataDir)) {
        log.info(`no gallery in ${dataDir} yet (enroll someone with \`facegate enroll\`)`);
        return flags.json ? printJson({ gallery: null, model: embedder.name, identities: [] }) : undefined;
      }
      const gallery = Gallery.open(dataDir);
      try {
        const stale = new Set(gallery.needsReenrollment(embedder.name));
        const rows = gallery.list().map((i) => ({ ...i, needsReenrollment: stale.has(i.name) }));
        if (stale.size > 0) log.warn(`${stale.size} identit${stale.size === 1 ? 'y has' : 'ies have'} no ${embedder.name} embedding and must be re-enrolled: ${[...stale].join(', ')}`);
        if (flags.json) return printJson({ gallery: gallery.file, model: embedder.name, identities: rows });
        const header = ['name', 'embeddings', 'models', 'photos', 'updated', `${embedder.name}`];
        const table = rows.map((r) => [
          r.name,
          String(r.embeddings),
          Object.entries(r.models).map(([m, n]) => `${m}:${n}`).join(' '),
          String(r.photos),
          r.updatedAt,
          r.needsReenrollment ? 'RE-ENROLL' : 'ok',
        ]);
        const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] as string).length)));
        for (const r of [header, ...table]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd()}\n`);
      } finally {
        gallery.close();
      }
    });
  identities
    .command('remove')
    .description('remove an identity with all its embeddings and photos')
    .argument('<name>')
    .option('--data-dir <dir>', 'data directory (default: env FACEGATE_DATA_DIR, else ./.facegate-data)')
    .action((name: string, flags: { dataDir?: string }) => {
      const dataDir = resolveDataDir(flags.dataDir);
      if (!Gallery.exists(dataDir)) throw new Error(`no identity named "${name}": there is no gallery in ${dataDir}`);
      const gallery = Gallery.open(dataDir);
      try {
        if (!gallery.remove(name)) throw new Error(`no identity named "${name}" in ${gallery.file}`);
        process.stdout.write(`removed ${name.trim()}\n`);
      } finally {
        gallery.close();
      }
    });

  program
    .command('run')
    .description('run the agent in the foreground: cameras → recognition → identity events over MQTT')
    .option('--config <file>', 'YAML configuration file (default: env FACEGATE_CONFIG, else config/facegate.yaml when it exists); watched and reloaded live')
    .option('--camera <name=url>', 'add a camera (repeatable): rtsp://…, a video file (looped; #once plays once) or /dev/videoN', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--mqtt <url>', 'MQTT broker URL (default: an embedded broker on 127.0.0.1:1883)')
    .option('--data-dir <dir>', 'data directory (default: env FACEGATE_DATA_DIR, else ./.facegate-data)')
    .option('--model <name>', 'embedder model name')
    .action(async (flags: { config?: string; camera: string[]; mqtt?: string; dataDir?: string; model?: string }) => {
      const configFile = resolveConfigFile(flags.config);
      const overrides = { cameras: flags.camera.map(parseCameraFlag), mqttUrl: flags.mqtt, dataDir: flags.dataDir, embedder: flags.model };
      const config = loadConfig(configFile.file, overrides);
      // A service's logs go to stdout (journal, pm2), JSON unless a person watches.
      const runLog = createLogger(effectiveLogLevel(config.log.level), { destination: 1 });
      runLog.info({ file: configFile.file ?? null, origin: configFile.origin }, configFile.file ? 'configuration loaded' : 'no configuration file: built-in defaults and flags');
      const agent = new FacegateAgent(config, runLog);
      await agent.start();
      const service = await attachServiceHooks(agent, runLog, { configFile: configFile.file, overrides });
      const signal = await new Promise<string>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      // Graceful within shutdownTimeoutSeconds; past it, or at a second signal, exit at once.
      const boundMs = config.shutdownTimeoutSeconds * 1000;
      const force = (why: string): void => {
        runLog.error(why);
        process.exit(1);
      };
      setTimeout(() => force(`shutdown took longer than ${config.shutdownTimeoutSeconds} s: exiting now`), boundMs).unref();
      process.once('SIGINT', () => force('second signal: exiting now'));
      process.once('SIGTERM', () => force('second signal: exiting now'));
      runLog.info({ signal, timeoutSeconds: config.shutdownTimeoutSeconds }, 'stopping');
      await service.stop();
      await agent.stop(Math.max(100, boundMs - 500));
      runLog.info('stopped');
      process.exit(0);
    });

  const configCommand = program.command('config').description('the YAML configuration file');
  configCommand
    .command('check')
    .description('validate a configuration file as `run` would load it (env overrides included): exit 0 with a summary, or 1 with every error')
    .argument('[file]', 'YAML file (default: env FACEGATE_CONFIG, else config/facegate.yaml)')
    .option('--json', 'print JSON { file, valid, problems, summary }')
    .action((file: string | undefined, flags: { json?: boolean }) => {
      const choice = resolveConfigFile(file);
      if (!choice.file) throw new Error('no configuration file to check: give FILE, set FACEGATE_CONFIG, or create config/facegate.yaml (see config/facegate.example.yaml)');
      const result = checkConfigFile(choice.file);
      if (!result.valid) process.exitCode = 1;
      if (flags.json) return printJson(result);
      if (result.valid) {
        process.stdout.write(`${result.file}: valid\n${result.summary.map((l) => `  ${l}`).join('\n')}\n`);
      } else {
        process.stderr.write(`${result.file}: ${result.problems.length} error${result.problems.length === 1 ? '' : 's'}\n${result.problems.join('\n')}\n`);
      }
    });

  program
    .command('demo')
    .description('zero-setup demo: a looped video of the photos in @vladmandic/face-api, their people enrolled, an embedded broker, events printed')
    .option('--data-dir <dir>', 'where the demo keeps its gallery and video (default: <data dir>/demo)')
    .action(async (flags: { dataDir?: string }) => {
      await runDemo(log, { dataDir: flags.dataDir });
    });

  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    log.error((err as Error).message);
    log.debug({ err }, 'stack');
    process.exitCode = 1;
  }
}
