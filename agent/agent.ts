// The running agent: owns the lifecycles of its services — recognition core, gallery, broker
// connection, cameras and their pipelines — starts them in order and stops them in reverse.
// A camera that fails stays inside its own source and pipeline; the others keep running.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, timeout } from 'rxjs';
import { CameraSource, type CameraStats, type Frame } from './camera/camera-source.js';
import { resolveFfmpeg } from './camera/ffmpeg-binary.js';
import type { CameraSettings, FacegateConfig } from './config/schema.js';
import { resolveDataDir } from './data-dir.js';
import { resolveBroker } from './events/embedded-broker.js';
import type { CommandContext } from './events/command-handlers.js';
import { EventServices } from './events/event-services.js';
import { buildIdentityEvent, type IdentityEvent } from './events/identity-event.js';
import { MqttPublisher } from './events/mqtt-publisher.js';
import { HealthService } from './health/health-service.js';
import { checkVariant, EmbedderRuntime, embedderFactory } from './inference/embedder-runtime.js';
import { ModelRegistry } from './inference/model-registry.js';
import type { SessionOptions } from './inference/onnx-session.js';
import type { Logger } from './logging.js';
import { projectRoot } from './paths.js';
import { BatchScheduler } from './pipeline/batch-scheduler.js';
import { CameraPipeline, type PipelineStats } from './pipeline/camera-pipeline.js';
import type { TrackDecision, TrackerOptions } from './pipeline/tracker.js';
import { reembedFromPhotos } from './recognition/enrollment.js';
import { FaceAnalyzer } from './recognition/face-analyzer.js';
import { Gallery } from './recognition/gallery.js';
import type { FaceEmbeddingResult } from './recognition/embedder.js';
import { thresholdsFor } from './recognition/matcher.js';
import { type FaceMatcher, OcclusionAwareMatcher } from './recognition/occlusion-matcher.js';
import { FusedMatcher } from './recognition/score-fusion.js';
import type { FaceChips } from './recognition/face-analyzer.js';

export interface AgentEventRecord {
  event: IdentityEvent;
  /** Capture → publish, milliseconds. */
  latencyMs: number;
}

export interface AgentOptions {
  /** Called for every identity event after it was handed to MQTT (console output, tests). */
  onEvent?: (record: AgentEventRecord) => void;
}

interface RunningCamera {
  source: CameraSource;
  pipeline: CameraPipeline;
}

/** The tracker's event rules from the configuration. */
const trackerOptions = (config: FacegateConfig): Partial<TrackerOptions> => ({
  reportUnknown: config.events.reportUnknown,
  cooldownMs: config.events.cooldownSeconds * 1000,
  minVotes: config.events.minVotes,
});

export class FacegateAgent {
  readonly agentId: string;
  readonly dataDir: string;
  private analyzer: FaceAnalyzer | undefined;
  private gallery: Gallery | undefined;
  private matcher: FaceMatcher | undefined;
  /** Batches the companion embedder (score fusion) failed on. */
  private companionFailures = 0;
  private publisher: MqttPublisher | undefined;
  /** Outbox, MQTT commands, Home Assistant discovery (agent/events/event-services.ts). */
  private events: EventServices | undefined;
  private stopBroker: (() => Promise<void>) | undefined;
  private scheduler: BatchScheduler<FaceChips, FaceEmbeddingResult> | undefined;
  private readonly cameras = new Map<string, RunningCamera>();
  private readonly wantedCameras = new Set<string>();
  private galleryTimer: NodeJS.Timeout | undefined;
  private ffmpegPath = 'ffmpeg';
  private readonly latencies: number[] = [];
  /** Metrics, /healthz + /metrics, GPU memory watchdog (agent/health). */
  readonly health: HealthService;
  private embedderRuntime: EmbedderRuntime | undefined;
  private eventsPublished = 0;
  brokerUrl = '';

  constructor(
    /** The running configuration (replaced by applyLiveSettings on a config reload). */
    public config: FacegateConfig,
    private readonly log: Logger,
    private readonly options: AgentOptions = {},
  ) {
    this.agentId = config.agent.id ?? hostname().replace(/[^A-Za-z0-9_.-]/g, '-');
    this.dataDir = resolveDataDir(config.dataDir);
    this.health = new HealthService(config.health, log, {
      running: () => [...this.cameras.values()].map((c) => ({ stats: c.source.stats(), pipeline: c.pipeline.stats })),
      // The cameras the agent means to run (config, hot reload, camera/enable|disable), whether
      // or not they started: one that failed to start must make /healthz unhealthy.
      enabledCameras: () => [...this.wantedCameras],
      broker: () => ({ connected: this.publisher?.isConnected ?? false, url: this.brokerUrl }),
      models: () => this.analyzer?.sessionsInfo ?? [],
      publisher: () => this.publisher,
    });
    this.health.setOutboxDepthSource(() => this.outboxDepth);
  }

  async start(): Promise<void> {
    const { config, log } = this;
    const rec = config.recognition;
    const registry = ModelRegistry.load();
    const gpu = config.health.gpu;
    const variant = gpu.criticalEmbedder ? registry.get(gpu.criticalEmbedder) : undefined;
    if (variant) checkVariant(rec.embedder ? registry.get(rec.embedder) : registry.defaultFor('embedder'), variant);
    const inference = config.inference;
    const session: SessionOptions = {
      providers: inference.providers,
      cuda: inference.cuda,
      intraOpThreads: inference.cpuThreads,
      log: (level, message) => log[level](message),
      observe: (run) => this.health.metrics.observeInference(run),
    };
    this.analyzer = await FaceAnalyzer.create({
      embedder: rec.embedder,
      detector: { minFaceSize: rec.minFaceSize, ...rec.detector },
      flipAverage: rec.flipAverage,
      occlusionMasks: rec.occlusionMasks,
      fuseWith: rec.fuseWith,
      autoFusionOnCpu: false,
      session,
      registry,
      // Cameras share the detector: their R-Net/O-Net runs merge while one is in flight.
      batchDetectorStages: inference.mergeDetectorRuns ? { maxRequests: 16 } : undefined,
      log: (line) => log.info(line),
    });
    const analyzer = this.analyzer;
    const model = analyzer.embedder.entry;
    const companion = analyzer.fusion?.companion;
    log.info(
      {
        embedder: model.name,
        ...(companion ? { fusedWith: companion.embedder.entry.name } : {}),
        providers: Object.fromEntries(analyzer.sessionsInfo.map((m) => [m.model, m.provider])),
        template: analyzer.template.name,
      },
      'recognition core ready',
    );
    const embedderRuntime = new EmbedderRuntime({
      primary: analyzer.embedder,
      providers: inference.providers,
      create: embedderFactory(registry, analyzer.embedder, session),
      onError: (message, details) => {
        log.error(details, message);
        this.publisher?.publishError('inference', message, details);
      },
      log: (level, message) => log[level](message),
    });
    this.embedderRuntime = embedderRuntime;

    this.gallery = Gallery.open(this.dataDir, { keepPhotos: config.gallery.keepPhotos });
    if (config.gallery.keepPhotos) {
      const { reembedded, needReenrollment } = await reembedFromPhotos(analyzer, this.gallery);
      if (reembedded.length) log.info({ identities: reembedded }, `re-embedded from kept photos for ${model.name}`);
      if (needReenrollment.length) log.warn({ identities: needReenrollment }, `identities without photos need re-enrollment for ${model.name}`);
    } else {
      const stale = this.gallery.needsReenrollment(model.name);
      if (stale.length) log.warn({ identities: stale }, `identities enrolled with another model need re-enrollment for ${model.name} (they are not matched)`);
    }
    this.matcher = this.createMatcher(rec);
    log.info({ identities: this.matcher.identities, embeddings: this.matcher.size, dataDir: this.dataDir }, 'gallery loaded');
    if (analyzer.occlusion) {
      log.info({ patterns: [...analyzer.occlusion.patterns.keys()] }, 'occlusion-aware matching on (masks, sunglasses, hands…)');
      const without = this.matcher.identitiesWithoutPatterns();
      if (without > 0) log.warn({ identities: without }, 'identities enrolled before the occlusion masks existed are matched on the plain path only when occluded faces arrive: re-enroll them');
    }
    if (this.matcher instanceof FusedMatcher) {
      log.info({ embedders: [model.name, this.matcher.fusion.companion], log10FarThresholds: this.matcher.log10Thresholds }, 'score fusion on: both embedders score every face');
      const without = this.matcher.identitiesWithoutCompanion();
      if (without > 0) log.warn({ identities: without }, `identities without a ${this.matcher.fusion.companion} embedding are matched by ${model.name} alone: re-enroll them (or keep photos to re-embed them)`);
    }
    // A running agent sees enrollments made by the CLI or another process.
    this.galleryTimer = setInterval(() => {
      try {
        if (this.gallery && this.matcher?.reload(this.gallery)) log.info({ identities: this.matcher.identities, embeddings: this.matcher.size }, 'gallery changed; reloaded');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'gallery reload failed');
      }
    }, config.gallery.pollSeconds * 1000);
    this.galleryTimer.unref();

    const broker = await resolveBroker(config.mqtt.url, { port: config.mqtt.embeddedBrokerPort });
    this.stopBroker = broker.stop;
    this.brokerUrl = broker.url;
    if (broker.embedded) log.info({ url: broker.url }, 'no MQTT broker configured: started the embedded broker');
    this.publisher = MqttPublisher.start(
      {
        url: broker.url,
        username: config.mqtt.username,
        password: config.mqtt.password,
        tls: config.mqtt.tls,
        prefix: config.mqtt.prefix,
        agentId: this.agentId,
      },
      { log: (level, message) => log[level](message) },
    );
    this.events = await EventServices.start({
      config,
      dataDir: this.dataDir,
      publisher: this.publisher,
      log,
      version: (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version,
      commands: this.commandContext(),
      cameras: () => this.config.cameras.map((c) => c.name),
    });

    // The companion (score fusion) pauses while the runtime has moved the embedder off its primary
    // placement (GPU pressure), and a companion failure leaves those faces to the embedder alone.
    const companionOptions = {
      onError: (err: Error) => {
        this.companionFailures++;
        const message = `companion embedder ${companion?.embedder.entry.name} failed; faces matched by ${model.name} alone`;
        log.error({ err: err.message }, message);
        this.publisher?.publishError('inference', message, { error: err.message });
      },
    };
    const embedBatch = (items: FaceChips[]): Promise<FaceEmbeddingResult[]> =>
      // Zoomed-out views (chip.views) only for the faces matched wide: not taken for confidently clean.
      analyzer.embedChips(items, (chips) => embedderRuntime.embedFaces(chips), { ...companionOptions, skip: embedderRuntime.placement !== 'primary', views: 'uncertain' });
    this.scheduler = new BatchScheduler('embedder', embedBatch, {
      maxBatch: rec.maxBatch,
      maxWaitMs: rec.maxWaitMs,
      onBatch: (size) => this.health.metrics.observeBatch(model.name, size),
      // Waiting only pays when another camera's faces are on their way.
      moreComing: () => [...this.cameras.values()].some((c) => c.pipeline.busy),
    });
    this.ffmpegPath = resolveFfmpeg({ configPath: config.ffmpegPath, logger: log }).path;
    for (const cam of config.cameras.filter((c) => c.enabled)) this.startCamera(cam);
    if (this.cameras.size === 0) log.warn('no camera is enabled: add cameras to the config or pass --camera NAME=URL');
    this.publisher.startStats(config.mqtt.statsIntervalSeconds * 1000, () => this.stats());
    await this.health.start({ scheduler: this.scheduler, maxBatch: rec.maxBatch, embedder: embedderRuntime, variant });
    log.info({ agent: this.agentId, cameras: [...this.cameras.keys()], broker: broker.url, prefix: config.mqtt.prefix }, 'facegate agent running');
  }

  /** Starts one camera's source and pipeline; a failure is logged and stays with that camera. */
  startCamera(cam: CameraSettings): boolean {
    const { analyzer, scheduler, config, log } = this;
    if (!analyzer || !scheduler) throw new Error('the agent is not started');
    if (this.cameras.has(cam.name)) return false;
    this.wantedCameras.add(cam.name);
    try {
      const source = new CameraSource({ ...cam, ffmpegPath: this.ffmpegPath }, log);
      const pipeline = new CameraPipeline(
        source,
        {
          detector: analyzer.detector,
          chips: (image, faces) => analyzer.faceChips(image, faces).items,
          embedder: scheduler,
          match: (face) => (this.matcher as FaceMatcher).match(face),
          onDecision: (camera, decision, frame) => this.publish(camera, decision, frame),
          log,
          admit: (frame) => this.health.admit(cam.name, cam.fps, frame.capturedAt),
        },
        trackerOptions(config),
      );
      pipeline.start();
      source.start();
      this.cameras.set(cam.name, { source, pipeline });
      return true;
    } catch (err) {
      log.error({ camera: cam.name, err: (err as Error).message }, 'camera not started');
      return false;
    }
  }

  /** Stops one camera (its in-flight frame finishes); the others keep streaming. */
  async stopCamera(name: string): Promise<boolean> {
    this.wantedCameras.delete(name);
    const running = this.cameras.get(name);
    if (!running) return false;
    this.cameras.delete(name);
    await running.source.stop();
    await running.pipeline.stop();
    return true;
  }

  /** What MQTT commands may do to the running agent. */
  private commandContext(): CommandContext {
    return {
      config: () => this.config,
      analyzer: () => this.faceAnalyzer,
      gallery: () => {
        if (!this.gallery) throw new Error('the agent is not started');
        return this.gallery;
      },
      galleryChanged: () => {
        if (this.gallery && this.matcher?.reload(this.gallery)) this.log.info({ identities: this.matcher.identities, embeddings: this.matcher.size }, 'gallery changed by an MQTT command; reloaded');
      },
      runningCameras: () => this.runningCameras,
      startCamera: (cam) => this.startCamera(cam),
      stopCamera: (name) => this.stopCamera(name),
      nextFrame: (name, timeoutMs) => {
        const running = this.cameras.get(name);
        if (!running) return Promise.reject(new Error(`camera "${name}" is not running`));
        return firstValueFrom(running.source.frames$.pipe(timeout({ first: timeoutMs, with: () => Promise.reject(new Error(`camera "${name}" sent no frame within ${timeoutMs} ms`)) })));
      },
    };
  }

  /** Identity events waiting in the durable outbox for a broker acknowledgement. */
  get outboxDepth(): number {
    return this.events?.outboxDepth ?? 0;
  }

  /**
   * Applies a reloaded configuration's live settings — match thresholds and event rules — to the
   * matcher and every running pipeline. Throws, changing nothing, when the thresholds are unusable.
   * Cameras are the caller's (startCamera/stopCamera); other keys wait for a restart.
   */
  applyLiveSettings(next: FacegateConfig): void {
    const rec = next.recognition;
    if (this.analyzer && this.gallery && (rec.matchThreshold !== this.config.recognition.matchThreshold || rec.unknownThreshold !== this.config.recognition.unknownThreshold)) {
      this.matcher = this.createMatcher(rec);
    }
    this.config = next;
    for (const c of this.cameras.values()) c.pipeline.setTrackerOptions(trackerOptions(next));
  }

  /**
   * The matcher for the analyzer's embedder(s) and the configured thresholds, loaded from the
   * gallery: occlusion-aware, and fusing two embedders' scores when the analyzer has a companion.
   */
  private createMatcher(rec: FacegateConfig['recognition']): FaceMatcher {
    const analyzer = this.faceAnalyzer;
    if (!this.gallery) throw new Error('the gallery is not open');
    const entry = analyzer.embedder.entry;
    const thresholds = thresholdsFor(entry, { match: rec.matchThreshold, unknown: rec.unknownThreshold });
    const primary = new OcclusionAwareMatcher(entry.name, thresholds, analyzer.occlusion);
    const fusion = analyzer.fusion;
    let matcher: FaceMatcher = primary;
    if (fusion) {
      const other = fusion.companion.embedder.entry;
      // The companion's own space needs thresholds only for its (unused) single decision.
      const companion = new OcclusionAwareMatcher(other.name, thresholdsFor(other), fusion.companion.occlusion);
      matcher = new FusedMatcher({ matcher: primary, curves: fusion.curves[0] }, { matcher: companion, curves: fusion.curves[1] }, fusion.score, thresholds);
    }
    matcher.reload(this.gallery, true);
    return matcher;
  }

  /** Publishes an error a technician must see on `<prefix>/<agent>/errors` (never throws). */
  reportError(source: string, message: string, details?: unknown): void {
    this.publisher?.publishError(source, message, details);
  }

  /** Names of the cameras now running. */
  get runningCameras(): string[] {
    return [...this.cameras.keys()];
  }

  /** The recognition core (after start()). */
  get faceAnalyzer(): FaceAnalyzer {
    if (!this.analyzer) throw new Error('the agent is not started');
    return this.analyzer;
  }

  private publish(camera: string, decision: TrackDecision, frame: Frame): void {
    const event = buildIdentityEvent({
      agent: this.agentId,
      camera,
      trackId: decision.trackId,
      identity: decision.identity,
      unknown: decision.unknown,
      score: decision.score,
      distance: decision.distance,
      box: { x: decision.box.x1, y: decision.box.y1, w: decision.box.x2 - decision.box.x1, h: decision.box.y2 - decision.box.y1 },
      frameTime: frame.capturedAt,
      model: this.analyzer?.embedder.entry.name ?? 'unknown',
      ...(decision.occlusion ? { occlusion: decision.occlusion } : {}),
      masked: decision.masked,
    });
    const latencyMs = Date.parse(event.publishTime) - frame.capturedAt;
    this.latencies.push(latencyMs);
    if (this.latencies.length > 1000) this.latencies.shift();
    this.eventsPublished++;
    this.health.metrics.countIdentityEvent(camera, decision.unknown);
    try {
      this.events?.publishIdentity(event);
    } catch (err) {
      // Only a failed disk write lands here: say so loudly, the event cannot be kept.
      this.log.error({ err: (err as Error).message, eventId: event.eventId }, 'identity event not written to the outbox');
      this.publisher?.publishError('outbox', `identity event ${event.eventId} not written to the outbox: ${(err as Error).message}`);
    }
    this.options.onEvent?.({ event, latencyMs });
  }

  stats(): Record<string, unknown> {
    const cameras: Record<string, CameraStats & { pipeline: PipelineStats }> = {};
    for (const [name, c] of this.cameras) cameras[name] = { ...c.source.stats(), pipeline: { ...c.pipeline.stats } };
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const pct = (p: number): number | null => (sorted.length ? (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number) : null);
    return {
      agent: this.agentId,
      time: new Date().toISOString(),
      cameras,
      events: { published: this.eventsPublished, latencyMs: { p50: pct(0.5), p95: pct(0.95) } },
      ...(this.events ? this.events.stats() : {}),
      inference: {
        embedder: this.analyzer?.embedder.entry.name,
        provider: this.analyzer?.embedder.provider,
        // Score fusion: the second embedder that scores every face too, paused while the embedder is
        // moved off its primary placement (GPU pressure); null: one embedder.
        fusion: this.analyzer?.fusedWith ? { companion: this.analyzer.fusedWith, paused: this.embedderRuntime?.placement !== 'primary', failures: this.companionFailures } : null,
        batches: this.scheduler?.stats,
        maxBatch: this.scheduler?.maxBatch,
        // Active provider per model, with the providers passed over and why.
        models: this.analyzer?.sessionsInfo ?? [],
        embedderRuntime: this.embedderRuntime?.stats(),
      },
      health: this.health.stats(),
      gallery: {
        identities: this.matcher?.identities ?? 0,
        embeddings: this.matcher?.size ?? 0,
        // Enrolled with another embedder only: not matched until re-enrolled (or re-embedded).
        needReenrollment: this.gallery && this.analyzer ? this.gallery.needsReenrollment(this.analyzer.embedder.entry.name) : [],
        // Fusing: identities without the companion's embeddings, matched by the embedder alone.
        ...(this.matcher instanceof FusedMatcher ? { withoutCompanion: this.matcher.identitiesWithoutCompanion() } : {}),
      },
      process: { rssBytes: process.memoryUsage().rss, heapUsedBytes: process.memoryUsage().heapUsed },
    };
  }

  /**
   * Graceful stop within `timeoutMs` (default shutdownTimeoutSeconds): cameras stop reading and their
   * in-flight frames finish, the outbox delivers what the broker accepts, then 'offline' is published.
   * Undelivered events stay in the outbox for the next run.
   */
  async stop(timeoutMs = this.config.shutdownTimeoutSeconds * 1000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const left = (reserveMs = 0): number => Math.max(0, deadline - Date.now() - reserveMs);
    if (this.galleryTimer) clearInterval(this.galleryTimer);
    await this.health.stop();
    await Promise.all([...this.cameras.keys()].map((name) => this.stopCamera(name)));
    // Keep about a second for 'offline' and the disconnect.
    const flushed = await this.events?.flush(left(Math.min(1500, timeoutMs / 4)));
    if (flushed === false) this.log.warn({ waiting: this.outboxDepth }, 'identity events not yet acknowledged stay in the outbox for the next run');
    this.events?.stop();
    await this.publisher?.stop(Math.max(200, left()));
    this.events?.close();
    await this.stopBroker?.();
    this.gallery?.close();
    await this.embedderRuntime?.close();
    await this.analyzer?.close();
  }
}
