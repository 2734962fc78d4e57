#!/usr/bin/env bash
# One short check for a machine with an NVIDIA GPU, run in the repo root after `npm ci`
# (ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci for the CUDA provider): what nvidia-smi and
# systeminformation report, which provider each model gets, the GPU watchdog for 20 s, and
# `npm run bench:models` on the CUDA provider when its libraries are present.
#   bash test/device/gpu-check.sh        (results in $OUT, default a temp dir)
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
echo "== host"; uname -a; node --version; date -u
echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,memory.total,memory.used,utilization.gpu,temperature.gpu,driver_version --format=csv
  nvidia-smi --query-gpu=driver_version,pci.sub_device_id,name,pci.bus_id,fan.speed,memory.total,memory.used,memory.free,utilization.gpu,utilization.memory,temperature.gpu,temperature.memory,power.draw,power.limit,clocks.gr,clocks.mem --format=csv,noheader,nounits
else
  echo "nvidia-smi: NOT FOUND (no NVIDIA driver on PATH): the watchdog will read no GPU"
fi
echo "== lspci (systeminformation lists GPUs with it on Linux)"
if command -v lspci >/dev/null; then lspci | grep -Ei 'vga|3d controller|display' || echo "lspci lists no display controller"; else echo "lspci: NOT FOUND: systeminformation reports no GPU without it (apt-get install pciutils)"; fi
echo "== CUDA libraries"
ORT_DIR="$(node -p "require('path').join(require('path').dirname(require.resolve('onnxruntime-node/package.json')),'bin','napi-v6',process.platform,process.arch)")"
ls -l "$ORT_DIR" || true
HAVE_CUDA_EP=0
if [ -f "$ORT_DIR/libonnxruntime_providers_cuda.so" ]; then HAVE_CUDA_EP=1; echo "onnxruntime CUDA provider library present"; else echo "onnxruntime CUDA provider library NOT installed (reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci)"; fi
(ldconfig -p 2>/dev/null | grep -E 'libcudart\.so\.12|libcublas\.so\.12|libcudnn\.so\.9' ) || echo "ldconfig lists no CUDA 12 / cuDNN 9 runtime (it may still be found through LD_LIBRARY_PATH)"
echo "== systeminformation, providers, watchdog (20 s)"
timeout 180 npx tsx test/device/gpu-probe.ts 20 2>&1 | tee "$OUT/gpu-probe.log"
echo "== bench:models on [cuda, cpu]"
if [ "$HAVE_CUDA_EP" = 1 ]; then
  FACEGATE_PROVIDERS=cuda,cpu timeout 420 npm run -s bench:models -- --no-readme --json "$OUT/bench-models-cuda.json" 2>&1 | tee "$OUT/bench-models-cuda.log"
  echo "bench:models exit status ${PIPESTATUS[0]} (124: stopped after 420 s)"
else
  echo "SKIPPED: the CUDA provider libraries are not installed, so bench:models would measure the CPU only"
fi
echo "== done; files in $OUT"; ls -l "$OUT"
