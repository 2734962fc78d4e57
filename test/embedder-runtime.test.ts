// The embedder hot path and its ways out of memory trouble, with the real dlib ResNet in
// onnxruntime on the CPU: reused input buffers give the same embeddings as fresh ones, an
// allocation failure is retried in halves and then on the CPU (the failing "GPU" session is a
// stand-in: there is no GPU here; it throws ORT's real BFC-arena message), the scheduler's batch
// limit can be lowered, and the frame throttle halves the analysed fps.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EmbedderRuntime, checkVariant, embedderFactory } from '../agent/inference/embedder-runtime.js';
import { type ModelEntry, ModelRegistry } from '../agent/inference/model-registry.js';
import { createSession, type ModelSession } from '../agent/inference/onnx-session.js';
import { BatchScheduler } from '../agent/pipeline/batch-scheduler.js';
import { FrameThrottle } from '../agent/pipeline/frame-throttle.js';
import { FaceEmbedder } from '../agent/recognition/embedder.js';
import { seededRandom } from '../agent/util/seeded-random.js';
import { mirrorImage, type RgbImage } from '../agent/vision/image.js';
import { toChw } from '../agent/vision/mtcnn.js';

const OOM = "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running FusedConv node. Name:'conv' Status Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to allocate memory for requested buffer of size 19660800";

function chips(n: number, seed: number): RgbImage[] {
  const rnd = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const data = new Uint8Array(150 * 150 * 3);
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(rnd() * 256);
    return { width: 150, height: 150, data };
  });
}

/** A session that reports itself as CUDA and fails like a full GPU above `maxOk` images (no GPU here). */
function fullGpu(real: ModelSession, maxOk: number): ModelSession {
  return {
    ...real,
    provider: 'cuda',
    run: async (inputs) => {
      if (Number(inputs.input?.dims[0]) > maxOk) throw new Error(OOM);
      return real.run(inputs);
    },
    release: async () => {},
  };
}

const close = (a: Float32Array, b: Float32Array): boolean => a.every((v, i) => Math.abs(v - (b[i] as number)) < 1e-5);

describe('embedder runtime', { timeout: 180_000 }, () => {
  let registry: ModelRegistry;
  let entry: ModelEntry;
  let session: ModelSession;
  let embedder: FaceEmbedder;

  before(async () => {
    registry = ModelRegistry.load();
    entry = registry.get('dlib-resnet');
    await registry.ensure([entry]);
    session = await createSession(entry.name, registry.pathOf(entry), { providers: ['cpu'] });
    embedder = new FaceEmbedder(entry, session, { flipAverage: true });
  });
  after(async () => session?.release());

  it('packs chips and their mirrors into a reused buffer, giving the same embeddings as fresh tensors', async () => {
    const set = chips(3, 1);
    const got = await embedder.embed(set);
    // Reference: a fresh CHW tensor of each chip and of its mirror image, averaged.
    const images = [...set, ...set.map((c) => mirrorImage(c))];
    const per = 3 * 150 * 150;
    const input = new Float32Array(images.length * per);
    images.forEach((img, i) => input.set(toChw(img.data, 1, 150, 150), i * per));
    const out = await session.run({ input: { data: input, dims: [images.length, 3, 150, 150] } });
    const e = out.embedding?.data as Float32Array;
    for (let i = 0; i < 3; i++) {
      const ref = new Float32Array(128);
      for (let k = 0; k < 128; k++) ref[k] = ((e[i * 128 + k] as number) + (e[(3 + i) * 128 + k] as number)) / 2;
      assert.ok(close(got[i] as Float32Array, ref), `chip ${i} differs from the fresh-tensor embedding`);
    }
    // Steady state: more calls of the same or smaller size allocate no new input buffer.
    const before = embedder.inputPool.allocations;
    for (const n of [3, 2, 1, 3]) await embedder.embed(chips(n, 10 + n));
    assert.equal(embedder.inputPool.allocations, before);
  });

  it('retries an out-of-memory batch in halves, then moves to the CPU, reporting each failure', async () => {
    const errors: { message: string; details: Record<string, unknown> }[] = [];
    const created: string[] = [];
    const gpu = new FaceEmbedder(entry, fullGpu(session, 4), { flipAverage: true });
    // A runtime over a "GPU" embedder that records each replacement it creates and each error.
    const gpuRuntime = (primary: FaceEmbedder): EmbedderRuntime =>
      new EmbedderRuntime({
        primary,
        providers: ['cuda', 'cpu'],
        create: async (e, providers) => {
          created.push(`${e.name}@${providers.join(',')}`);
          return embedderFactory(registry, gpu, {})(e, providers);
        },
        onError: (message, details) => errors.push({ message, details }),
        log: () => {},
      });
    const runtime = gpuRuntime(gpu);
    const set = chips(4, 2);
    const want = await embedder.embed(set);
    // 4 chips + mirrors = 8 > 4: split into 2 + 2 (4 each) which fit.
    const got = await runtime.embed(set);
    assert.equal(got.length, 4);
    got.forEach((g, i) => assert.ok(close(g, want[i] as Float32Array), `chip ${i}`));
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', /out of memory on a batch of 4; retrying in halves/);
    assert.equal(errors[0]?.details.provider, 'cuda');
    assert.equal(runtime.placement, 'primary');

    // Now even one chip (2 images with its mirror) fails: the embedder moves to the CPU.
    const tiny = gpuRuntime(new FaceEmbedder(entry, fullGpu(session, 1), { flipAverage: true }));
    const one = await tiny.embed(set.slice(0, 1));
    assert.ok(close(one[0] as Float32Array, want[0] as Float32Array));
    assert.match(errors.at(-1)?.message ?? '', /one chip; moving it to the CPU/);
    assert.equal(tiny.placement, 'cpu');
    assert.equal(tiny.stats().provider, 'cpu');
    assert.deepEqual(created, ['dlib-resnet@cpu']);
    // Other errors are not swallowed.
    const broken = new EmbedderRuntime({ ...{ providers: ['cpu'] as const }, primary: new FaceEmbedder(entry, { ...session, run: async () => { throw new Error('bad input'); } }, { flipAverage: true }), create: async () => embedder, onError: () => assert.fail('not an allocation failure'), log: () => {} });
    await assert.rejects(broken.embed(set.slice(0, 1)), /bad input/);
    await tiny.close();
  });

  it('moves to a pruned variant of the same embedding space and back', async () => {
    const variant = registry.get('dlib-resnet-rec-0.25');
    checkVariant(entry, variant);
    assert.throws(() => checkVariant(variant, entry), /not pruned from dlib-resnet-rec-0.25/);
    const logs: string[] = [];
    const runtime = new EmbedderRuntime({ primary: embedder, providers: ['cpu'], create: embedderFactory(registry, embedder, {}), onError: () => {}, log: (_l, m) => logs.push(m) });
    await runtime.moveTo('variant', variant);
    assert.equal(runtime.stats().model, 'dlib-resnet-rec-0.25');
    const set = chips(2, 3);
    const [a] = await runtime.embed(set);
    await runtime.moveTo('primary');
    const [b] = await runtime.embed(set);
    assert.equal(runtime.stats().model, 'dlib-resnet');
    assert.ok(!close(a as Float32Array, b as Float32Array), 'the variant is a different network');
    assert.match(logs.join('\n'), /moved from dlib-resnet on cpu to dlib-resnet-rec-0.25 on cpu \(variant\)[\s\S]*to dlib-resnet on cpu \(primary\)/);
    await runtime.close();
  });

  it('lowers and restores the scheduler batch limit', async () => {
    const sizes: number[] = [];
    const scheduler = new BatchScheduler<number, number>('t', async (items) => items.map((i) => i * 2), { maxBatch: 4, maxWaitMs: 5, onBatch: (n) => sizes.push(n) });
    await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((i) => scheduler.submit(i)));
    scheduler.setMaxBatch(2);
    assert.equal(scheduler.maxBatch, 2);
    const out = await Promise.all([1, 2, 3, 4].map((i) => scheduler.submit(i)));
    assert.deepEqual(out, [2, 4, 6, 8]);
    await new Promise((r) => setImmediate(r)); // onBatch runs after the results are handed out
    assert.deepEqual(sizes, [4, 4, 2, 2]);
    scheduler.setMaxBatch(100);
    assert.equal(scheduler.maxBatch, 4, 'never above the configured maxBatch');
  });

  it('throttles analysed frames by a factor', () => {
    const t = new FrameThrottle();
    const admitted = (fps: number): number => Array.from({ length: 20 }, (_, i) => t.admit('cam', fps, 1000 + i * (1000 / fps))).filter(Boolean).length;
    assert.equal(admitted(10), 20);
    t.setFactor(0.5);
    t.forget('cam');
    assert.equal(admitted(10), 10);
    t.setFactor(0.25);
    t.forget('cam');
    assert.equal(admitted(10), 5);
    assert.throws(() => t.setFactor(0), /must be in \(0, 1\]/);
  });
});
