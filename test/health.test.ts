// Health and metrics with real parts: a running agent (video-file camera, Mosquitto, real models
// on the CPU after a real cuda → cpu fallback) scraped over HTTP; /healthz turns 503 with the
// reason when the broker stops and 200 when it is back; a port in use is reported without
// stopping the agent. The GPU is a fake nvidia-smi (no GPU here) read through systeminformation;
// the watchdog's actions on a live scheduler, frame throttle and embedder are checked with it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { FacegateAgent } from '../agent/agent.js';
import { faceApiSamplePath, makeVideo } from '../agent/camera/slideshow-video.js';
import { validateConfig } from '../agent/config/load-config.js';
import { prepareDemoGallery } from '../agent/demo.js';
import { MqttPublisher } from '../agent/events/mqtt-publisher.js';
import { HealthService } from '../agent/health/health-service.js';
import { EmbedderRuntime, embedderFactory } from '../agent/inference/embedder-runtime.js';
import { ModelRegistry } from '../agent/inference/model-registry.js';
import { createSession } from '../agent/inference/onnx-session.js';
import { createLogger } from '../agent/logging.js';
import { BatchScheduler } from '../agent/pipeline/batch-scheduler.js';
import { FaceEmbedder } from '../agent/recognition/embedder.js';
import type { RgbImage } from '../agent/vision/image.js';
import { FAKE_GPU, installFakeNvidiaSmi } from './support/fake-nvidia-smi.js';
import { Mosquitto } from './support/mosquitto.js';
import { freePort } from './support/ports.js';

// Before systeminformation is first imported: it captures PATH then.
const fake = installFakeNvidiaSmi();
const realPath = process.env.PATH ?? '';
process.env.PATH = `${fake.dir}:${realPath}`;

after(() => {
  process.env.PATH = realPath;
  fake.dispose();
});

const waitFor = async (what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

async function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** The value of one sample line of Prometheus text (`name{labels} value`), or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{\s]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const have = Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[2]);
  }
  return undefined;
}

describe('health server and metrics on a running agent', { timeout: 300_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'facegate-health-'));
  let broker: Mosquitto;
  let agent: FacegateAgent;
  let port: number;
  let subscriber: mqtt.MqttClient;
  let lastStats: Record<string, unknown> | undefined;
  let healthTopic: { payload: Record<string, unknown>; retain: boolean } | undefined;
  const errors: { source: string; message: string }[] = [];

  before(async () => {
    const video = await makeVideo({ segments: [{ image: faceApiSamplePath(1), seconds: 4 }], width: 640, height: 360, fps: 5 });
    await prepareDemoGallery(dataDir);
    broker = await Mosquitto.start();
    fake.setUsedPercent(95); // a busy card; this agent runs on the CPU, so it must not act on it
    const config = validateConfig(
      {
        agent: { id: 'health' },
        dataDir,
        cameras: [{ name: 'door', url: video.path, fps: 2, width: 640, height: 360 }],
        mqtt: { url: broker.url, statsIntervalSeconds: 1 },
        events: { cooldownSeconds: 600, minVotes: 1 },
        health: { listen: '127.0.0.1:0', frameStaleSeconds: 10, gpu: { pollSeconds: 1 } },
      },
      'health test',
    );
    assert.deepEqual(config.inference.providers, ['cuda', 'cpu'], 'the default provider order');
    subscriber = mqtt.connect(broker.url, { clientId: 'health-subscriber', reconnectPeriod: 500 });
    await new Promise<void>((resolve) => subscriber.once('connect', () => resolve()));
    subscriber.on('message', (topic, payload, packet) => {
      if (topic.endsWith('/stats')) lastStats = JSON.parse(payload.toString()) as Record<string, unknown>;
      else if (topic.endsWith('/health')) healthTopic = { payload: JSON.parse(payload.toString()) as Record<string, unknown>, retain: packet.retain };
      else if (topic.endsWith('/errors')) errors.push(JSON.parse(payload.toString()) as { source: string; message: string });
    });
    await subscriber.subscribeAsync('facegate/#', { qos: 1 });
    agent = new FacegateAgent(config, createLogger('warn'));
    await agent.start();
    port = agent.health.listening?.port as number;
    assert.ok(port > 0, 'the health server listens');
  });

  after(async () => {
    await agent?.stop();
    subscriber?.end(true);
    await broker?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers /healthz 200 once the camera delivers frames and the broker is connected', async () => {
    await waitFor('healthz 200', async () => (await get(port, '/healthz')).status === 200, 60_000);
    const res = await get(port, '/healthz');
    assert.match(res.type, /application\/json/);
    const body = JSON.parse(res.body) as { status: string; reasons: string[]; cameras: Record<string, { state: string; lastFrameAgeSeconds: number }> };
    assert.equal(body.status, 'ok');
    assert.deepEqual(body.reasons, []);
    assert.equal(body.cameras.door?.state, 'streaming');
    assert.ok((body.cameras.door?.lastFrameAgeSeconds ?? 99) < 10);
    assert.equal((await get(port, '/nothing')).status, 404);
  });

  it('serves Prometheus metrics: cameras, inference per model and provider, batches, events, GPU, process', async () => {
    await waitFor('an identity event and analysed frames', async () => {
      const m = (await get(port, '/metrics')).body;
      return (sample(m, 'facegate_identity_events_total', { camera: 'door', result: 'known' }) ?? 0) >= 1 && (sample(m, 'facegate_camera_frames_analysed_total', { camera: 'door' }) ?? 0) >= 2;
    }, 120_000);
    const res = await get(port, '/metrics');
    assert.match(res.type, /text\/plain; version=0\.0\.4/);
    const m = res.body;
    const framesIn = sample(m, 'facegate_camera_frames_in_total', { camera: 'door' }) ?? 0;
    assert.ok(framesIn >= (sample(m, 'facegate_camera_frames_analysed_total', { camera: 'door' }) ?? Infinity));
    assert.ok(sample(m, 'facegate_camera_frames_dropped_total', { camera: 'door' }) !== undefined);
    assert.equal(sample(m, 'facegate_camera_reconnects_total', { camera: 'door' }), 0);
    assert.ok((sample(m, 'facegate_faces_detected_total', { camera: 'door' }) ?? 0) >= 3, 'sample1 has three faces');
    for (const model of ['mtcnn-pnet', 'mtcnn-rnet', 'mtcnn-onet', 'dlib-resnet']) {
      assert.equal(sample(m, 'facegate_model_provider_info', { model, provider: 'cpu' }), 1, `${model} runs on the cpu after the cuda fallback`);
    }
    assert.ok((sample(m, 'facegate_inference_duration_seconds_count', { model: 'dlib-resnet', provider: 'cpu' }) ?? 0) >= 1);
    assert.ok((sample(m, 'facegate_inference_duration_seconds_count', { model: 'mtcnn-pnet', provider: 'cpu' }) ?? 0) >= 1);
    assert.ok((sample(m, 'facegate_batch_size_count', { model: 'dlib-resnet' }) ?? 0) >= 1);
    assert.ok((sample(m, 'facegate_batch_size_sum', { model: 'dlib-resnet' }) ?? 0) >= 3, 'three faces per frame went through the scheduler');
    assert.equal(sample(m, 'facegate_outbox_depth'), 0);
    assert.equal(sample(m, 'facegate_mqtt_connected'), 1);
    assert.equal(sample(m, 'facegate_gpu_memory_total_bytes', { gpu: '0', name: FAKE_GPU.name }), FAKE_GPU.totalMiB * 1024 * 1024);
    assert.equal(sample(m, 'facegate_gpu_memory_used_bytes', { gpu: '0', name: FAKE_GPU.name }), Math.round(0.95 * FAKE_GPU.totalMiB) * 1024 * 1024);
    assert.equal(sample(m, 'facegate_gpu_temperature_celsius', { gpu: '0', name: FAKE_GPU.name }), FAKE_GPU.temperature);
    assert.equal(sample(m, 'facegate_gpu_pressure_level'), 0, 'a CPU-only agent does not act on someone else’s full GPU');
    assert.ok((sample(m, 'process_resident_memory_bytes') ?? 0) > 10 * 1024 * 1024);
  });

  it('publishes the same numbers in the MQTT stats, and the providers on the health topic', async () => {
    await waitFor('stats with GPU readings', () => {
      const h = lastStats?.health as { gpu?: { sample?: { gpus: unknown[] } } } | undefined;
      return (h?.gpu?.sample?.gpus.length ?? 0) > 0;
    }, 20_000);
    const stats = lastStats as {
      inference: { models: { model: string; provider: string; skipped: { provider: string; reason: string }[] }[]; embedderRuntime: { placement: string; provider: string }; fusion: unknown };
      health: { gpu: { level: string; acting: boolean; sample: { gpus: { name: string; memoryUsedMiB: number; memoryTotalMiB: number }[]; process: { rssBytes: number } } }; outbox: { depth: number }; server: { listen: string } };
      process: { rssBytes: number };
    };
    for (const m of stats.inference.models) {
      assert.equal(m.provider, 'cpu');
      assert.equal(m.skipped[0]?.provider, 'cuda');
      assert.match(m.skipped[0]?.reason ?? '', /Failed to load shared library/);
    }
    assert.equal(stats.inference.embedderRuntime.placement, 'primary');
    // recognition.fuseWith: auto fuses only where the embedder runs on a GPU; here it is on the CPU.
    assert.equal(stats.inference.fusion, null);
    assert.equal(stats.health.gpu.sample.gpus[0]?.name, FAKE_GPU.name);
    assert.equal(stats.health.gpu.sample.gpus[0]?.memoryTotalMiB, FAKE_GPU.totalMiB);
    assert.equal(stats.health.gpu.level, 'normal');
    assert.equal(stats.health.gpu.acting, false);
    assert.ok(stats.health.gpu.sample.process.rssBytes > 0);
    assert.equal(stats.health.outbox.depth, 0);
    assert.equal(stats.health.server.listen, `127.0.0.1:${port}`);
    await waitFor('the health topic', () => healthTopic !== undefined, 10_000);
    assert.equal(healthTopic?.retain, false, 'live delivery (a late subscriber gets it retained)');
    assert.deepEqual(healthTopic?.payload.providers, { 'mtcnn-pnet': 'cpu', 'mtcnn-rnet': 'cpu', 'mtcnn-onet': 'cpu', 'dlib-resnet': 'cpu' });
    assert.equal(healthTopic?.payload.gpuPressure, 'normal');
  });

  it('turns /healthz 503 with the reason while the broker is down, and 200 after it is back', async () => {
    await broker.stop();
    await waitFor('healthz 503', async () => (await get(port, '/healthz')).status === 503, 30_000);
    const body = JSON.parse((await get(port, '/healthz')).body) as { status: string; reasons: string[]; broker: { connected: boolean } };
    assert.equal(body.status, 'unhealthy');
    assert.equal(body.broker.connected, false);
    assert.ok(body.reasons.some((r) => /^MQTT broker mqtt:\/\/127\.0\.0\.1:\d+ is not connected$/.test(r)), body.reasons.join('; '));
    assert.equal(sample((await get(port, '/metrics')).body, 'facegate_mqtt_connected'), 0);
    await broker.restart();
    await waitFor('healthz 200 again', async () => (await get(port, '/healthz')).status === 200, 60_000);
  });

  it('reports a health port in use clearly and keeps the agent running', async () => {
    const busy: Server = createServer();
    const busyPort = await freePort();
    await new Promise<void>((resolve) => busy.listen(busyPort, '127.0.0.1', () => resolve()));
    const second = new FacegateAgent(
      validateConfig({ agent: { id: 'health2' }, dataDir, mqtt: { url: broker.url }, health: { listen: `127.0.0.1:${busyPort}`, gpu: { enabled: false } } }, 'second agent'),
      createLogger('silent'),
    );
    try {
      await second.start();
      const stats = second.stats() as { health: { server: { listen: string | null; error: string } } };
      assert.equal(stats.health.server.listen, null);
      assert.equal(stats.health.server.error, `health server cannot listen on 127.0.0.1:${busyPort}: the port is in use by another process; set health.listen to a free host:port or health.enabled to false`);
      await waitFor('the error report', () => errors.some((e) => e.source === 'health' && e.message.includes(`127.0.0.1:${busyPort}`)), 15_000);
      // The first agent is untouched.
      assert.equal((await get(port, '/healthz')).status, 200);
    } finally {
      await second.stop();
      await new Promise<void>((resolve) => busy.close(() => resolve()));
    }
  });
});

describe('GPU watchdog actions on a live scheduler, throttle and embedder', { timeout: 180_000 }, () => {
  let broker: Mosquitto;
  let publisher: MqttPublisher;

  before(async () => {
    broker = await Mosquitto.start();
    publisher = MqttPublisher.start({ url: broker.url, agentId: 'gpu' });
    await publisher.connected();
  });
  after(async () => {
    await publisher?.stop();
    await broker?.stop();
  });

  it('lowers fps and batch at warn, moves the embedder to the pruned variant at critical, and steps back', async () => {
    const registry = ModelRegistry.load();
    const entry = registry.get('dlib-resnet');
    const variant = registry.get('dlib-resnet-rec-0.25');
    await registry.ensure([entry, variant]);
    const primary = new FaceEmbedder(entry, await createSession(entry.name, registry.pathOf(entry), { providers: ['cpu'] }), { flipAverage: false });
    const embedder = new EmbedderRuntime({ primary, providers: ['cpu'], create: embedderFactory(registry, primary, {}), onError: () => {}, log: () => {} });
    const scheduler = new BatchScheduler<RgbImage, Float32Array>('embedder', (chips) => embedder.embed(chips), { maxBatch: 8, maxWaitMs: 5 });
    const watcher = mqtt.connect(broker.url, { clientId: 'gpu-watcher' });
    const published: { gpuPressure: string; embedder: { model: string }; transition?: { from: string; to: string; actions: string[] } }[] = [];
    watcher.on('message', (_t, payload) => published.push(JSON.parse(payload.toString()) as (typeof published)[number]));
    const config = validateConfig({ health: { enabled: false, gpu: { pollSeconds: 1, warnPercent: 80, criticalPercent: 90, recoverSeconds: 0, fpsFactor: 0.5, maxBatch: 2, criticalEmbedder: 'dlib-resnet-rec-0.25' } } }, 'gpu test').health;
    const health = new HealthService(config, createLogger('silent'), {
      running: () => [],
      enabledCameras: () => [],
      broker: () => ({ connected: publisher.isConnected, url: broker.url }),
      models: () => [{ model: entry.name, provider: 'cuda', skipped: [] }],
      publisher: () => publisher,
    });
    try {
      await watcher.subscribeAsync('facegate/gpu/health', { qos: 1 });
      fake.setUsedPercent(50);
      await health.start({ scheduler, maxBatch: 8, embedder, variant }, { actOnGpuPressure: true });
      fake.setUsedPercent(85);
      await waitFor('warn', () => health.stats().gpu.level === 'warn', 20_000);
      assert.equal(health.throttle.factor, 0.5);
      assert.equal(scheduler.maxBatch, 2);
      assert.equal(embedder.placement, 'primary');
      fake.setUsedPercent(96);
      await waitFor('critical', () => health.stats().gpu.level === 'critical', 20_000);
      await waitFor('the variant', () => embedder.placement === 'variant', 20_000);
      assert.equal(embedder.stats().model, 'dlib-resnet-rec-0.25');
      fake.setUsedPercent(20);
      await waitFor('normal again', () => health.stats().gpu.level === 'normal', 30_000);
      assert.equal(embedder.placement, 'primary');
      assert.equal(health.throttle.factor, 1);
      assert.equal(scheduler.maxBatch, 8);
      await waitFor('four transitions on the health topic', () => published.filter((p) => p.transition).length >= 4, 10_000);
      assert.deepEqual(published.filter((p) => p.transition).map((p) => `${p.transition?.from}→${p.transition?.to}`), ['normal→warn', 'warn→critical', 'critical→warn', 'warn→normal']);
      assert.deepEqual(published.find((p) => p.transition?.to === 'critical')?.transition?.actions, ['degradeEmbedder']);
    } finally {
      watcher.end(true);
      await health.stop();
      await embedder.close();
      await primary.release();
    }
  });
});
