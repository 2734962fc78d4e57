// Watches one file for changes, the way editors and deployment tools actually change files:
// written in place, replaced by rename (vim, sed -i, Ansible), deleted and re-created, or a symlink
// re-pointed. Watching the directory (not the file's inode) survives replacement; a slow stat poll
// catches what inotify cannot see (a symlink target elsewhere, network file systems). Bursts of
// events are debounced into one callback, and only a change of content fires it.
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, unwatchFile, watch, watchFile } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface ConfigWatcherOptions {
  /** Quiet time after the last event before the file is read (default 300 ms). */
  debounceMs?: number;
  /** Stat poll interval (default 5000 ms; 0 disables the poll). */
  pollMs?: number;
  /** A watch that could not be set up or failed (the poll keeps working). */
  onWatchError?: (err: Error) => void;
}

const digest = (file: string): string | undefined => {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined; // missing for a moment while an editor replaces it
  }
};

export class ConfigWatcher {
  private dirWatcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastDigest: string | undefined;
  private stopped = false;
  private readonly onStat = (): void => this.schedule();

  constructor(
    readonly file: string,
    /** Called after the file's content changed (not while it is missing). */
    private readonly onChange: () => void,
    private readonly options: ConfigWatcherOptions = {},
  ) {}

  start(): void {
    this.lastDigest = digest(this.file);
    const name = basename(this.file);
    try {
      this.dirWatcher = watch(dirname(this.file), { persistent: false }, (_event, changed) => {
        // Some platforms do not say which file changed: check ours anyway.
        if (changed === null || changed === name) this.schedule();
      });
      this.dirWatcher.on('error', (err) => this.options.onWatchError?.(err));
    } catch (err) {
      this.options.onWatchError?.(err as Error);
    }
    const pollMs = this.options.pollMs ?? 5000;
    if (pollMs > 0) watchFile(this.file, { interval: pollMs, persistent: false }, this.onStat);
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const current = digest(this.file);
      if (current === undefined || current === this.lastDigest) return;
      this.lastDigest = current;
      this.onChange();
    }, this.options.debounceMs ?? 300);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.dirWatcher?.close();
    unwatchFile(this.file, this.onStat);
  }
}
