// Reads the GPUs (systeminformation's graphics(): on Linux it lists display controllers with
// `lspci -vvv` and merges `nvidia-smi --query-gpu=… --format=csv,noheader,nounits` into the
// NVIDIA ones by PCI bus id) and the process's own memory.
// Notes from systeminformation 5.33's source (lib/graphics.js): on Linux it runs `nvidia-smi`
// from PATH, with the environment captured when the module is first loaded (util.execOptsWin),
// so systeminformation is imported lazily at the first sample; without `lspci` (Debian package
// pciutils) no controller is listed and no GPU is read even where nvidia-smi works; nvidia-smi
// runs synchronously (execFileSync), blocking the event loop for its run (tens of ms) per poll.

export interface GpuReading {
  index: number;
  name: string;
  busId: string;
  memoryUsedMiB: number;
  memoryTotalMiB: number;
  /** memoryUsed / memoryTotal × 100. */
  usedPercent: number;
  utilizationPercent: number | null;
  temperatureC: number | null;
}

export interface ResourceSample {
  time: string;
  gpus: GpuReading[];
  process: { rssBytes: number; heapUsedBytes: number; heapTotalBytes: number };
}

type Graphics = typeof import('systeminformation')['graphics'];
let graphics: Graphics | undefined;

/** One reading of every GPU nvidia-smi reports (none without NVIDIA GPU, nvidia-smi or lspci). */
export async function readGpus(): Promise<GpuReading[]> {
  graphics ??= (await import('systeminformation')).default.graphics;
  const { controllers } = await graphics();
  const out: GpuReading[] = [];
  for (const c of controllers) {
    if (typeof c.memoryTotal !== 'number' || typeof c.memoryUsed !== 'number' || !(c.memoryTotal > 0)) continue;
    out.push({
      index: out.length,
      name: c.name ?? c.model,
      busId: c.pciBus ?? c.busAddress ?? '',
      memoryUsedMiB: c.memoryUsed,
      memoryTotalMiB: c.memoryTotal,
      usedPercent: (c.memoryUsed / c.memoryTotal) * 100,
      utilizationPercent: typeof c.utilizationGpu === 'number' ? c.utilizationGpu : null,
      temperatureC: typeof c.temperatureGpu === 'number' ? c.temperatureGpu : null,
    });
  }
  return out;
}

export async function sampleResources(): Promise<ResourceSample> {
  const gpus = await readGpus();
  const m = process.memoryUsage();
  return { time: new Date().toISOString(), gpus, process: { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal } };
}
