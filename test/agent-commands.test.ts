// MQTT commands and Home Assistant discovery on a real agent: a real recognition core and gallery,
// a camera reading a looped video of face-api's sample1.jpg through ffmpeg, Mosquitto in between.
// Every verb, and every kind of bad request (malformed JSON, unknown verb, oversized payload,
// invalid arguments, images that are not images or show no face or several), gets its answer;
// the agent keeps running. Discovery payloads are checked against Home Assistant's schema, the
// topics they name are really published, and discovery is re-published on homeassistant/status.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { FacegateAgent } from '../agent/agent.js';
import { faceApiSamplePath, makeVideo } from '../agent/camera/slideshow-video.js';
import { validateConfig } from '../agent/config/load-config.js';
import { buildCommandHandlers, type CommandContext, redactSecrets } from '../agent/events/command-handlers.js';
import { CommandRouter } from '../agent/events/command-router.js';
import type { IdentityEvent } from '../agent/events/identity-event.js';
import { createLogger } from '../agent/logging.js';
import { checkDiscovery } from './support/ha-discovery.js';
import { Mosquitto, mosquittoAvailable } from './support/mosquitto.js';
import { MqttRecorder } from './support/mqtt-recorder.js';

const BASE = 'facegate/cmd';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('MQTT commands and Home Assistant discovery on a running agent', { skip: mosquittoAvailable() ? false : 'mosquitto is not installed', timeout: 300_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'facegate-commands-'));
  let broker: Mosquitto;
  let agent: FacegateAgent;
  let client: MqttRecorder;
  /** Portrait crops of the three people of sample1.jpg, left to right (one face each). */
  const crops: Buffer[] = [];
  let discoveryBeforeRestart: { topic: string; text: string }[] = [];

  before(async () => {
    const video = await makeVideo({ segments: [{ image: null, seconds: 1 }, { image: faceApiSamplePath(1), seconds: 3 }], width: 960, height: 540, fps: 10 });
    broker = await Mosquitto.start();
    client = await MqttRecorder.connect(broker.url, [`${BASE}/#`, 'homeassistant/#']);
    const config = validateConfig(
      {
        agent: { id: 'cmd' },
        dataDir,
        cameras: [
          { name: 'entrance', url: video.path, fps: 2, width: 960, height: 540 },
          { name: 'side', url: video.path, fps: 1, width: 640, height: 360, enabled: false },
        ],
        mqtt: { url: broker.url, username: 'facegate', password: 'hunter2', statsIntervalSeconds: 1 },
        events: { cooldownSeconds: 600, minVotes: 2 },
        commands: { snapshot: true, maxPayloadBytes: 1_000_000 },
        homeassistant: { enabled: true, presenceTimeoutSeconds: 3 },
        // Score fusion on the CPU too (auto fuses only where the embedder runs on a GPU).
        recognition: { fuseWith: 'mobilefacenet' },
      },
      'commands test',
    );
    agent = new FacegateAgent(config, createLogger('warn'));
    await agent.start();
    const image = await readFile(faceApiSamplePath(1));
    const meta = await sharp(image).metadata();
    const { decodeImage } = await import('../agent/vision/image.js');
    const faces = (await agent.faceAnalyzer.detect(await decodeImage(image))).sort((a, b) => a.box.x1 - b.box.x1);
    assert.equal(faces.length, 3, 'sample1.jpg shows three people');
    for (const f of faces) {
      const side = 2.2 * Math.max(f.box.x2 - f.box.x1, f.box.y2 - f.box.y1);
      const left = Math.max(0, Math.round((f.box.x1 + f.box.x2) / 2 - side / 2));
      const top = Math.max(0, Math.round((f.box.y1 + f.box.y2) / 2 - side / 2));
      crops.push(await sharp(image).extract({ left, top, width: Math.min((meta.width as number) - left, Math.round(side)), height: Math.min((meta.height as number) - top, Math.round(side)) }).jpeg().toBuffer());
    }
  });

  after(async () => {
    await agent?.stop(5000);
    await client?.close();
    await broker?.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('publishes Home Assistant discovery per camera, valid per its schema, with availability and stable unique ids', async () => {
    await client.next((m) => m.topic === `${BASE}/availability` && m.text === 'online', 20_000, 'online');
    await waitFor('4 discovery messages', () => client.messages.filter((m) => m.topic.endsWith('/config')).length >= 4, 20_000);
    // As Home Assistant sees them when it subscribes: retained.
    const ha = await MqttRecorder.connect(broker.url, ['homeassistant/+/+/+/config', `${BASE}/+/person_present`]);
    await waitFor('retained discovery and state', () => ha.messages.length >= 6, 5000).finally(() => ha.close());
    const discovery = ha.messages.filter((m) => m.topic.endsWith('/config'));
    assert.equal(discovery.length, 4, discovery.map((m) => m.topic).join());
    discoveryBeforeRestart = discovery.map((m) => ({ topic: m.topic, text: m.text }));
    const expanded = discovery.map((m) => {
      assert.equal(m.retain, true, `${m.topic} is retained`);
      return checkDiscovery('homeassistant', m.topic, m.text);
    });
    const ids = expanded.map((d) => d.payload.unique_id);
    assert.deepEqual(
      [...ids].sort(),
      ['facegate_cmd_entrance_last_identity', 'facegate_cmd_entrance_person_present', 'facegate_cmd_side_last_identity', 'facegate_cmd_side_person_present'],
      'unique ids from the agent id and the camera name (the same after every restart)',
    );
    for (const d of expanded) {
      assert.deepEqual(d.payload.availability, [{ topic: `${BASE}/availability`, payload_available: 'online', payload_not_available: 'offline' }]);
      assert.equal((d.payload.origin as { name: string }).name, 'facegate');
      assert.deepEqual((d.payload.device as { identifiers: string[] }).identifiers, ['facegate_cmd']);
    }
    const sensor = expanded.find((d) => d.component === 'sensor' && d.objectId === 'entrance_last_identity');
    assert.ok(sensor, 'a sensor for the last identity');
    assert.equal(sensor.payload.state_topic, `${BASE}/entrance/last_identity`);
    assert.equal(sensor.payload.json_attributes_topic, `${BASE}/entrance/last_identity`);
    const binary = expanded.find((d) => d.component === 'binary_sensor' && d.objectId === 'entrance_person_present');
    assert.ok(binary, 'a binary sensor for "known person present"');
    assert.equal(binary.payload.state_topic, `${BASE}/entrance/person_present`);
    // The state topic of the binary sensors is published (retained) from the start.
    for (const camera of ['entrance', 'side']) {
      const state = await ha.next((m) => m.topic === `${BASE}/${camera}/person_present`, 5000, `${camera} person_present`);
      assert.equal(state.text, 'OFF');
      assert.equal(state.retain, true);
    }
    // A malformed discovery payload fails the checker (it is not a rubber stamp).
    assert.throws(() => checkDiscovery('homeassistant', 'homeassistant/sensor/x/y/config', JSON.stringify({ name: 'x', uniq_id: 'x', dev: { name: 'no ids' } })), /state_topic missing.*identifiers/);
    assert.throws(() => checkDiscovery('homeassistant', 'homeassistant/binary_sensor/x/y/config', JSON.stringify({ stat_t: 'a/b', avty: [{ topic: 'a' }], pl_onn: 'ON' })), /unknown option pl_onn/);
  });

  it('re-publishes discovery when Home Assistant says it is online', async () => {
    await sleep(500);
    const since = client.mark();
    await client.client.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await waitFor('discovery again', () => client.messages.filter((m) => m.index >= since && m.topic.endsWith('/config')).length >= 4, 10_000);
    await sleep(500);
    const again = client.messages.filter((m) => m.index >= since && m.topic.endsWith('/config')).map((m) => ({ topic: m.topic, text: m.text }));
    assert.deepEqual(
      again.sort((a, b) => a.topic.localeCompare(b.topic)),
      [...discoveryBeforeRestart].sort((a, b) => a.topic.localeCompare(b.topic)),
      'the same payloads',
    );
  });

  it('answers config/get with secrets redacted and echoes the transaction', async () => {
    const r = await client.request(BASE, 'config/get');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const data = r.data as { mqtt: { password: string; username: string }; cameras: { name: string }[]; commands: { snapshot: boolean } };
    assert.equal(data.mqtt.password, '***');
    assert.equal(data.mqtt.username, 'facegate');
    assert.deepEqual(data.cameras.map((c) => c.name), ['entrance', 'side']);
    assert.ok(!JSON.stringify(r).includes('hunter2'), 'the password never leaves the agent');
    // Passwords inside URLs (cameras, broker) and TLS keys are redacted the same way.
    assert.deepEqual(
      redactSecrets({ cameras: [{ url: 'rtsp://admin:s3cret@192.0.2.10:554/live' }, { url: 'rtsp://192.0.2.11/live' }], mqtt: { url: 'mqtts://u:pw@b:8883', tls: { key: '/etc/k.pem' } } }),
      { cameras: [{ url: 'rtsp://admin:***@192.0.2.10:554/live' }, { url: 'rtsp://192.0.2.11/live' }], mqtt: { url: 'mqtts://u:***@b:8883', tls: { key: '***' } } },
    );
    assert.equal(typeof r.transaction, 'string');
    const numbered = await client.raw(BASE, 'config/get', JSON.stringify({ transaction: 42 }), 42);
    assert.equal(numbered.status, 'ok');
    assert.equal(numbered.transaction, 42);
  });

  it('refuses malformed JSON, unknown verbs, oversized payloads and bad arguments with error responses', async () => {
    const malformed = await client.raw(BASE, 'identities/list', '{"transaction": "t1", ', null);
    assert.equal(malformed.status, 'error');
    assert.match(malformed.error as string, /malformed JSON/);
    const notObject = await client.raw(BASE, 'identities/list', '[1,2]', null);
    assert.match(notObject.error as string, /must be a JSON object, got an array/);
    const unknown = await client.request(BASE, 'self-destruct');
    assert.equal(unknown.status, 'error');
    assert.match(unknown.error as string, /unknown command "self-destruct"; known: .*camera\/disable.*enroll.*snapshot/);
    const oversized = await client.raw(BASE, 'enroll', JSON.stringify({ name: 'Big', images: ['A'.repeat(1_100_000)] }), null);
    assert.equal(oversized.status, 'error');
    assert.match(oversized.error as string, /payload is \d+ bytes; the limit is 1000000 \(commands.maxPayloadBytes\)/);
    const typo = await client.request(BASE, 'identities/remove', { nmae: 'Ava' });
    assert.match(typo.error as string, /invalid arguments: .*name.*nmae|invalid arguments: .*nmae.*name/s);
    const badTransaction = await client.raw(BASE, 'config/get', JSON.stringify({ transaction: { a: 1 } }), null);
    assert.match(badTransaction.error as string, /transaction must be a string/);
  });

  it('enroll: refuses invalid images, images without exactly one face, and writes nothing then', async () => {
    const gray = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 128, g: 128, b: 128 } } }).jpeg().toBuffer();
    const group = await readFile(faceApiSamplePath(1));
    const cases: [string, unknown[], RegExp][] = [
      ['not an image', [{ name: 'notes.txt', data: Buffer.from('hello, this is text').toString('base64') }], /images\[0\] \(notes\.txt\).*not a supported image/],
      ['not base64', ['%%%not-base64%%%'], /images\[0\]: not base64 data/],
      ['a truncated JPEG', [(crops[0] as Buffer).subarray(0, 600).toString('base64')], /images\[0\].*(truncated|corrupt)/],
      ['no face', [crops[0]?.toString('base64'), { name: 'wall.jpg', data: gray.toString('base64') }], /nothing was enrolled: images\[1\] \(wall\.jpg\): no face found/],
      ['three faces', [{ name: 'group.jpg', data: group.toString('base64') }], /images\[0\] \(group\.jpg\): 3 faces found/],
      ['no images', [], /images.*at least one image/],
    ];
    for (const [what, images, expected] of cases) {
      const r = await client.request(BASE, 'enroll', { name: 'Ava', images });
      assert.equal(r.status, 'error', `${what}: ${JSON.stringify(r)}`);
      assert.match(r.error as string, expected, what);
    }
    const list = await client.request(BASE, 'identities/list');
    assert.deepEqual((list.data as { identities: unknown[] }).identities, [], 'nothing was written');
  });

  it('enroll (JPEG and PNG, data URL too), identities/list, and the agent recognises the person; Home Assistant state follows', async () => {
    const png = await sharp(crops[0]).png().toBuffer();
    const since = client.mark();
    const r = await client.request(BASE, 'enroll', { name: 'Ava', images: [{ name: 'ava.jpg', data: (crops[0] as Buffer).toString('base64') }, `data:image/png;base64,${png.toString('base64')}`] });
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const data = r.data as { name: string; model: string; fusedWith: string | null; images: { image: string; score: number }[]; embeddings: Record<string, number> };
    assert.equal(data.name, 'Ava');
    assert.deepEqual(data.images.map((i) => i.image), ['images[0] (ava.jpg)', 'images[1]']);
    // Fusing dlib-resnet with mobilefacenet (recognition.fuseWith): both embed each photo.
    assert.equal(data.fusedWith, 'mobilefacenet');
    assert.deepEqual(data.embeddings, { [data.model]: 2, mobilefacenet: 2 });
    const list = await client.request(BASE, 'identities/list');
    const identities = (list.data as { identities: { name: string; embeddings: number; needsReenrollment: boolean }[] }).identities;
    assert.deepEqual(identities.map((i) => [i.name, i.embeddings, i.needsReenrollment]), [['Ava', 4, false]]);
    const stats = agent.stats() as { inference: { fusion: unknown }; gallery: { withoutCompanion?: number } };
    assert.deepEqual(stats.inference.fusion, { companion: 'mobilefacenet', paused: false, failures: 0 });
    assert.equal(stats.gallery.withoutCompanion, 0, 'the MQTT enrollment stored the companion embeddings');

    // The running agent matches the new identity (looped video: she comes back after a gray gap).
    const ava = await client.next((m) => m.topic === `${BASE}/entrance/identity` && (JSON.parse(m.text) as IdentityEvent).identity === 'Ava', 90_000, 'an identity event for Ava', since);
    assert.equal(ava.retain, false);
    const last = await client.next((m) => m.topic === `${BASE}/entrance/last_identity` && (JSON.parse(m.text) as { state: string }).state === 'Ava', 10_000, 'last_identity = Ava', since);
    const attrs = JSON.parse(last.text) as Record<string, unknown>;
    assert.equal(attrs.eventId, (JSON.parse(ava.text) as IdentityEvent).eventId);
    const on = await client.next((m) => m.topic === `${BASE}/entrance/person_present` && m.text === 'ON', 10_000, 'person present ON', since);
    const off = await client.next((m) => m.topic === `${BASE}/entrance/person_present` && m.text === 'OFF', 15_000, 'person present OFF after the timeout', on.index);
    assert.ok(off.at - on.at >= 2500, `OFF ${off.at - on.at} ms after ON (timeout 3 s)`);
    // A subscriber arriving later gets the retained state, but never a retained identity event.
    const late = await MqttRecorder.connect(broker.url, [`${BASE}/entrance/last_identity`, `${BASE}/+/identity`]);
    try {
      const retained = await late.next((m) => m.topic.endsWith('/last_identity'), 5000, 'retained last_identity');
      assert.equal(retained.retain, true);
      assert.equal((JSON.parse(retained.text) as { state: string }).state, 'Ava');
      await sleep(500);
      assert.ok(late.messages.every((m) => !m.topic.endsWith('/identity') || !m.retain), 'identity events are never retained');
    } finally {
      await late.close();
    }
  });

  it('snapshot: the current frame of a running camera as a JPEG; errors for a stopped or unknown camera', async () => {
    const r = await client.request(BASE, 'snapshot', { camera: 'entrance' });
    assert.equal(r.status, 'ok', JSON.stringify(r).slice(0, 300));
    const data = r.data as { camera: string; width: number; height: number; contentType: string; image: string; capturedAt: string };
    assert.equal(data.contentType, 'image/jpeg');
    const meta = await sharp(Buffer.from(data.image, 'base64')).metadata();
    assert.equal(meta.format, 'jpeg');
    assert.deepEqual([meta.width, meta.height, data.width, data.height], [960, 540, 960, 540]);
    assert.ok(Date.now() - Date.parse(data.capturedAt) < 30_000);
    assert.match((await client.request(BASE, 'snapshot', { camera: 'side' })).error as string, /camera "side" is not running/);
    assert.match((await client.request(BASE, 'snapshot', { camera: 'garage' })).error as string, /no camera named "garage" in the configuration \(cameras: entrance, side\)/);
  });

  it('snapshot is refused unless enabled in the configuration', async () => {
    // The same handlers with snapshots off (the default), on the real broker.
    const ctx: CommandContext = {
      config: () => ({ ...agent.config, commands: { ...agent.config.commands, snapshot: false } }),
      analyzer: () => agent.faceAnalyzer,
      gallery: () => {
        throw new Error('unused');
      },
      galleryChanged: () => {},
      runningCameras: () => agent.runningCameras,
      startCamera: () => false,
      stopCamera: async () => false,
      nextFrame: () => Promise.reject(new Error('must not be asked for a frame')),
    };
    const router = new CommandRouter(client.client, { base: 'facegate/nosnap', handlers: buildCommandHandlers(ctx) });
    await router.start();
    await client.client.subscribeAsync('facegate/nosnap/response/#', { qos: 1 });
    try {
      const r = await client.request('facegate/nosnap', 'snapshot', { camera: 'entrance' });
      assert.equal(r.status, 'error');
      assert.match(r.error as string, /snapshots are disabled \(set commands.snapshot: true/);
    } finally {
      router.stop();
    }
  });

  it('bounds the requests in progress: past commands.maxPending the answer is "busy"', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const { z } = await import('zod');
    const { command } = await import('../agent/events/command-router.js');
    const router = new CommandRouter(client.client, { base: 'facegate/busy', maxPending: 1, handlers: { slow: command(z.object({}).strict(), async () => gate.then(() => 'done')) } });
    await router.start();
    await client.client.subscribeAsync('facegate/busy/response/#', { qos: 1 });
    try {
      const first = client.request('facegate/busy', 'slow');
      await sleep(300);
      const second = await client.request('facegate/busy', 'slow');
      assert.equal(second.status, 'error');
      assert.match(second.error as string, /busy: 1 requests in progress \(commands.maxPending\)/);
      release();
      assert.deepEqual(((await first) as { status: string; data: string }).data, 'done');
    } finally {
      router.stop();
    }
  });

  it('camera/enable and camera/disable start and stop one camera; the other keeps streaming', async () => {
    assert.deepEqual(agent.runningCameras, ['entrance']);
    const enabled = await client.request(BASE, 'camera/enable', { name: 'side' });
    assert.deepEqual(enabled.data, { name: 'side', running: true, changed: true });
    assert.deepEqual(agent.runningCameras.sort(), ['entrance', 'side']);
    const snap = await client.request(BASE, 'snapshot', { camera: 'side' });
    assert.equal(snap.status, 'ok', JSON.stringify(snap).slice(0, 300));
    assert.equal((snap.data as { width: number }).width, 640);
    assert.deepEqual((await client.request(BASE, 'camera/enable', { name: 'side' })).data, { name: 'side', running: true, changed: false });
    const framesBefore = (agent.stats().cameras as Record<string, { framesIn: number }>).entrance?.framesIn ?? 0;
    const disabled = await client.request(BASE, 'camera/disable', { name: 'side' });
    assert.deepEqual(disabled.data, { name: 'side', running: false, changed: true });
    assert.deepEqual(agent.runningCameras, ['entrance']);
    assert.deepEqual((await client.request(BASE, 'camera/disable', { name: 'side' })).data, { name: 'side', running: false, changed: false });
    assert.match((await client.request(BASE, 'camera/enable', { name: 'garage' })).error as string, /no camera named "garage"/);
    assert.match((await client.request(BASE, 'camera/disable', {})).error as string, /invalid arguments: name/);
    await waitFor('entrance frames', () => ((agent.stats().cameras as Record<string, { framesIn: number }>).entrance?.framesIn ?? 0) > framesBefore, 10_000);
  });

  it('identities/remove, then the agent is still up and the outbox is empty', async () => {
    const removed = await client.request(BASE, 'identities/remove', { name: 'Ava' });
    assert.deepEqual(removed.data, { name: 'Ava', removed: true });
    assert.match((await client.request(BASE, 'identities/remove', { name: 'Ava' })).error as string, /no identity named "Ava"/);
    assert.deepEqual(((await client.request(BASE, 'identities/list')).data as { identities: unknown[] }).identities, []);
    assert.equal((await client.request(BASE, 'config/get')).status, 'ok', 'still answering after every bad request');
    const stats = agent.stats() as { outbox: { depth: number; dropped: number; delivered: number }; commands: { ok: number; error: number } };
    await waitFor('the outbox to drain', () => agent.outboxDepth === 0, 10_000);
    assert.equal(stats.outbox.dropped, 0);
    assert.ok(stats.outbox.delivered >= 1);
    assert.ok(stats.commands.error >= 10 && stats.commands.ok >= 8, JSON.stringify(stats.commands));
    const published = await client.next((m) => m.topic === `${BASE}/stats` && 'outbox' in (JSON.parse(m.text) as object), 5000, 'stats with the outbox');
    assert.equal(typeof (JSON.parse(published.text) as { outbox: { depth: number } }).outbox.depth, 'number');
  });
});
