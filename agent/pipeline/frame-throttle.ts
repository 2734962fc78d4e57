// Lowers the analysed frame rate of every camera by a factor (GPU memory pressure): a frame is
// analysed only when enough time has passed since the camera's last analysed frame. The others
// are counted as dropped by the pipeline.

export class FrameThrottle {
  private factorNow = 1;
  private readonly lastAdmitted = new Map<string, number>();

  /** 1: every frame; 0.5: half the camera's fps. */
  get factor(): number {
    return this.factorNow;
  }

  setFactor(factor: number): void {
    if (!(factor > 0 && factor <= 1)) throw new Error(`frame throttle factor must be in (0, 1], got ${factor}`);
    this.factorNow = factor;
  }

  /** Whether to analyse a frame of `camera` (nominal `fps`) captured at `capturedAt` (ms). */
  admit(camera: string, fps: number, capturedAt: number): boolean {
    if (this.factorNow >= 1) {
      this.lastAdmitted.set(camera, capturedAt);
      return true;
    }
    // 10% slack: frame timestamps jitter around the nominal interval.
    const minGapMs = (1000 / (fps * this.factorNow)) * 0.9;
    const last = this.lastAdmitted.get(camera);
    if (last !== undefined && capturedAt - last < minGapMs && capturedAt >= last) return false;
    this.lastAdmitted.set(camera, capturedAt);
    return true;
  }

  forget(camera: string): void {
    this.lastAdmitted.delete(camera);
  }
}
