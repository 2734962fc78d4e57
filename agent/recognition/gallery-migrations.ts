// Versioned schema of the gallery database. `PRAGMA user_version` holds the version of the schema
// on disk; each migration moves it up by one, inside the same transaction as its DDL, so a crash
// never leaves a half-migrated file. Append new migrations at the end; never edit a shipped one.
import type { Database } from 'better-sqlite3';

export interface Migration {
  version: number;
  description: string;
  up: (db: Database) => void;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'identities, embeddings tagged with their model, optional photos, change counter',
    up: (db) =>
      db.exec(`
        CREATE TABLE identities (
          id         INTEGER PRIMARY KEY,
          name       TEXT NOT NULL UNIQUE,
          created_at TEXT NOT NULL,
          updated_at TEXT NOT NULL
        );
        CREATE TABLE embeddings (
          id          INTEGER PRIMARY KEY,
          identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
          model       TEXT NOT NULL,
          dims        INTEGER NOT NULL CHECK (dims > 0),
          vector      BLOB NOT NULL CHECK (length(vector) = 4 * dims),
          source      TEXT NOT NULL,
          created_at  TEXT NOT NULL
        );
        CREATE INDEX embeddings_by_identity ON embeddings(identity_id);
        CREATE INDEX embeddings_by_model ON embeddings(model);
        CREATE TABLE photos (
          embedding_id INTEGER PRIMARY KEY REFERENCES embeddings(id) ON DELETE CASCADE,
          data         BLOB NOT NULL
        );
        -- One row, bumped by every write: Gallery.version() reads it, so any process sees changes.
        CREATE TABLE changes (id INTEGER PRIMARY KEY CHECK (id = 1), counter INTEGER NOT NULL);
        INSERT INTO changes (id, counter) VALUES (1, 0);
      `),
  },
];

export const LATEST_VERSION = MIGRATIONS.reduce((v, m) => Math.max(v, m.version), 0);

/** Brings the schema of `db` to the latest version; returns the versions before and after. */
export function migrate(db: Database, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  const latest = migrations.reduce((v, m) => Math.max(v, m.version), 0);
  // IMMEDIATE: two processes opening a fresh gallery at once must not both run migration 1.
  const run = db.transaction(() => {
    const from = db.pragma('user_version', { simple: true }) as number;
    if (from > latest) {
      throw new Error(`the gallery schema is version ${from}, newer than this facegate understands (${latest}): upgrade facegate`);
    }
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (m.version <= from) continue;
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }
    return { from, to: Math.max(from, latest) };
  });
  return run.immediate();
}
