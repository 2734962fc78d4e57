// Reads, merges and validates the configuration: YAML file (optional) ← command-line overrides.
// Every error names the file, the key path and the reason.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { z } from 'zod';
import { configSchema, type FacegateConfig } from './schema.js';

export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid configuration (${source}):\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const describe = (issues: readonly z.core.$ZodIssue[]): string[] =>
  issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);

export function validateConfig(raw: unknown, source: string): FacegateConfig {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(source, describe(result.error.issues));
  const names = new Set<string>();
  for (const c of result.data.cameras) {
    if (names.has(c.name)) throw new ConfigError(source, [`cameras: the name "${c.name}" is used twice`]);
    names.add(c.name);
  }
  return result.data;
}

export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  try {
    return parse(text) ?? {};
  } catch (err) {
    throw new ConfigError(file, [`not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
  }
}

export interface ConfigOverrides {
  cameras?: { name: string; url: string }[];
  mqttUrl?: string;
  dataDir?: string;
  embedder?: string;
}

/** File (if any) + flag overrides, validated once. */
export function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}): FacegateConfig {
  const raw = (file ? readConfigFile(file) : {}) as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...raw };
  if (overrides.cameras?.length) {
    const existing = Array.isArray(raw.cameras) ? (raw.cameras as { name?: unknown }[]) : [];
    const replaced = new Set(overrides.cameras.map((c) => c.name));
    merged.cameras = [...existing.filter((c) => !replaced.has(String(c.name))), ...overrides.cameras];
  }
  if (overrides.mqttUrl) merged.mqtt = { ...((raw.mqtt as object | undefined) ?? {}), url: overrides.mqttUrl };
  if (overrides.dataDir) merged.dataDir = overrides.dataDir;
  if (overrides.embedder) merged.recognition = { ...((raw.recognition as object | undefined) ?? {}), embedder: overrides.embedder };
  return validateConfig(merged, file ?? 'command line');
}

/** Parses a `--camera NAME=URL` flag. */
export function parseCameraFlag(value: string): { name: string; url: string } {
  const i = value.indexOf('=');
  if (i <= 0 || i === value.length - 1) throw new Error(`--camera expects NAME=URL, got "${value}"`);
  return { name: value.slice(0, i), url: value.slice(i + 1) };
}
