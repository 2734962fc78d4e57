// Publishes facegate's events to an MQTT broker with mqtt.js:
//   <prefix>/<agent>/availability       'online' / 'offline', QoS 1, retained; last will 'offline';
//                                       'online' is re-published after every (re)connect
//   <prefix>/<agent>/<camera>/identity  identity events (JSON), QoS 1, never retained: a replayed
//                                       "unlock" is dangerous
//   <prefix>/<agent>/stats              stats (JSON), QoS 0, not retained
//   <prefix>/<agent>/errors             errors a technician must see (rejected config, failed
//                                       inference…) as JSON { time, source, message, details? }, QoS 1
// mqtt.js reconnects by itself. The agent sends identity events through the durable outbox
// (outbox.ts, outbox-relay.ts) on this client, not through publishIdentity(): mqtt.js's in-memory
// queue is not a place to keep events.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { IdentityEvent } from './identity-event.js';

export interface MqttTlsConfig {
  /** CA certificate file (PEM). */
  ca?: string;
  /** Client certificate file (PEM). */
  cert?: string;
  /** Client key file (PEM). */
  key?: string;
  /** Default true. */
  rejectUnauthorized?: boolean;
}

export interface MqttPublisherConfig {
  /** mqtt://host:1883, mqtts://host:8883, ws://…, wss://… */
  url: string;
  username?: string;
  /** Overridden by env FACEGATE_MQTT_PASSWORD when that is set. */
  password?: string;
  tls?: MqttTlsConfig;
  /** Topic prefix, default 'facegate'. */
  prefix?: string;
  /** Agent id, default the host name. */
  agentId?: string;
  /** Default `facegate-<agentId>`. */
  clientId?: string;
  /** Milliseconds between reconnect attempts (default 2000). */
  reconnectPeriodMs?: number;
  /** Keepalive in seconds (default 30). */
  keepaliveSeconds?: number;
}

export type PublisherLog = (level: 'info' | 'warn' | 'error' | 'debug', message: string) => void;

export interface PublisherOptions {
  log?: PublisherLog;
  env?: NodeJS.ProcessEnv;
}

/** A topic level must be non-empty and free of '/', '+', '#' and NUL. */
export function checkTopicLevel(value: string, what: string): string {
  if (value.length === 0 || /[/+#\u0000]/.test(value)) throw new Error(`${what} "${value}" cannot be an MQTT topic level (empty, or contains / + # or NUL)`);
  return value;
}

export const DEFAULT_PREFIX = 'facegate';

/** The topics of one agent. */
export function topicsFor(prefix: string, agentId: string): { base: string; availability: string; stats: string; errors: string; identity: (camera: string) => string } {
  const base = `${prefix}/${checkTopicLevel(agentId, 'agent id')}`;
  return {
    base,
    availability: `${base}/availability`,
    stats: `${base}/stats`,
    errors: `${base}/errors`,
    identity: (camera) => `${base}/${checkTopicLevel(camera, 'camera name')}/identity`,
  };
}

/** The mqtt.js options for a config: credentials (password from env first), TLS files, last will. */
export function clientOptions(config: MqttPublisherConfig, env: NodeJS.ProcessEnv = process.env): IClientOptions {
  const agentId = config.agentId ?? os.hostname();
  const topics = topicsFor(config.prefix ?? DEFAULT_PREFIX, agentId);
  const password = env.FACEGATE_MQTT_PASSWORD || config.password;
  const options: IClientOptions = {
    clientId: config.clientId ?? `facegate-${agentId}`,
    protocolVersion: 4,
    clean: true,
    keepalive: config.keepaliveSeconds ?? 30,
    reconnectPeriod: config.reconnectPeriodMs ?? 2000,
    connectTimeout: 10_000,
    will: { topic: topics.availability, payload: Buffer.from('offline'), qos: 1, retain: true },
  };
  if (config.username !== undefined) options.username = config.username;
  if (password !== undefined && password !== '') options.password = password;
  const tls = config.tls;
  if (tls) {
    const read = (file: string, what: string): Buffer => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new Error(`MQTT TLS ${what} file ${file}: ${(err as Error).message}`);
      }
    };
    if (tls.ca) options.ca = read(tls.ca, 'CA');
    if (tls.cert) options.cert = read(tls.cert, 'certificate');
    if (tls.key) options.key = read(tls.key, 'key');
    options.rejectUnauthorized = tls.rejectUnauthorized ?? true;
  }
  return options;
}

/** The broker URL without credentials, for logs. */
export const redactUrl = (url: string): string => url.replace(/\/\/[^@/]*@/, '//***@');

export class MqttPublisher {
  readonly agentId: string;
  readonly prefix: string;
  readonly topics: ReturnType<typeof topicsFor>;
  /** Number of successful connections (1 after the first connect, +1 per reconnect). */
  connects = 0;
  private stopping = false;
  private statsTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly client: MqttClient,
    readonly url: string,
    config: MqttPublisherConfig,
    private readonly log: PublisherLog,
  ) {
    this.agentId = config.agentId ?? os.hostname();
    this.prefix = config.prefix ?? DEFAULT_PREFIX;
    this.topics = topicsFor(this.prefix, this.agentId);
    client.on('connect', () => {
      this.connects++;
      this.log('info', `MQTT connected to ${redactUrl(url)}${this.connects > 1 ? ' (reconnected)' : ''}; publishing availability`);
      client.publish(this.topics.availability, 'online', { qos: 1, retain: true }, (err) => {
        if (err && !this.stopping) this.log('warn', `MQTT: publishing availability failed: ${err.message}`);
      });
    });
    client.on('reconnect', () => this.log('debug', `MQTT reconnecting to ${redactUrl(url)}`));
    client.on('offline', () => {
      if (!this.stopping) this.log('warn', `MQTT broker ${redactUrl(url)} unreachable; retrying`);
    });
    client.on('error', (err) => this.log('error', `MQTT: ${err.message}`));
  }

  /**
   * Connects to the broker (in the background: mqtt.js keeps retrying while it is down). Await
   * `connected()` to wait for the first connection.
   */
  static start(config: MqttPublisherConfig, options: PublisherOptions = {}): MqttPublisher {
    const log = options.log ?? (() => {});
    const client = mqtt.connect(config.url, clientOptions(config, options.env));
    return new MqttPublisher(client, config.url, config, log);
  }

  get isConnected(): boolean {
    return this.client.connected;
  }

  /** Resolves at the next (or current) connection; rejects after `timeoutMs`. */
  connected(timeoutMs = 10_000): Promise<void> {
    if (this.client.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('connect', onConnect);
        reject(new Error(`MQTT: not connected to ${redactUrl(this.url)} after ${timeoutMs} ms`));
      }, timeoutMs);
      const onConnect = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('connect', onConnect);
    });
  }

  /**
   * Publishes an identity event (QoS 1, not retained), with `publishTime` set to now; resolves
   * with the event as sent once the broker acknowledged it. While the broker is unreachable the
   * event waits in mqtt.js's in-memory queue, so do not await this in a frame loop.
   */
  async publishIdentity(event: IdentityEvent): Promise<IdentityEvent> {
    const sent: IdentityEvent = { ...event, publishTime: new Date().toISOString() };
    await this.client.publishAsync(this.topics.identity(event.camera), JSON.stringify(sent), { qos: 1, retain: false });
    return sent;
  }

  /** Publishes a stats payload (QoS 0, not retained). */
  async publishStats(payload: unknown): Promise<void> {
    await this.client.publishAsync(this.topics.stats, JSON.stringify(payload), { qos: 0, retain: false });
  }

  /**
   * Publishes an error report on `<prefix>/<agent>/errors` (QoS 1, not retained). Never throws:
   * reporting an error must not cause another.
   */
  publishError(source: string, message: string, details?: unknown): void {
    const payload = { time: new Date().toISOString(), source, message, ...(details === undefined ? {} : { details }) };
    this.client.publish(this.topics.errors, JSON.stringify(payload), { qos: 1, retain: false }, (err) => {
      if (err && !this.stopping) this.log('warn', `MQTT: publishing an error report failed: ${err.message}`);
    });
  }

  /** Publishes `collect()` every `intervalMs` while connected (until stop()). */
  startStats(intervalMs: number, collect: () => unknown): void {
    this.stopStats();
    this.statsTimer = setInterval(() => {
      if (!this.client.connected) return;
      this.publishStats(collect()).catch((err: Error) => this.log('warn', `MQTT: publishing stats failed: ${err.message}`));
    }, intervalMs);
    this.statsTimer.unref();
  }

  private stopStats(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = undefined;
  }

  /** Publishes 'offline' (retained) when connected, then disconnects cleanly (no last will). */
  async stop(timeoutMs = 3000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopStats();
    if (this.client.connected) {
      const offline = this.client.publishAsync(this.topics.availability, 'offline', { qos: 1, retain: true });
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref());
      await Promise.race([offline.then(() => undefined), timeout]).catch((err: Error) => this.log('warn', `MQTT: publishing offline failed: ${err.message}`));
      // A clean end waits for every unacknowledged publish; a broker that stopped answering must not hold the exit.
      const ended = this.client.endAsync().then(() => true);
      const waited = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 500).unref());
      if (!(await Promise.race([ended, waited]))) await this.client.endAsync(true);
    } else {
      await this.client.endAsync(true);
    }
  }
}
