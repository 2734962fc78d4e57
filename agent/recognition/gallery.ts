// The enrolled gallery: identities and their face embeddings in SQLite (<dataDir>/gallery.sqlite).
// Each embedding records the model that produced it, so embeddings of different models are never
// compared. Photos are stored only when the gallery is opened with `keepPhotos` (they allow
// re-embedding with another model; otherwise identities must be re-enrolled).
//
// The file is shared between processes (the running agent reads, `facegate enroll` writes): WAL
// journal, a busy timeout, and a change counter bumped by every write so `version()` tells a reader
// that something changed, whichever process wrote it.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { migrate } from './gallery-migrations.js';

export const GALLERY_FILE = 'gallery.sqlite';

export interface GalleryOptions {
  /** Store the photos passed to enroll() (default false: photos are dropped). */
  keepPhotos?: boolean;
  /** Open read-only (the file must exist and be migrated). */
  readonly?: boolean;
}

export interface EnrollItem {
  embedding: Float32Array;
  /** Name of the embedder model that produced the embedding. */
  model: string;
  /** The enrollment image (encoded bytes); stored only with keepPhotos. */
  photo?: Uint8Array;
  /** Where the embedding came from, e.g. the image file name. */
  source: string;
}

/** Separator of an occlusion pattern's gallery model tag: `<model>#occlusion:<pattern>`. */
const PATTERN_TAG = '#occlusion:';

/** Gallery model tag of an occlusion pattern's embeddings: kept apart from the model's plain embeddings. */
export function patternModel(model: string, pattern: string): string {
  return `${model}${PATTERN_TAG}${pattern}`;
}

export interface IdentitySummary {
  name: string;
  /** Number of stored embeddings (one per enrolled photo and model), all models together. */
  embeddings: number;
  /** Embeddings per model name. */
  models: Record<string, number>;
  /** Embeddings made under occlusion patterns (occlusion-aware matching), per model name. */
  occlusionEmbeddings: Record<string, number>;
  /** Number of stored photos. */
  photos: number;
  createdAt: string;
  updatedAt: string;
}

export interface StoredEmbedding {
  identity: string;
  embedding: Float32Array;
}

export interface StoredPhoto {
  model: string;
  source: string;
  photo: Uint8Array;
  createdAt: string;
}

const MAX_NAME_LENGTH = 200;

export function validateIdentityName(name: string): string {
  const trimmed = name.trim();
  if (trimmed.length === 0) throw new Error('identity name is empty');
  if (trimmed.length > MAX_NAME_LENGTH) throw new Error(`identity name is longer than ${MAX_NAME_LENGTH} characters`);
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) throw new Error('identity name contains control characters');
  return trimmed;
}

/** A Float32Array's bytes as a Buffer (no copy). */
const blobOf = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** A Float32 blob as a fresh, aligned Float32Array. */
function vectorOf(blob: Buffer): Float32Array {
  const out = new Float32Array(blob.byteLength / 4);
  new Uint8Array(out.buffer).set(blob);
  return out;
}

export class Gallery {
  private constructor(
    readonly file: string,
    private readonly db: Database,
    readonly keepPhotos: boolean,
  ) {}

  /** Whether `<dataDir>/gallery.sqlite` exists. */
  static exists(dataDir: string): boolean {
    return existsSync(join(dataDir, GALLERY_FILE));
  }

  /** Opens (creating and migrating when needed) `<dataDir>/gallery.sqlite`. */
  static open(dataDir: string, options: GalleryOptions = {}): Gallery {
    const file = join(dataDir, GALLERY_FILE);
    if (!options.readonly) mkdirSync(dataDir, { recursive: true });
    const db = new BetterSqlite3(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false, timeout: 5000 });
    try {
      if (!options.readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        migrate(db);
      }
      db.pragma('foreign_keys = ON');
    } catch (err) {
      db.close();
      throw new Error(`cannot open the gallery ${file}: ${(err as Error).message}`);
    }
    return new Gallery(file, db, options.keepPhotos ?? false);
  }

  /** Schema version (PRAGMA user_version). */
  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** A number that changes with every write to the gallery, by this or any other process. */
  version(): number {
    return (this.db.prepare('SELECT counter FROM changes WHERE id = 1').get() as { counter: number }).counter;
  }

  private bump(): void {
    this.db.prepare('UPDATE changes SET counter = counter + 1 WHERE id = 1').run();
  }

  /**
   * Adds embeddings to `name` (creating the identity), all in one transaction: either every item
   * is stored or none. All embeddings of one model must have the same length.
   */
  enroll(name: string, items: readonly EnrollItem[]): void {
    const identity = validateIdentityName(name);
    if (items.length === 0) throw new Error(`nothing to enroll for ${identity}`);
    for (const [i, it] of items.entries()) {
      if (!it.model) throw new Error(`item ${i} (${it.source}) has no model name`);
      if (it.embedding.length === 0) throw new Error(`item ${i} (${it.source}) has an empty embedding`);
      if (!it.embedding.every(Number.isFinite)) throw new Error(`item ${i} (${it.source}) has a non-finite embedding value`);
    }
    const now = new Date().toISOString();
    const db = this.db;
    const run = db.transaction(() => {
      for (const it of items) {
        const dims = db.prepare('SELECT dims FROM embeddings WHERE model = ? LIMIT 1').get(it.model) as { dims: number } | undefined;
        if (dims && dims.dims !== it.embedding.length) {
          throw new Error(`${it.source}: model ${it.model} embeddings in the gallery have ${dims.dims} values, this one has ${it.embedding.length}`);
        }
      }
      db.prepare('INSERT INTO identities (name, created_at, updated_at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET updated_at = excluded.updated_at').run(identity, now, now);
      const { id } = db.prepare('SELECT id FROM identities WHERE name = ?').get(identity) as { id: number };
      const insert = db.prepare('INSERT INTO embeddings (identity_id, model, dims, vector, source, created_at) VALUES (?, ?, ?, ?, ?, ?)');
      const insertPhoto = db.prepare('INSERT INTO photos (embedding_id, data) VALUES (?, ?)');
      for (const it of items) {
        const r = insert.run(id, it.model, it.embedding.length, blobOf(it.embedding), it.source, now);
        if (this.keepPhotos && it.photo) insertPhoto.run(r.lastInsertRowid, Buffer.from(it.photo.buffer, it.photo.byteOffset, it.photo.byteLength));
      }
      this.bump();
    });
    run.immediate();
  }

  list(): IdentitySummary[] {
    const identities = this.db.prepare('SELECT id, name, created_at AS createdAt, updated_at AS updatedAt FROM identities ORDER BY name').all() as {
      id: number;
      name: string;
      createdAt: string;
      updatedAt: string;
    }[];
    const perModel = this.db.prepare('SELECT identity_id AS id, model, count(*) AS n FROM embeddings GROUP BY identity_id, model ORDER BY model').all() as { id: number; model: string; n: number }[];
    const photos = this.db.prepare('SELECT e.identity_id AS id, count(*) AS n FROM photos p JOIN embeddings e ON e.id = p.embedding_id GROUP BY e.identity_id').all() as { id: number; n: number }[];
    const photoCount = new Map(photos.map((p) => [p.id, p.n]));
    return identities.map((i) => {
      const models: Record<string, number> = {};
      const occlusionEmbeddings: Record<string, number> = {};
      for (const m of perModel) {
        if (m.id !== i.id) continue;
        const tag = m.model.indexOf(PATTERN_TAG);
        if (tag < 0) models[m.model] = m.n;
        else {
          const base = m.model.slice(0, tag);
          occlusionEmbeddings[base] = (occlusionEmbeddings[base] ?? 0) + m.n;
        }
      }
      return {
        name: i.name,
        embeddings: Object.values(models).reduce((a, b) => a + b, 0),
        models,
        occlusionEmbeddings,
        photos: photoCount.get(i.id) ?? 0,
        createdAt: i.createdAt,
        updatedAt: i.updatedAt,
      };
    });
  }

  /** Removes an identity with its embeddings and photos; false when there was none of that name. */
  remove(name: string): boolean {
    const run = this.db.transaction(() => {
      const r = this.db.prepare('DELETE FROM identities WHERE name = ?').run(name.trim());
      if (r.changes > 0) this.bump();
      return r.changes > 0;
    });
    return run.immediate();
  }

  /** Identities that have no embedding produced by `model` (they must be re-enrolled or re-embedded). */
  needsReenrollment(model: string): string[] {
    return (
      this.db
        .prepare('SELECT name FROM identities i WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.identity_id = i.id AND e.model = ?) ORDER BY name')
        .all(model) as { name: string }[]
    ).map((r) => r.name);
  }

  /** All embeddings produced by `model`, with their identity names, in a stable order. */
  embeddingsFor(model: string): StoredEmbedding[] {
    const rows = this.db.prepare('SELECT i.name, e.vector FROM embeddings e JOIN identities i ON i.id = e.identity_id WHERE e.model = ? ORDER BY e.id').all(model) as {
      name: string;
      vector: Buffer;
    }[];
    return rows.map((r) => ({ identity: r.name, embedding: vectorOf(r.vector) }));
  }

  /** The stored photos of an identity (empty unless it was enrolled with keepPhotos). */
  photosFor(name: string): StoredPhoto[] {
    const rows = this.db
      .prepare(
        'SELECT e.model, e.source, e.created_at AS createdAt, p.data FROM photos p JOIN embeddings e ON e.id = p.embedding_id JOIN identities i ON i.id = e.identity_id WHERE i.name = ? ORDER BY e.id',
      )
      .all(name.trim()) as { model: string; source: string; createdAt: string; data: Buffer }[];
    return rows.map((r) => ({ model: r.model, source: r.source, createdAt: r.createdAt, photo: new Uint8Array(r.data) }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
