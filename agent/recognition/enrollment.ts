// Enrollment from image files: every image must hold exactly one face; the embeddings of all images
// are computed first and written in one transaction, so a bad image leaves the gallery untouched.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { decodeImage } from '../vision/image.js';
import type { FaceEmbedder, FaceEmbeddingResult } from './embedder.js';
import type { AnalyzedFace, FaceAnalyzer } from './face-analyzer.js';
import { type EnrollItem, type Gallery, patternModel } from './gallery.js';
import { type OcclusionDictionary, WIDE_SPACE } from './occlusion-masks.js';

export interface EnrolledImage {
  file: string;
  box: { x: number; y: number; w: number; h: number };
  score: number;
}

/** One enrollment image: a file path, or encoded bytes (e.g. from an MQTT request) with a label naming it in errors. */
export interface EnrollmentImage {
  label: string;
  input: string | Uint8Array;
}

/** One embedding per image, or an error naming every image that has zero or several faces. */
export async function embedEnrollmentImages(analyzer: FaceAnalyzer, files: readonly string[], keepPhotos: boolean): Promise<{ items: EnrollItem[]; images: EnrolledImage[] }> {
  return embedEnrollmentInputs(analyzer, files.map((file) => ({ label: file, input: file })), keepPhotos);
}

/** The same rules for files and in-memory images: the CLI and the MQTT `enroll` command share them. */
export async function embedEnrollmentInputs(analyzer: FaceAnalyzer, inputs: readonly EnrollmentImage[], keepPhotos: boolean): Promise<{ items: EnrollItem[]; images: EnrolledImage[] }> {
  if (inputs.length === 0) throw new Error('no images given');
  const items: EnrollItem[] = [];
  const images: EnrolledImage[] = [];
  const problems: string[] = [];
  for (const { label, input } of inputs) {
    const faces = await analyzer.analyze(await decodeImage(input, label));
    if (faces.length !== 1) {
      problems.push(faces.length === 0 ? `${label}: no face found` : `${label}: ${faces.length} faces found`);
      continue;
    }
    const face = faces[0] as (typeof faces)[number];
    const photo = keepPhotos ? (typeof input === 'string' ? readFileSync(input) : input) : undefined;
    items.push(...itemsFor(analyzer, face, typeof input === 'string' ? basename(input) : label, photo));
    images.push({
      file: label,
      box: { x: face.box.x1, y: face.box.y1, w: face.box.x2 - face.box.x1, h: face.box.y2 - face.box.y1 },
      score: face.score,
    });
  }
  if (problems.length > 0) {
    throw new Error(`enrollment needs exactly one face per image; nothing was enrolled: ${problems.join('; ')}`);
  }
  return { items, images };
}

/**
 * The gallery items of one enrolled face: its embedding (with the photo), and with occlusion masks
 * its embedding under every pattern (and, for an embedder with views, its wide embedding), so a masked probe is compared with a gallery masked the same
 * way; when fusing, the same for the companion embedder. `models` limits which embedders' items
 * are made (re-embedding fills in only the missing ones).
 */
function itemsFor(analyzer: FaceAnalyzer, face: AnalyzedFace, source: string, photo: Uint8Array | undefined, models?: ReadonlySet<string>): EnrollItem[] {
  const items: EnrollItem[] = [];
  const companion = analyzer.fusion?.companion;
  const sides: [FaceEmbeddingResult | undefined, FaceEmbedder, OcclusionDictionary | undefined][] = [[face, analyzer.embedder, analyzer.occlusion]];
  if (companion) sides.push([face.companion, companion.embedder, companion.occlusion]);
  for (const [result, embedder, masks] of sides) {
    const model = embedder.entry.name;
    if (!result || (models && !models.has(model))) continue;
    // The photo is kept once, with the first item made of it.
    items.push({ embedding: result.embedding, model, source, ...(photo && items.length === 0 ? { photo } : {}) });
    // The masks read the representation they were fitted on; with views the wide embedding is kept too.
    const seen = masks?.representation(result);
    if (masks && seen?.features) {
      const oriented = masks.orient(seen.features, seen.mirrorFeatures);
      for (const pattern of masks.patterns.keys()) items.push({ embedding: masks.maskedEmbeddingOriented(pattern, oriented), model: patternModel(model, pattern), source });
      if (masks.plainSpace === WIDE_SPACE) items.push({ embedding: seen.embedding, model: patternModel(model, WIDE_SPACE), source });
    }
  }
  return items;
}

/** The embedders whose embeddings an enrolled identity must have: the analyzer's, and its companion's when fusing. */
export function enrolledModels(analyzer: FaceAnalyzer): string[] {
  const companion = analyzer.fusedWith;
  return [analyzer.embedder.entry.name, ...(companion ? [companion] : [])];
}

export async function enrollFromImages(analyzer: FaceAnalyzer, gallery: Gallery, name: string, files: readonly string[]): Promise<EnrolledImage[]> {
  const { items, images } = await embedEnrollmentImages(analyzer, files, gallery.keepPhotos);
  gallery.enroll(name, items);
  return images;
}

/**
 * For every identity missing embeddings of the analyzer's models (its embedder, and its companion
 * when fusing): re-embeds its kept photos (only those that still show exactly one face) and stores
 * the missing models' embeddings. Identities without usable photos are returned in
 * `needReenrollment` (the caller logs them and reports them in stats).
 */
export async function reembedFromPhotos(analyzer: FaceAnalyzer, gallery: Gallery): Promise<{ reembedded: string[]; needReenrollment: string[] }> {
  const missing = new Map<string, Set<string>>();
  for (const model of enrolledModels(analyzer)) {
    for (const name of gallery.needsReenrollment(model)) missing.set(name, (missing.get(name) ?? new Set()).add(model));
  }
  const reembedded: string[] = [];
  const needReenrollment: string[] = [];
  for (const [name, models] of missing) {
    const seen = new Set<string>();
    const items: EnrollItem[] = [];
    for (const p of gallery.photosFor(name)) {
      const key = createHash('sha256').update(p.photo).digest('hex');
      if (seen.has(key)) continue; // the same photo kept for several models
      seen.add(key);
      let faces: Awaited<ReturnType<FaceAnalyzer['analyze']>>;
      try {
        faces = await analyzer.analyze(await decodeImage(p.photo, `${name}/${p.source}`));
      } catch {
        continue;
      }
      const face = faces[0];
      if (faces.length === 1 && face) items.push(...itemsFor(analyzer, face, p.source, p.photo, models));
    }
    if (items.length > 0) {
      gallery.enroll(name, items);
      reembedded.push(name);
    } else {
      needReenrollment.push(name);
    }
  }
  return { reembedded, needReenrollment };
}
