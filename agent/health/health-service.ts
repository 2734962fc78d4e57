// The agent's health side in one service, so agent.ts wires it with a few lines: Prometheus
// metrics, the /healthz + /metrics HTTP server, the GPU memory watchdog with the actions it takes
// on the running agent (frame throttle, batch limit, embedder placement), and the MQTT health
// topic. Each part fails alone: a port in use leaves the agent running without the endpoint.
//
// MQTT: <prefix>/<agent>/health (JSON, QoS 1, retained) — the current state, republished on every
// (re)connect and on every watchdog transition:
//   { time, gpuPressure: 'normal'|'warn'|'critical', providers: { <model>: <provider> },
//     embedder: { placement, model, provider }, transition?: { from, to, usedPercent, reason, actions } }
import type { CameraStats } from '../camera/camera-source.js';
import type { HealthConfig } from '../config/health-inference-schema.js';
import type { MqttPublisher } from '../events/mqtt-publisher.js';
import type { EmbedderRuntime } from '../inference/embedder-runtime.js';
import type { ModelEntry } from '../inference/model-registry.js';
import type { ExecutionProvider } from '../inference/onnx-session.js';
import type { Logger } from '../logging.js';
import type { BatchScheduler } from '../pipeline/batch-scheduler.js';
import type { PipelineStats } from '../pipeline/camera-pipeline.js';
import { FrameThrottle } from '../pipeline/frame-throttle.js';
import type { RgbImage } from '../vision/image.js';
import type { PressureTransition } from './gpu-pressure.js';
import { GpuWatchdog, type GpuWatchdogStats } from './gpu-watchdog.js';
import { evaluateHealth, type HealthVerdict } from './health-check.js';
import { HealthServer } from './health-server.js';
import { AgentMetrics } from './metrics.js';

export interface AgentHealthView {
  running(): { stats: CameraStats; pipeline: PipelineStats }[];
  enabledCameras(): string[];
  broker(): { connected: boolean; url: string };
  models(): { model: string; provider: ExecutionProvider; skipped: readonly { provider: ExecutionProvider; reason: string }[] }[];
  publisher(): MqttPublisher | undefined;
}

export interface LoadControls {
  /** The embedder's batch scheduler (only its batch limit is turned). */
  scheduler: Pick<BatchScheduler<RgbImage, unknown>, 'setMaxBatch' | 'maxBatch'>;
  /** The configured max batch (restored after pressure). */
  maxBatch: number;
  embedder: EmbedderRuntime;
  /** The pruned variant to move to at critical; undefined: the CPU. */
  variant?: ModelEntry;
}

export interface HealthStats {
  server: { listen: string | null; error: string | null };
  gpu: GpuWatchdogStats & { watching: boolean; acting: boolean };
  throttle: { fpsFactor: number; maxBatch: number | null };
  outbox: { depth: number };
}

export class HealthService {
  readonly metrics: AgentMetrics;
  readonly throttle = new FrameThrottle();
  private watchdog: GpuWatchdog | undefined;
  private server: HealthServer | undefined;
  private serverError: string | null = null;
  private controls: LoadControls | undefined;
  private outboxDepth: () => number = () => 0;
  private lastTransition: PressureTransition | undefined;
  private onConnect: (() => void) | undefined;
  private acting = false;

  constructor(
    private readonly config: HealthConfig,
    private readonly log: Logger,
    private readonly view: AgentHealthView,
  ) {
    this.metrics = new AgentMetrics({
      cameras: () => view.running(),
      models: () => view.models(),
      gpus: () => this.watchdog?.lastSample?.gpus ?? [],
      gpuPressure: () => this.watchdog?.level ?? 'normal',
      brokerConnected: () => view.broker().connected,
      outboxDepth: () => this.readOutboxDepth(),
    });
  }

  /** The durable outbox (another service) reports its depth here; 0 until then. */
  setOutboxDepthSource(read: () => number): void {
    this.outboxDepth = read;
  }

  /** Starts the watchdog and the HTTP server once the agent's services are up. */
  async start(controls: LoadControls, options: { actOnGpuPressure?: boolean } = {}): Promise<void> {
    this.controls = controls;
    const gpu = this.config.gpu;
    if (gpu.enabled) {
      // Act on pressure only where this agent runs something on a GPU (another program filling
      // the card is not ours to answer for on the CPU); otherwise read and report only.
      const act = options.actOnGpuPressure ?? this.view.models().some((m) => m.provider !== 'cpu');
      this.acting = act;
      this.watchdog = new GpuWatchdog(
        {
          pollMs: gpu.pollSeconds * 1000,
          warnPercent: gpu.warnPercent,
          criticalPercent: gpu.criticalPercent,
          recoverMs: gpu.recoverSeconds * 1000,
          act,
        },
        {
          reduceLoad: () => {
            this.throttle.setFactor(gpu.fpsFactor);
            controls.scheduler.setMaxBatch(gpu.maxBatch);
          },
          restoreLoad: () => {
            this.throttle.setFactor(1);
            controls.scheduler.setMaxBatch(controls.maxBatch);
          },
          degradeEmbedder: () => controls.embedder.moveTo(controls.variant ? 'variant' : 'cpu', controls.variant),
          restoreEmbedder: () => controls.embedder.moveTo('primary'),
        },
        { onTransition: (t) => this.transition(t), log: (level, message) => this.log[level](message) },
      );
      this.watchdog.start();
    }
    const publisher = this.view.publisher();
    if (publisher) {
      this.onConnect = () => this.publishState();
      publisher.client.on('connect', this.onConnect);
      if (publisher.isConnected) this.publishState();
    }
    if (this.config.enabled) {
      try {
        this.server = await HealthServer.start(this.config.listen, { health: () => this.health(), metrics: () => this.metrics.render() });
        this.log.info({ listen: this.config.listen }, 'health server listening (GET /healthz, /metrics)');
      } catch (err) {
        this.serverError = (err as Error).message;
        this.log.error({ err: this.serverError }, 'health server not started; the agent keeps running without it');
        publisher?.publishError('health', this.serverError);
      }
    }
  }

  /** Whether a frame should be analysed (lowered under GPU pressure). */
  admit(camera: string, fps: number, capturedAt: number): boolean {
    return this.throttle.admit(camera, fps, capturedAt);
  }

  health(): HealthVerdict {
    return evaluateHealth({
      now: Date.now(),
      staleMs: this.config.frameStaleSeconds * 1000,
      enabled: this.view.enabledCameras(),
      running: this.view.running().map((c) => c.stats),
      broker: this.view.broker(),
    });
  }

  /** The port the server listens on (tests use port 0). */
  get listening(): { host: string; port: number } | null {
    return this.server?.address ?? null;
  }

  stats(): HealthStats {
    const gpu = this.watchdog?.stats() ?? { level: 'normal' as const, sample: null, transitions: [], readErrors: 0 };
    return {
      server: { listen: this.server ? `${this.server.address.host}:${this.server.address.port}` : null, error: this.serverError },
      gpu: { ...gpu, watching: this.watchdog !== undefined, acting: this.acting },
      throttle: { fpsFactor: this.throttle.factor, maxBatch: this.controls?.scheduler.maxBatch ?? null },
      outbox: { depth: this.readOutboxDepth() },
    };
  }

  async stop(): Promise<void> {
    const publisher = this.view.publisher();
    if (publisher && this.onConnect) publisher.client.off('connect', this.onConnect);
    await this.watchdog?.stop();
    await this.server?.stop();
    this.server = undefined;
  }

  private readOutboxDepth(): number {
    try {
      const n = this.outboxDepth();
      return Number.isFinite(n) ? n : 0;
    } catch {
      return 0;
    }
  }

  private transition(t: PressureTransition): void {
    this.lastTransition = t;
    const level = t.to === 'normal' ? 'info' : 'warn';
    this.log[level]({ from: t.from, to: t.to, usedPercent: Math.round(t.usedPercent * 10) / 10, actions: t.actions, embedder: this.controls?.embedder.stats() }, `GPU memory pressure: ${t.from} → ${t.to}: ${t.reason}`);
    this.publishState();
  }

  private publishState(): void {
    const publisher = this.view.publisher();
    if (!publisher) return;
    const payload = {
      time: new Date().toISOString(),
      gpuPressure: this.watchdog?.level ?? 'normal',
      providers: Object.fromEntries(this.view.models().map((m) => [m.model, m.provider])),
      embedder: this.controls?.embedder.stats(),
      ...(this.lastTransition ? { transition: this.lastTransition } : {}),
    };
    publisher.client.publish(`${publisher.topics.base}/health`, JSON.stringify(payload), { qos: 1, retain: true }, (err) => {
      if (err) this.log.warn({ err: err.message }, 'publishing the health state failed');
    });
  }
}
