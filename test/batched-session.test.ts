// R-Net/O-Net runs from several cameras merged into one, with the real models in onnxruntime:
// outputs equal separate runs row for row, runs that arrive while one is in flight go together,
// and a detector on merged sessions finds the same faces as on plain ones.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { batchedSession } from '../agent/inference/batched-session.js';
import { ModelRegistry } from '../agent/inference/model-registry.js';
import { createSession, type ModelSession } from '../agent/inference/onnx-session.js';
import { FaceAnalyzer } from '../agent/recognition/face-analyzer.js';
import { seededRandom } from '../agent/util/seeded-random.js';
import { decodeImage } from '../agent/vision/image.js';
import { samplePath } from './support/samples.js';

function crops(n: number, size: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  return Float32Array.from({ length: n * 3 * size * size }, () => Math.floor(rnd() * 256));
}

describe('merged R-Net/O-Net runs', { timeout: 180_000 }, () => {
  let rnet: ModelSession;
  let onet: ModelSession;
  before(async () => {
    const registry = ModelRegistry.load();
    const entries = [registry.get('mtcnn-rnet'), registry.get('mtcnn-onet')];
    await registry.ensure(entries);
    [rnet, onet] = await Promise.all(entries.map((e) => createSession(e.name, registry.pathOf(e), { providers: ['cpu'] }))) as [ModelSession, ModelSession];
  });
  after(async () => {
    await rnet?.release();
    await onet?.release();
  });

  it('merges runs that arrive while one is in flight, and splits the outputs back by rows', async () => {
    for (const [session, size] of [[rnet, 24], [onet, 48]] as const) {
      const batches: number[] = [];
      const merged = batchedSession({ ...session, release: async () => {} }, { maxRequests: 8, onBatch: (n) => batches.push(n) });
      const requests = [3, 1, 5, 2].map((n, i) => ({ input: { data: crops(n, size, i + 1), dims: [n, 3, size, size] } }));
      const together = await Promise.all(requests.map((r) => merged.run(r)));
      await new Promise((r) => setImmediate(r)); // onBatch runs after the results are handed out
      // The first ran alone at once; the three that came while it ran went together.
      assert.deepEqual(batches, [1, 3]);
      for (const [i, r] of requests.entries()) {
        const alone = await session.run(r);
        for (const name of Object.keys(alone)) {
          const a = alone[name];
          const b = together[i]?.[name];
          assert.deepEqual(b?.dims, a?.dims, `${session.name} ${name} dims, request ${i}`);
          assert.ok(a?.data.every((v, k) => Math.abs(v - (b?.data[k] as number)) < 1e-4), `${session.name} ${name} values, request ${i}`);
        }
      }
    }
  });

  it('a detector on merged stages finds the same faces in concurrent frames', async () => {
    const plain = await FaceAnalyzer.create({ flipAverage: false });
    const shared = await FaceAnalyzer.create({ flipAverage: false, batchDetectorStages: { maxRequests: 8 } });
    try {
      const images = await Promise.all([1, 2, 3].map((n) => decodeImage(samplePath(n))));
      const want = await Promise.all(images.map((im) => plain.detect(im)));
      const got = await Promise.all(images.map((im) => shared.detect(im)));
      for (const [i, faces] of got.entries()) {
        assert.equal(faces.length, want[i]?.length, `sample ${i + 1}`);
        faces.forEach((f, k) => assert.ok(Math.abs(f.box.x1 - (want[i]?.[k]?.box.x1 as number)) < 0.01 && Math.abs(f.score - (want[i]?.[k]?.score as number)) < 1e-4));
      }
      assert.ok(want.some((w) => w.length > 0));
    } finally {
      await plain.close();
      await shared.close();
    }
  });
});
