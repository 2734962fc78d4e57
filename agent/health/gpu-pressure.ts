// GPU memory pressure as a state machine: normal → warn → critical, and back one step at a time
// only after the GPU stayed below the warn threshold for `recoverMs` (hysteresis, so a GPU
// hovering at the threshold does not flap). What each step does is injected, so the machine is
// tested without a GPU and the agent decides what "reduce load" means.

export type PressureLevel = 'normal' | 'warn' | 'critical';

export interface PressureActions {
  /** normal → warn: lower analysed fps and batch size. */
  reduceLoad(): void | Promise<void>;
  /** warn → normal. */
  restoreLoad(): void | Promise<void>;
  /** warn → critical: move the embedder to a smaller variant or the CPU. */
  degradeEmbedder(): void | Promise<void>;
  /** critical → warn. */
  restoreEmbedder(): void | Promise<void>;
}

export interface PressureThresholds {
  /** % of GPU memory used. */
  warnPercent: number;
  criticalPercent: number;
  /** How long the GPU must stay below warn before each step back. */
  recoverMs: number;
}

export interface PressureTransition {
  time: string;
  from: PressureLevel;
  to: PressureLevel;
  /** GPU memory used when it happened, %. */
  usedPercent: number;
  reason: string;
  /** The actions run, in order; a failed one is listed with its error. */
  actions: string[];
}

const RANK: Record<PressureLevel, number> = { normal: 0, warn: 1, critical: 2 };

export class GpuPressureMachine {
  private levelNow: PressureLevel = 'normal';
  private belowWarnSince: number | undefined;

  constructor(
    private readonly thresholds: PressureThresholds,
    private readonly actions: PressureActions,
  ) {
    if (!(thresholds.criticalPercent > thresholds.warnPercent)) throw new Error('criticalPercent must be above warnPercent');
  }

  get level(): PressureLevel {
    return this.levelNow;
  }

  /**
   * Feeds one reading (% of GPU memory used; null when no GPU was read) taken at `now` ms and
   * returns the transitions it caused, after their actions ran.
   */
  async update(usedPercent: number | null, now: number): Promise<PressureTransition[]> {
    if (usedPercent === null || !Number.isFinite(usedPercent)) return [];
    const { warnPercent, criticalPercent, recoverMs } = this.thresholds;
    const out: PressureTransition[] = [];
    if (usedPercent >= warnPercent) {
      this.belowWarnSince = undefined;
      const target: PressureLevel = usedPercent >= criticalPercent ? 'critical' : 'warn';
      // Up immediately, one step at a time so each step's action runs; never down while above warn.
      while (RANK[this.levelNow] < RANK[target]) {
        const to: PressureLevel = this.levelNow === 'normal' ? 'warn' : 'critical';
        const threshold = to === 'warn' ? warnPercent : criticalPercent;
        out.push(await this.step(to, usedPercent, `GPU memory ${fmt(usedPercent)}% ≥ ${to} threshold ${threshold}%`));
      }
      return out;
    }
    if (this.levelNow === 'normal') {
      this.belowWarnSince = undefined;
      return out;
    }
    this.belowWarnSince ??= now;
    if (now - this.belowWarnSince >= recoverMs) {
      const to: PressureLevel = this.levelNow === 'critical' ? 'warn' : 'normal';
      out.push(await this.step(to, usedPercent, `GPU memory ${fmt(usedPercent)}% < warn threshold ${warnPercent}% for ${Math.round((now - this.belowWarnSince) / 1000)} s`));
      // The next step back needs its own quiet period.
      this.belowWarnSince = now;
    }
    return out;
  }

  private async step(to: PressureLevel, usedPercent: number, reason: string): Promise<PressureTransition> {
    const from = this.levelNow;
    const names: (keyof PressureActions)[] =
      RANK[to] > RANK[from] ? (to === 'warn' ? ['reduceLoad'] : ['degradeEmbedder']) : to === 'warn' ? ['restoreEmbedder'] : ['restoreLoad'];
    this.levelNow = to;
    const actions: string[] = [];
    for (const name of names) {
      try {
        await this.actions[name]();
        actions.push(name);
      } catch (err) {
        actions.push(`${name} failed: ${(err as Error).message}`);
      }
    }
    return { time: new Date().toISOString(), from, to, usedPercent, reason, actions };
  }
}

const fmt = (n: number): string => (Math.round(n * 10) / 10).toString();
