// Execution-provider fallback with the real onnxruntime-node and a real model: on this machine
// (onnxruntime-node installed without its GPU libraries, no GPU) asking for cuda or tensorrt
// must end on the CPU, with the reason logged once per provider.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { ModelRegistry } from '../agent/inference/model-registry.js';
import { createSession, isAllocationFailure, providerEntry, providersFromEnv, resetProviderFailures } from '../agent/inference/onnx-session.js';

const ortDir = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
const cudaInstalled = existsSync(join(ortDir, 'libonnxruntime_providers_cuda.so'));

describe('execution providers', { timeout: 120_000 }, () => {
  let model: string;
  before(async () => {
    const registry = ModelRegistry.load();
    const entry = registry.get('mtcnn-rnet');
    await registry.ensure([entry]);
    model = registry.pathOf(entry);
  });

  it('falls back from cuda to cpu, logging the reason once', { skip: cudaInstalled ? 'CUDA provider libraries are installed here' : false }, async () => {
    resetProviderFailures();
    const logs: { level: string; message: string }[] = [];
    const log = (level: 'info' | 'warn', message: string): void => void logs.push({ level, message });
    const runs: { provider: string; batch: number }[] = [];
    const s = await createSession('mtcnn-rnet', model, { providers: ['cuda', 'cpu'], log, observe: (r) => runs.push(r) });
    assert.equal(s.provider, 'cpu');
    assert.equal(s.skipped.length, 1);
    assert.equal(s.skipped[0]?.provider, 'cuda');
    assert.match(s.skipped[0]?.reason ?? '', /Failed to load shared library/);
    assert.match(s.skipped[0]?.reason ?? '', /ONNXRUNTIME_NODE_INSTALL=cuda12/);
    assert.equal(logs.length, 1);
    assert.equal(logs[0]?.level, 'warn');
    assert.match(logs[0]?.message ?? '', /execution provider cuda cannot load \(model mtcnn-rnet\).*trying cpu/);

    // The session works, and every run is observed with its provider and batch.
    const out = await s.run({ input: { data: new Float32Array(2 * 3 * 24 * 24).fill(128), dims: [2, 3, 24, 24] } });
    assert.deepEqual(out.prob?.dims, [2, 2]);
    assert.deepEqual(runs.map((r) => [r.provider, r.batch]), [['cpu', 2]]);
    await s.release();

    // A second model: cuda is not tried again and not logged again, but the reason is kept.
    const s2 = await createSession('mtcnn-rnet-2', model, { providers: ['cuda', 'cpu'], log });
    assert.equal(s2.provider, 'cpu');
    assert.equal(s2.skipped[0]?.provider, 'cuda');
    assert.equal(logs.length, 1);
    await s2.release();
  });

  it('tries tensorrt, then cuda, then cpu in the configured order', { skip: cudaInstalled ? 'GPU provider libraries are installed here' : false }, async () => {
    resetProviderFailures();
    const logs: string[] = [];
    const s = await createSession('mtcnn-rnet', model, { providers: ['tensorrt', 'cuda', 'cpu'], log: (_l, m) => void logs.push(m) });
    assert.equal(s.provider, 'cpu');
    assert.deepEqual(s.skipped.map((k) => k.provider), ['tensorrt', 'cuda']);
    assert.match(logs[0] ?? '', /tensorrt cannot load.*trying cuda/);
    assert.match(logs[1] ?? '', /cuda cannot load.*trying cpu/);
    await s.release();
  });

  it('fails with every reason when no listed provider loads', { skip: cudaInstalled ? 'CUDA provider libraries are installed here' : false }, async () => {
    resetProviderFailures();
    await assert.rejects(createSession('mtcnn-rnet', model, { providers: ['cuda'], log: () => {} }), /cannot load model mtcnn-rnet from .* with providers \[cuda\]: cuda: .*Failed to load shared library/);
  });

  // Here (ONNXRUNTIME_NODE_INSTALL=skip) the libraries are absent; on a GPU host installed with
  // ONNXRUNTIME_NODE_INSTALL=cuda12 the same test expects the session on the GPU.
  it('ends on cuda when its libraries are installed, on the cpu when they are not', async () => {
    resetProviderFailures();
    const s = await createSession('mtcnn-rnet', model, { providers: ['cuda', 'cpu'], log: () => {} });
    assert.equal(s.provider, cudaInstalled ? 'cuda' : 'cpu');
    await s.release();
  });

  it('builds provider entries and reads FACEGATE_PROVIDERS', () => {
    assert.equal(providerEntry('cpu'), 'cpu');
    assert.deepEqual(providerEntry('cuda', { deviceId: 1, gpuMemLimit: 2 ** 31 }), {
      name: 'cuda',
      deviceId: 1,
      arena_extend_strategy: 'kSameAsRequested',
      cudnn_conv_algo_search: 'HEURISTIC',
      gpu_mem_limit: String(2 ** 31),
    });
    assert.deepEqual(providersFromEnv({}), ['cpu']);
    assert.deepEqual(providersFromEnv({ FACEGATE_PROVIDERS: 'cuda, cpu' }), ['cuda', 'cpu']);
    assert.throws(() => providersFromEnv({ FACEGATE_PROVIDERS: 'cuda,gpu' }), /unknown provider "gpu"/);
  });

  it('recognises ORT allocation failures', () => {
    assert.ok(isAllocationFailure(new Error('[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. Name:\'conv1\' Status Message: /onnxruntime_src/onnxruntime/core/framework/bfc_arena.cc:376 void* onnxruntime::BFCArena::AllocateRawInternal(size_t, bool, onnxruntime::Stream*, bool, onnxruntime::WaitNotificationFn) Failed to allocate memory for requested buffer of size 268435456')));
    assert.ok(isAllocationFailure(new Error('CUDNN failure 4: CUDNN_STATUS_ALLOC_FAILED')));
    assert.ok(!isAllocationFailure(new Error('input dims mismatch')));
  });
});
