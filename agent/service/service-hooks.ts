// What `facegate run` adds around the agent when it runs for months: hot reload of its
// configuration file (and SIGHUP, for `systemctl reload`), and systemd readiness + watchdog.
import type { FacegateAgent } from '../agent.js';
import { ConfigReloader, type ReloadOutcome } from '../config/config-reloader.js';
import type { ConfigOverrides } from '../config/load-config.js';
import type { Logger } from '../logging.js';
import { SystemdNotifier } from './sd-notify.js';

export interface ServiceHooksOptions {
  /** The configuration file to watch (none: nothing to reload). */
  configFile?: string;
  overrides?: ConfigOverrides;
  onReload?: (outcome: ReloadOutcome) => void;
}

export interface ServiceHooks {
  reloader: ConfigReloader | undefined;
  notifier: SystemdNotifier | undefined;
  /** Call when shutting down: STOPPING=1, stop watching. */
  stop(): Promise<void>;
}

export async function attachServiceHooks(agent: FacegateAgent, log: Logger, options: ServiceHooksOptions = {}): Promise<ServiceHooks> {
  let reloader: ConfigReloader | undefined;
  // Handled even without a file: SIGHUP's default action would end the agent.
  const onHup = (): void => {
    if (!reloader) return log.warn('SIGHUP: no configuration file to reload');
    log.info('SIGHUP: reloading the configuration');
    void reloader.reload();
  };
  process.on('SIGHUP', onHup);
  if (options.configFile) {
    reloader = new ConfigReloader(agent, { file: options.configFile, overrides: options.overrides, log, onReload: options.onReload });
    reloader.start();
  }
  const notifier = SystemdNotifier.fromEnv(log);
  if (notifier) {
    await notifier.ready(`running ${agent.runningCameras.length} camera(s)`);
    notifier.startWatchdog();
  }
  return {
    reloader,
    notifier,
    async stop() {
      process.off('SIGHUP', onHup);
      await reloader?.stop();
      await notifier?.stopping();
    },
  };
}
