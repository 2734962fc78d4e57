// `npm run eval:detector`: MTCNN's miss rate on clean and occluded face photos, and its false
// faces on the clean frames of a demo video, for the published settings (0.6/0.7/0.7, one pass),
// the second pass's thresholds alone (what it finds on a frame it runs on) and the
// detector's defaults (agent/vision/mtcnn.ts). Prints a table, writes JSON
// (models/bench/detector-results.json or --json PATH) and rewrites the "Detection under occlusion"
// section of models/README.md between its markers (not with --no-readme, or when a set is missing).
// --limit N measures N images per set, spread evenly over it (the full run takes ~50 min on 2 cores).
//
// Miss: an image where no detection is the face the photo is about (hasCentralFace in
// agent/evaluation/detector-eval.ts). Sets: the LFW probes (second image of each pair of
// --pairs) clean, and the same probes in each occluded set built by `facegate occlude --seed 1
// --pairs … --probes-only`; the real masked/unmasked photos of --masked, padded by 30% grey.
//
// False faces per 1,000 clean frames: every frame (25 fps) of a video built like the demo's
// (agent/demo.ts: 1280×720, 2 s grey, then a face-api sample photo for 5 s) but over all six
// sample photos, 1,050 frames, detected at the agent's minimum face size (40 px). True faces are
// the faces annotated in agent/evaluation/sample-faces.ts (required and optional); a detection is
// false when less than half of it (or of the face) overlaps every true face, or when it is a
// second detection on the same face.
//
//   npm run eval:detector [-- --lfw DIR] [--pairs FILE] [--occluded DIR] [--masked DIR]
//     [--hamilton FILE] [--limit N] [--json PATH] [--no-readme]
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { resolveFfmpeg } from '../../agent/camera/ffmpeg-binary.js';
import { faceApiSamplePath, makeVideo } from '../../agent/camera/slideshow-video.js';
import { hasCentralFace, padImage, videoFrames } from '../../agent/evaluation/detector-eval.js';
import { type ExpectedFace, falseFaces, placeExpected, SAMPLE_PHOTO_FACES } from '../../agent/evaluation/sample-faces.js';
import { targetImages } from '../../agent/occlusion/occlude-set.js';
import { FaceAnalyzer } from '../../agent/recognition/face-analyzer.js';
import { decodeImage, type RgbImage } from '../../agent/vision/image.js';
import { DEFAULT_MTCNN_OPTIONS, isStrongFace, type MtcnnOptions, PUBLISHED_MTCNN_OPTIONS } from '../../agent/vision/mtcnn.js';
import { parseBenchArgs } from './bench-args.js';
import { replaceMarkedSection } from './readme-section.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const README = join(ROOT, 'models', 'README.md');
const START_MARKER = '<!-- eval:detector:start -->';
const END_MARKER = '<!-- eval:detector:end -->';
const PAD = 0.3;
const AGENT_MIN_FACE = 40;
const VIDEO = { width: 1280, height: 720, fps: 25, greySeconds: 2, photoSeconds: 5 };

interface Setting {
  name: string;
  options: MtcnnOptions;
}

const fmt = (t: readonly number[]): string => t.join('/');
const describeSetting = (o: MtcnnOptions): string =>
  `${fmt(o.thresholds)}${o.secondPass ? `, then ${fmt(o.secondPass)} (pyramid step ${o.secondPassScaleFactor}${o.secondPassMirror ? ', on the frame and its mirror image' : ''}) when ${o.strongFaceScore > 0 ? `no face scores ≥ ${o.strongFaceScore}${o.landmarkCheck ? ' with plausible landmarks' : ''}` : 'nothing is found'}` : ''}${o.landmarkCheck ? ` (landmark check on the ${o.secondPass ? 'second pass' : 'faces'})` : ''}`;

function settings(): Setting[] {
  const list: Setting[] = [{ name: 'published', options: { ...PUBLISHED_MTCNN_OPTIONS } }];
  if (DEFAULT_MTCNN_OPTIONS.secondPass) {
    // The second pass's thresholds as the only pass (without the landmark check, which applies to
    // second passes only, and at the first pass's pyramid step, on the frame alone): roughly what
    // the second pass finds on a frame it runs on.
    const alone: MtcnnOptions = { ...PUBLISHED_MTCNN_OPTIONS, thresholds: DEFAULT_MTCNN_OPTIONS.secondPass };
    list.push({ name: 'loose pass alone', options: alone });
  }
  list.push({ name: 'default', options: { ...DEFAULT_MTCNN_OPTIONS } });
  return list;
}

interface PhotoSet {
  name: string;
  files: string[];
  pad: boolean;
  /** Why the set was not measured (its folder is missing). */
  skipped?: string;
}

interface SetResult {
  set: string;
  images: number;
  skipped?: string;
  misses: Record<string, number>;
  missRate: Record<string, number>;
}

interface VideoResult {
  video: string;
  frames: number;
  minFaceSize: number;
  definition: string;
  falseFaces: Record<string, number>;
  perThousandFrames: Record<string, number>;
  /** Frames on which the published cascade found no strong face (there the default runs its second pass). */
  framesWithSecondPass: number;
}

interface HamiltonResult {
  video: string;
  frames: number;
  minFaceSize: number;
  detectionsPerFrame: Record<string, number>;
  skipped?: string;
}

const listJpegs = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.jpe?g$/i.test(f))
    .sort()
    .map((f) => join(dir, f));

/** `count` files spread evenly over the list (all of them when count is undefined). */
const spread = (files: string[], count: number | undefined): string[] => {
  if (count === undefined || files.length <= count) return files;
  const step = files.length / count;
  return Array.from({ length: count }, (_, i) => files[Math.floor(i * step)] as string);
};

function photoSets(a: { lfw: string; pairs: string; occluded: string; masked: string; limit?: number }): PhotoSet[] {
  const sets: PhotoSet[] = [];
  const missing = (what: string, path: string, how: string): string => `${what} missing: ${path} does not exist (${how})`;
  const haveLfw = existsSync(a.lfw) && existsSync(a.pairs);
  const probes = haveLfw ? spread(targetImages({ imagesDir: a.lfw, pairsFile: a.pairs, probesOnly: true }), a.limit) : [];
  const lfwHow = 'LFW comes with ../shared/data; pass --lfw DIR --pairs FILE';
  sets.push({ name: 'LFW probes (clean)', files: probes.map((f) => join(a.lfw, f)), pad: false, skipped: haveLfw ? undefined : missing('LFW', existsSync(a.lfw) ? a.pairs : a.lfw, lfwHow) });
  for (const [name, dir] of [['Mask-LFW', 'mask-lfw'], ['Sunglasses-LFW', 'sunglasses-lfw'], ['Occ-LFW (random40)', 'random40-lfw']] as const) {
    const path = join(a.occluded, dir);
    const kind = dir.replace('-lfw', '');
    const how = `build it with: npx facegate occlude --images ${a.lfw} --out ${path} --kind ${kind} --seed 1 --pairs ${a.pairs} --probes-only`;
    const skipped = !existsSync(path) ? missing(name, path, how) : !haveLfw ? `${name}: needs the LFW pairs to pick its probes (${lfwHow})` : undefined;
    sets.push({ name, files: skipped ? [] : probes.map((f) => join(path, f)), pad: false, skipped });
  }
  for (const part of ['masked', 'unmasked'] as const) {
    const name = `real ${part} (padded ${PAD * 100}%)`;
    if (!existsSync(a.masked)) {
      sets.push({ name, files: [], pad: true, skipped: missing('real masked photos', a.masked, 'they come with ../shared/data; pass --masked DIR') });
      continue;
    }
    const people = readdirSync(a.masked).filter((p) => statSync(join(a.masked, p)).isDirectory()).sort();
    const files = people.flatMap((p) => (existsSync(join(a.masked, p, part)) ? listJpegs(join(a.masked, p, part)) : []));
    sets.push({ name, files: spread(files, a.limit), pad: true });
  }
  return sets;
}

async function measureSet(set: PhotoSet, detectors: { setting: Setting; analyzer: FaceAnalyzer }[], log: (l: string) => void): Promise<SetResult> {
  const misses: Record<string, number> = Object.fromEntries(detectors.map((d) => [d.setting.name, 0]));
  if (set.skipped) {
    log(`skipped: ${set.skipped}`);
    return { set: set.name, images: 0, skipped: set.skipped, misses, missRate: {} };
  }
  let next = set.files.length ? decodeImage(set.files[0] as string) : undefined;
  for (let i = 0; i < set.files.length; i++) {
    let image = await (next as Promise<RgbImage>);
    next = i + 1 < set.files.length ? decodeImage(set.files[i + 1] as string) : undefined;
    next?.catch(() => {});
    if (set.pad) image = await padImage(image, PAD);
    for (const { setting, analyzer } of detectors) {
      if (!hasCentralFace(await analyzer.detect(image), image.width, image.height)) misses[setting.name] = (misses[setting.name] ?? 0) + 1;
    }
    if ((i + 1) % 500 === 0) log(`${set.name}: ${i + 1}/${set.files.length}`);
  }
  const n = set.files.length;
  return { set: set.name, images: n, misses, missRate: Object.fromEntries(Object.entries(misses).map(([k, v]) => [k, v / Math.max(1, n)])) };
}

/** The true faces of a frame of the sample-photo video, at time t (seconds). */
function truthAt(timeline: { image: string | null; start: number; end: number }[], t: number): ExpectedFace[] {
  const seg = timeline.find((s) => t >= s.start && t < s.end);
  if (!seg || seg.image === null) return [];
  const photo = SAMPLE_PHOTO_FACES.find((p) => seg.image === faceApiSamplePath(p.sample));
  if (!photo) throw new Error(`no annotated faces for ${seg.image}`);
  const scale = Math.min(VIDEO.width / photo.width, VIDEO.height / photo.height);
  const dx = (VIDEO.width - photo.width * scale) / 2;
  const dy = (VIDEO.height - photo.height * scale) / 2;
  return [...photo.faces, ...(photo.optional ?? [])].map((e) => placeExpected(e, scale, dx, dy));
}

async function measureVideo(ffmpeg: string, list: Setting[], log: (l: string) => void): Promise<VideoResult> {
  const video = await makeVideo({
    segments: SAMPLE_PHOTO_FACES.flatMap((p) => [{ image: null, seconds: VIDEO.greySeconds }, { image: faceApiSamplePath(p.sample), seconds: VIDEO.photoSeconds }]),
    width: VIDEO.width,
    height: VIDEO.height,
    fps: VIDEO.fps,
    ffmpegPath: ffmpeg,
  });
  const detectors = await Promise.all(list.map(async (setting) => ({ setting, analyzer: await FaceAnalyzer.create({ detector: { ...setting.options, minFaceSize: AGENT_MIN_FACE } }) })));
  const wrong: Record<string, number> = Object.fromEntries(list.map((s) => [s.name, 0]));
  let frames = 0;
  let empty = 0;
  try {
    for await (const frame of videoFrames(ffmpeg, video.path, VIDEO.width, VIDEO.height)) {
      const truth = truthAt(video.timeline, (frames + 0.5) / VIDEO.fps);
      for (const { setting, analyzer } of detectors) {
        const faces = await analyzer.detect(frame);
        wrong[setting.name] = (wrong[setting.name] ?? 0) + falseFaces(faces, truth).length;
        if (setting.name === 'published' && !faces.some((f) => isStrongFace(f, DEFAULT_MTCNN_OPTIONS))) empty++;
      }
      frames++;
      if (frames % 250 === 0) log(`video: ${frames} frames`);
    }
  } finally {
    await Promise.all(detectors.map((d) => d.analyzer.close()));
  }
  return {
    video: relative(ROOT, video.path),
    frames,
    minFaceSize: AGENT_MIN_FACE,
    definition:
      'every frame of a 1280×720, 25 fps video of face-api sample1..6 (each after 2 s of grey, shown 5 s, as in the demo); ' +
      'a detection is false when its overlap with every annotated face (sample-faces.ts) is under half of the smaller box, or when it is a second detection of one face',
    falseFaces: wrong,
    perThousandFrames: Object.fromEntries(Object.entries(wrong).map(([k, v]) => [k, (1000 * v) / Math.max(1, frames)])),
    framesWithSecondPass: empty,
  };
}

async function measureHamilton(ffmpeg: string, file: string, list: Setting[], log: (l: string) => void): Promise<HamiltonResult> {
  if (!existsSync(file)) {
    const skipped = `Hamilton clip missing: ${file} does not exist (it comes with ../shared/data; pass --hamilton FILE)`;
    log(`skipped: ${skipped}`);
    return { video: file, frames: 0, minFaceSize: AGENT_MIN_FACE, detectionsPerFrame: {}, skipped };
  }
  const detectors = await Promise.all(list.map(async (setting) => ({ setting, analyzer: await FaceAnalyzer.create({ detector: { ...setting.options, minFaceSize: AGENT_MIN_FACE } }) })));
  const found: Record<string, number> = Object.fromEntries(list.map((s) => [s.name, 0]));
  let frames = 0;
  try {
    for await (const frame of videoFrames(ffmpeg, file, 640, 360)) {
      for (const { setting, analyzer } of detectors) found[setting.name] = (found[setting.name] ?? 0) + (await analyzer.detect(frame)).length;
      frames++;
    }
  } finally {
    await Promise.all(detectors.map((d) => d.analyzer.close()));
  }
  return { video: file, frames, minFaceSize: AGENT_MIN_FACE, detectionsPerFrame: Object.fromEntries(Object.entries(found).map(([k, v]) => [k, v / Math.max(1, frames)])) };
}

function table(list: Setting[], sets: SetResult[], video: VideoResult, hamilton: HamiltonResult): string {
  const pct = (v: number | undefined): string => (v === undefined ? '—' : `${(v * 100).toFixed(1)}%`);
  const head = `| | ${list.map((s) => s.name).join(' | ')} |`;
  const rule = `|---|${list.map(() => '---:').join('|')}|`;
  const rows = sets.map((r) =>
    r.skipped ? `| ${r.set} | ${list.map(() => 'not measured').join(' | ')} |` : `| misses: ${r.set}, ${r.images} images | ${list.map((s) => `${pct(r.missRate[s.name])} (${r.misses[s.name]})`).join(' | ')} |`,
  );
  rows.push(`| false faces per 1,000 clean frames (${video.frames} frames) | ${list.map((s) => `${(video.perThousandFrames[s.name] ?? 0).toFixed(1)} (${video.falseFaces[s.name]})`).join(' | ')} |`);
  if (!hamilton.skipped) rows.push(`| Hamilton clip: detections per frame (${hamilton.frames} frames, not classified) | ${list.map((s) => (hamilton.detectionsPerFrame[s.name] ?? 0).toFixed(2)).join(' | ')} |`);
  return [head, rule, ...rows].join('\n');
}

async function main(): Promise<void> {
  const args = parseBenchArgs(process.argv.slice(2), 'eval:detector', join(HERE, 'detector-results.json'), ['lfw', 'pairs', 'occluded', 'masked', 'hamilton', 'limit'] as const);
  const shared = join(ROOT, '..', 'shared', 'data');
  const lfw = resolve(args.extra.lfw ?? join(shared, 'lfw', 'images'));
  const pairs = resolve(args.extra.pairs ?? join(shared, 'lfw', 'pairs-dev.txt'));
  const occluded = resolve(args.extra.occluded ?? join(ROOT, '..', 'occluded'));
  const masked = resolve(args.extra.masked ?? join(shared, 'masked'));
  const hamiltonFile = resolve(args.extra.hamilton ?? join(shared, 'video', 'short_hamilton_clip.mp4'));
  const limit = args.extra.limit !== undefined ? Number(args.extra.limit) : undefined;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new Error(`--limit must be a positive integer, got ${args.extra.limit}`);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const started = Date.now();
  const list = settings();
  const ffmpeg = resolveFfmpeg().path;

  const sets = photoSets({ lfw, pairs, occluded, masked, limit });
  const detectors = await Promise.all(list.map(async (setting) => ({ setting, analyzer: await FaceAnalyzer.create({ detector: setting.options }) })));
  const setResults: SetResult[] = [];
  try {
    for (const set of sets) setResults.push(await measureSet(set, detectors, log));
  } finally {
    await Promise.all(detectors.map((d) => d.analyzer.close()));
  }
  const video = await measureVideo(ffmpeg, list, log);
  const hamilton = await measureHamilton(ffmpeg, hamiltonFile, list, log);

  const command = `npm run eval:detector${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const result = {
    command,
    date: new Date().toISOString(),
    seconds: (Date.now() - started) / 1000,
    settings: list.map((s) => ({ name: s.name, description: describeSetting(s.options), options: s.options })),
    miss: 'no detection whose centre is within 20% of the width and 25% of the height of the image centre and whose width is 25–100% of the shorter side',
    limit: limit ?? null,
    sets: setResults,
    video,
    hamilton,
  };
  writeFileSync(args.json, `${JSON.stringify(result, null, 2)}\n`);
  const text = table(list, setResults, video, hamilton);
  process.stdout.write(`${list.map((s) => `${s.name}: ${describeSetting(s.options)}`).join('\n')}\n\n${text}\n\n`);
  process.stdout.write(`frames on which the published cascade found no strong face (only there the default's second pass ran): ${video.framesWithSecondPass} of ${video.frames}\n`);
  const skipped = setResults.filter((r) => r.skipped);
  if (skipped.length) process.stdout.write(`NOT MEASURED (data missing):\n${skipped.map((r) => `  ${r.skipped}`).join('\n')}\n`);
  process.stdout.write(`wrote ${relative(process.cwd(), args.json)} (${result.seconds.toFixed(0)} s)\n`);
  if (args.readme && skipped.length === 0) writeReadme(readmeSection(result.command, result.date, limit, list, text, video));
}

function readmeSection(command: string, date: string, limit: number | undefined, list: Setting[], text: string, video: VideoResult): string {
  return [
    START_MARKER,
    `Measured with \`${command}\` on ${date.slice(0, 10)} (results: models/bench/detector-results.json)${limit ? `; ${limit} images per set, spread evenly over it` : ''}.`,
    '',
    ...list.map((s) => `- **${s.name}**: ${describeSetting(s.options)}`),
    '',
    text,
    '',
    `False faces: ${video.definition}; at the agent's minimum face size (${video.minFaceSize} px). ` +
      `The published cascade found no strong face on ${video.framesWithSecondPass} of the ${video.frames} frames: only there does the default run its second pass.`,
    END_MARKER,
  ].join('\n');
}

function writeReadme(section: string): void {
  replaceMarkedSection(README, START_MARKER, END_MARKER, section);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
