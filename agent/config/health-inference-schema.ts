// Config sections for GPU execution (inference) and the health side (HTTP server, GPU watchdog).
// Kept apart from schema.ts so that file only wires them in.
import { z } from 'zod';
import { EXECUTION_PROVIDERS } from '../inference/onnx-session.js';

export const cudaConfigSchema = z
  .object({
    deviceId: z.number().int().min(0).default(0),
    /** Bytes the CUDA arena may hold; unset: no limit. */
    gpuMemLimit: z.number().int().positive().optional(),
    arenaExtendStrategy: z.enum(['kNextPowerOfTwo', 'kSameAsRequested']).default('kSameAsRequested'),
    cudnnConvAlgoSearch: z.enum(['EXHAUSTIVE', 'HEURISTIC', 'DEFAULT']).default('HEURISTIC'),
  })
  .strict();

export const inferenceConfigSchema = z
  .object({
    /** Tried in order at start; one that cannot load is logged and the next is used. */
    providers: z
      .array(z.enum(EXECUTION_PROVIDERS))
      .min(1)
      .refine((list) => new Set(list).size === list.length, 'each provider at most once')
      .default(['cuda', 'cpu']),
    cuda: cudaConfigSchema.prefault({}),
    /** ORT intra-op threads on the CPU; default: the machine's core count. */
    cpuThreads: z.number().int().positive().optional(),
    /** Merge R-Net/O-Net runs of cameras detecting at the same time into one run (npm run bench:batching measures it). */
    mergeDetectorRuns: z.boolean().default(true),
  })
  .strict()
  .prefault({});

export const gpuWatchConfigSchema = z
  .object({
    enabled: z.boolean().default(true),
    pollSeconds: z.number().min(1).max(3600).default(10),
    /** % of GPU memory used at which analysed fps and batch size are lowered. */
    warnPercent: z.number().gt(0).lt(100).default(80),
    /** % at which the embedder moves to `criticalEmbedder` or, when unset, to the CPU. */
    criticalPercent: z.number().gt(0).max(100).default(92),
    /** Seconds the GPU must stay below warn before each step back up. */
    recoverSeconds: z.number().min(0).default(60),
    /** Analysed fps multiplier under pressure (0.5: every other frame). */
    fpsFactor: z.number().gt(0).max(1).default(0.5),
    /** Embedder max batch under pressure. */
    maxBatch: z.number().int().positive().default(2),
    /** A variant pruned from the configured embedder (same embedding space), e.g. dlib-resnet-rec-0.25. */
    criticalEmbedder: z.string().optional(),
  })
  .strict()
  .refine((g) => g.criticalPercent > g.warnPercent, 'criticalPercent must be above warnPercent');

export const healthConfigSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** host:port of the /healthz and /metrics server. */
    listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[^:]+):\d{1,5}$/, 'host:port, e.g. 127.0.0.1:9120')
      .default('127.0.0.1:9120'),
    /** A camera is unhealthy when its last frame is older than this. */
    frameStaleSeconds: z.number().positive().default(30),
    gpu: gpuWatchConfigSchema.prefault({}),
  })
  .strict()
  .prefault({});

export type InferenceConfig = z.infer<typeof inferenceConfigSchema>;
export type HealthConfig = z.infer<typeof healthConfigSchema>;
export type GpuWatchConfig = z.infer<typeof gpuWatchConfigSchema>;
