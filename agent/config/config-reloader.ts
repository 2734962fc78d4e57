// Hot reload: when the configuration file changes (or on SIGHUP), read and validate it again and
// apply what can be applied live. An invalid file changes nothing: its errors are logged and
// published on `<prefix>/<agent>/errors`, and the running configuration stays. Cameras are
// started/stopped one by one, so the others keep streaming; options that need a restart are
// logged as such and keep their running values. One reload runs at a time; changes arriving
// meanwhile fold into one more reload.
import type { Logger } from '../logging.js';
import { ConfigWatcher, type ConfigWatcherOptions } from './config-watcher.js';
import { ConfigError, type ConfigOverrides, loadConfig } from './load-config.js';
import { computeReloadPlan, type ReloadPlan } from './reload-plan.js';
import type { CameraSettings, FacegateConfig } from './schema.js';

/** What the reloader drives: the running agent. */
export interface ReloadTarget {
  readonly config: FacegateConfig;
  /** Applies thresholds and event rules; throws (changing nothing) when they cannot be used. */
  applyLiveSettings(config: FacegateConfig): void;
  startCamera(cam: CameraSettings): boolean;
  stopCamera(name: string): Promise<boolean>;
  /** Publishes on the errors topic; never throws. */
  reportError(source: string, message: string, details?: unknown): void;
}

export type ReloadOutcome =
  | { status: 'applied'; plan: ReloadPlan; failedCameras: string[] }
  | { status: 'unchanged' }
  | { status: 'rejected'; problems: string[] };

export interface ConfigReloaderOptions extends ConfigWatcherOptions {
  file: string;
  /** The command-line overrides the agent was started with; they keep winning over the file. */
  overrides?: ConfigOverrides;
  env?: NodeJS.ProcessEnv;
  log: Logger;
  /** Called after every reload attempt (tests, metrics). */
  onReload?: (outcome: ReloadOutcome) => void;
}

export class ConfigReloader {
  private watcher: ConfigWatcher | undefined;
  private running: Promise<ReloadOutcome> | undefined;
  private pending = false;

  constructor(
    private readonly target: ReloadTarget,
    private readonly options: ConfigReloaderOptions,
  ) {}

  /** Starts watching the file. */
  start(): void {
    const { file, log } = this.options;
    this.watcher = new ConfigWatcher(file, () => void this.reload(), {
      ...this.options,
      onWatchError: (err) => log.warn({ file, err: err.message }, 'cannot watch the configuration file; polling it instead'),
    });
    this.watcher.start();
    log.info({ file }, 'watching the configuration file for changes');
  }

  /** Stops watching and waits for a reload in progress (so the agent is not stopped under it). */
  async stop(): Promise<void> {
    this.watcher?.stop();
    this.pending = false;
    await this.running?.catch(() => undefined);
  }

  /** Reloads now (also what a file change triggers); concurrent calls fold into one more run. */
  reload(): Promise<ReloadOutcome> {
    if (this.running) {
      this.pending = true;
      return this.running;
    }
    const run = async (): Promise<ReloadOutcome> => {
      let outcome: ReloadOutcome;
      do {
        this.pending = false;
        try {
          outcome = await this.reloadOnce();
        } catch (err) {
          // Never let a reload take the agent down: report it and keep running.
          outcome = this.reject([`${this.options.file}: reload failed: ${(err as Error).message}`]);
        }
        this.options.onReload?.(outcome);
      } while (this.pending);
      return outcome;
    };
    this.running = run().finally(() => (this.running = undefined));
    return this.running;
  }

  private reject(problems: string[]): ReloadOutcome {
    const { file, log } = this.options;
    log.error({ file, problems }, `configuration rejected, keeping the running configuration:\n  ${problems.join('\n  ')}`);
    this.target.reportError('config', `configuration ${file} rejected; the running configuration stays`, { file, problems });
    return { status: 'rejected', problems };
  }

  private async reloadOnce(): Promise<ReloadOutcome> {
    const { file, log, env = process.env } = this.options;
    let incoming: FacegateConfig;
    try {
      incoming = loadConfig(file, this.options.overrides, env);
    } catch (err) {
      return this.reject(err instanceof ConfigError ? err.problems : [`${file}: ${(err as Error).message}`]);
    }
    const plan = computeReloadPlan(this.target.config, incoming);
    if (plan.empty) {
      log.info({ file }, 'configuration file changed; nothing to apply');
      return { status: 'unchanged' };
    }
    try {
      this.target.applyLiveSettings(plan.next);
    } catch (err) {
      return this.reject([`${file}: ${(err as Error).message}`]);
    }
    if (plan.live.includes('log.level') && !env.FACEGATE_LOG_LEVEL) log.level = plan.next.log.level;
    const failedCameras: string[] = [];
    const start = (cam: CameraSettings): void => {
      if (!this.target.startCamera(cam)) failedCameras.push(cam.name);
    };
    for (const name of plan.stop) await this.target.stopCamera(name);
    for (const cam of plan.restart) {
      await this.target.stopCamera(cam.name);
      start(cam);
    }
    for (const cam of plan.start) start(cam);
    if (failedCameras.length) this.target.reportError('config', `cameras not started after reload: ${failedCameras.join(', ')}`, { file, cameras: failedCameras });
    log.info(
      {
        file,
        stopped: plan.stop,
        started: plan.start.map((c) => c.name),
        restarted: plan.restart.map((c) => c.name),
        unchanged: plan.unchanged,
        live: plan.live,
      },
      'configuration reloaded',
    );
    if (plan.needsRestart.length) {
      log.warn({ file, keys: plan.needsRestart }, `changed options need a restart to take effect (running values kept): ${plan.needsRestart.join(', ')}`);
    }
    return { status: 'applied', plan, failedCameras };
  }
}
