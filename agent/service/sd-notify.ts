// systemd's notify protocol (sd_notify): readiness (Type=notify), status text, and the watchdog
// (WatchdogSec=) pings that let systemd restart an agent whose event loop hangs.
//
// The protocol is a datagram on the unix socket $NOTIFY_SOCKET. Node has no unix datagram sockets
// and we avoid a native addon for one call, so the messages are sent by `systemd-notify` (package
// systemd, always present where systemd runs), spawned from the agent; the unit sets
// NotifyAccess=all so systemd accepts messages from this child. systemd-notify waits for systemd
// to process each message (a BARRIER since systemd 246), so the child exiting quickly does not
// lose it. Pings come from the event loop: a blocked loop stops them and systemd restarts us.
import { execFile } from 'node:child_process';
import type { Logger } from '../logging.js';

export interface SystemdNotifierOptions {
  /** The systemd-notify binary (default: on PATH). */
  binary?: string;
  env?: NodeJS.ProcessEnv;
  /** Watchdog pings happen only while this says the agent is healthy (default: always). */
  isHealthy?: () => boolean;
}

export class SystemdNotifier {
  private timer: NodeJS.Timeout | undefined;
  /** One message at a time: a ping does not pile up behind a slow one. */
  private inFlight = 0;
  private failures = 0;
  /** Watchdog pings sent (and acknowledged by systemd-notify's exit 0). */
  pings = 0;
  /** Pings skipped because the previous message was still in flight or the agent was unhealthy. */
  skipped = 0;

  private constructor(
    private readonly log: Logger,
    private readonly options: SystemdNotifierOptions,
    /** Milliseconds between watchdog pings; undefined when systemd does not watch us. */
    readonly watchdogIntervalMs: number | undefined,
  ) {}

  /** A notifier when started by systemd with Type=notify (NOTIFY_SOCKET set), else undefined. */
  static fromEnv(log: Logger, options: SystemdNotifierOptions = {}): SystemdNotifier | undefined {
    const env = options.env ?? process.env;
    if (!env.NOTIFY_SOCKET) return undefined;
    const usec = Number(env.WATCHDOG_USEC);
    const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
    // sd_watchdog_enabled(3) advises pinging at half the timeout.
    const interval = Number.isFinite(usec) && usec > 0 && forUs ? Math.max(100, Math.floor(usec / 2000)) : undefined;
    return new SystemdNotifier(log, options, interval);
  }

  /** READY=1 (and a status line). */
  ready(status?: string): Promise<boolean> {
    return this.send(['--ready', ...(status ? [`--status=${status}`] : [])]);
  }

  status(text: string): Promise<boolean> {
    return this.send([`--status=${text}`]);
  }

  /** STOPPING=1: systemd shows the unit as deactivating and stops expecting pings. */
  stopping(): Promise<boolean> {
    this.stopWatchdog();
    return this.send(['STOPPING=1']);
  }

  /** Starts the watchdog pings (when systemd asked for them). */
  startWatchdog(): void {
    if (this.watchdogIntervalMs === undefined || this.timer) return;
    this.log.info({ intervalMs: this.watchdogIntervalMs }, 'systemd watchdog enabled: pinging');
    this.timer = setInterval(() => {
      if (this.inFlight > 0 || !(this.options.isHealthy?.() ?? true)) {
        this.skipped++;
        return;
      }
      void this.send(['WATCHDOG=1']).then((ok) => {
        if (ok) this.pings++;
      });
    }, this.watchdogIntervalMs);
    this.timer.unref();
  }

  stopWatchdog(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private send(args: string[]): Promise<boolean> {
    this.inFlight++;
    return new Promise((resolve) => {
      execFile(this.options.binary ?? 'systemd-notify', args, { env: this.options.env ?? process.env, timeout: 10_000 }, (err, _stdout, stderr) => {
        this.inFlight--;
        if (!err) return resolve(true);
        // Said once, then quietly counted: a missing binary must not flood the journal.
        this.failures++;
        const detail = { args, err: err.message, stderr: stderr.trim() };
        if (this.failures === 1) this.log.warn(detail, 'systemd-notify failed');
        else this.log.debug(detail, 'systemd-notify failed');
        resolve(false);
      });
    });
  }
}
