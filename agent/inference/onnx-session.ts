// One place that creates onnxruntime sessions, so every model gets the same provider choice and
// thread settings. Providers are tried in the configured order (e.g. cuda, then cpu); one that
// cannot load is logged once with its reason and the next one is used.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';

export const EXECUTION_PROVIDERS = ['tensorrt', 'cuda', 'cpu'] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

/** The order the agent uses when the config names none. */
export const DEFAULT_PROVIDERS: readonly ExecutionProvider[] = ['cuda', 'cpu'];

export interface CudaOptions {
  deviceId: number;
  /** Bytes the CUDA arena may hold; undefined: no limit. */
  gpuMemLimit?: number;
  /** kSameAsRequested: grow the arena by what is asked, not to the next power of two (which runs GPUs out of memory). */
  arenaExtendStrategy: 'kNextPowerOfTwo' | 'kSameAsRequested';
  cudnnConvAlgoSearch: 'EXHAUSTIVE' | 'HEURISTIC' | 'DEFAULT';
}

export const DEFAULT_CUDA_OPTIONS: CudaOptions = { deviceId: 0, arenaExtendStrategy: 'kSameAsRequested', cudnnConvAlgoSearch: 'HEURISTIC' };

export interface SessionOptions {
  /** Threads inside one operator; default: the machine's core count. */
  intraOpThreads?: number;
  /**
   * Let ORT's pool threads busy-wait for work after a run (ORT's own default). Off by default:
   * the agent runs several sessions in turn (P-Net per pyramid scale, R-Net, O-Net, embedder)
   * between JavaScript work, and every session's idle workers spinning steal the cores that work
   * needs; on 2 cores MTCNN took 3–4× longer with spinning on (models/README.md, benchmark).
   */
  allowSpinning?: boolean;
  /** Tried in order; default: env FACEGATE_PROVIDERS (comma separated) or cpu only. */
  providers?: readonly ExecutionProvider[];
  cuda?: Partial<CudaOptions>;
  /** Told once per provider that cannot load, and once when a GPU provider is active. */
  log?: (level: 'info' | 'warn', message: string) => void;
  /** Called after every run (metrics). */
  observe?: (run: InferenceRun) => void;
}

export interface InferenceRun {
  model: string;
  provider: ExecutionProvider;
  /** First dimension of the first input. */
  batch: number;
  ms: number;
  ok: boolean;
}

/** Providers from env FACEGATE_PROVIDERS, or cpu only: library callers (tests, benchmarks) stay on the CPU unless asked. */
export function providersFromEnv(env: NodeJS.ProcessEnv = process.env): ExecutionProvider[] {
  const raw = env.FACEGATE_PROVIDERS?.trim();
  if (!raw) return ['cpu'];
  return raw.split(',').map((p) => {
    const name = p.trim().toLowerCase();
    if (!(EXECUTION_PROVIDERS as readonly string[]).includes(name)) throw new Error(`FACEGATE_PROVIDERS: unknown provider "${p}" (known: ${EXECUTION_PROVIDERS.join(', ')})`);
    return name as ExecutionProvider;
  });
}

/** The ORT session options createSession uses for `options` on the CPU (reported by the benchmark). */
export function ortSessionOptions(options: SessionOptions = {}): ort.InferenceSession.SessionOptions {
  const spin = options.allowSpinning ? '1' : '0';
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: options.intraOpThreads ?? os.availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // onnxruntime_session_options_config_keys.h: session.intra_op.allow_spinning and
    // session.inter_op.allow_spinning (the Node binding takes string values only).
    extra: { session: { 'intra_op.allow_spinning': spin, 'inter_op.allow_spinning': spin } },
  };
}

/**
 * The execution-provider entry for one provider. onnxruntime-node 1.30's binding reads only
 * `deviceId` from a CUDA/TensorRT entry (js/node/src/session_options_helper.cc); the other CUDA
 * options ride along under ORT's own key names so a binding that forwards them applies them.
 */
export function providerEntry(provider: ExecutionProvider, cuda: Partial<CudaOptions> = {}): ort.InferenceSession.ExecutionProviderConfig {
  if (provider === 'cpu') return 'cpu';
  const c = { ...DEFAULT_CUDA_OPTIONS, ...cuda };
  const entry: Record<string, unknown> = {
    name: provider,
    deviceId: c.deviceId,
    arena_extend_strategy: c.arenaExtendStrategy,
    cudnn_conv_algo_search: c.cudnnConvAlgoSearch,
  };
  if (c.gpuMemLimit !== undefined) entry.gpu_mem_limit = String(c.gpuMemLimit);
  return entry as unknown as ort.InferenceSession.ExecutionProviderConfig;
}

/** Where onnxruntime-node keeps its native libraries (the CUDA/TensorRT ones only after ONNXRUNTIME_NODE_INSTALL=cuda12). */
function ortBinDir(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
    return join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/** Why a provider failed to load, with the likely fix when its library is not installed. */
export function providerFailureReason(provider: ExecutionProvider, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const dir = ortBinDir();
  const lib = provider === 'tensorrt' ? 'libonnxruntime_providers_tensorrt.so' : 'libonnxruntime_providers_cuda.so';
  if (provider !== 'cpu' && dir && process.platform === 'linux' && !existsSync(join(dir, lib))) {
    return `${message} (${lib} is not in ${dir}: onnxruntime-node was installed without its GPU libraries; reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci on a host with CUDA 12 and cuDNN 9)`;
  }
  return message;
}

/** Providers that failed to load in this process: reason by provider (logged once, not retried). */
const unavailable = new Map<ExecutionProvider, string>();
/**
 * The first attempt at each GPU provider: sessions created at the same moment (the analyzer
 * creates four) wait for it instead of each failing, and printing onnxruntime's native errors.
 */
const firstAttempts = new Map<ExecutionProvider, Promise<unknown>>();
let gpuOptionsNoted = false;

/** For tests: forget which providers failed. */
export function resetProviderFailures(): void {
  unavailable.clear();
  firstAttempts.clear();
  gpuOptionsNoted = false;
}

export function providerFailures(): ReadonlyMap<ExecutionProvider, string> {
  return unavailable;
}

export interface ModelSession {
  readonly name: string;
  readonly provider: ExecutionProvider;
  /** Providers tried before the active one, with the reason each was passed over. */
  readonly skipped: readonly { provider: ExecutionProvider; reason: string }[];
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the model on float32 inputs and returns the float32 outputs by name. */
  run(inputs: Record<string, { data: Float32Array; dims: readonly number[] }>): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>>;
  release(): Promise<void>;
}

export async function createSession(name: string, model: string | Uint8Array, options: SessionOptions = {}): Promise<ModelSession> {
  const providers = options.providers && options.providers.length > 0 ? options.providers : providersFromEnv();
  const skipped: { provider: ExecutionProvider; reason: string }[] = [];
  const log = options.log ?? ((level, message) => process.emitWarning(message, { code: `FACEGATE_PROVIDER_${level.toUpperCase()}` }));
  let session: ort.InferenceSession | undefined;
  let provider: ExecutionProvider = 'cpu';
  let lastError: unknown;
  for (const p of providers) {
    // No await unless another session is already trying p: the check and the first attempt's
    // registration below must happen in one synchronous step.
    const first = p === 'cpu' ? undefined : firstAttempts.get(p);
    if (first) await first;
    const known = unavailable.get(p);
    if (known) {
      skipped.push({ provider: p, reason: known });
      continue;
    }
    const sessionOptions = { ...ortSessionOptions(options), executionProviders: [providerEntry(p, options.cuda)] };
    try {
      const attempt = typeof model === 'string' ? ort.InferenceSession.create(model, sessionOptions) : ort.InferenceSession.create(model, sessionOptions);
      if (p !== 'cpu' && !firstAttempts.has(p)) firstAttempts.set(p, attempt.catch(() => undefined));
      session = await attempt;
      provider = p;
      break;
    } catch (err) {
      lastError = err;
      if (p === 'cpu') break; // the model itself is bad: no other provider will do better
      const reason = providerFailureReason(p, err);
      unavailable.set(p, reason);
      skipped.push({ provider: p, reason });
      log('warn', `execution provider ${p} cannot load (model ${name}): ${reason}; trying ${providers[providers.indexOf(p) + 1] ?? 'nothing else'}`);
    }
  }
  if (!session) {
    const reasons = skipped.map((k) => `${k.provider}: ${k.reason}`);
    if (providers.includes('cpu') && lastError !== undefined) reasons.push(`cpu: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
    throw new Error(`cannot load model ${name}${typeof model === 'string' ? ` from ${model}` : ''} with providers [${providers.join(', ')}]: ${reasons.join('; ')}`);
  }
  if (provider !== 'cpu' && !gpuOptionsNoted) {
    gpuOptionsNoted = true;
    log('info', `execution provider ${provider} active (device ${options.cuda?.deviceId ?? 0}); onnxruntime-node 1.30 applies deviceId only — gpuMemLimit, arenaExtendStrategy and cudnnConvAlgoSearch are passed but its binding does not forward them; the GPU watchdog guards memory`);
  }
  const s = session;
  const active = provider;
  return {
    name,
    provider: active,
    skipped,
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    async run(inputs) {
      const feeds: Record<string, ort.Tensor> = {};
      let batch = 0;
      for (const [key, t] of Object.entries(inputs)) {
        feeds[key] = new ort.Tensor('float32', t.data, t.dims);
        if (batch === 0) batch = Number(t.dims[0] ?? 1);
      }
      const started = performance.now();
      let ok = false;
      try {
        const out = await s.run(feeds);
        const result: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
        for (const [key, t] of Object.entries(out)) {
          if (!(t.data instanceof Float32Array)) throw new Error(`model ${name}: output ${key} is ${t.type}, expected float32`);
          result[key] = { data: t.data, dims: t.dims };
        }
        ok = true;
        return result;
      } finally {
        options.observe?.({ model: name, provider: active, batch, ms: performance.now() - started, ok });
      }
    },
    release: () => s.release(),
  };
}

/** True when an ORT run failed because a device (or host) allocation failed: worth retrying smaller or on the CPU. */
export function isAllocationFailure(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /failed to allocate memory|out of memory|CUDNN_STATUS_ALLOC_FAILED|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation|BFCArena|bad_alloc/i.test(message);
}
