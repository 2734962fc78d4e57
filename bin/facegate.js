#!/usr/bin/env node
// Runs the compiled agent (npm ci builds it; `npm run build` rebuilds it).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/agent/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('facegate is not built: run `npm run build` (or `npm ci`, which builds it) in the facegate folder');
  process.exit(1);
}
await import(entry.href);
