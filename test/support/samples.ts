// Paths of the demo photos shipped with @vladmandic/face-api (present after `npm install`), and
// the project root, for tests that must run on a fresh clone.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

export const sampleDir = join(dirname(require.resolve('@vladmandic/face-api/package.json')), 'demo');

/** node_modules/@vladmandic/face-api/demo/sample<n>.jpg (n = 1..6). */
export const samplePath = (n: number): string => join(sampleDir, `sample${n}.jpg`);

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
