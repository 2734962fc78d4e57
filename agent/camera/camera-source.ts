// One camera: an ffmpeg child that decodes the source (RTSP, a local video file, a V4L2 device) to
// raw RGB24 frames at the analysis size and rate, read from its stdout and published as a hot RxJS
// Observable. The source keeps itself alive: ffmpeg is restarted with exponential backoff when it
// exits or fails to start, and by a stall watchdog when frames stop coming. Nothing thrown here
// escapes into frames$ or into other cameras: failures are logged, counted and retried until stop().
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { type Observable, Subject } from 'rxjs';

import type { Logger } from '../logging.js';
import { resolveFfmpeg } from './ffmpeg-binary.js';

export interface Frame {
  camera: string;
  /** Frame number within this camera, counting across ffmpeg restarts (starts at 0). */
  seq: number;
  /** Epoch ms when the whole frame had been read from ffmpeg. */
  capturedAt: number;
  width: number;
  height: number;
  /** RGB24, row-major, width * height * 3 bytes; owned by the consumer (a fresh array per frame). */
  data: Uint8Array;
}

export interface CameraConfig {
  name: string;
  /**
   * `rtsp://…` (or `rtsps://`), a local video file (path or `file://` URL; looped at its native rate
   * unless the URL ends in `#once`), a V4L2 device (`/dev/video0`), or any other URL ffmpeg reads.
   */
  url: string;
  /** Analysis rate, frames per second (ffmpeg's fps filter). */
  fps: number;
  /** Analysis size in pixels (ffmpeg's scale filter). */
  width: number;
  height: number;
  /** RTSP transport, default tcp. */
  transport?: 'tcp' | 'udp';
  /** ffmpeg binary; default: system ffmpeg on PATH, else the one from @ffmpeg-installer/linux-x64. */
  ffmpegPath?: string;
}

export type CameraState = 'starting' | 'streaming' | 'backoff' | 'stopped';

export interface CameraStats {
  camera: string;
  state: CameraState;
  framesIn: number;
  /** Counted by consumers with countAnalysed(). */
  framesAnalysed: number;
  /** Counted by consumers with countDropped(). */
  framesDropped: number;
  /** ffmpeg (re)starts after the first one. */
  reconnects: number;
  /** Times the stall watchdog restarted ffmpeg after frames stopped. */
  stalls: number;
  /** Frames per second over the last fpsWindowMs. */
  fps: number;
  /** Epoch ms of the last frame; null before the first. */
  lastFrameAt: number | null;
  lastError: string | null;
  /** Delay before the next restart while in backoff; null otherwise. */
  retryInMs: number | null;
}

export interface CameraTiming {
  /** First restart delay; doubles on each failure up to backoffMaxMs. */
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** A run that streamed this long resets the delay to backoffInitialMs. */
  healthyResetMs: number;
  /** Stall watchdog: no frame for max(stallMinMs, stallFrames frame intervals) restarts ffmpeg. */
  stallMinMs: number;
  stallFrames: number;
  /** Time ffmpeg gets from start to its first frame (connect, probe, first keyframe). */
  startTimeoutMs: number;
  /** SIGTERM, then SIGKILL after this long. */
  killGraceMs: number;
  /** Window of the current-fps figure. */
  fpsWindowMs: number;
  /** ffmpeg stderr: at most stderrMaxLines lines logged per stderrWindowMs; the rest are counted. */
  stderrWindowMs: number;
  stderrMaxLines: number;
}

export const DEFAULT_CAMERA_TIMING: Readonly<CameraTiming> = Object.freeze({
  backoffInitialMs: 1_000,
  backoffMaxMs: 30_000,
  healthyResetMs: 60_000,
  stallMinMs: 5_000,
  stallFrames: 10,
  startTimeoutMs: 20_000,
  killGraceMs: 2_000,
  fpsWindowMs: 5_000,
  stderrWindowMs: 10_000,
  stderrMaxLines: 5,
});

export interface CameraSourceOptions {
  timing?: Partial<CameraTiming>;
}

export type SourceKind = 'rtsp' | 'file' | 'v4l2' | 'url';

export interface SourceInput {
  kind: SourceKind;
  /** What ffmpeg opens (file URL turned into a path, `#once` removed). */
  input: string;
  /** File sources: loop forever (false when the URL ends in `#once`). */
  loop: boolean;
}

/** How a camera URL is opened. */
export function classifySource(url: string): SourceInput {
  if (/^rtsps?:\/\//i.test(url)) return { kind: 'rtsp', input: url, loop: false };
  if (/^v4l2:\/\//i.test(url)) return { kind: 'v4l2', input: url.slice('v4l2://'.length), loop: false };
  if (/^\/dev\/video\d*$/.test(url) || url.startsWith('/dev/v4l/')) return { kind: 'v4l2', input: url, loop: false };
  const once = url.endsWith('#once');
  const bare = once ? url.slice(0, -'#once'.length) : url;
  if (/^file:\/\//i.test(bare)) return { kind: 'file', input: fileURLToPath(bare), loop: !once };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return { kind: 'url', input: url, loop: false };
  return { kind: 'file', input: bare, loop: !once };
}

/** The ffmpeg command line (without the binary) that decodes a camera to raw RGB24 on stdout. */
export function ffmpegArgs(config: CameraConfig): string[] {
  const source = classifySource(config.url);
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'warning'];
  switch (source.kind) {
    case 'rtsp':
      args.push('-rtsp_transport', config.transport ?? 'tcp');
      break;
    case 'v4l2':
      args.push('-f', 'v4l2');
      break;
    case 'file':
      args.push('-re');
      if (source.loop) args.push('-stream_loop', '-1');
      break;
    case 'url':
      break;
  }
  args.push('-i', source.input);
  args.push('-an', '-sn', '-dn');
  args.push('-vf', `fps=${config.fps},scale=${config.width}:${config.height}`);
  args.push('-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1');
  return args;
}

/** The URL with its password (if any) replaced by `***`, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, '$1:***@');
}

function urlPassword(url: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/@:]*:([^/@]*)@/i.exec(url);
  return m?.[1] !== undefined && m[1] !== '' ? m[1] : undefined;
}

function validateConfig(config: CameraConfig): void {
  if (!config.name) throw new Error('camera config: name is empty');
  if (!config.url) throw new Error(`camera ${config.name}: url is empty`);
  for (const key of ['width', 'height'] as const) {
    const v = config[key];
    if (!Number.isInteger(v) || v <= 0) throw new Error(`camera ${config.name}: ${key} must be a positive integer (got ${v})`);
  }
  if (!(Number.isFinite(config.fps) && config.fps > 0)) throw new Error(`camera ${config.name}: fps must be > 0 (got ${config.fps})`);
  if (config.transport !== undefined && config.transport !== 'tcp' && config.transport !== 'udp') {
    throw new Error(`camera ${config.name}: transport must be tcp or udp (got ${String(config.transport)})`);
  }
}

const STDERR_TAIL = 5;
const STDERR_MAX_LINE = 1_000;

/** One ffmpeg process and what belongs to it. */
interface Run {
  child: ChildProcess;
  startedAt: number;
  firstFrameAt?: number;
  ended: boolean;
  /** Why we killed it (then its exit is expected). */
  killedFor?: 'stall' | 'start-timeout' | 'stop';
  killTimer?: NodeJS.Timeout;
  watchdog?: NodeJS.Timeout;
  /** Frame being reassembled and how many bytes of it have arrived. */
  frame: Uint8Array;
  filled: number;
  stderrPartial: string;
  stderrTail: string[];
  exited: Promise<void>;
  resolveExited: () => void;
}

export class CameraSource {
  readonly name: string;
  readonly config: Readonly<CameraConfig>;
  /** Frames of this camera: hot, shared; never errors; completes on stop() (or at the end of a `#once` file). */
  readonly frames$: Observable<Frame>;

  private readonly subject = new Subject<Frame>();
  private readonly log: Logger;
  private readonly timing: CameraTiming;
  private readonly frameBytes: number;
  /** The stall watchdog's limit: max(stallMinMs, stallFrames frame intervals). */
  readonly stallTimeoutMs: number;
  private readonly password: string | undefined;
  private readonly source: SourceInput;

  private state: CameraState = 'stopped';
  private started = false;
  private stopping = false;
  private run: Run | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt: number | undefined;
  private backoffMs: number;
  private seq = 0;
  private framesIn = 0;
  private framesAnalysed = 0;
  private framesDropped = 0;
  private reconnects = 0;
  private stalls = 0;
  private lastFrameAt: number | null = null;
  private firstFrameAt: number | undefined;
  private lastError: string | null = null;
  private readonly frameTimes: number[] = [];
  private stderrWindowStart = 0;
  private stderrLogged = 0;
  private stderrSuppressed = 0;

  constructor(config: CameraConfig, logger: Logger, options: CameraSourceOptions = {}) {
    validateConfig(config);
    this.config = Object.freeze({ ...config });
    this.name = config.name;
    this.timing = { ...DEFAULT_CAMERA_TIMING, ...options.timing };
    this.password = urlPassword(config.url);
    this.source = classifySource(config.url);
    this.log = logger.child({ camera: config.name });
    this.frameBytes = config.width * config.height * 3;
    this.stallTimeoutMs = Math.max(this.timing.stallMinMs, (this.timing.stallFrames * 1000) / config.fps);
    this.backoffMs = this.timing.backoffInitialMs;
    this.frames$ = this.subject.asObservable();
  }

  /** Starts decoding (idempotent). A source is used once: start after stop() throws. */
  start(): void {
    if (this.stopping) throw new Error(`camera ${this.name} was stopped; create a new CameraSource`);
    if (this.started) return;
    this.started = true;
    this.log.info(
      { url: redactUrl(this.config.url), kind: this.source.kind, width: this.config.width, height: this.config.height, fps: this.config.fps, stallTimeoutMs: this.stallTimeoutMs },
      'camera starting',
    );
    this.launch();
  }

  /** Stops ffmpeg (SIGTERM, then SIGKILL), cancels restarts, completes frames$. */
  async stop(): Promise<void> {
    if (this.stopping) {
      await this.run?.exited;
      return;
    }
    this.stopping = true;
    this.clearRetry();
    const run = this.run;
    if (run !== undefined && !run.ended) {
      this.kill(run, 'stop');
      await run.exited;
    }
    this.finish('stopped');
  }

  /** Consumers count frames they skipped (e.g. the pipeline was busy). */
  countDropped(n = 1): void {
    this.framesDropped += n;
  }

  /** Consumers count frames they analysed. */
  countAnalysed(n = 1): void {
    this.framesAnalysed += n;
  }

  stats(): CameraStats {
    const now = Date.now();
    this.pruneFrameTimes(now);
    // Frames in the window over the window's length (shorter while the camera is young).
    const span = Math.max(1000, Math.min(this.timing.fpsWindowMs, now - (this.firstFrameAt ?? now)));
    const fps = (this.frameTimes.length * 1000) / span;
    return {
      camera: this.name,
      state: this.state,
      framesIn: this.framesIn,
      framesAnalysed: this.framesAnalysed,
      framesDropped: this.framesDropped,
      reconnects: this.reconnects,
      stalls: this.stalls,
      fps: Math.round(fps * 100) / 100,
      lastFrameAt: this.lastFrameAt,
      lastError: this.lastError,
      retryInMs: this.state === 'backoff' && this.retryAt !== undefined ? Math.max(0, this.retryAt - now) : null,
    };
  }

  // ---- ffmpeg lifecycle ------------------------------------------------------------------------

  private launch(): void {
    this.retryTimer = undefined;
    this.retryAt = undefined;
    if (this.stopping) return;
    this.state = 'starting';
    let binary: string;
    try {
      binary = resolveFfmpeg({ configPath: this.config.ffmpegPath, logger: this.log }).path;
    } catch (err) {
      this.fail(err instanceof Error ? err.message : String(err));
      return;
    }
    const args = ffmpegArgs(this.config);
    this.log.debug({ ffmpeg: binary, args: args.map((a) => this.redact(a)) }, 'spawning ffmpeg');

    let resolveExited: () => void = () => undefined;
    const exited = new Promise<void>((r) => {
      resolveExited = r;
    });
    let child: ChildProcess;
    try {
      child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      this.fail(`cannot start ffmpeg (${binary}): ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const run: Run = {
      child,
      startedAt: Date.now(),
      ended: false,
      frame: new Uint8Array(this.frameBytes),
      filled: 0,
      stderrPartial: '',
      stderrTail: [],
      exited,
      resolveExited,
    };
    this.run = run;

    child.stdout?.on('data', (chunk: Buffer) => this.onStdout(run, chunk));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => this.onStderr(run, text));
    // Stream errors (EPIPE and the like) end with the process: the 'close' handler deals with them.
    child.stdout?.on('error', (err) => this.log.debug({ err }, 'ffmpeg stdout error'));
    child.stderr?.on('error', (err) => this.log.debug({ err }, 'ffmpeg stderr error'));
    child.on('error', (err) => {
      // Spawn failure (ENOENT, EACCES) or a failed kill: the process is not (or no longer) running.
      this.onRunEnd(run, null, null, `cannot run ffmpeg (${binary}): ${err.message}`);
    });
    child.on('close', (code, signal) => this.onRunEnd(run, code, signal));
    this.armWatchdog(run, this.timing.startTimeoutMs);
  }

  private armWatchdog(run: Run, ms: number): void {
    if (run.watchdog !== undefined) clearTimeout(run.watchdog);
    run.watchdog = setTimeout(() => this.onWatchdog(run, ms), ms);
  }

  private onWatchdog(run: Run, ms: number): void {
    if (run.ended || run !== this.run) return;
    if (run.firstFrameAt === undefined) {
      this.lastError = `no frame within ${ms} ms of starting ffmpeg`;
      this.log.warn({ timeoutMs: ms, stderr: run.stderrTail }, 'camera: no frame after start, restarting ffmpeg');
      this.kill(run, 'start-timeout');
    } else {
      this.stalls += 1;
      this.lastError = `stalled: no frame for ${ms} ms`;
      this.log.warn({ timeoutMs: ms, stalls: this.stalls }, 'camera stalled: no frame, restarting ffmpeg');
      this.kill(run, 'stall');
    }
  }

  private kill(run: Run, reason: NonNullable<Run['killedFor']>): void {
    if (run.ended) return;
    run.killedFor ??= reason;
    if (run.watchdog !== undefined) clearTimeout(run.watchdog);
    try {
      run.child.kill('SIGTERM');
    } catch {
      // already gone
    }
    run.killTimer = setTimeout(() => {
      if (run.ended) return;
      this.log.warn({ graceMs: this.timing.killGraceMs }, 'ffmpeg ignored SIGTERM: SIGKILL');
      try {
        run.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }, this.timing.killGraceMs);
  }

  private onRunEnd(run: Run, code: number | null, signal: NodeJS.Signals | null, spawnError?: string): void {
    if (run.ended) return;
    run.ended = true;
    if (run.watchdog !== undefined) clearTimeout(run.watchdog);
    if (run.killTimer !== undefined) clearTimeout(run.killTimer);
    this.flushStderr(run);
    this.flushSuppressed();
    run.resolveExited();
    if (this.run === run) this.run = undefined;
    if (this.stopping || run.killedFor === 'stop') return;

    const now = Date.now();
    if (run.firstFrameAt !== undefined && now - run.firstFrameAt >= this.timing.healthyResetMs) {
      this.backoffMs = this.timing.backoffInitialMs;
    }
    if (spawnError === undefined && code === 0 && run.killedFor === undefined && this.source.kind === 'file' && !this.source.loop) {
      this.log.info({ frames: this.framesIn }, 'camera: end of file (#once)');
      this.finish('stopped');
      return;
    }
    if (spawnError !== undefined) {
      this.lastError = spawnError;
    } else if (run.killedFor === undefined) {
      const how = signal !== null ? `was killed by ${signal}` : code === 0 ? 'ended (stream closed)' : `exited with code ${code}`;
      const last = run.stderrTail.at(-1);
      this.lastError = `ffmpeg ${how}${last !== undefined ? `: ${last}` : ''}`;
    }
    this.fail(this.lastError ?? 'ffmpeg ended');
  }

  /** Logs the failure and schedules the next start with the current backoff delay. */
  private fail(message: string): void {
    this.lastError = message;
    if (this.stopping) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.timing.backoffMaxMs);
    this.state = 'backoff';
    this.retryAt = Date.now() + delay;
    this.log.warn({ error: message, retryInMs: delay, reconnects: this.reconnects }, 'camera failed: restarting ffmpeg after backoff');
    this.retryTimer = setTimeout(() => {
      this.reconnects += 1;
      this.launch();
    }, delay);
  }

  private clearRetry(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryAt = undefined;
  }

  private finish(state: CameraState): void {
    this.stopping = true;
    this.clearRetry();
    this.state = state;
    this.flushSuppressed();
    this.subject.complete();
  }

  // ---- frames ----------------------------------------------------------------------------------

  /** Reassembles exact frame-size chunks from ffmpeg's stdout: at most one frame buffered. */
  private onStdout(run: Run, chunk: Buffer): void {
    if (run.ended || run.killedFor !== undefined || run !== this.run) return;
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(this.frameBytes - run.filled, chunk.length - offset);
      run.frame.set(chunk.subarray(offset, offset + n), run.filled);
      run.filled += n;
      offset += n;
      if (run.filled === this.frameBytes) {
        const data = run.frame;
        run.frame = new Uint8Array(this.frameBytes);
        run.filled = 0;
        this.emit(run, data);
        if (run.ended || run.killedFor !== undefined || run !== this.run) return;
      }
    }
  }

  private emit(run: Run, data: Uint8Array): void {
    const now = Date.now();
    if (run.firstFrameAt === undefined) {
      run.firstFrameAt = now;
      this.log.info({ afterMs: now - run.startedAt, reconnects: this.reconnects }, 'camera streaming');
      this.state = 'streaming';
      this.armWatchdog(run, this.stallTimeoutMs);
    } else {
      run.watchdog?.refresh();
    }
    this.framesIn += 1;
    this.firstFrameAt ??= now;
    this.lastFrameAt = now;
    this.frameTimes.push(now);
    if (this.frameTimes.length > 4096) this.pruneFrameTimes(now);
    const frame: Frame = { camera: this.name, seq: this.seq++, capturedAt: now, width: this.config.width, height: this.config.height, data };
    try {
      this.subject.next(frame);
    } catch (err) {
      // RxJS reports subscriber errors asynchronously; this is only a last guard for this camera.
      this.log.error({ err }, 'frame subscriber threw');
    }
  }

  private pruneFrameTimes(now: number): void {
    const cutoff = now - this.timing.fpsWindowMs;
    let drop = 0;
    while (drop < this.frameTimes.length && (this.frameTimes[drop] ?? 0) < cutoff) drop++;
    if (drop > 0) this.frameTimes.splice(0, drop);
  }

  // ---- stderr ----------------------------------------------------------------------------------

  private onStderr(run: Run, text: string): void {
    const parts = (run.stderrPartial + text).split(/\r?\n|\r/);
    run.stderrPartial = (parts.pop() ?? '').slice(-STDERR_MAX_LINE);
    for (const line of parts) this.stderrLine(run, line);
  }

  private flushStderr(run: Run): void {
    if (run.stderrPartial !== '') this.stderrLine(run, run.stderrPartial);
    run.stderrPartial = '';
  }

  private stderrLine(run: Run, raw: string): void {
    const line = this.redact(raw.trim()).slice(0, STDERR_MAX_LINE);
    if (line === '') return;
    run.stderrTail.push(line);
    if (run.stderrTail.length > STDERR_TAIL) run.stderrTail.shift();
    const now = Date.now();
    if (now - this.stderrWindowStart >= this.timing.stderrWindowMs) {
      this.flushSuppressed();
      this.stderrWindowStart = now;
      this.stderrLogged = 0;
    }
    if (this.stderrLogged < this.timing.stderrMaxLines) {
      this.stderrLogged += 1;
      this.log.warn({ ffmpeg: line }, 'ffmpeg');
    } else {
      this.stderrSuppressed += 1;
    }
  }

  private flushSuppressed(): void {
    if (this.stderrSuppressed === 0) return;
    this.log.warn(
      { suppressed: this.stderrSuppressed, windowMs: this.timing.stderrWindowMs },
      `ffmpeg: ${this.stderrSuppressed} more stderr lines not logged (at most ${this.timing.stderrMaxLines} per ${this.timing.stderrWindowMs} ms)`,
    );
    this.stderrSuppressed = 0;
  }

  private redact(text: string): string {
    return this.password === undefined ? text : text.split(`:${this.password}@`).join(':***@');
  }
}
