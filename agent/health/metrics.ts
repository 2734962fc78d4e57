// The agent's Prometheus metrics (prom-client, in a registry of their own so nothing global leaks
// in or out). Per-run numbers (inference latency, batch sizes, identity events) are observed as
// they happen; per-camera counters, GPU memory and the outbox depth are read from the agent at
// scrape time, so /metrics and the MQTT stats come from the same numbers.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CameraStats } from '../camera/camera-source.js';
import type { InferenceRun } from '../inference/onnx-session.js';
import type { PipelineStats } from '../pipeline/camera-pipeline.js';
import type { PressureLevel } from './gpu-pressure.js';
import type { GpuReading } from './resource-sampler.js';

export interface MetricsView {
  cameras(): { stats: CameraStats; pipeline: PipelineStats }[];
  /** Active provider of each model. */
  models(): { model: string; provider: string }[];
  gpus(): GpuReading[];
  gpuPressure(): PressureLevel;
  brokerConnected(): boolean;
  outboxDepth(): number;
}

const LEVEL: Record<PressureLevel, number> = { normal: 0, warn: 1, critical: 2 };
const MIB = 1024 * 1024;

/** A counter whose value is read from a cumulative number at scrape time. */
function readCounter(registry: Registry, name: string, help: string, labelNames: string[], read: () => [Record<string, string>, number][]): Counter<string> {
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly inference: Histogram<string>;
  private readonly inferenceFailures: Counter<string>;
  private readonly batchSize: Histogram<string>;
  private readonly identityEvents: Counter<string>;

  constructor(view: MetricsView) {
    const r = this.registry;
    // Process metrics: process_resident_memory_bytes, heap, event-loop lag, GC.
    collectDefaultMetrics({ register: r });
    const perCamera = (pick: (c: { stats: CameraStats; pipeline: PipelineStats }) => number) => (): [Record<string, string>, number][] =>
      view.cameras().map((c) => [{ camera: c.stats.camera }, pick(c)]);
    readCounter(r, 'facegate_camera_frames_in_total', 'Frames decoded from the camera', ['camera'], perCamera((c) => c.stats.framesIn));
    readCounter(r, 'facegate_camera_frames_analysed_total', 'Frames that went through detection and recognition', ['camera'], perCamera((c) => c.stats.framesAnalysed));
    readCounter(r, 'facegate_camera_frames_dropped_total', 'Frames skipped (busy pipeline, GPU pressure, full scheduler)', ['camera'], perCamera((c) => c.stats.framesDropped));
    readCounter(r, 'facegate_camera_reconnects_total', 'Camera (ffmpeg) restarts after the first start', ['camera'], perCamera((c) => c.stats.reconnects));
    readCounter(r, 'facegate_faces_detected_total', 'Faces found by the detector', ['camera'], perCamera((c) => c.pipeline.facesDetected));
    new Gauge({
      name: 'facegate_camera_last_frame_age_seconds',
      help: 'Seconds since the camera delivered its last frame (absent before the first)',
      labelNames: ['camera'],
      registers: [r],
      collect() {
        this.reset();
        const now = Date.now();
        for (const c of view.cameras()) if (c.stats.lastFrameAt !== null) this.set({ camera: c.stats.camera }, (now - c.stats.lastFrameAt) / 1000);
      },
    });
    this.identityEvents = new Counter({ name: 'facegate_identity_events_total', help: 'Identity events published', labelNames: ['camera', 'result'], registers: [r] });
    this.inference = new Histogram({
      name: 'facegate_inference_duration_seconds',
      help: 'ONNX Runtime run time per model and execution provider',
      labelNames: ['model', 'provider'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [r],
    });
    this.inferenceFailures = new Counter({ name: 'facegate_inference_failures_total', help: 'ONNX Runtime runs that failed', labelNames: ['model', 'provider'], registers: [r] });
    this.batchSize = new Histogram({
      name: 'facegate_batch_size',
      help: 'Items per batched run of the shared scheduler',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [r],
    });
    new Gauge({
      name: 'facegate_model_provider_info',
      help: 'Execution provider each model runs on (value 1)',
      labelNames: ['model', 'provider'],
      registers: [r],
      collect() {
        this.reset();
        for (const m of view.models()) this.set({ model: m.model, provider: m.provider }, 1);
      },
    });
    new Gauge({ name: 'facegate_outbox_depth', help: 'Identity events waiting for the broker', registers: [r], collect() { this.set(view.outboxDepth()); } });
    new Gauge({ name: 'facegate_mqtt_connected', help: '1 while connected to the MQTT broker', registers: [r], collect() { this.set(view.brokerConnected() ? 1 : 0); } });
    const perGpu = (name: string, help: string, read: (g: GpuReading) => number | null): void => {
      new Gauge({
        name,
        help,
        labelNames: ['gpu', 'name'],
        registers: [r],
        collect() {
          this.reset();
          for (const g of view.gpus()) {
            const v = read(g);
            if (v !== null) this.set({ gpu: String(g.index), name: g.name }, v);
          }
        },
      });
    };
    perGpu('facegate_gpu_memory_used_bytes', 'GPU memory in use (nvidia-smi)', (g) => g.memoryUsedMiB * MIB);
    perGpu('facegate_gpu_memory_total_bytes', 'GPU memory in all (nvidia-smi)', (g) => g.memoryTotalMiB * MIB);
    perGpu('facegate_gpu_utilization_ratio', 'GPU utilisation, 0..1 (nvidia-smi)', (g) => (g.utilizationPercent === null ? null : g.utilizationPercent / 100));
    perGpu('facegate_gpu_temperature_celsius', 'GPU temperature (nvidia-smi)', (g) => g.temperatureC);
    new Gauge({ name: 'facegate_gpu_pressure_level', help: 'GPU memory watchdog level: 0 normal, 1 warn, 2 critical', registers: [r], collect() { this.set(LEVEL[view.gpuPressure()]); } });
  }

  observeInference(run: InferenceRun): void {
    const labels = { model: run.model, provider: run.provider };
    if (run.ok) this.inference.observe(labels, run.ms / 1000);
    else this.inferenceFailures.inc(labels);
  }

  observeBatch(model: string, size: number): void {
    this.batchSize.observe({ model }, size);
  }

  countIdentityEvent(camera: string, unknown: boolean): void {
    this.identityEvents.inc({ camera, result: unknown ? 'unknown' : 'known' });
  }

  /** Prometheus text exposition. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
