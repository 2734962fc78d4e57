// An MQTT client for tests: records every message it receives and waits for ones matching a
// predicate; `request` speaks facegate's command convention (request/<verb> → response/<verb>).
import { randomUUID } from 'node:crypto';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';

export interface RecordedMessage {
  topic: string;
  payload: Buffer;
  text: string;
  retain: boolean;
  qos: number;
  at: number;
  /** Position in arrival order (see mark()). */
  index: number;
}

export class MqttRecorder {
  readonly messages: RecordedMessage[] = [];
  private waiters: { pred: (m: RecordedMessage) => boolean; resolve: (m: RecordedMessage) => void }[] = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
      const m = { topic, payload, text: payload.toString(), retain: packet.retain, qos: packet.qos, at: Date.now(), index: this.messages.length };
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }

  static async connect(url: string, topics: string[], options: IClientOptions = {}): Promise<MqttRecorder> {
    const client = await mqtt.connectAsync(url, { clientId: `test-${randomUUID().slice(0, 8)}`, reconnectPeriod: 200, ...options });
    const r = new MqttRecorder(client);
    if (topics.length) await client.subscribeAsync(topics, { qos: 1 });
    return r;
  }

  /** A position in the arrival order: pass it to next() to look only at messages received after now. */
  mark(): number {
    return this.messages.length;
  }

  /** The first message matching `pred` among those received from position `since` on (default: all). */
  next(pred: (m: RecordedMessage) => boolean, timeoutMs = 10_000, what = 'message', since = 0): Promise<RecordedMessage> {
    const seen = this.messages.find((m) => m.index >= since && pred(m));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms; got topics: ${[...new Set(this.messages.map((m) => m.topic))].join(', ')}`)), timeoutMs);
      this.waiters.push({
        pred: (m) => m.index >= since && pred(m),
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /**
   * Publishes a raw request payload on `<base>/request/<verb>` and resolves the JSON response on
   * `<base>/response/<verb>` whose transaction is `transaction` (null: the next response there).
   */
  async raw(base: string, verb: string, payload: string | Buffer, transaction: string | number | null, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const since = this.mark();
    const reply = this.next(
      (m) => {
        if (m.topic !== `${base}/response/${verb}`) return false;
        try {
          return (JSON.parse(m.text) as { transaction?: unknown }).transaction === transaction;
        } catch {
          return false;
        }
      },
      timeoutMs,
      `response to ${verb}`,
      since,
    );
    await this.client.publishAsync(`${base}/request/${verb}`, payload, { qos: 1 });
    return JSON.parse((await reply).text) as Record<string, unknown>;
  }

  /** A JSON request with a fresh transaction id; resolves the response. */
  request(base: string, verb: string, body: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const transaction = randomUUID();
    return this.raw(base, verb, JSON.stringify({ ...body, transaction }), transaction, timeoutMs);
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}
