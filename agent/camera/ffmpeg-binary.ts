// Which ffmpeg decodes the cameras: the path from config when one is given, else the system
// `ffmpeg` on PATH (Debian's 5.1, which gets security fixes), else the static binary shipped in the
// npm package @ffmpeg-installer/linux-x64 (a 2018 build: a fallback, and the log says so).
import { accessSync, chmodSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';

import type { Logger } from '../logging.js';

export type FfmpegSource = 'config' | 'system' | 'bundled';

export interface FfmpegBinary {
  path: string;
  source: FfmpegSource;
}

const BUNDLED_PACKAGE = '@ffmpeg-installer/linux-x64';

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `name` looked up in the directories of PATH, like a shell does; undefined when absent. */
export function findOnPath(name: string, pathEnv: string | undefined = process.env.PATH): string | undefined {
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** The ffmpeg binary inside @ffmpeg-installer/linux-x64 when that package is installed (Linux x64 only). */
export function bundledFfmpegPath(): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
  let pkgJson: string;
  try {
    pkgJson = createRequire(import.meta.url).resolve(`${BUNDLED_PACKAGE}/package.json`);
  } catch {
    return undefined;
  }
  const path = join(dirname(pkgJson), 'ffmpeg');
  if (!isExecutableFile(path)) {
    // The package's postinstall (`chmod u+x ffmpeg`) does not run when npm skips install scripts.
    try {
      chmodSync(path, 0o755);
    } catch {
      return undefined;
    }
    if (!isExecutableFile(path)) return undefined;
  }
  return path;
}

export interface ResolveFfmpegOptions {
  /** ffmpeg path from config: used as is (a bare name is looked up on PATH); an error when unusable. */
  configPath?: string;
  logger?: Logger;
  /** PATH to search (default process.env.PATH); for tests. */
  pathEnv?: string;
  /** Skip the system ffmpeg (tests of the fallback). */
  ignoreSystem?: boolean;
}

const cache = new Map<string, FfmpegBinary>();
let warnedBundled = false;

/**
 * Resolves the ffmpeg binary (cached per option set). Throws an Error naming what was tried when
 * there is none, or when the configured path is not an executable file.
 */
export function resolveFfmpeg(options: ResolveFfmpegOptions = {}): FfmpegBinary {
  const key = JSON.stringify([options.configPath ?? null, options.pathEnv ?? null, options.ignoreSystem ?? false]);
  const cached = cache.get(key);
  if (cached) {
    if (cached.source === 'bundled') warnBundled(cached.path, options.logger);
    return cached;
  }
  const found = resolveUncached(options);
  cache.set(key, found);
  if (found.source === 'bundled') warnBundled(found.path, options.logger);
  else options.logger?.debug({ ffmpeg: found.path, source: found.source }, 'ffmpeg binary');
  return found;
}

function resolveUncached(options: ResolveFfmpegOptions): FfmpegBinary {
  const { configPath } = options;
  if (configPath !== undefined && configPath !== '') {
    const path = configPath.includes('/') || isAbsolute(configPath) ? resolve(configPath) : findOnPath(configPath, options.pathEnv);
    if (path === undefined || !isExecutableFile(path)) {
      throw new Error(`configured ffmpeg "${configPath}" is not an executable file`);
    }
    return { path, source: 'config' };
  }
  if (!options.ignoreSystem) {
    const system = findOnPath('ffmpeg', options.pathEnv);
    if (system !== undefined) return { path: system, source: 'system' };
  }
  const bundled = bundledFfmpegPath();
  if (bundled !== undefined) return { path: bundled, source: 'bundled' };
  throw new Error(
    `no ffmpeg found: none configured, none on PATH, and npm package ${BUNDLED_PACKAGE} is not installed ` +
      '(install Debian\'s ffmpeg: apt-get install ffmpeg)',
  );
}

function warnBundled(path: string, logger: Logger | undefined): void {
  if (warnedBundled || logger === undefined) return;
  warnedBundled = true;
  logger.warn(
    { ffmpeg: path, source: 'bundled' },
    `no system ffmpeg on PATH: using the static build from npm ${BUNDLED_PACKAGE} (a 2018 ffmpeg without ` +
      'security fixes since) as a fallback; install the system ffmpeg (apt-get install ffmpeg) or set the ffmpeg path in config',
  );
}
