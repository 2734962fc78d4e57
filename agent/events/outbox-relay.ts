// Moves events from the durable outbox to the broker, oldest first, with a bounded window of
// unacknowledged publishes. The outbox (on disk) is the source of truth, never mqtt.js's in-memory
// queue: an event leaves the outbox only on its PUBACK; nothing is handed to mqtt.js while it is
// disconnected, so its queue holds at most `inFlight` events. Those it re-sends itself after a
// reconnect (before anything newer), so the order holds; after a failed publish or a restart of the
// process the relay starts again from the oldest waiting event (a duplicate, never a loss).
import type { MqttClient } from 'mqtt';
import type { Outbox } from './outbox.js';

export interface OutboxRelayOptions {
  /** Unacknowledged publishes at a time (default 10; 1 = strictly one by one). */
  inFlight?: number;
  /** Rewrites a stored payload just before each publish (e.g. to stamp `publishTime`). */
  stamp?: (payload: string) => string;
  log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** How often expired events are dropped while nothing is added (default 60 s). */
  expireEveryMs?: number;
  /** Wait after a failed publish before retrying (default 1 s). */
  retryDelayMs?: number;
}

export class OutboxRelay {
  /** Events the broker acknowledged since start. */
  delivered = 0;
  private readonly window: number;
  /** Highest seq handed to mqtt.js. */
  private cursor = 0;
  /** Seqs handed to mqtt.js and not acknowledged yet. */
  private readonly pending = new Set<number>();
  /** A publish failed: once the window is empty, start again from the oldest waiting event. */
  private rewind = false;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly expireTimer: NodeJS.Timeout;
  private readonly onConnect = (): void => this.kick();

  constructor(
    readonly outbox: Outbox,
    private readonly client: MqttClient,
    private readonly options: OutboxRelayOptions = {},
  ) {
    this.window = options.inFlight ?? 10;
    if (!Number.isInteger(this.window) || this.window < 1) throw new Error(`outbox relay: inFlight must be a positive integer, got ${options.inFlight}`);
    client.on('connect', this.onConnect);
    this.expireTimer = setInterval(() => {
      if (this.outbox.isOpen) this.outbox.expire();
    }, options.expireEveryMs ?? 60_000);
    this.expireTimer.unref();
    const waiting = outbox.depth;
    if (waiting > 0) options.log?.('info', `event outbox: ${waiting} event(s) from before waiting for delivery`);
    this.kick();
  }

  /** Stores the event durably, then publishes it when its turn comes. Throws only when the disk write fails. */
  enqueue(eventId: string, topic: string, payload: string): void {
    if (this.stopped) throw new Error('outbox relay is stopped');
    this.outbox.add(eventId, topic, payload);
    this.kick();
  }

  /** Events waiting on disk (published or not, not yet acknowledged). */
  get depth(): number {
    return this.outbox.depth;
  }

  /** Publishes in order while connected and the window has room. */
  private kick(): void {
    if (this.stopped || !this.client.connected || !this.outbox.isOpen) return;
    while (this.pending.size < this.window && !this.rewind) {
      const batch = this.outbox.after(this.cursor, this.window - this.pending.size);
      if (batch.length === 0) return;
      for (const entry of batch) {
        this.cursor = entry.seq;
        this.pending.add(entry.seq);
        let payload = entry.payload;
        try {
          payload = this.options.stamp ? this.options.stamp(entry.payload) : entry.payload;
        } catch {
          // A payload the stamp cannot read goes out as stored.
        }
        this.client.publish(entry.topic, payload, { qos: 1, retain: false }, (err) => this.settled(entry.seq, entry.eventId, err));
        if (this.stopped || !this.client.connected) return;
      }
    }
  }

  private settled(seq: number, eventId: string, err: Error | undefined): void {
    this.pending.delete(seq);
    if (!this.outbox.isOpen) return;
    if (!err) {
      this.outbox.remove(seq);
      this.delivered++;
    } else if (/invalid topic/i.test(err.message)) {
      // Would fail forever and block every later event.
      this.outbox.remove(seq);
      this.options.log?.('error', `event ${eventId} dropped: the broker client refuses its topic (${err.message})`);
    } else {
      this.rewind = true;
      if (!this.stopped) this.options.log?.('warn', `event ${eventId} not acknowledged (${err.message}); it stays in the outbox and is sent again`);
    }
    if (this.rewind && this.pending.size === 0) {
      this.rewind = false;
      this.cursor = 0;
      if (this.retryTimer === undefined && !this.stopped) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.kick();
        }, this.options.retryDelayMs ?? 1000);
        this.retryTimer.unref();
      }
      return;
    }
    // Deferred: mqtt.js may call back synchronously from inside publish().
    setImmediate(() => this.kick());
  }

  /**
   * Waits until every waiting event was acknowledged, the connection is lost, or `timeoutMs`
   * passed; true when the outbox is empty. Undelivered events stay on disk for the next run.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    this.kick();
    while (this.outbox.isOpen && this.outbox.depth > 0 && this.client.connected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    return !this.outbox.isOpen || this.outbox.depth === 0;
  }

  /** Stops publishing (events stay in the outbox); the caller closes the outbox and the client. */
  stop(): void {
    this.stopped = true;
    this.client.off('connect', this.onConnect);
    clearInterval(this.expireTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}
