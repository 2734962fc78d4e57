// The GPU memory watchdog through the real systeminformation, with a fake nvidia-smi (and lspci)
// on PATH playing back real nvidia-smi CSV while the test walks memory up and down: there is no
// GPU on this machine. Checks the readings, each transition and its action, the hysteresis on the
// way back, a failing action, the polling loop, and a machine with no GPU at all.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { PressureTransition } from '../agent/health/gpu-pressure.js';
import { GpuWatchdog } from '../agent/health/gpu-watchdog.js';
import { FAKE_GPU, installFakeNvidiaSmi, SYSTEMINFORMATION_QUERY } from './support/fake-nvidia-smi.js';

// Before systeminformation is first imported (at the first sample): it captures PATH then.
const fake = installFakeNvidiaSmi();
const realPath = process.env.PATH ?? '';
process.env.PATH = `${fake.dir}:${realPath}`;

function recorder(): { calls: string[]; actions: Record<'reduceLoad' | 'restoreLoad' | 'degradeEmbedder' | 'restoreEmbedder', () => void> } {
  const calls: string[] = [];
  return {
    calls,
    actions: {
      reduceLoad: () => void calls.push('reduceLoad'),
      restoreLoad: () => void calls.push('restoreLoad'),
      degradeEmbedder: () => void calls.push('degradeEmbedder'),
      restoreEmbedder: () => void calls.push('restoreEmbedder'),
    },
  };
}

describe('GPU watchdog (fake nvidia-smi, real systeminformation)', { timeout: 120_000 }, () => {
  after(() => {
    process.env.PATH = realPath;
    fake.dispose();
  });

  it('reads memory, utilisation and temperature as nvidia-smi reports them', async () => {
    fake.setUsedMiB(10240);
    const w = new GpuWatchdog({ pollMs: 1000, warnPercent: 80, criticalPercent: 92, recoverMs: 30_000 }, recorder().actions);
    const s = await w.pollOnce();
    assert.ok(s);
    assert.equal(s.gpus.length, 1);
    const g = s.gpus[0];
    assert.equal(g?.name, FAKE_GPU.name);
    assert.equal(g?.busId, FAKE_GPU.busId);
    assert.equal(g?.memoryTotalMiB, FAKE_GPU.totalMiB);
    assert.equal(g?.memoryUsedMiB, 10240);
    assert.equal(g?.usedPercent, 25);
    assert.equal(g?.utilizationPercent, FAKE_GPU.utilization);
    assert.equal(g?.temperatureC, FAKE_GPU.temperature);
    assert.ok(s.process.rssBytes > 0 && s.process.heapUsedBytes > 0);
    assert.equal(fake.calls().at(-1), SYSTEMINFORMATION_QUERY, 'systeminformation asked the exact query the fake plays back');
    assert.equal(w.level, 'normal');
  });

  it('steps up at warn and critical at once, and back one step per quiet period below warn', async () => {
    let now = 1_000_000;
    const r = recorder();
    const seen: PressureTransition[] = [];
    const w = new GpuWatchdog({ pollMs: 1000, warnPercent: 80, criticalPercent: 92, recoverMs: 30_000, now: () => now }, r.actions, { onTransition: (t) => seen.push(t) });
    const at = async (percent: number, seconds: number): Promise<void> => {
      fake.setUsedPercent(percent);
      now = 1_000_000 + seconds * 1000;
      await w.pollOnce();
    };
    await at(50, 0);
    assert.equal(w.level, 'normal');
    await at(85, 10);
    assert.equal(w.level, 'warn');
    assert.deepEqual(r.calls, ['reduceLoad']);
    await at(95, 20);
    assert.equal(w.level, 'critical');
    assert.deepEqual(r.calls, ['reduceLoad', 'degradeEmbedder']);
    await at(85, 30); // between warn and critical: stays critical
    assert.equal(w.level, 'critical');
    await at(50, 40); // quiet period starts
    await at(50, 60);
    assert.equal(w.level, 'critical', 'not back before 30 s below warn');
    await at(81, 65); // above warn again: the quiet period restarts
    await at(50, 70);
    await at(50, 95);
    assert.equal(w.level, 'critical');
    await at(50, 100);
    assert.equal(w.level, 'warn');
    assert.deepEqual(r.calls, ['reduceLoad', 'degradeEmbedder', 'restoreEmbedder']);
    await at(50, 120);
    assert.equal(w.level, 'warn', 'each step back needs its own quiet period');
    await at(50, 130);
    assert.equal(w.level, 'normal');
    assert.deepEqual(r.calls, ['reduceLoad', 'degradeEmbedder', 'restoreEmbedder', 'restoreLoad']);

    assert.deepEqual(seen.map((t) => `${t.from}→${t.to}`), ['normal→warn', 'warn→critical', 'critical→warn', 'warn→normal']);
    assert.match(seen[0]?.reason ?? '', /GPU memory 85% ≥ warn threshold 80%/);
    assert.match(seen[1]?.reason ?? '', /GPU memory 95% ≥ critical threshold 92%/);
    assert.match(seen[2]?.reason ?? '', /< warn threshold 80% for 30 s/);
    assert.deepEqual(seen.map((t) => t.actions), [['reduceLoad'], ['degradeEmbedder'], ['restoreEmbedder'], ['restoreLoad']]);
    assert.deepEqual(w.stats().transitions.map((t) => t.to), ['warn', 'critical', 'warn', 'normal']);

    // Straight from normal to critical: both steps and both actions, in order.
    await at(99, 200);
    assert.equal(w.level, 'critical');
    assert.deepEqual(r.calls.slice(4), ['reduceLoad', 'degradeEmbedder']);
  });

  it('records a failing action and keeps watching', async () => {
    const r = recorder();
    const seen: PressureTransition[] = [];
    const w = new GpuWatchdog(
      { pollMs: 1000, warnPercent: 80, criticalPercent: 92, recoverMs: 0 },
      { ...r.actions, degradeEmbedder: () => Promise.reject(new Error('no CPU session')) },
      { onTransition: (t) => seen.push(t) },
    );
    fake.setUsedPercent(97);
    await w.pollOnce();
    assert.equal(w.level, 'critical');
    assert.deepEqual(seen.map((t) => t.actions), [['reduceLoad'], ['degradeEmbedder failed: no CPU session']]);
    fake.setUsedPercent(10);
    await w.pollOnce();
    assert.equal(w.level, 'warn');
  });

  it('polls on its own timer', async () => {
    const r = recorder();
    const w = new GpuWatchdog({ pollMs: 300, warnPercent: 80, criticalPercent: 92, recoverMs: 0 }, r.actions);
    fake.setUsedPercent(30);
    const before = fake.calls().length;
    w.start();
    try {
      const deadline = Date.now() + 30_000;
      while (fake.calls().length < before + 2) {
        assert.ok(Date.now() < deadline, 'the watchdog did not poll twice in 30 s');
        await new Promise((res) => setTimeout(res, 100));
      }
      fake.setUsedPercent(93);
      while (w.level !== 'critical') {
        assert.ok(Date.now() < deadline, 'the watchdog did not see the GPU fill up');
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      await w.stop();
    }
    assert.deepEqual(r.calls, ['reduceLoad', 'degradeEmbedder']);
  });

  it('reads no GPU where lspci lists none, and changes nothing', async () => {
    process.env.PATH = realPath; // no fake lspci: systeminformation lists no controller (no lspci here, or no NVIDIA card)
    try {
      const r = recorder();
      const logs: string[] = [];
      const w = new GpuWatchdog({ pollMs: 1000, warnPercent: 80, criticalPercent: 92, recoverMs: 0 }, r.actions, { log: (_l, m) => logs.push(m) });
      fake.setUsedPercent(99);
      const s = await w.pollOnce();
      assert.deepEqual(s?.gpus, []);
      assert.equal(w.level, 'normal');
      assert.deepEqual(r.calls, []);
      assert.match(logs.join('\n'), /no NVIDIA GPU found/);
    } finally {
      process.env.PATH = `${fake.dir}:${realPath}`;
    }
  });
});
