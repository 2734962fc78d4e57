// What a new configuration file changes in a running agent, computed without touching it:
// cameras to stop, start or restart (by name; an unchanged camera is left alone), settings applied
// at once (thresholds, event rules, log level), and settings that only take effect at the next
// start (broker, embedder, data directory… — and any key not listed as live, which is the safe
// default for options added later).
import { isDeepStrictEqual } from 'node:util';
import type { CameraSettings, FacegateConfig } from './schema.js';

/** Key paths (and everything under them) that a running agent applies at once. */
export const LIVE_KEYS: readonly string[] = ['cameras', 'events', 'recognition.matchThreshold', 'recognition.unknownThreshold', 'log.level'];

export interface ReloadPlan {
  /** Removed or disabled cameras. */
  stop: string[];
  /** Added or enabled cameras. */
  start: CameraSettings[];
  /** Cameras whose settings changed: stopped, then started with the new settings. */
  restart: CameraSettings[];
  /** Enabled in both, identical: not touched. */
  unchanged: string[];
  /** Changed key paths (other than cameras) applied at once. */
  live: string[];
  /** Changed key paths that need a restart; they keep their running values. */
  needsRestart: string[];
  /** The configuration to run now: the running one with the cameras and live keys of the new one. */
  next: FacegateConfig;
  /** True when the new file changes nothing that runs or would run after a restart. */
  empty: boolean;
}

type Tree = Record<string, unknown>;

const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Leaf key paths whose values differ (arrays compare whole). */
export function changedPaths(a: unknown, b: unknown, prefix = ''): string[] {
  if (isTree(a) && isTree(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => changedPaths(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  return isDeepStrictEqual(a, b) ? [] : [prefix];
}

const isLive = (path: string): boolean => LIVE_KEYS.some((k) => path === k || path.startsWith(`${k}.`));

function setPath(target: Tree, path: string, source: Tree): void {
  const keys = path.split('.');
  let from: unknown = source;
  let to: Tree = target;
  for (let i = 0; i < keys.length - 1; i++) {
    const k = keys[i] as string;
    from = isTree(from) ? from[k] : undefined;
    if (!isTree(to[k])) to[k] = {};
    to = to[k] as Tree;
  }
  const last = keys[keys.length - 1] as string;
  const value = isTree(from) ? from[last] : undefined;
  if (value === undefined) delete to[last];
  else to[last] = structuredClone(value);
}

export function computeReloadPlan(running: FacegateConfig, incoming: FacegateConfig): ReloadPlan {
  const before = new Map(running.cameras.filter((c) => c.enabled).map((c) => [c.name, c]));
  const after = new Map(incoming.cameras.filter((c) => c.enabled).map((c) => [c.name, c]));
  const plan: Omit<ReloadPlan, 'next' | 'empty'> = { stop: [], start: [], restart: [], unchanged: [], live: [], needsRestart: [] };
  for (const name of before.keys()) if (!after.has(name)) plan.stop.push(name);
  for (const [name, cam] of after) {
    const old = before.get(name);
    if (!old) plan.start.push(cam);
    else if (isDeepStrictEqual(old, cam)) plan.unchanged.push(name);
    else plan.restart.push(cam);
  }
  const next = structuredClone(running) as FacegateConfig & Tree;
  for (const path of changedPaths(running, incoming)) {
    if (path === 'cameras' || path.startsWith('cameras.')) continue;
    if (isLive(path)) {
      plan.live.push(path);
      setPath(next, path, incoming as FacegateConfig & Tree);
    } else {
      plan.needsRestart.push(path);
    }
  }
  // Disabled cameras and the order of the list change nothing that runs, but are kept.
  next.cameras = structuredClone(incoming.cameras);
  const camerasChanged = !isDeepStrictEqual(running.cameras, incoming.cameras);
  return { ...plan, next, empty: !camerasChanged && plan.live.length === 0 && plan.needsRestart.length === 0 };
}
