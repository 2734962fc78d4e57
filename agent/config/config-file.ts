// Which configuration file the agent reads: `--config FILE`, else env FACEGATE_CONFIG, else
// config/facegate.yaml in the working directory when it exists, else none (built-in defaults).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const DEFAULT_CONFIG_FILE = join('config', 'facegate.yaml');

export interface ConfigFileChoice {
  /** Absolute path, or undefined when no file is used. */
  file: string | undefined;
  /** Why this file: for the log line that says which configuration is running. */
  origin: '--config' | 'env FACEGATE_CONFIG' | 'default' | 'none';
}

export function resolveConfigFile(flag?: string, env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): ConfigFileChoice {
  if (flag) return { file: resolve(cwd, flag), origin: '--config' };
  if (env.FACEGATE_CONFIG) return { file: resolve(cwd, env.FACEGATE_CONFIG), origin: 'env FACEGATE_CONFIG' };
  const fallback = resolve(cwd, DEFAULT_CONFIG_FILE);
  return existsSync(fallback) ? { file: fallback, origin: 'default' } : { file: undefined, origin: 'none' };
}
