// Home Assistant MQTT discovery (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery),
// behind `homeassistant.enabled`. Per camera, two entities on one device per agent:
//   sensor         "<camera> last identity": state = the name (or "unknown"), attributes = the event
//                  fields, both from the retained `<prefix>/<agent>/<camera>/last_identity` (JSON)
//   binary_sensor  "<camera> known person present" (occupancy): `<prefix>/<agent>/<camera>/person_present`,
//                  retained ON/OFF; ON at a recognised person, OFF `presenceTimeoutSeconds` after the last
// Availability is the agent's own topic (last will 'offline'); unique_ids come from the agent id and
// the camera name, so they survive restarts. Discovery is published retained at every connect and
// again when Home Assistant announces itself on `<discoveryPrefix>/status` = online.
// These retained state topics are for dashboards; the identity event topic stays unretained.
import type { MqttClient } from 'mqtt';
import type { IdentityEvent } from './identity-event.js';

export interface HomeAssistantOptions {
  discoveryPrefix: string;
  /** `<prefix>/<agent>`. */
  base: string;
  availabilityTopic: string;
  agentId: string;
  /** The agent's version (device sw_version and origin). */
  version: string;
  /** Cameras to announce (read at each publish, so added cameras appear at the next announcement). */
  cameras: () => string[];
  presenceTimeoutMs: number;
  log?: (level: 'info' | 'warn', message: string) => void;
}

export interface DiscoveryMessage {
  topic: string;
  payload: Record<string, unknown>;
}

/** Home Assistant topic ids allow [a-zA-Z0-9_-] only. */
const haId = (s: string): string => s.replace(/[^a-zA-Z0-9_-]/g, '_');

export const ORIGIN_NAME = 'facegate';
export const SUPPORT_URL = 'https://github.com/facegate/facegate';

/** The retained state topics of one camera. */
export const stateTopics = (base: string, camera: string): { lastIdentity: string; personPresent: string } => ({
  lastIdentity: `${base}/${camera}/last_identity`,
  personPresent: `${base}/${camera}/person_present`,
});

/** The discovery messages of one camera (pure: tests check them against Home Assistant's schema). */
export function discoveryMessages(o: Pick<HomeAssistantOptions, 'discoveryPrefix' | 'base' | 'availabilityTopic' | 'agentId' | 'version'>, camera: string): DiscoveryMessage[] {
  const node = haId(`facegate_${o.agentId}`);
  const topics = stateTopics(o.base, camera);
  const common = {
    availability: [{ topic: o.availabilityTopic, payload_available: 'online', payload_not_available: 'offline' }],
    device: { identifiers: [node], name: `facegate ${o.agentId}`, manufacturer: 'facegate', model: 'facegate edge camera agent', sw_version: o.version },
    origin: { name: ORIGIN_NAME, sw_version: o.version, support_url: SUPPORT_URL },
    qos: 1,
  };
  const id = (what: string): string => haId(`facegate_${o.agentId}_${camera}_${what}`);
  return [
    {
      topic: `${o.discoveryPrefix}/sensor/${node}/${haId(`${camera}_last_identity`)}/config`,
      payload: {
        name: `${camera} last identity`,
        unique_id: id('last_identity'),
        state_topic: topics.lastIdentity,
        value_template: '{{ value_json.state }}',
        json_attributes_topic: topics.lastIdentity,
        icon: 'mdi:face-recognition',
        ...common,
      },
    },
    {
      topic: `${o.discoveryPrefix}/binary_sensor/${node}/${haId(`${camera}_person_present`)}/config`,
      payload: {
        name: `${camera} known person present`,
        unique_id: id('person_present'),
        state_topic: topics.personPresent,
        payload_on: 'ON',
        payload_off: 'OFF',
        device_class: 'occupancy',
        ...common,
      },
    },
  ];
}

/** The JSON of `<camera>/last_identity` for an identity event. */
export function lastIdentityState(event: IdentityEvent): Record<string, unknown> {
  return {
    state: event.identity ?? 'unknown',
    identity: event.identity,
    unknown: event.unknown,
    score: event.score,
    distance: event.distance,
    trackId: event.trackId,
    eventId: event.eventId,
    frameTime: event.frameTime,
    model: event.model,
  };
}

export class HomeAssistantDiscovery {
  private readonly statusTopic: string;
  private readonly lastIdentity = new Map<string, string>();
  private readonly present = new Map<string, boolean>();
  private readonly offTimers = new Map<string, NodeJS.Timeout>();
  private stopped = false;
  /** Times the discovery was published (all cameras). */
  announcements = 0;
  private readonly onConnect = (): void => this.announce();
  private readonly onMessage = (topic: string, payload: Buffer): void => {
    if (topic === this.statusTopic && payload.toString().trim() === 'online') {
      this.options.log?.('info', 'Home Assistant is online: re-publishing MQTT discovery');
      this.announce();
    }
  };

  constructor(
    private readonly client: MqttClient,
    private readonly options: HomeAssistantOptions,
  ) {
    this.statusTopic = `${options.discoveryPrefix}/status`;
  }

  async start(): Promise<void> {
    // Not yet connected: the first 'connect' announces.
    if (this.client.connected) this.announce();
    this.client.on('connect', this.onConnect);
    this.client.on('message', this.onMessage);
    await this.client.subscribeAsync(this.statusTopic, { qos: 1 });
  }

  /** Discovery for every camera, then each camera's current state (retained). Only while connected: a reconnect announces again. */
  announce(): void {
    if (this.stopped || !this.client.connected) return;
    for (const camera of this.options.cameras()) {
      for (const m of discoveryMessages(this.options, camera)) this.send(m.topic, JSON.stringify(m.payload));
      const topics = stateTopics(this.options.base, camera);
      this.send(topics.personPresent, this.present.get(camera) ? 'ON' : 'OFF');
      const last = this.lastIdentity.get(camera);
      if (last !== undefined) this.send(topics.lastIdentity, last);
    }
    this.announcements++;
  }

  /** Updates the camera's state topics for an identity event. */
  onIdentity(event: IdentityEvent): void {
    if (this.stopped) return;
    const topics = stateTopics(this.options.base, event.camera);
    const last = JSON.stringify(lastIdentityState(event));
    this.lastIdentity.set(event.camera, last);
    this.send(topics.lastIdentity, last);
    if (event.identity === null) return;
    clearTimeout(this.offTimers.get(event.camera));
    if (!this.present.get(event.camera)) {
      this.present.set(event.camera, true);
      this.send(topics.personPresent, 'ON');
    }
    const timer = setTimeout(() => {
      this.offTimers.delete(event.camera);
      this.present.set(event.camera, false);
      this.send(topics.personPresent, 'OFF');
    }, this.options.presenceTimeoutMs);
    timer.unref();
    this.offTimers.set(event.camera, timer);
  }

  private send(topic: string, payload: string): void {
    // State is re-sent at the next connect, so nothing is queued while disconnected.
    if (!this.client.connected) return;
    this.client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
      if (err && !this.stopped) this.options.log?.('warn', `Home Assistant: publishing ${topic} failed: ${err.message}`);
    });
  }

  stop(): void {
    this.stopped = true;
    this.client.off('connect', this.onConnect);
    this.client.off('message', this.onMessage);
    for (const t of this.offTimers.values()) clearTimeout(t);
    this.offTimers.clear();
  }
}
