// Polls the GPUs every `pollMs` and feeds the fullest GPU's memory use to the pressure state
// machine. One poll at a time; a failed read is logged once until reads work again; transitions
// are kept (last 20) for stats and handed to `onTransition` (log + MQTT in the agent).
import { GpuPressureMachine, type PressureActions, type PressureLevel, type PressureThresholds, type PressureTransition } from './gpu-pressure.js';
import { type ResourceSample, sampleResources } from './resource-sampler.js';

export interface GpuWatchdogOptions extends PressureThresholds {
  pollMs: number;
  /** Feed readings to the state machine (default true); false: read and report only (no GPU session here). */
  act?: boolean;
  /** Clock for the hysteresis (tests drive it). */
  now?: () => number;
  sample?: () => Promise<ResourceSample>;
}

export interface GpuWatchdogHooks {
  onTransition?: (t: PressureTransition) => void;
  onSample?: (s: ResourceSample) => void;
  log?: (level: 'info' | 'warn', message: string) => void;
}

export interface GpuWatchdogStats {
  level: PressureLevel;
  /** The last reading (null before the first). */
  sample: ResourceSample | null;
  transitions: PressureTransition[];
  readErrors: number;
}

const KEEP_TRANSITIONS = 20;

export class GpuWatchdog {
  private readonly machine: GpuPressureMachine;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<ResourceSample | null> | undefined;
  private last: ResourceSample | null = null;
  private readonly transitions: PressureTransition[] = [];
  private readErrors = 0;
  private failing = false;
  private sawNoGpu = false;

  constructor(
    private readonly options: GpuWatchdogOptions,
    actions: PressureActions,
    private readonly hooks: GpuWatchdogHooks = {},
  ) {
    this.machine = new GpuPressureMachine(options, actions);
  }

  get level(): PressureLevel {
    return this.machine.level;
  }

  get lastSample(): ResourceSample | null {
    return this.last;
  }

  start(): void {
    if (this.timer) return;
    void this.pollOnce();
    this.timer = setInterval(() => void this.pollOnce(), this.options.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  /** Reads once and updates the state (a poll already running is awaited instead). */
  pollOnce(): Promise<ResourceSample | null> {
    this.polling ??= this.poll().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async poll(): Promise<ResourceSample | null> {
    const log = this.hooks.log ?? (() => {});
    let sample: ResourceSample;
    try {
      sample = await (this.options.sample ?? sampleResources)();
    } catch (err) {
      this.readErrors++;
      if (!this.failing) log('warn', `GPU watchdog: reading the GPUs failed: ${(err as Error).message}`);
      this.failing = true;
      return null;
    }
    if (this.failing) log('info', 'GPU watchdog: reading the GPUs works again');
    this.failing = false;
    this.last = sample;
    if (sample.gpus.length === 0 && !this.sawNoGpu) {
      this.sawNoGpu = true;
      log('info', 'GPU watchdog: no NVIDIA GPU found (systeminformation needs nvidia-smi and lspci); watching process memory only');
    }
    this.hooks.onSample?.(sample);
    const used = this.options.act !== false && sample.gpus.length ? Math.max(...sample.gpus.map((g) => g.usedPercent)) : null;
    for (const t of await this.machine.update(used, (this.options.now ?? Date.now)())) {
      this.transitions.push(t);
      if (this.transitions.length > KEEP_TRANSITIONS) this.transitions.shift();
      this.hooks.onTransition?.(t);
    }
    return sample;
  }

  stats(): GpuWatchdogStats {
    return { level: this.machine.level, sample: this.last, transitions: [...this.transitions], readErrors: this.readErrors };
  }
}
