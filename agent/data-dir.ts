// The data directory (gallery, outbox): --data-dir, else env FACEGATE_DATA_DIR, else ./.facegate-data.
import { resolve } from 'node:path';

export const DEFAULT_DATA_DIR = '.facegate-data';

export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag || env.FACEGATE_DATA_DIR || DEFAULT_DATA_DIR);
}
