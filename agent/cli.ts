// The `facegate` command line. Command output (JSON, tables) goes to stdout, logs to stderr.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { formatEvalTable, runVerificationEval } from './evaluation/run-eval.js';
import { ModelRegistry } from './inference/model-registry.js';
import { createLogger } from './logging.js';
import { projectRoot } from './paths.js';
import { cosineSimilarity, euclideanDistance } from './recognition/embedder.js';
import { type AnalyzedFace, FaceAnalyzer, type FaceAnalyzerOptions } from './recognition/face-analyzer.js';
import { drawDetections } from './vision/draw.js';
import { decodeImage } from './vision/image.js';
import type { DetectedFace } from './vision/mtcnn.js';

const log = createLogger();
const require = createRequire(import.meta.url);

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
}

function analyzerOptions(flags: AnalyzerFlags): FaceAnalyzerOptions {
  return {
    embedder: flags.model,
    template: flags.template,
    flipAverage: flags.flip,
    detector: flags.minFace ? { minFaceSize: flags.minFace } : {},
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
      .option('--no-flip', 'do not average the embeddings of each chip and its mirror image');

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
      }));
      if (flags.json) return printJson(rows);
      const header = ['name', 'role', 'file', 'size', 'default', 'MACs', 'ready'];
      const table = rows.map((r) => [r.name, r.role, r.file, `${(r.bytes / 1e6).toFixed(2)} MB`, r.default ? 'yes' : '', r.macs ? `${(r.macs / 1e6).toFixed(1)} M` : '', r.ready ? 'yes' : 'build on first use']);
      const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] as string).length)));
      for (const r of [header, ...table]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i] as number)).join('  ')}\n`);
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
    .option('--json <out>', 'write the full result as JSON')
    .action(async (flags: AnalyzerFlags & { pairs: string; images: string; probeImages?: string; json?: string }) => {
      await withAnalyzer(flags, async (analyzer) => {
        const result = await runVerificationEval(analyzer, {
          pairsFile: flags.pairs,
          imagesDir: flags.images,
          probeImagesDir: flags.probeImages,
          jsonOut: flags.json,
          log: (line) => log.info(line),
        });
        process.stdout.write(`${formatEvalTable(result)}\n`);
      });
    });

  program
    .command('demo')
    .description('detect and embed the faces of a sample photo bundled with @vladmandic/face-api, and compare two of them')
    .action(async () => {
      const sample = require.resolve('@vladmandic/face-api/demo/sample1.jpg');
      await withAnalyzer({}, async (analyzer) => {
        const img = await decodeImage(sample);
        const started = performance.now();
        const faces = await analyzer.analyze(img);
        const ms = performance.now() - started;
        log.info(`${basename(sample)}: ${faces.length} faces in ${ms.toFixed(0)} ms (${img.width}×${img.height}, embedder ${analyzer.embedder.entry.name})`);
        const threshold = analyzer.embedder.entry.threshold ?? FALLBACK_THRESHOLD;
        printJson({
          image: sample,
          faces: faces.map((f, i) => ({
            index: i,
            ...faceJson(f),
            nearest: faces
              .map((g, j) => ({ j, d: euclideanDistance(f.embedding, g.embedding) }))
              .filter((x) => x.j !== i)
              .sort((x, y) => x.d - y.d)
              .slice(0, 1)
              .map((x) => ({ face: x.j, distance: round(x.d, 4), samePerson: x.d <= threshold }))[0] ?? null,
          })),
        });
      });
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
