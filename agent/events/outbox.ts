// The durable outbox: every identity event is written here (SQLite, <dataDir>/outbox.sqlite, WAL)
// before it is published, and removed only when the broker acknowledged it (QoS 1 PUBACK). A crash,
// a restart or a broker outage therefore loses nothing that was written; delivery is at-least-once
// in insertion order (`seq`), and subscribers drop duplicates by `eventId`.
//
// Bounded: at most `maxEvents` rows and none older than `maxAgeHours`; the oldest go first, each
// drop is counted and reported through `onDrop`.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3';

export const OUTBOX_FILE = 'outbox.sqlite';

export interface OutboxOptions {
  /** Most rows kept (default 10,000). */
  maxEvents?: number;
  /** Rows older than this are dropped; 0 or undefined = no age limit. */
  maxAgeHours?: number;
  /** Told how many events were dropped undelivered and why. */
  onDrop?: (count: number, reason: 'full' | 'expired', totalDropped: number) => void;
  /** Clock (tests). */
  now?: () => number;
}

export interface OutboxEntry {
  /** Insertion order, increasing across restarts. */
  seq: number;
  eventId: string;
  topic: string;
  payload: string;
  /** Epoch ms when it was written. */
  createdAt: number;
}

export interface OutboxStats {
  /** Events waiting for a broker acknowledgement. */
  depth: number;
  /** Events dropped undelivered since this process opened the outbox (full or expired). */
  dropped: number;
  /** Age of the oldest waiting event, seconds; null when empty. */
  oldestAgeSeconds: number | null;
}

interface Row {
  seq: number;
  event_id: string;
  topic: string;
  payload: string;
  created_at: number;
}

const toEntry = (r: Row): OutboxEntry => ({ seq: r.seq, eventId: r.event_id, topic: r.topic, payload: r.payload, createdAt: r.created_at });

export class Outbox {
  private readonly maxEvents: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private droppedCount = 0;
  private count: number;
  private readonly stmt: {
    insert: Statement;
    remove: Statement;
    after: Statement;
    dropOldest: Statement;
    expire: Statement;
    oldest: Statement;
    count: Statement;
  };

  private constructor(
    readonly file: string,
    private readonly db: Database,
    private readonly options: OutboxOptions,
  ) {
    this.maxEvents = options.maxEvents ?? 10_000;
    if (!Number.isInteger(this.maxEvents) || this.maxEvents < 1) throw new Error(`outbox maxEvents must be a positive integer, got ${options.maxEvents}`);
    this.maxAgeMs = (options.maxAgeHours ?? 0) * 3_600_000;
    this.now = options.now ?? Date.now;
    this.stmt = {
      // AUTOINCREMENT: a seq is never reused, even after the newest rows were deleted.
      insert: db.prepare('INSERT INTO outbox (event_id, topic, payload, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING'),
      remove: db.prepare('DELETE FROM outbox WHERE seq = ?'),
      after: db.prepare('SELECT seq, event_id, topic, payload, created_at FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?'),
      dropOldest: db.prepare('DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)'),
      expire: db.prepare('DELETE FROM outbox WHERE created_at < ?'),
      oldest: db.prepare('SELECT created_at FROM outbox ORDER BY seq LIMIT 1'),
      count: db.prepare('SELECT count(*) AS n FROM outbox'),
    };
    this.count = (this.stmt.count.get() as { n: number }).n;
  }

  /** Opens (creating when needed) `<dataDir>/outbox.sqlite`. */
  static open(dataDir: string, options: OutboxOptions = {}): Outbox {
    mkdirSync(dataDir, { recursive: true });
    const file = join(dataDir, OUTBOX_FILE);
    const db = new BetterSqlite3(file, { timeout: 5000 });
    try {
      db.pragma('journal_mode = WAL');
      // FULL: a row that add() returned for is on disk even if the machine loses power.
      db.pragma('synchronous = FULL');
      db.exec(`CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL
      )`);
      return new Outbox(file, db, options);
    } catch (err) {
      db.close();
      throw new Error(`cannot open the event outbox ${file}: ${(err as Error).message}`);
    }
  }

  /**
   * Stores an event durably (returns after the commit). Makes room first: expired rows go, then
   * the oldest while the outbox is full. An `eventId` already waiting is not stored twice.
   */
  add(eventId: string, topic: string, payload: string): void {
    const run = this.db.transaction(() => {
      this.expireNow();
      const over = this.count + 1 - this.maxEvents;
      if (over > 0) {
        const n = this.stmt.dropOldest.run(over).changes;
        this.count -= n;
        this.dropped(n, 'full');
      }
      this.count += this.stmt.insert.run(eventId, topic, payload, this.now()).changes;
    });
    run.immediate();
  }

  /** Up to `limit` waiting events with seq > `afterSeq`, oldest first. */
  after(afterSeq: number, limit: number): OutboxEntry[] {
    return (this.stmt.after.all(afterSeq, limit) as Row[]).map(toEntry);
  }

  /** Removes a delivered event (a no-op when it was already removed or dropped). */
  remove(seq: number): void {
    this.count -= this.stmt.remove.run(seq).changes;
  }

  /** Drops events older than maxAgeHours; returns how many. */
  expire(): number {
    return this.expireNow();
  }

  private expireNow(): number {
    if (this.maxAgeMs <= 0) return 0;
    const n = this.stmt.expire.run(this.now() - this.maxAgeMs).changes;
    this.count -= n;
    this.dropped(n, 'expired');
    return n;
  }

  private dropped(n: number, reason: 'full' | 'expired'): void {
    if (n <= 0) return;
    this.droppedCount += n;
    this.options.onDrop?.(n, reason, this.droppedCount);
  }

  /** Events waiting for delivery. */
  get depth(): number {
    return this.count;
  }

  /** Events dropped undelivered since open (full or expired). */
  get droppedTotal(): number {
    return this.droppedCount;
  }

  stats(): OutboxStats {
    const oldest = this.stmt.oldest.get() as { created_at: number } | undefined;
    return { depth: this.count, dropped: this.droppedCount, oldestAgeSeconds: oldest ? Math.max(0, Math.round((this.now() - oldest.created_at) / 1000)) : null };
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
