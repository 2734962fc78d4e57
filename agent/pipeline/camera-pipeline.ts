// One camera's path from frame to event: latest frame only → detect → align → embed (through the
// shared batch scheduler) → match → track → identity events. A failing frame is logged and
// counted; it never ends the stream.
import { filter, type Subscription } from 'rxjs';
import type { CameraSource, Frame } from '../camera/camera-source.js';
import type { Logger } from '../logging.js';
import type { FaceEmbeddingResult } from '../recognition/embedder.js';
import type { FaceChips } from '../recognition/face-analyzer.js';
import type { OcclusionMatch } from '../recognition/occlusion-matcher.js';
import type { RgbImage } from '../vision/image.js';
import type { DetectedFace, MtcnnDetector } from '../vision/mtcnn.js';
import { type BatchScheduler, SchedulerFullError } from './batch-scheduler.js';
import { latestOnly } from './latest-only.js';
import { FaceTracker, type TrackDecision, type TrackerOptions } from './tracker.js';

export interface PipelineDeps {
  detector: MtcnnDetector;
  /** Aligned chips of the detected faces (the FaceAnalyzer's: one per embedder when fusing). */
  chips: (image: RgbImage, faces: readonly DetectedFace[]) => FaceChips[];
  embedder: BatchScheduler<FaceChips, FaceEmbeddingResult>;
  /** The current matcher (it may be reloaded when the gallery changes); occlusion-aware when it has masks. */
  match: (face: FaceEmbeddingResult) => Pick<OcclusionMatch, 'identity' | 'unknown' | 'distance' | 'occlusion' | 'masked'>;
  onDecision: (camera: string, decision: TrackDecision, frame: Frame) => void;
  log: Logger;
  /** Whether to analyse a frame (GPU pressure lowers the analysed fps); frames refused count as dropped. */
  admit?: (frame: Frame) => boolean;
}

export interface PipelineStats {
  framesProcessed: number;
  framesFailed: number;
  facesDetected: number;
  embedsRefused: number;
  /** Milliseconds from capture to the end of processing, last frame. */
  lastLatencyMs: number;
  activeTracks: number;
}

export class CameraPipeline {
  private subscription: Subscription | undefined;
  /** The frame being processed, so stop() can let it finish before the models are closed. */
  private inFlight: Promise<void> | undefined;
  private readonly tracker: FaceTracker;
  readonly stats: PipelineStats = { framesProcessed: 0, framesFailed: 0, facesDetected: 0, embedsRefused: 0, lastLatencyMs: 0, activeTracks: 0 };

  constructor(
    readonly camera: CameraSource,
    private readonly deps: PipelineDeps,
    trackerOptions: Partial<TrackerOptions> = {},
  ) {
    this.tracker = new FaceTracker(camera.config.name, trackerOptions);
  }

  start(): void {
    if (this.subscription) return;
    this.subscription = this.camera.frames$
      .pipe(
        filter((frame) => {
          if (!this.deps.admit || this.deps.admit(frame)) return true;
          this.camera.countDropped(1);
          return false;
        }),
        latestOnly((frame) => (this.inFlight = this.process(frame)), () => this.camera.countDropped(1)),
      )
      .subscribe({ error: (err: unknown) => this.deps.log.error({ camera: this.camera.config.name, err }, 'camera pipeline ended') });
  }

  /** Stops taking frames and waits for the one in flight. */
  async stop(): Promise<void> {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    await this.inFlight;
  }

  /** Changes the event rules (cooldown, votes, unknowns) at once, keeping the open tracks. */
  setTrackerOptions(options: Partial<TrackerOptions>): void {
    Object.assign(this.tracker.options, options);
  }

  /** True while a frame is in detection (the embed scheduler waits for such frames' faces). */
  get busy(): boolean {
    return this.detecting;
  }
  private detecting = false;

  /** Never rejects: a frame that fails is logged and counted. */
  private async process(frame: Frame): Promise<void> {
    const { deps } = this;
    try {
      const image: RgbImage = { width: frame.width, height: frame.height, data: frame.data };
      this.detecting = true;
      const faces = await deps.detector.detect(image).finally(() => (this.detecting = false));
      this.stats.facesDetected += faces.length;
      const chips = deps.chips(image, faces);
      let embeddings: FaceEmbeddingResult[];
      try {
        embeddings = await deps.embedder.submitAll(chips);
      } catch (err) {
        if (!(err instanceof SchedulerFullError)) throw err;
        this.stats.embedsRefused++;
        this.camera.countDropped(1);
        return;
      }
      const observations = faces.map((f, i) => {
        const m = deps.match(embeddings[i] as FaceEmbeddingResult);
        return { box: f.box, detectionScore: f.score, identity: m.identity, unknown: m.unknown, distance: m.distance, ...(m.occlusion ? { occlusion: m.occlusion } : {}), masked: m.masked };
      });
      for (const decision of this.tracker.update(frame.capturedAt, observations)) deps.onDecision(this.camera.config.name, decision, frame);
      this.camera.countAnalysed(1);
      this.stats.framesProcessed++;
      this.stats.lastLatencyMs = Date.now() - frame.capturedAt;
      this.stats.activeTracks = this.tracker.activeTracks;
    } catch (err) {
      this.stats.framesFailed++;
      deps.log.warn({ camera: this.camera.config.name, seq: frame.seq, err: (err as Error).message }, 'frame failed');
    }
  }
}
