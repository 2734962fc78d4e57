// Part of test/device/gpu-check.sh (a machine with an NVIDIA GPU): prints what systeminformation
// reads from the real nvidia-smi, which execution provider each default model gets with
// [cuda, cpu], then runs the GPU watchdog for N seconds (actions only logged).
//   npx tsx test/device/gpu-probe.ts [seconds]
import si from 'systeminformation';
import { GpuWatchdog } from '../../agent/health/gpu-watchdog.js';
import { readGpus } from '../../agent/health/resource-sampler.js';
import { ModelRegistry } from '../../agent/inference/model-registry.js';
import { createSession } from '../../agent/inference/onnx-session.js';

const seconds = Number(process.argv[2] ?? 20);
const { controllers } = await si.graphics();
console.log('systeminformation graphics().controllers:');
console.log(JSON.stringify(controllers, null, 2));
console.log('readGpus():');
console.log(JSON.stringify(await readGpus(), null, 2));

const registry = ModelRegistry.load();
const entries = registry.models.filter((m) => m.default);
await registry.ensure(entries, (l) => console.log(l));
for (const e of entries) {
  const s = await createSession(e.name, registry.pathOf(e), { providers: ['cuda', 'cpu'], log: (level, m) => console.log(`[${level}] ${m}`) });
  console.log(`model ${e.name}: provider ${s.provider}${s.skipped.length ? `; passed over: ${s.skipped.map((k) => `${k.provider} (${k.reason})`).join(', ')}` : ''}`);
  await s.release();
}

console.log(`GPU watchdog for ${seconds} s (poll 2 s, warn 80 %, critical 92 %; actions only logged):`);
const say = (what: string) => () => console.log(`  action: ${what}`);
const w = new GpuWatchdog(
  { pollMs: 2000, warnPercent: 80, criticalPercent: 92, recoverMs: 10_000, act: true },
  { reduceLoad: say('reduceLoad'), restoreLoad: say('restoreLoad'), degradeEmbedder: say('degradeEmbedder'), restoreEmbedder: say('restoreEmbedder') },
  {
    onSample: (s) =>
      console.log(`  ${s.time} level ${w.level}; ${s.gpus.map((g) => `gpu${g.index} ${g.name}: ${g.memoryUsedMiB}/${g.memoryTotalMiB} MiB (${g.usedPercent.toFixed(1)} %), util ${g.utilizationPercent ?? '?'} %, ${g.temperatureC ?? '?'} °C`).join('; ') || 'no GPU read'}; rss ${(s.process.rssBytes / 2 ** 20).toFixed(0)} MiB, heap ${(s.process.heapUsedBytes / 2 ** 20).toFixed(0)} MiB`),
    onTransition: (t) => console.log(`  transition ${t.from} → ${t.to}: ${t.reason} [${t.actions.join(', ')}]`),
    log: (level, m) => console.log(`  [${level}] ${m}`),
  },
);
w.start();
await new Promise((r) => setTimeout(r, seconds * 1000));
await w.stop();
console.log(`watchdog: ${w.stats().readErrors} read errors, final level ${w.level}`);
