// `npm run bench:models`: latency of the default models on this machine's CPU, through the same
// code paths the agent uses (createSession, FaceEmbedder, MtcnnDetector, FaceAnalyzer). A
// benchmark, not a test: it prints a table, writes JSON (models/bench/results.json or --json PATH)
// and rewrites the benchmark section of models/README.md between its markers. It fails loudly
// only when the synthetic frames do not give the expected detections (then the numbers would not
// mean what the table says).
//
// Inputs are built here from face-api's demo photos (no external data): 1280×720 frames made of a
// heavily blurred photo as background with 1 or 5 face crops pasted onto it (faces 80–200 px).
//
//   npm run bench:models [-- --json PATH] [--no-readme] [--quick] [--save-frames DIR]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';

import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { createSession, type ModelSession, ortSessionOptions } from '../../agent/inference/onnx-session.js';
import { FaceEmbedder } from '../../agent/recognition/embedder.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import type { Box } from '../../agent/vision/geometry.js';
import type { RgbImage } from '../../agent/vision/image.js';
import { type DetectedFace, PUBLISHED_MTCNN_OPTIONS } from '../../agent/vision/mtcnn.js';
import { parseBenchArgs } from './bench-args.js';

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
const MODELS_DIR = resolve(HERE, '..');
const README = join(MODELS_DIR, 'README.md');
const DEFAULT_JSON = join(HERE, 'results.json');
const START_MARKER = '<!-- bench:models:start -->';
const END_MARKER = '<!-- bench:models:end -->';

export const FRAME_WIDTH = 1280;
export const FRAME_HEIGHT = 720;
export const MIN_FACE = 40;
const TARGET_EMBED_MS = 10;
const TARGET_MTCNN_MS = 40;

// ---------------------------------------------------------------------------------------------
// Synthetic frames

/** A face in one of face-api's demo photos (MTCNN box in that photo, pixels). */
interface FaceSource {
  sample: number;
  box: readonly [number, number, number, number];
}

/** One face per photo, far enough from its neighbours that a 1.5× crop holds only that face. */
const FACE_SOURCES: readonly FaceSource[] = [
  { sample: 1, box: [407, 350, 600, 602] },
  { sample: 2, box: [1442, 170, 1635, 396] },
  { sample: 3, box: [1053, 200, 1285, 511] },
  { sample: 4, box: [979, 187, 1157, 412] },
  { sample: 5, box: [1109, 204, 1289, 432] },
];

/** Where a face goes in a frame: source, face size (longer box side, px) and the crop's top-left. */
interface Placement {
  source: FaceSource;
  faceSide: number;
  left: number;
  top: number;
}

const CROP_FACTOR = 1.5;

const ONE_FACE: readonly Placement[] = [{ source: FACE_SOURCES[0] as FaceSource, faceSide: 160, left: 520, top: 220 }];
const FIVE_FACES: readonly Placement[] = [
  { source: FACE_SOURCES[0] as FaceSource, faceSide: 80, left: 40, top: 120 },
  { source: FACE_SOURCES[1] as FaceSource, faceSide: 110, left: 230, top: 380 },
  { source: FACE_SOURCES[2] as FaceSource, faceSide: 140, left: 440, top: 90 },
  { source: FACE_SOURCES[3] as FaceSource, faceSide: 170, left: 690, top: 330 },
  { source: FACE_SOURCES[4] as FaceSource, faceSide: 200, left: 960, top: 100 },
];

const sampleDir = (): string => join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');
const samplePath = (n: number): string => join(sampleDir(), `sample${n}.jpg`);

export interface BenchFrame {
  name: string;
  image: RgbImage;
  /** Where each pasted face is expected (its source box mapped into the frame). */
  expected: Box[];
}

async function buildFrame(name: string, placements: readonly Placement[]): Promise<BenchFrame> {
  // Background: a photo blurred until no face is left in it, so the pyramid sees realistic texture.
  const background = await sharp(samplePath(6))
    .resize(FRAME_WIDTH, FRAME_HEIGHT, { fit: 'cover' })
    .blur(40)
    .removeAlpha()
    .raw()
    .toBuffer();
  const overlays: Parameters<ReturnType<typeof sharp>['composite']>[0] = [];
  const expected: Box[] = [];
  for (const p of placements) {
    const [x1, y1, x2, y2] = p.source.box;
    const side = Math.max(x2 - x1, y2 - y1);
    const crop = Math.round(side * CROP_FACTOR);
    const cx = (x1 + x2) / 2;
    const cy = (y1 + y2) / 2;
    const left = Math.round(cx - crop / 2);
    const top = Math.round(cy - crop / 2);
    const scale = p.faceSide / side;
    const out = Math.round(crop * scale);
    const input = await sharp(samplePath(p.source.sample))
      .extract({ left, top, width: crop, height: crop })
      .resize(out, out, { kernel: 'lanczos3' })
      .removeAlpha()
      .png()
      .toBuffer();
    overlays.push({ input, left: p.left, top: p.top });
    expected.push({
      x1: p.left + (x1 - left) * scale,
      y1: p.top + (y1 - top) * scale,
      x2: p.left + (x2 - left) * scale,
      y2: p.top + (y2 - top) * scale,
    });
  }
  const { data, info } = await sharp(background, { raw: { width: FRAME_WIDTH, height: FRAME_HEIGHT, channels: 3 } })
    .composite(overlays)
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== FRAME_WIDTH || info.height !== FRAME_HEIGHT || info.channels !== 3) {
    throw new Error(`frame ${name}: sharp gave ${info.width}×${info.height}×${info.channels}`);
  }
  return { name, image: { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }, expected };
}

export async function buildFrames(): Promise<{ empty: BenchFrame; one: BenchFrame; five: BenchFrame }> {
  const [empty, one, five] = await Promise.all([buildFrame('1280×720, no face', []), buildFrame('1280×720, 1 face', ONE_FACE), buildFrame('1280×720, 5 faces', FIVE_FACES)]);
  return { empty, one, five };
}

/** Throws unless the detections are exactly the pasted faces: one each, centre inside its box. */
function verifyDetections(frame: BenchFrame, faces: readonly DetectedFace[]): string {
  const describe = (f: DetectedFace): string =>
    `(${Math.round(f.box.x1)},${Math.round(f.box.y1)})–(${Math.round(f.box.x2)},${Math.round(f.box.y2)}) p=${f.score.toFixed(3)}`;
  const found = faces.map(describe).join('; ');
  const problems: string[] = [];
  if (faces.length !== frame.expected.length) problems.push(`expected ${frame.expected.length} faces, detector found ${faces.length}`);
  const used = new Set<number>();
  for (const [i, e] of frame.expected.entries()) {
    const hit = faces.findIndex((f, k) => {
      const cx = (f.box.x1 + f.box.x2) / 2;
      const cy = (f.box.y1 + f.box.y2) / 2;
      return !used.has(k) && cx > e.x1 && cx < e.x2 && cy > e.y1 && cy < e.y2;
    });
    if (hit < 0) problems.push(`pasted face ${i + 1} at (${Math.round(e.x1)},${Math.round(e.y1)})–(${Math.round(e.x2)},${Math.round(e.y2)}) was not detected`);
    else used.add(hit);
  }
  if (problems.length > 0) throw new Error(`bench frame "${frame.name}": ${problems.join('; ')}. Detections: ${found || 'none'}`);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Measurement

export interface Stats {
  runs: number;
  warmup: number;
  medianMs: number;
  p95Ms: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
}

function stats(samples: number[], warmup: number): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
  const median = s.length % 2 === 1 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
  return {
    runs: s.length,
    warmup,
    medianMs: median,
    p95Ms: at(0.95),
    meanMs: s.reduce((a, b) => a + b, 0) / s.length,
    minMs: s[0] as number,
    maxMs: s[s.length - 1] as number,
  };
}

/** Sequential runs: `warmup` untimed, then `runs` timed one at a time with performance.now(). */
async function measure(warmup: number, runs: number, fn: () => Promise<unknown>): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return stats(samples, warmup);
}

interface Row {
  id: string;
  label: string;
  batch: number;
  stats: Stats;
  /** Faces per second at the median (batch / median). */
  facesPerSec?: number;
  targetMs?: number;
  note?: string;
}

// ---------------------------------------------------------------------------------------------
// Report

interface Machine {
  cpu: string;
  cores: number;
  availableParallelism: number;
  platform: string;
  node: string;
  onnxruntime: string;
  opencv: string;
  sharp: string;
  /** 1-minute load average when the bench started: other work on the CPU skews every number. */
  loadAverage1m: number;
}

function packageVersion(pkg: string): string {
  return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
}

function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: (cpus[0]?.model ?? 'unknown').trim(),
    cores: cpus.length,
    availableParallelism: os.availableParallelism(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    onnxruntime: packageVersion('onnxruntime-node'),
    opencv: packageVersion('@techstark/opencv-js'),
    sharp: sharp.versions.sharp ?? 'unknown',
    loadAverage1m: Number((os.loadavg()[0] ?? 0).toFixed(2)),
  };
}

const fmt = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

function table(rows: readonly Row[]): string {
  const head = ['measurement', 'faces/call', 'median ms', 'p95 ms', 'faces/s', 'runs', 'target'];
  const body = rows.map((r) => [
    r.label,
    String(r.batch),
    fmt(r.stats.medianMs),
    fmt(r.stats.p95Ms),
    r.facesPerSec === undefined ? '' : r.facesPerSec.toFixed(0),
    `${r.stats.runs} (+${r.stats.warmup})`,
    r.targetMs === undefined ? '' : `≤ ${r.targetMs} ms ${r.stats.medianMs <= r.targetMs ? 'met' : 'MISSED'}`,
  ]);
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...body.map(line)].join('\n');
}

interface Results {
  date: string;
  command: string;
  machine: Machine;
  threads: Record<string, string | number>;
  models: { embedder: string; detector: string[] };
  /** Execution provider per model (FACEGATE_PROVIDERS picks the order; default cpu). */
  providers?: Record<string, string>;
  frames: { name: string; width: number; height: number; faces: number; detections: string }[];
  rows: Row[];
  notes: string[];
}

function readmeSection(r: Results): string {
  const m = r.machine;
  return [
    START_MARKER,
    '## Benchmark',
    '',
    `Measured with \`${r.command}\` on ${r.date.slice(0, 10)}: ${m.cpu}, ${m.cores} cores (availableParallelism ${m.availableParallelism}), ` +
      `${m.platform}, Node ${m.node}, onnxruntime-node ${m.onnxruntime}, opencv-js ${m.opencv}, sharp ${m.sharp}; ` +
      `1-min load average at start ${m.loadAverage1m}.`,
    `ORT sessions as the agent creates them: ${Object.entries(r.threads).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    `Embedder \`${r.models.embedder}\`; detector ${r.models.detector.map((d) => `\`${d}\``).join(', ')}, min face ${MIN_FACE} px.`,
    'Times are wall-clock (performance.now) per call, sequential runs after warm-up; runs column = timed (+ warm-up).',
    '',
    table(r.rows),
    '',
    ...r.notes.map((n) => `- ${n}`),
    '',
    'Frames: 1280×720, a blurred demo photo as background with face crops from',
    '`@vladmandic/face-api/demo/sample*.jpg` pasted on it (faces 80–200 px); the bench checks that the',
    'detector finds exactly the pasted faces before timing. Full numbers: `models/bench/results.json`.',
    END_MARKER,
  ].join('\n');
}

function writeReadme(section: string): void {
  const existing = existsSync(README) ? readFileSync(README, 'utf8') : '# facegate models\n';
  const start = existing.indexOf(START_MARKER);
  const end = existing.indexOf(END_MARKER);
  let next: string;
  if (start >= 0 && end > start) next = existing.slice(0, start) + section + existing.slice(end + END_MARKER.length);
  else if (start >= 0 || end >= 0) throw new Error(`${README}: benchmark markers are incomplete or out of order; fix them by hand`);
  else next = `${existing.trimEnd()}\n\n${section}\n`;
  writeFileSync(README, next);
}

// ---------------------------------------------------------------------------------------------
// Main

interface Args {
  json: string;
  readme: boolean;
  quick: boolean;
  saveFrames?: string;
}

function parseArgs(argv: readonly string[]): Args {
  const { extra, ...common } = parseBenchArgs(argv, 'bench-models', DEFAULT_JSON, ['save-frames']);
  return { ...common, ...(extra['save-frames'] !== undefined ? { saveFrames: resolve(extra['save-frames']) } : {}) };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const n = (full: number, quick: number): number => (args.quick ? quick : full);
  const log = (line: string): void => console.log(line);
  const m = machine();
  log(`machine: ${m.cpu} × ${m.cores}, node ${m.node}, onnxruntime-node ${m.onnxruntime}, load average ${m.loadAverage1m}`);
  if (m.loadAverage1m > 0.5 * m.cores) log(`warning: load average ${m.loadAverage1m} on ${m.cores} cores: other work is running, numbers will be inflated`);

  const { empty, one, five } = await buildFrames();
  if (args.saveFrames) {
    mkdirSync(args.saveFrames, { recursive: true });
    for (const f of [empty, one, five]) {
      const file = join(args.saveFrames, `${f.expected.length}-face${f.expected.length > 1 ? 's' : ''}.jpg`);
      await sharp(f.image.data, { raw: { width: f.image.width, height: f.image.height, channels: 3 } }).jpeg({ quality: 92 }).toFile(file);
      log(`saved ${file}`);
    }
  }

  const registry = ModelRegistry.load();
  const embedderEntry = registry.defaultFor('embedder');
  const detectorNames = registry.models.filter((e) => e.role === 'detector' && e.default).map((e) => e.name);
  // One analyzer (its own 4 sessions, exactly as the agent makes them) for detection and the
  // whole pipeline; flip averaging off so its embed step is the raw model.
  const analyzer = await FaceAnalyzer.create({ detector: { minFaceSize: MIN_FACE }, flipAverage: false, registry, log });
  // The embedder on its own: one session, shared by a flip-off and a flip-on FaceEmbedder.
  await registry.ensure([embedderEntry], log);
  const embSession: ModelSession = await createSession(embedderEntry.name, registry.pathOf(embedderEntry));
  const providers = Object.fromEntries(analyzer.sessionsInfo.map((s) => [s.model, s.provider]));
  log(`execution providers: ${Object.entries(providers).map(([k, v]) => `${k} ${v}`).join(', ')}; standalone embedder ${embSession.provider}`);
  const embedRaw = new FaceEmbedder(embedderEntry, embSession, { flipAverage: false });
  const embedFlip = new FaceEmbedder(embedderEntry, embSession, { flipAverage: true });

  // The second pass as it was before its finer step and mirror image (2026-11-29): what they cost.
  const plainSecondPass = await FaceAnalyzer.create({
    detector: { minFaceSize: MIN_FACE, secondPassScaleFactor: PUBLISHED_MTCNN_OPTIONS.scaleFactor, secondPassMirror: false },
    flipAverage: false,
    registry,
  });

  const frames: Results['frames'] = [];
  for (const f of [empty, one, five]) {
    const faces = await analyzer.detect(f.image);
    const found = verifyDetections(f, faces);
    log(`${f.name}: detector found ${faces.length} face(s), as pasted: ${found}`);
    frames.push({ name: f.name, width: f.image.width, height: f.image.height, faces: faces.length, detections: found });
  }

  // Aligned chips of the 5 real faces (the agent's own detect → align path); batch 8 repeats 3.
  const fiveFaces = await analyzer.detect(five.image);
  const { chips } = analyzer.chips(five.image, fiveFaces);
  const chip1 = chips.slice(0, 1);
  const chips8 = Array.from({ length: 8 }, (_, i) => chips[i % chips.length] as RgbImage);

  const rows: Row[] = [];
  const add = (row: Omit<Row, 'facesPerSec'>, perFrame = false): void => {
    const r: Row = perFrame ? row : { ...row, facesPerSec: (row.batch * 1000) / row.stats.medianMs };
    rows.push(r);
    log(`  ${r.label.padEnd(44)} median ${fmt(r.stats.medianMs).padStart(6)} ms  p95 ${fmt(r.stats.p95Ms).padStart(6)} ms` +
      (r.facesPerSec === undefined ? '' : `  ${r.facesPerSec.toFixed(0)} faces/s`));
  };

  log('embedder:');
  add({ id: 'embed-b1', label: `embed ${embedderEntry.name}, flip off`, batch: 1, targetMs: TARGET_EMBED_MS, stats: await measure(n(20, 5), n(200, 30), () => embedRaw.embed(chip1)) });
  add({ id: 'embed-b8', label: `embed ${embedderEntry.name}, flip off`, batch: 8, stats: await measure(n(10, 3), n(50, 10), () => embedRaw.embed(chips8)) });
  add({ id: 'embed-b1-flip', label: `embed ${embedderEntry.name}, flip on (2 images/face)`, batch: 1, stats: await measure(n(10, 3), n(100, 20), () => embedFlip.embed(chip1)) });
  add({ id: 'embed-b8-flip', label: `embed ${embedderEntry.name}, flip on (2 images/face)`, batch: 8, stats: await measure(n(5, 2), n(30, 8), () => embedFlip.embed(chips8)) });

  log('detector:');
  add({ id: 'mtcnn-1', label: 'MTCNN detect, 1280×720, 1 face', batch: 1, targetMs: TARGET_MTCNN_MS, stats: await measure(n(10, 3), n(100, 20), () => analyzer.detect(one.image)) }, true);
  add({ id: 'mtcnn-5', label: 'MTCNN detect, 1280×720, 5 faces', batch: 5, targetMs: TARGET_MTCNN_MS, stats: await measure(n(10, 3), n(100, 20), () => analyzer.detect(five.image)) }, true);
  // No strong face: the loose second pass runs (an empty entrance, or only masked faces).
  add({ id: 'mtcnn-0', label: 'MTCNN detect, 1280×720, no face (second pass runs)', batch: 0, stats: await measure(n(5, 2), n(50, 10), () => analyzer.detect(empty.image)) }, true);
  add({
    id: 'mtcnn-0-plain',
    label: 'same, second pass at step 0.709 without the mirror image',
    batch: 0,
    stats: await measure(n(5, 2), n(50, 10), () => plainSecondPass.detect(empty.image)),
  }, true);
  await plainSecondPass.close();

  log('pipeline:');
  add({ id: 'analyze-5', label: 'detect+align+embed, 1280×720, 5 faces, flip off', batch: 5, stats: await measure(n(5, 2), n(50, 10), () => analyzer.analyze(five.image)) });
  add({
    id: 'analyze-5-flip',
    label: 'detect+align+embed, 1280×720, 5 faces, flip on',
    batch: 5,
    stats: await measure(n(5, 2), n(30, 8), async () => {
      const faces = await analyzer.detect(five.image);
      return embedFlip.embed(analyzer.chips(five.image, faces).chips);
    }),
  });

  const byId = (id: string): Stats => (rows.find((r) => r.id === id) as Row).stats;
  const notes = [
    `Flip averaging doubles the embedder's batch: +${fmt(byId('embed-b1-flip').medianMs - byId('embed-b1').medianMs)} ms at batch 1, ` +
      `+${fmt(byId('embed-b8-flip').medianMs - byId('embed-b8').medianMs)} ms at batch 8 (median).`,
    'Embed rows time FaceEmbedder.embed (HWC→CHW packing + one ORT run); MTCNN rows time MtcnnDetector.detect; ' +
      'pipeline rows time FaceAnalyzer.analyze (flip off) and detect → chips → flip-on embed. faces/s = faces per call ÷ median.',
  ];

  const o = ortSessionOptions();
  const extra = (o.extra as { session: Record<string, string> }).session;
  const threads: Results['threads'] = {
    intraOpNumThreads: o.intraOpNumThreads ?? 'ORT default',
    interOpNumThreads: o.interOpNumThreads ?? 'ORT default',
    executionMode: o.executionMode ?? 'sequential',
    graphOptimizationLevel: o.graphOptimizationLevel ?? 'ORT default',
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`session.${k}`, v])),
  };
  const results: Results = {
    date: new Date().toISOString(),
    command: 'npm run bench:models',
    machine: m,
    threads,
    models: { embedder: embedderEntry.name, detector: detectorNames },
    providers,
    frames,
    rows,
    notes,
  };
  log('');
  log(table(rows));
  for (const note of notes) log(`- ${note}`);

  mkdirSync(dirname(args.json), { recursive: true });
  writeFileSync(args.json, `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${relative(process.cwd(), args.json) || args.json}`);
  if (args.readme) {
    writeReadme(readmeSection(results));
    log(`updated ${relative(process.cwd(), README)}`);
  }
  await embSession.release();
  await analyzer.close();
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(`bench:models FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
