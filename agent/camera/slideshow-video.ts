// H.264 MP4 videos built with ffmpeg from still images shown at known times (e.g. the face
// photos shipped in @vladmandic/face-api), with plain gray gaps between them. Deterministic
// (bit-exact flags, fixed thread count) and cached in a temp directory by a hash of the inputs.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createRequire } from 'node:module';
import { resolveFfmpeg } from './ffmpeg-binary.js';

/** The face photos shipped in @vladmandic/face-api: demo/sample1.jpg … sample6.jpg. */
export const faceApiSamplePath = (n: number): string => createRequire(import.meta.url).resolve(`@vladmandic/face-api/demo/sample${n}.jpg`);

export interface VideoSegment {
  /** Image shown (scaled to fit, centred on gray); null: gray only (no face). */
  image: string | null;
  seconds: number;
}

export interface MakeVideoOptions {
  segments: VideoSegment[];
  /** Default 1280×720. */
  width?: number;
  height?: number;
  /** Default 25. */
  fps?: number;
  /** Cache directory, default <tmp>/facegate-test-videos. */
  dir?: string;
  ffmpegPath?: string;
}

export interface TimelineEntry {
  image: string | null;
  /** Seconds from the start of the file (of each loop, when served in a loop). */
  start: number;
  end: number;
}

export interface TestVideo {
  path: string;
  width: number;
  height: number;
  fps: number;
  /** Seconds. */
  duration: number;
  timeline: TimelineEntry[];
}

const GRAY = '0x808080';

function runFfmpeg(binary: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (t: string) => {
      stderr = (stderr + t).slice(-4000);
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`ffmpeg failed (${code}) building a test video: ${stderr.trim()}`));
    });
  });
}

/** Builds (or finds in the cache) an MP4 showing the segments in order. */
export async function makeVideo(options: MakeVideoOptions): Promise<TestVideo> {
  const width = options.width ?? 1280;
  const height = options.height ?? 720;
  const fps = options.fps ?? 25;
  const dir = options.dir ?? join(tmpdir(), 'facegate-test-videos');
  if (options.segments.length === 0) throw new Error('makeVideo: no segments');
  for (const s of options.segments) {
    if (!(s.seconds > 0)) throw new Error(`makeVideo: segment of ${s.seconds} s`);
  }
  const ffmpeg = resolveFfmpeg({ configPath: options.ffmpegPath }).path;

  const hash = createHash('sha256');
  hash.update(JSON.stringify({ v: 1, width, height, fps, segments: options.segments.map((s) => [s.image, s.seconds]), ffmpeg }));
  for (const s of options.segments) if (s.image !== null) hash.update(await readFile(s.image));
  const path = join(dir, `video-${width}x${height}-${fps}-${hash.digest('hex').slice(0, 16)}.mp4`);

  const timeline: TimelineEntry[] = [];
  let t = 0;
  for (const s of options.segments) {
    timeline.push({ image: s.image, start: t, end: t + s.seconds });
    t += s.seconds;
  }
  const video: TestVideo = { path, width, height, fps, duration: t, timeline };

  const existing = await stat(path).catch(() => undefined);
  if (existing !== undefined && existing.size > 0) return video;

  await mkdir(dir, { recursive: true });
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y'];
  const chains: string[] = [];
  options.segments.forEach((s, i) => {
    if (s.image === null) {
      args.push('-f', 'lavfi', '-t', String(s.seconds), '-i', `color=c=${GRAY}:s=${width}x${height}:r=${fps}`);
    } else {
      args.push('-loop', '1', '-framerate', String(fps), '-t', String(s.seconds), '-i', s.image);
    }
    chains.push(
      `[${i}:v]scale=${width}:${height}:force_original_aspect_ratio=decrease,` +
        `pad=${width}:${height}:(ow-iw)/2:(oh-ih)/2:color=${GRAY},setsar=1,fps=${fps},format=yuv420p[v${i}]`,
    );
  });
  const inputs = options.segments.map((_, i) => `[v${i}]`).join('');
  const filter = `${chains.join(';')};${inputs}concat=n=${options.segments.length}:v=1:a=0[out]`;
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp.mp4`;
  args.push(
    '-filter_complex', filter, '-map', '[out]',
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'stillimage', '-pix_fmt', 'yuv420p',
    // A keyframe every second (RTSP clients can join within a second), no B-frames (like cameras).
    '-g', String(fps), '-keyint_min', String(fps), '-sc_threshold', '0', '-bf', '0',
    '-threads', '2', '-fflags', '+bitexact', '-flags:v', '+bitexact', '-map_metadata', '-1',
    '-movflags', '+faststart', '-f', 'mp4', tmp,
  );
  try {
    await runFfmpeg(ffmpeg, args);
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
  return video;
}

export interface FaceVideoOptions {
  /** Which face-api demo photos (1..6), in order; default [1, 2, 3]. */
  samples?: number[];
  /** Seconds each photo is shown, default 3; gray gaps of gapSeconds (default 1) before each. */
  faceSeconds?: number;
  gapSeconds?: number;
  width?: number;
  height?: number;
  fps?: number;
  dir?: string;
}

/** Gray gap, photo, gray gap, photo, … from node_modules/@vladmandic/face-api/demo/sample<n>.jpg. */
export function makeFaceVideo(options: FaceVideoOptions = {}): Promise<TestVideo> {
  const faceSeconds = options.faceSeconds ?? 3;
  const gapSeconds = options.gapSeconds ?? 1;
  const segments: VideoSegment[] = [];
  for (const n of options.samples ?? [1, 2, 3]) {
    if (gapSeconds > 0) segments.push({ image: null, seconds: gapSeconds });
    segments.push({ image: faceApiSamplePath(n), seconds: faceSeconds });
  }
  return makeVideo({ segments, width: options.width, height: options.height, fps: options.fps, dir: options.dir });
}
