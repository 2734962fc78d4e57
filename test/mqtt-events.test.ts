// Events over MQTT against a real Mosquitto (started on a free loopback port) and the embedded aedes
// broker: availability (retained, last will, re-published after a broker restart), identity events
// (JSON Schema, QoS 1, never retained).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';

import { EmbeddedBroker } from '../agent/events/embedded-broker.js';
import { buildIdentityEvent, type IdentityEvent } from '../agent/events/identity-event.js';
import { clientOptions, MqttPublisher } from '../agent/events/mqtt-publisher.js';
import { Mosquitto, mosquittoAvailable } from './support/mosquitto.js';
import { repoRoot } from './support/samples.js';

interface Received {
  topic: string;
  payload: string;
  packet: IPublishPacket;
}

/** A subscriber recording every message; `next` waits for one matching a predicate. */
class Subscriber {
  readonly messages: Received[] = [];
  private waiters: { pred: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];

  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const m = { topic, payload: payload.toString(), packet };
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }

  static async connect(url: string, topic: string): Promise<Subscriber> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, clientId: `test-sub-${Math.random().toString(16).slice(2)}` });
    const s = new Subscriber(client);
    await client.subscribeAsync(topic, { qos: 1 });
    return s;
  }

  next(pred: (m: Received) => boolean, timeoutMs = 8000, what = 'message'): Promise<Received> {
    const seen = this.messages.find(pred);
    if (seen) {
      this.messages.splice(this.messages.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms; got: ${JSON.stringify(this.messages.map((m) => [m.topic, m.payload]))}`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(timer);
          this.messages.splice(this.messages.indexOf(m), 1);
          resolve(m);
        },
      });
    });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

const schema = JSON.parse(readFileSync(join(repoRoot, 'config', 'identity-event.schema.json'), 'utf8')) as object;
const ajv = new Ajv2020({ allErrors: true, strict: true });
ajv.addFormat('date-time', { type: 'string', validate: (s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)) });
const validateEvent = ajv.compile(schema);

const sampleEvent = (agent: string, overrides: Partial<Parameters<typeof buildIdentityEvent>[0]> = {}): IdentityEvent =>
  buildIdentityEvent({
    agent,
    camera: 'front-door',
    trackId: 7,
    identity: 'Alice',
    unknown: false,
    score: 0.93,
    distance: 0.4123456,
    box: { x: 100.25, y: 80, w: 120, h: 140.55 },
    frameTime: new Date(Date.now() - 120),
    model: 'dlib-resnet',
    ...overrides,
  });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('identity event and its JSON Schema', () => {
  it('builds valid events, known and unknown, and the schema rejects bad ones', () => {
    const known = sampleEvent('agent-1');
    assert.ok(validateEvent(known), JSON.stringify(validateEvent.errors));
    assert.match(known.eventId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(known.trackId, '7');
    assert.equal(known.distance, 0.4123);
    assert.ok(Date.parse(known.publishTime) >= Date.parse(known.frameTime));
    const unknown = sampleEvent('agent-1', { identity: null, unknown: true, distance: null });
    assert.ok(validateEvent(unknown), JSON.stringify(validateEvent.errors));
    assert.notEqual(unknown.eventId, known.eventId);
    assert.equal(validateEvent({ ...known, extra: 1 }), false);
    assert.equal(validateEvent({ ...known, unknown: true }), false, 'an unknown event with an identity');
    assert.equal(validateEvent({ ...known, frameTime: 'yesterday' }), false);
    // Occlusion-aware matching adds the predicted occlusion and the face-mask flag.
    assert.equal(known.masked, false);
    assert.equal('occlusion' in known, false);
    const masked = sampleEvent('agent-1', { occlusion: { pattern: 'lower-face', regions: ['nose', 'mouth', 'chin'], score: 0.912345 }, masked: true });
    assert.ok(validateEvent(masked), JSON.stringify(validateEvent.errors));
    assert.deepEqual(masked.occlusion, { pattern: 'lower-face', regions: ['nose', 'mouth', 'chin'], score: 0.9123 });
    assert.equal(validateEvent({ ...masked, occlusion: { ...masked.occlusion, score: 2 } }), false);
    assert.equal(validateEvent({ ...known, masked: undefined }), false, 'masked is required');
    assert.throws(() => sampleEvent('a', { unknown: true }), /cannot be unknown/);
  });

  it('takes the password from FACEGATE_MQTT_PASSWORD over the config, and rejects bad topic levels', () => {
    const o = clientOptions({ url: 'mqtt://x', username: 'u', password: 'from-config', agentId: 'a' }, { FACEGATE_MQTT_PASSWORD: 'from-env' });
    assert.equal(o.password, 'from-env');
    assert.equal(clientOptions({ url: 'mqtt://x', password: 'p', agentId: 'a' }, {}).password, 'p');
    assert.deepEqual(o.will, { topic: 'facegate/a/availability', payload: Buffer.from('offline'), qos: 1, retain: true });
    assert.throws(() => clientOptions({ url: 'mqtt://x', agentId: 'a/b' }, {}), /topic level/);
    assert.throws(() => clientOptions({ url: 'mqtt://x', agentId: 'a', tls: { ca: '/no/such/ca.pem' } }, {}), /CA file \/no\/such\/ca.pem/);
  });
});

describe('MQTT publisher against Mosquitto', { skip: mosquittoAvailable() ? false : 'mosquitto is not installed (apt-get install mosquitto)' }, () => {
  let broker: Mosquitto;
  before(async () => {
    broker = await Mosquitto.start();
  });
  after(async () => {
    await broker?.dispose();
  });

  it('publishes availability online (retained, QoS 1) and identity events (QoS 1, not retained, schema-valid)', async () => {
    const agent = 'agent-a';
    const publisher = MqttPublisher.start({ url: broker.url, agentId: agent, prefix: 'fgtest' });
    const live = await Subscriber.connect(broker.url, `fgtest/${agent}/#`);
    try {
      await publisher.connected();
      // A subscriber that arrives later gets 'online' as a retained message.
      await sleep(200);
      const late = await Subscriber.connect(broker.url, `fgtest/${agent}/availability`);
      const retained = await late.next((m) => m.payload === 'online', 5000, 'retained online');
      assert.equal(retained.packet.retain, true);
      assert.equal(retained.packet.qos, 1);
      await late.close();

      const event = sampleEvent(agent);
      const sent = await publisher.publishIdentity(event);
      const got = await live.next((m) => m.topic === `fgtest/${agent}/front-door/identity`, 5000, 'identity event');
      assert.equal(got.packet.qos, 1);
      assert.equal(got.packet.retain, false);
      const parsed = JSON.parse(got.payload) as unknown;
      assert.ok(validateEvent(parsed), JSON.stringify(validateEvent.errors));
      assert.deepEqual(parsed, sent);
      assert.deepEqual({ ...sent, publishTime: event.publishTime }, event);
      assert.ok(Date.parse(sent.publishTime) >= Date.parse(event.publishTime));

      // Never retained: a new subscriber to the identity topic gets nothing.
      const after = await Subscriber.connect(broker.url, `fgtest/${agent}/+/identity`);
      await sleep(400);
      assert.equal(after.messages.length, 0, 'identity events must not be retained');
      await after.close();

      await publisher.publishStats({ cameras: {}, provider: 'cpu' });
      const stats = await live.next((m) => m.topic === `fgtest/${agent}/stats`, 5000, 'stats');
      assert.deepEqual(JSON.parse(stats.payload), { cameras: {}, provider: 'cpu' });
    } finally {
      await publisher.stop();
    }
    // stop() leaves 'offline' retained.
    const offline = await live.next((m) => m.topic === `fgtest/${agent}/availability` && m.payload === 'offline', 5000, 'offline on stop');
    assert.equal(offline.packet.qos, 1);
    const late = await Subscriber.connect(broker.url, `fgtest/${agent}/availability`);
    assert.equal((await late.next(() => true, 5000, 'retained availability')).payload, 'offline');
    await Promise.all([late.close(), live.close()]);
  });

  it('the last will marks the agent offline when its process dies abruptly', async () => {
    const agent = 'agent-killed';
    const sub = await Subscriber.connect(broker.url, `facegate/${agent}/availability`);
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test', 'support', 'publisher-child.ts'), broker.url, agent], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await sub.next((m) => m.payload === 'online', 20_000, 'online from the child');
    } finally {
      child.kill('SIGKILL');
    }
    const will = await sub.next((m) => m.payload === 'offline', 8000, 'last will');
    assert.equal(will.packet.qos, 1);
    await sub.close();
    const late = await Subscriber.connect(broker.url, `facegate/${agent}/availability`);
    const retained = await late.next(() => true, 5000, 'retained availability');
    assert.equal(retained.payload, 'offline');
    assert.equal(retained.packet.retain, true);
    await late.close();
  });

  it('re-publishes availability after the broker restarts', async () => {
    const agent = 'agent-restart';
    const publisher = MqttPublisher.start({ url: broker.url, agentId: agent, reconnectPeriodMs: 200 });
    try {
      await publisher.connected();
      await sleep(200);
      await broker.restart(); // no persistence: the restarted broker has no retained 'online'
      const deadline = Date.now() + 10_000;
      while (publisher.connects < 2 && Date.now() < deadline) await sleep(50);
      assert.equal(publisher.connects, 2, 'the publisher reconnected');
      const late = await Subscriber.connect(broker.url, `facegate/${agent}/availability`);
      const retained = await late.next(() => true, 5000, 'retained online after the restart');
      assert.equal(retained.payload, 'online');
      assert.equal(retained.packet.retain, true);
      await late.close();
    } finally {
      await publisher.stop();
    }
  });
});

describe('embedded broker (aedes)', () => {
  it('serves the same publisher: retained availability and identity events', async () => {
    const lines: string[] = [];
    const broker = await EmbeddedBroker.start({ port: 0, log: (l) => lines.push(l) });
    assert.match(lines.join('\n'), /embedded MQTT broker \(aedes\) on mqtt:\/\/127\.0\.0\.1:\d+/);
    const agent = 'agent-embedded';
    const publisher = MqttPublisher.start({ url: broker.url, agentId: agent });
    try {
      await publisher.connected();
      const sub = await Subscriber.connect(broker.url, `facegate/${agent}/#`);
      const online = await sub.next((m) => m.topic.endsWith('/availability'), 5000, 'retained online');
      assert.equal(online.payload, 'online');
      assert.equal(online.packet.retain, true);
      const event = sampleEvent(agent, { identity: null, unknown: true, distance: 0.93 });
      await publisher.publishIdentity(event);
      const got = await sub.next((m) => m.topic === `facegate/${agent}/front-door/identity`, 5000, 'identity event');
      assert.equal(got.packet.qos, 1);
      assert.equal(got.packet.retain, false);
      assert.ok(validateEvent(JSON.parse(got.payload)), JSON.stringify(validateEvent.errors));
      await publisher.stop();
      const offline = await sub.next((m) => m.payload === 'offline', 5000, 'offline');
      assert.equal(offline.topic, `facegate/${agent}/availability`);
      await sub.close();
    } finally {
      await publisher.stop();
      await broker.stop();
    }
  });
});
