// The whole agent with real parts: a GStreamer RTSP server streams H.264 built from known face
// photos, Mosquitto carries the events, the people of one photo are enrolled from portrait crops.
// Checks the identities, one event per visit, unknowns as unknown, the event schema, latency,
// and that a dead second camera and an RTSP server restart do not stop the events.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import mqtt from 'mqtt';
import { FacegateAgent } from '../agent/agent.js';
import { faceApiSamplePath, makeVideo } from '../agent/camera/slideshow-video.js';
import { validateConfig } from '../agent/config/load-config.js';
import { DEMO_PEOPLE, prepareDemoGallery } from '../agent/demo.js';
import type { IdentityEvent } from '../agent/events/identity-event.js';
import { createLogger } from '../agent/logging.js';
import { Mosquitto } from './support/mosquitto.js';
import { freePort } from './support/ports.js';
import { repoRoot } from './support/samples.js';
import { type RtspServer, startRtspServer } from './support/rtsp-server.js';

const ajv = new Ajv2020({ allErrors: true, strict: true });
ajv.addFormat('date-time', { type: 'string', validate: (s: string) => !Number.isNaN(Date.parse(s)) });
const validateEvent = ajv.compile(JSON.parse(readFileSync(join(repoRoot, 'config', 'identity-event.schema.json'), 'utf8')) as object);

const waitFor = async (what: string, cond: () => boolean, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

interface Received {
  topic: string;
  event: IdentityEvent;
  retain: boolean;
  at: number;
}

describe('agent end to end (RTSP → recognition → Mosquitto)', { timeout: 240_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'facegate-e2e-'));
  let broker: Mosquitto;
  let rtsp: RtspServer;
  let agent: FacegateAgent;
  let subscriber: mqtt.MqttClient;
  const received: Received[] = [];
  let availability: { payload: string; retain: boolean } | undefined;
  let lastStats: Record<string, unknown> | undefined;

  before(async () => {
    // Known people (sample1) then strangers (sample6), with grey gaps: one loop is 14 s.
    const video = await makeVideo({
      segments: [
        { image: null, seconds: 2 },
        { image: faceApiSamplePath(1), seconds: 5 },
        { image: null, seconds: 2 },
        { image: faceApiSamplePath(6), seconds: 5 },
      ],
      width: 960,
      height: 540,
      fps: 10,
    });
    await prepareDemoGallery(dataDir);
    broker = await Mosquitto.start();
    rtsp = await startRtspServer({ video: video.path });
    const deadPort = await freePort();
    const config = validateConfig(
      {
        agent: { id: 'e2e' },
        dataDir,
        cameras: [
          { name: 'entrance', url: rtsp.url, fps: 4, width: 960, height: 540 },
          { name: 'dead', url: `rtsp://127.0.0.1:${deadPort}/nothing`, fps: 4, width: 640, height: 360 },
        ],
        mqtt: { url: broker.url, statsIntervalSeconds: 1 },
        events: { cooldownSeconds: 600, minVotes: 2 },
      },
      'e2e test',
    );
    subscriber = mqtt.connect(broker.url, { clientId: 'e2e-subscriber' });
    await new Promise<void>((resolve) => subscriber.on('connect', () => resolve()));
    subscriber.on('message', (topic, payload, packet) => {
      if (topic.endsWith('/identity')) received.push({ topic, event: JSON.parse(payload.toString()) as IdentityEvent, retain: packet.retain, at: Date.now() });
      else if (topic.endsWith('/availability')) availability = { payload: payload.toString(), retain: packet.retain };
      else if (topic.endsWith('/stats')) lastStats = JSON.parse(payload.toString()) as Record<string, unknown>;
    });
    await subscriber.subscribeAsync('facegate/e2e/#', { qos: 1 });
    agent = new FacegateAgent(config, createLogger('warn'));
    await agent.start();
  });

  after(async () => {
    await agent?.stop();
    subscriber?.end(true);
    await rtsp?.stop();
    await broker?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('reports each enrolled person once, strangers as unknown, in the documented schema', async () => {
    await waitFor('an event for each enrolled person', () => DEMO_PEOPLE.every((p) => received.some((r) => r.event.identity === p)), 90_000);
    await waitFor('unknown events for the strangers', () => received.filter((r) => r.event.unknown).length >= 2, 60_000);
    for (const r of received) {
      assert.ok(validateEvent(r.event), `event does not match the schema: ${JSON.stringify(validateEvent.errors)}`);
      assert.equal(r.retain, false, 'identity events are never retained');
      assert.equal(r.topic, `facegate/e2e/${r.event.camera}/identity`);
      assert.equal(r.event.camera, 'entrance');
      assert.equal(r.event.model, 'dlib-resnet');
      // The demo's photos are unoccluded: occlusion-aware matching says so on every event.
      assert.equal(r.event.occlusion?.pattern, 'clean', `occlusion ${JSON.stringify(r.event.occlusion)}`);
      assert.equal(r.event.masked, false);
      if (r.event.identity !== null) assert.ok(DEMO_PEOPLE.includes(r.event.identity), `unexpected identity ${r.event.identity}`);
      const latency = Date.parse(r.event.publishTime) - Date.parse(r.event.frameTime);
      assert.ok(latency >= 0 && latency < 10_000, `frame-to-event latency ${latency} ms`);
    }
    // One visitor, one event: the cooldown holds even though the video loops.
    for (const p of DEMO_PEOPLE) assert.equal(received.filter((r) => r.event.identity === p).length, 1, `${p} reported more than once`);
    assert.equal(availability?.payload, 'online');
    // A subscriber that comes later gets the retained availability.
    const late = mqtt.connect(broker.url, { clientId: 'e2e-late' });
    try {
      const retained = new Promise<{ payload: string; retain: boolean }>((resolve) =>
        late.on('message', (_t, payload, packet) => resolve({ payload: payload.toString(), retain: packet.retain })),
      );
      await late.subscribeAsync('facegate/e2e/availability', { qos: 1 });
      assert.deepEqual(await retained, { payload: 'online', retain: true });
    } finally {
      late.end(true);
    }
  });

  it('records frame-to-event latency and keeps running with a camera that never answers', async () => {
    await waitFor('stats', () => lastStats !== undefined, 10_000);
    const stats = lastStats as { events: { published: number; latencyMs: { p50: number | null } }; cameras: Record<string, { state: string; reconnects: number; framesIn: number }> };
    assert.ok(stats.events.published >= DEMO_PEOPLE.length);
    assert.ok(typeof stats.events.latencyMs.p50 === 'number' && stats.events.latencyMs.p50 >= 0);
    assert.ok(stats.cameras.entrance && stats.cameras.entrance.framesIn > 0);
    assert.ok(stats.cameras.dead, 'the dead camera is reported');
    assert.equal(stats.cameras.dead.framesIn, 0);
    assert.notEqual(stats.cameras.dead.state, 'streaming');
  });

  it('resumes events after the RTSP server is killed and restarted', async () => {
    const before = (lastStats as { cameras: { entrance: { reconnects: number } } }).cameras.entrance.reconnects;
    await rtsp.kill();
    await new Promise((r) => setTimeout(r, 2000));
    await rtsp.restart();
    const restartedAt = Date.now();
    await waitFor('a reconnect', () => ((lastStats as { cameras: { entrance: { reconnects: number } } }).cameras.entrance.reconnects > before), 60_000);
    // Strangers are new tracks after the gap: unknown events must flow again.
    await waitFor('events after the restart', () => received.some((r) => r.at > restartedAt && r.event.unknown), 90_000);
  });
});
