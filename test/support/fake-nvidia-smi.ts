// A fake `nvidia-smi` (and the `lspci` systeminformation lists GPUs with) in a temp dir, for
// machines without an NVIDIA GPU. It answers only the exact query systeminformation 5.33 sends
// (lib/graphics.js, nvidiaSmi()) with the CSV real nvidia-smi prints for it, one line per GPU,
// reading memory.used (MiB) from a file the test rewrites. Each call's arguments are appended to
// a log so the test can check what was asked. Put `dir` first on PATH before systeminformation is
// first imported: it captures the environment it runs nvidia-smi with at load time.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The arguments systeminformation passes (execFileSync(nvidiaSmi, opts.split(' '))). */
export const SYSTEMINFORMATION_QUERY =
  '--query-gpu=driver_version,pci.sub_device_id,name,pci.bus_id,fan.speed,memory.total,memory.used,memory.free,utilization.gpu,utilization.memory,temperature.gpu,temperature.memory,power.draw,power.limit,clocks.gr,clocks.mem --format=csv,noheader,nounits';

export const FAKE_GPU = { name: 'NVIDIA A100-PCIE-40GB', busId: '00000000:01:00.0', totalMiB: 40960, utilization: 37, temperature: 41 };

export interface FakeNvidiaSmi {
  dir: string;
  /** Sets memory.used (MiB) for the next calls. */
  setUsedMiB(mib: number): void;
  setUsedPercent(percent: number): void;
  /** Argument lines nvidia-smi was called with. */
  calls(): string[];
  dispose(): void;
}

export function installFakeNvidiaSmi(): FakeNvidiaSmi {
  const dir = mkdtempSync(join(tmpdir(), 'facegate-fake-gpu-'));
  const used = join(dir, 'memory.used');
  const log = join(dir, 'calls.log');
  writeFileSync(used, '1024\n');
  writeFileSync(log, '');
  const { name, busId, totalMiB, utilization, temperature } = FAKE_GPU;
  // Real output for this query on an A100 (nounits; fan speed is "[N/A]" on passively cooled cards).
  writeFileSync(
    join(dir, 'nvidia-smi'),
    `#!/bin/sh
echo "$*" >> '${log}'
if [ "$*" != '${SYSTEMINFORMATION_QUERY}' ]; then echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2; fi
u=$(cat '${used}')
echo "550.54.15, 0x145F10DE, ${name}, ${busId}, [N/A], ${totalMiB}, $u, $((${totalMiB} - u)), ${utilization}, 12, ${temperature}, 47, 61.52, 250.00, 1410, 1215"
`,
  );
  // What `lspci -vvv` prints for that card (first line and a few detail lines).
  writeFileSync(
    join(dir, 'lspci'),
    `#!/bin/sh
cat <<'LSPCI'
00:00.0 Host bridge: Intel Corporation 440FX - 82441FX PMC [Natoma] (rev 02)
	Subsystem: Red Hat, Inc. Qemu virtual machine

01:00.0 3D controller: NVIDIA Corporation GA100 [A100 PCIe 40GB] (rev a1)
	Subsystem: NVIDIA Corporation Device 145f
	Control: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr+ Stepping- SERR+ FastB2B- DisINTx+
	Kernel driver in use: nvidia
	Kernel modules: nvidia

LSPCI
`,
  );
  chmodSync(join(dir, 'nvidia-smi'), 0o755);
  chmodSync(join(dir, 'lspci'), 0o755);
  return {
    dir,
    setUsedMiB: (mib) => writeFileSync(used, `${Math.round(mib)}\n`),
    setUsedPercent: (p) => writeFileSync(used, `${Math.round((p / 100) * totalMiB)}\n`),
    calls: () => readFileSync(log, 'utf8').split('\n').filter(Boolean),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
