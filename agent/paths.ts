// Locates the project root (the folder holding facegate's package.json), so code finds models/
// and config/ whether it runs from the TypeScript sources or the compiled dist/ tree.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function projectRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'facegate') return (cached = dir);
      } catch {
        // not ours: keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find facegate's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export const modelsDir = (): string => join(projectRoot(), 'models');
