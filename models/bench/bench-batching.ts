// `npm run bench:batching`: the embedder batched across cameras, on this machine's CPU (or the
// providers in FACEGATE_PROVIDERS). A benchmark, not a test: it prints a table, writes JSON
// (models/bench/batching-results.json or --json PATH) and rewrites the batching section of
// models/README.md between its markers.
//
//  1. Direct: FaceEmbedder.embed on B real aligned chips (flip averaging on, as the agent runs),
//     B = 1, 2, 4, 8, 16: latency per call and faces/s.
//  2. Scheduler: C simulated cameras each submit one frame's faces (1–3) in a loop through the
//     shared BatchScheduler with maxBatch B: faces/s and request latency (submit → embedding).
//  3. R-Net/O-Net: C cameras' candidate crops (12 per frame for R-Net, 4 for O-Net) run one frame
//     after another against merged into one run (the agent's batchedSession).
//  4. GC: garbage collections (node:perf_hooks 'gc' entries) and heap growth per 1000 faces, with
//     the reused input buffers (the agent's path) against a fresh input tensor per call.
//
//   npm run bench:batching [-- --json PATH] [--no-readme] [--quick] [--cameras N]
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import { decodeImage, mirrorImage, type RgbImage } from '../../agent/vision/image.js';
import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { batchedSession } from '../../agent/inference/batched-session.js';
import { createSession, type ModelSession } from '../../agent/inference/onnx-session.js';
import { BatchScheduler } from '../../agent/pipeline/batch-scheduler.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { FaceEmbedder } from '../../agent/recognition/embedder.js';
import { seededRandom } from '../../agent/util/seeded-random.js';
import { toChw } from '../../agent/vision/mtcnn.js';
import { parseBenchArgs } from './bench-args.js';

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
const README = join(HERE, '..', 'README.md');
const DEFAULT_JSON = join(HERE, 'batching-results.json');
const START_MARKER = '<!-- bench:batching:start -->';
const END_MARKER = '<!-- bench:batching:end -->';
const BATCHES = [1, 2, 4, 8, 16];

interface Latency {
  medianMs: number;
  p95Ms: number;
  meanMs: number;
  n: number;
}

interface GcStats {
  collections: number;
  gcMs: number;
  /** Per 1000 faces. */
  collectionsPer1000Faces: number;
  gcMsPer1000Faces: number;
  heapGrowthBytes: number;
  /** Growth of ArrayBuffer memory (typed arrays live outside the V8 heap; their churn still triggers GCs). */
  arrayBufferGrowthBytes: number;
}

interface DirectRow { batch: number; latency: Latency; facesPerSec: number; gc: GcStats }
interface SchedulerRow { maxBatch: number; cameras: number; facesPerSec: number; requestLatency: Latency; meanBatch: number; gc: GcStats }
interface StageRow { model: string; cameras: number; cropsPerFrame: number; separateMs: Latency; mergedMs: Latency; speedup: number }
interface GcRow { path: string; batch: number; faces: number; gc: GcStats; facesPerSec: number }

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
function latency(samples: number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  return { medianMs: pct(s, 0.5), p95Ms: pct(s, 0.95), meanMs: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length), n: s.length };
}
const fmt = (n: number, d = 1): string => n.toFixed(d);

/** Counts GC entries while `fn` runs. */
async function withGc<T>(faces: () => number, fn: () => Promise<T>): Promise<{ result: T; gc: GcStats }> {
  let collections = 0;
  let gcMs = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      collections++;
      gcMs += e.duration;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const heapBefore = v8.getHeapStatistics().used_heap_size;
  const buffersBefore = process.memoryUsage().arrayBuffers;
  const result = await fn();
  await new Promise((r) => setImmediate(r)); // deliver the last entries
  obs.disconnect();
  const n = Math.max(1, faces());
  return {
    result,
    gc: { collections, gcMs, collectionsPer1000Faces: (collections * 1000) / n, gcMsPer1000Faces: (gcMs * 1000) / n, heapGrowthBytes: v8.getHeapStatistics().used_heap_size - heapBefore, arrayBufferGrowthBytes: process.memoryUsage().arrayBuffers - buffersBefore },
  };
}

/** The embedder as it was before the reused buffers: a fresh CHW tensor and mirror image per call. */
async function embedFresh(session: ModelSession, chips: readonly RgbImage[]): Promise<void> {
  const images = [...chips, ...chips.map((c) => mirrorImage(c))];
  const per = 3 * 150 * 150;
  const batch = new Float32Array(images.length * per);
  images.forEach((img, i) => batch.set(toChw(img.data, 1, 150, 150), i * per));
  await session.run({ input: { data: batch, dims: [images.length, 3, 150, 150] } });
}

async function realChips(log: (s: string) => void): Promise<RgbImage[]> {
  const analyzer = await FaceAnalyzer.create({ flipAverage: false, log });
  try {
    const chips: RgbImage[] = [];
    for (const n of [1, 2, 3, 4, 5, 6]) {
      const image = await decodeImage(join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo', `sample${n}.jpg`));
      const faces = await analyzer.detect(image);
      chips.push(...analyzer.chips(image, faces).chips);
    }
    if (chips.length < 8) throw new Error(`only ${chips.length} faces found in face-api's demo photos; expected at least 8`);
    return chips;
  } finally {
    await analyzer.close();
  }
}

interface Args { json: string; readme: boolean; quick: boolean; cameras: number }

function parseArgs(argv: readonly string[]): Args {
  const { extra, ...common } = parseBenchArgs(argv, 'bench-batching', DEFAULT_JSON, ['cameras']);
  const cameras = Number(extra.cameras ?? 4);
  if (!(Number.isInteger(cameras) && cameras >= 1 && cameras <= 32)) throw new Error(`--cameras must be an integer 1..32, got ${extra.cameras}`);
  return { ...common, cameras };
}

function table(direct: DirectRow[], sched: SchedulerRow[], stages: StageRow[], gc: GcRow[]): string {
  const lines = [
    '| batch (faces) | embed call median ms | p95 ms | faces/s | GCs / 1000 faces |',
    '|---:|---:|---:|---:|---:|',
    ...direct.map((r) => `| ${r.batch} | ${fmt(r.latency.medianMs)} | ${fmt(r.latency.p95Ms)} | ${fmt(r.facesPerSec, 0)} | ${fmt(r.gc.collectionsPer1000Faces)} |`),
    '',
    `| scheduler maxBatch | cameras | mean batch | faces/s | request p50 ms | p95 ms |`,
    '|---:|---:|---:|---:|---:|---:|',
    ...sched.map((r) => `| ${r.maxBatch} | ${r.cameras} | ${fmt(r.meanBatch)} | ${fmt(r.facesPerSec, 0)} | ${fmt(r.requestLatency.medianMs)} | ${fmt(r.requestLatency.p95Ms)} |`),
    '',
    '| detector stage | cameras | crops / frame | one run per frame, median ms | merged run, median ms | speed-up |',
    '|---|---:|---:|---:|---:|---:|',
    ...stages.map((r) => `| ${r.model} | ${r.cameras} | ${r.cropsPerFrame} | ${fmt(r.separateMs.medianMs, 2)} | ${fmt(r.mergedMs.medianMs, 2)} | ${fmt(r.speedup, 2)}× |`),
    '',
    '| input path | batch | faces | GCs / 1000 faces | GC ms / 1000 faces | heap growth MiB | ArrayBuffer growth MiB | faces/s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...gc.map((r) => `| ${r.path} | ${r.batch} | ${r.faces} | ${fmt(r.gc.collectionsPer1000Faces)} | ${fmt(r.gc.gcMsPer1000Faces)} | ${fmt(r.gc.heapGrowthBytes / 2 ** 20)} | ${fmt(r.gc.arrayBufferGrowthBytes / 2 ** 20)} | ${fmt(r.facesPerSec, 0)} |`),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const n = (full: number, quick: number): number => (args.quick ? quick : full);
  const log = (line: string): void => console.log(line);
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const cores = os.availableParallelism();
  const load = Math.round(os.loadavg()[0] * 100) / 100;
  const ortVersion = (JSON.parse(readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;
  log(`machine: ${cpu} × ${cores}, node ${process.version}, onnxruntime-node ${ortVersion}, load average ${load}`);
  if (load > 0.5 * cores) log(`warning: load average ${load} on ${cores} cores: other work is running, numbers will be inflated`);

  const chips = await realChips(log);
  const registry = ModelRegistry.load();
  const entry = registry.defaultFor('embedder');
  await registry.ensure([entry], log);
  const session = await createSession(entry.name, registry.pathOf(entry), { log: (_l, m) => log(m) });
  log(`embedder ${entry.name} on ${session.provider}; ${chips.length} real aligned chips; flip averaging on (2 images per face)`);
  const embedder = new FaceEmbedder(entry, session, { flipAverage: true });
  const pick = (count: number, offset: number): RgbImage[] => Array.from({ length: count }, (_, i) => chips[(offset + i) % chips.length] as RgbImage);

  log('direct embed:');
  const direct: DirectRow[] = [];
  for (const b of BATCHES) {
    const iterations = n(Math.max(8, Math.round(160 / b)), 2);
    for (let i = 0; i < n(3, 1); i++) await embedder.embed(pick(b, i)); // warm-up
    const times: number[] = [];
    const { gc } = await withGc(() => iterations * b, async () => {
      for (let i = 0; i < iterations; i++) {
        const t = performance.now();
        await embedder.embed(pick(b, i));
        times.push(performance.now() - t);
      }
    });
    const l = latency(times);
    const row = { batch: b, latency: l, facesPerSec: (b * 1000) / l.medianMs, gc };
    direct.push(row);
    log(`  batch ${String(b).padStart(2)}: median ${fmt(l.medianMs).padStart(7)} ms  p95 ${fmt(l.p95Ms).padStart(7)} ms  ${fmt(row.facesPerSec, 0).padStart(5)} faces/s  ${fmt(gc.collectionsPer1000Faces)} GCs/1000 faces`);
  }

  log(`scheduler, ${args.cameras} cameras:`);
  const sched: SchedulerRow[] = [];
  for (const b of BATCHES) {
    const scheduler = new BatchScheduler<RgbImage, Float32Array>('embedder', (items) => embedder.embed(items), { maxBatch: b, maxWaitMs: 15, maxPending: 64 });
    const framesPerCamera = n(Math.max(6, Math.round(60 / args.cameras)), 1);
    const requests: number[] = [];
    let faces = 0;
    const rnd = seededRandom(b);
    const started = performance.now();
    const { gc } = await withGc(() => faces, () =>
      Promise.all(
        Array.from({ length: args.cameras }, async (_, cam) => {
          for (let f = 0; f < framesPerCamera; f++) {
            const count = 1 + Math.floor(rnd() * 3);
            const t = performance.now();
            await scheduler.submitAll(pick(count, cam * 7 + f));
            requests.push(performance.now() - t);
            faces += count;
          }
        }),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const row: SchedulerRow = { maxBatch: b, cameras: args.cameras, facesPerSec: faces / seconds, requestLatency: latency(requests), meanBatch: scheduler.stats.items / Math.max(1, scheduler.stats.runs), gc };
    sched.push(row);
    log(`  maxBatch ${String(b).padStart(2)}: mean batch ${fmt(row.meanBatch)}  ${fmt(row.facesPerSec, 0).padStart(5)} faces/s  request p50 ${fmt(row.requestLatency.medianMs)} ms  p95 ${fmt(row.requestLatency.p95Ms)} ms`);
  }

  log(`R-Net/O-Net, ${args.cameras} cameras' crops: separate runs vs one merged run:`);
  const stages: StageRow[] = [];
  for (const [name, size, per] of [['mtcnn-rnet', 24, 12], ['mtcnn-onet', 48, 4]] as const) {
    const e = registry.get(name);
    await registry.ensure([e], log);
    const stage = await createSession(e.name, registry.pathOf(e), { log: (_l, m) => log(m) });
    const merged = batchedSession({ ...stage, release: async () => {} }, { maxRequests: 32 });
    const rnd = seededRandom(size);
    const frames = Array.from({ length: args.cameras }, () => ({ input: { data: Float32Array.from({ length: per * 3 * size * size }, () => Math.floor(rnd() * 256)), dims: [per, 3, size, size] } }));
    const reps = n(30, 2);
    for (const f of frames) await stage.run(f); // warm-up, both paths
    await Promise.all(frames.map((f) => merged.run(f)));
    const separate: number[] = [];
    const together: number[] = [];
    for (let i = 0; i < reps; i++) {
      let t = performance.now();
      for (const f of frames) await stage.run(f);
      separate.push(performance.now() - t);
      // As the agent: all cameras submit at once; the first runs alone, the rest merge behind it,
      // so this is what N concurrent cameras cost.
      t = performance.now();
      await Promise.all(frames.map((f) => merged.run(f)));
      together.push(performance.now() - t);
    }
    const row: StageRow = { model: name, cameras: args.cameras, cropsPerFrame: per, separateMs: latency(separate), mergedMs: latency(together), speedup: latency(separate).medianMs / latency(together).medianMs };
    stages.push(row);
    log(`  ${name}: separate ${fmt(row.separateMs.medianMs, 2)} ms, merged ${fmt(row.mergedMs.medianMs, 2)} ms (${fmt(row.speedup, 2)}×)`);
    await stage.release();
  }

  log('GC, reused input buffers vs a fresh tensor per call:');
  const gcRows: GcRow[] = [];
  const gcBatch = 8;
  const gcIterations = n(40, 2);
  for (const path of ['reused buffers (agent)', 'fresh tensor per call'] as const) {
    const t = performance.now();
    const { gc } = await withGc(() => gcIterations * gcBatch, async () => {
      for (let i = 0; i < gcIterations; i++) {
        if (path === 'reused buffers (agent)') await embedder.embed(pick(gcBatch, i));
        else await embedFresh(session, pick(gcBatch, i));
      }
    });
    const row = { path, batch: gcBatch, faces: gcIterations * gcBatch, gc, facesPerSec: (gcIterations * gcBatch * 1000) / (performance.now() - t) };
    gcRows.push(row);
    log(`  ${path.padEnd(24)} ${fmt(gc.collectionsPer1000Faces)} GCs and ${fmt(gc.gcMsPer1000Faces)} GC ms per 1000 faces, heap ${fmt(gc.heapGrowthBytes / 2 ** 20)} MiB`);
  }
  await session.release();

  const results = {
    date: new Date().toISOString(),
    command: `npm run bench:batching${args.quick ? ' -- --quick' : ''}`,
    machine: { cpu, cores, node: process.version, onnxruntime: ortVersion, loadAverage1m: load },
    embedder: entry.name,
    provider: session.provider,
    flipAverage: true,
    direct,
    scheduler: sched,
    detectorStages: stages,
    gc: gcRows,
  };
  const text = table(direct, sched, stages, gcRows);
  log('');
  log(text);
  writeFileSync(args.json, `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${relative(process.cwd(), args.json)}`);
  if (args.readme) {
    const section = [
      START_MARKER,
      `Batching (\`${results.command}\`, ${results.date.slice(0, 10)}, ${cpu} × ${cores}, ${entry.name} on ${session.provider}, flip averaging on; ` +
        `load average ${load} at start; JSON: models/bench/${relative(HERE, args.json)}). Scheduler rows: ${args.cameras} simulated cameras, 1–3 faces per frame, maxWait 15 ms.`,
      '',
      text,
      END_MARKER,
    ].join('\n');
    const existing = readFileSync(README, 'utf8');
    const start = existing.indexOf(START_MARKER);
    const end = existing.indexOf(END_MARKER);
    let next: string;
    if (start >= 0 && end > start) next = existing.slice(0, start) + section + existing.slice(end + END_MARKER.length);
    else if (start >= 0 || end >= 0) throw new Error(`${README}: batching markers are incomplete or out of order; fix them by hand`);
    else next = `${existing.trimEnd()}\n\n${section}\n`;
    writeFileSync(README, next);
    log(`updated ${relative(process.cwd(), README)}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack ?? err.message : String(err));
    process.exit(1);
  });
}
