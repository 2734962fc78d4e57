// One place that creates onnxruntime sessions, so every model gets the same provider choice and
// thread settings. The GPU provider order, fallback and CUDA options grow here (GPU issue).
import os from 'node:os';
import ort from 'onnxruntime-node';

export type ExecutionProvider = 'cpu';

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
}

/** The ORT session options createSession uses for `options` (reported by the benchmark). */
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

export interface ModelSession {
  readonly name: string;
  readonly provider: ExecutionProvider;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the model on float32 inputs and returns the float32 outputs by name. */
  run(inputs: Record<string, { data: Float32Array; dims: readonly number[] }>): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>>;
  release(): Promise<void>;
}

export async function createSession(name: string, model: string | Uint8Array, options: SessionOptions = {}): Promise<ModelSession> {
  let session: ort.InferenceSession;
  try {
    const sessionOptions = ortSessionOptions(options);
    session = typeof model === 'string' ? await ort.InferenceSession.create(model, sessionOptions) : await ort.InferenceSession.create(model, sessionOptions);
  } catch (err) {
    throw new Error(`cannot load model ${name}${typeof model === 'string' ? ` from ${model}` : ''}: ${(err as Error).message}`);
  }
  return {
    name,
    provider: 'cpu',
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(inputs) {
      const feeds: Record<string, ort.Tensor> = {};
      for (const [key, t] of Object.entries(inputs)) feeds[key] = new ort.Tensor('float32', t.data, t.dims);
      const out = await session.run(feeds);
      const result: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
      for (const [key, t] of Object.entries(out)) {
        if (!(t.data instanceof Float32Array)) throw new Error(`model ${name}: output ${key} is ${t.type}, expected float32`);
        result[key] = { data: t.data, dims: t.dims };
      }
      return result;
    },
    release: () => session.release(),
  };
}
