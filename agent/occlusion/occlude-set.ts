// `facegate occlude`: builds an occluded copy of a photo set (Occ-LFW, Mask-LFW, Sunglasses-LFW…).
// Every photo goes through the agent's detector; the occluder is placed by the landmarks of the
// face nearest the centre. Each photo's randomness is seeded by (seed, its relative path), so a
// photo gets the same occluder whatever else is in the run. Textures for hands and objects are
// cut from other photos of the set (a background corner, a cheek).
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';
import sharp from 'sharp';
import { readPairsFile } from '../evaluation/pairs.js';
import { pickCentralFace } from '../evaluation/run-eval.js';
import { seededRandom } from '../util/seeded-random.js';
import type { Box } from '../vision/geometry.js';
import { decodeImage, type RgbImage } from '../vision/image.js';
import type { DetectedFace, MtcnnDetector } from '../vision/mtcnn.js';
import { type FaceFrame, faceFrame, toImage } from './face-frame.js';
import { makeOccluder, type OccluderKind, type Texture, type TextureSource } from './occluders.js';
import { coveredFraction, renderOcclusion } from './render.js';

export interface OccludeSetOptions {
  imagesDir: string;
  outDir: string;
  kind: OccluderKind;
  seed: number;
  /** LFW pairs file: occlude the images it names (both of each pair, or only the probes). */
  pairsFile?: string;
  /** With pairsFile: occlude only the second image of each pair (FROM's protocol). */
  probesOnly?: boolean;
  /** Only the first N images (quick looks). */
  limit?: number;
  log?: (line: string) => void;
}

export interface OccludedImage {
  file: string;
  variant: string;
  /** false: no face found; the occluder was placed on a centred face guess. */
  faceFound: boolean;
  box: Box;
  /** Fraction of the face box covered. */
  coverage: number;
  donor: string;
}

export interface OccludeSetResult {
  kind: OccluderKind;
  seed: number;
  images: number;
  noFace: number;
  meanCoverage: number;
  variants: Record<string, number>;
  files: OccludedImage[];
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp']);

function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (IMAGE_EXTENSIONS.has(extname(name).toLowerCase())) out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

/** The relative paths to occlude. */
export function targetImages(options: Pick<OccludeSetOptions, 'imagesDir' | 'pairsFile' | 'probesOnly'>): string[] {
  if (!options.pairsFile) {
    if (options.probesOnly) throw new Error('--probes-only needs --pairs (the probes are the second image of each pair)');
    return listImages(options.imagesDir);
  }
  const { pairs } = readPairsFile(options.pairsFile);
  const files = new Set<string>();
  for (const p of pairs) {
    if (!options.probesOnly) files.add(p.first);
    files.add(p.second);
  }
  return [...files].sort();
}

/** A string hash (FNV-1a) to seed each photo's generator. */
function hashSeed(seed: number, key: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Landmarks of a centred face guess (dlib mean-face proportions in a square of 0.55 × the shorter side). */
function centredGuess(image: RgbImage): DetectedFace {
  const side = 0.55 * Math.min(image.width, image.height);
  const x0 = image.width / 2 - side / 2;
  const y0 = image.height / 2 - side / 2;
  const p = (u: number, v: number): { x: number; y: number } => ({ x: x0 + u * side, y: y0 + v * side });
  return { box: { x1: x0, y1: y0, x2: x0 + side, y2: y0 + side }, score: 0, landmarks: [p(0.32, 0.38), p(0.68, 0.38), p(0.5, 0.56), p(0.36, 0.76), p(0.64, 0.76)] };
}

async function cropPng(image: RgbImage, x: number, y: number, w: number, h: number): Promise<Texture> {
  const left = Math.max(0, Math.min(image.width - 1, Math.round(x)));
  const top = Math.max(0, Math.min(image.height - 1, Math.round(y)));
  const width = Math.max(1, Math.min(image.width - left, Math.round(w)));
  const height = Math.max(1, Math.min(image.height - top, Math.round(h)));
  const png = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).extract({ left, top, width, height }).png().toBuffer();
  return { png, width, height };
}

interface Donor {
  image: RgbImage;
  face: DetectedFace | undefined;
}

export class ImageOccluder {
  private readonly donors = new Map<string, Donor>();

  constructor(
    private readonly detector: MtcnnDetector,
    private readonly imagesDir: string,
    private readonly donorPool: readonly string[],
  ) {}

  private async donor(file: string): Promise<Donor> {
    const cached = this.donors.get(file);
    if (cached) return cached;
    const image = await decodeImage(join(this.imagesDir, file));
    const face = pickCentralFace(await this.detector.detect(image), image.width, image.height);
    // A small cache: donors are drawn at random, so reuse is rare and memory must stay bounded.
    if (this.donors.size >= 64) this.donors.delete(this.donors.keys().next().value as string);
    this.donors.set(file, { image, face });
    return { image, face };
  }

  /** A background corner and a cheek patch of another photo, drawn with `random`. */
  private async textures(random: () => number, exclude: string): Promise<{ source: TextureSource; donor: string }> {
    const pool = this.donorPool.filter((f) => f !== exclude);
    if (pool.length === 0) throw new Error('occlusion textures need at least one other photo in the set');
    const file = pool[Math.floor(random() * pool.length)] as string;
    const { image, face } = await this.donor(file);
    const side = Math.max(16, Math.round(0.22 * Math.min(image.width, image.height)));
    const right = random() < 0.5;
    const background = await cropPng(image, right ? image.width - side : 0, random() * 0.15 * image.height, side, side);
    const guess = face ?? centredGuess(image);
    const frame: FaceFrame = faceFrame(guess.landmarks);
    const cheek = toImage(frame, { x: random() < 0.5 ? -0.5 : 0.5, y: frame.nose.y + 0.2 });
    const s = Math.max(8, 0.3 * frame.scale);
    const skin = await cropPng(image, cheek.x - s / 2, cheek.y - s / 2, s, s);
    return { source: { background: () => background, skin: () => skin }, donor: file };
  }

  /** Occludes one photo (already decoded) and returns the result with its record. `known`: its face, when already detected. */
  async occlude(file: string, image: RgbImage, kind: OccluderKind, seed: number, known?: DetectedFace): Promise<{ image: RgbImage; record: OccludedImage }> {
    const random = seededRandom(hashSeed(seed, file));
    const detected = known ?? pickCentralFace(await this.detector.detect(image), image.width, image.height);
    const face = detected ?? centredGuess(image);
    const frame = faceFrame(face.landmarks);
    const { source, donor } = await this.textures(random, file);
    const occluder = makeOccluder(kind, { frame, box: face.box, random, textures: source });
    const rendered = await renderOcclusion(image, occluder, frame);
    return {
      image: rendered.image,
      record: {
        file,
        variant: occluder.variant,
        faceFound: detected !== undefined,
        box: face.box,
        coverage: coveredFraction(rendered.coverage, image.width, image.height, face.box),
        donor,
      },
    };
  }
}

export async function occludeImageSet(detector: MtcnnDetector, options: OccludeSetOptions): Promise<OccludeSetResult> {
  const log = options.log ?? (() => {});
  let targets = targetImages(options);
  if (options.limit !== undefined) targets = targets.slice(0, options.limit);
  if (targets.length === 0) throw new Error(`no images to occlude in ${options.imagesDir}`);
  const occluder = new ImageOccluder(detector, options.imagesDir, targets);
  const files: OccludedImage[] = [];
  const started = Date.now();
  for (const [i, file] of targets.entries()) {
    const image = await decodeImage(join(options.imagesDir, file));
    const { image: out, record } = await occluder.occlude(file, image, options.kind, options.seed);
    const dest = join(options.outDir, file);
    mkdirSync(dirname(dest), { recursive: true });
    await sharp(out.data, { raw: { width: out.width, height: out.height, channels: 3 } }).jpeg({ quality: 95 }).toFile(dest);
    files.push(record);
    if ((i + 1) % 250 === 0) log(`occluded ${i + 1}/${targets.length} (${((Date.now() - started) / (i + 1)).toFixed(0)} ms per image)`);
  }
  const variants: Record<string, number> = {};
  for (const f of files) variants[f.variant] = (variants[f.variant] ?? 0) + 1;
  const result: OccludeSetResult = {
    kind: options.kind,
    seed: options.seed,
    images: files.length,
    noFace: files.filter((f) => !f.faceFound).length,
    meanCoverage: files.reduce((s, f) => s + f.coverage, 0) / files.length,
    variants,
    files,
  };
  writeFileSync(
    join(options.outDir, 'occlusion.json'),
    `${JSON.stringify({ ...result, source: options.imagesDir, pairs: options.pairsFile ?? null, probesOnly: Boolean(options.probesOnly) }, null, 1)}\n`,
  );
  return result;
}
