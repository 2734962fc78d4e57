// Reads, merges and validates the configuration: YAML file (optional) ← env overrides for secrets
// ← command-line overrides. Every error names the key path, the bad value, the reason and, for the
// file, the line: `facegate.yaml:12:5: cameras[1].fps: Too small: expected number to be >0 (got 0)`.
import { readFileSync } from 'node:fs';
import { type ConfigProblem, formatPath, formatProblem, type KeyPath, type ParsedYaml, parseYaml, problemsFromIssues } from './config-problems.js';
import { configSchema, type FacegateConfig } from './schema.js';

export type { ConfigProblem } from './config-problems.js';

export class ConfigError extends Error {
  /** One line per problem, each naming where it is (file:line:column, env variable or flag). */
  readonly problems: string[];
  readonly details: ConfigProblem[];

  constructor(
    readonly source: string,
    problems: readonly (ConfigProblem | string)[],
    origins: ReadonlyMap<string, string> = new Map(),
  ) {
    const details = problems.map((p) => (typeof p === 'string' ? { path: [], message: p } : p));
    const lines = details.map((p) => `${originOf(p.path, origins) ?? (p.line !== undefined ? `${source}:${p.line}:${p.column ?? 1}` : source)}: ${formatProblem(p)}`);
    super(`invalid configuration (${source}):\n  ${lines.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = lines;
    this.details = details;
  }
}

/** Where a value came from when it was not the file: an env variable or a flag. */
function originOf(path: KeyPath, origins: ReadonlyMap<string, string>): string | undefined {
  const p = formatPath(path);
  for (const [prefix, label] of origins) if (p === prefix || p.startsWith(`${prefix}.`) || p.startsWith(`${prefix}[`)) return label;
  return undefined;
}

const MQTT_PROTOCOLS = new Set(['mqtt:', 'mqtts:', 'tcp:', 'tls:', 'ssl:', 'ws:', 'wss:']);

/** Rules that span keys or need more than a type: unique camera names, a usable broker URL, threshold order. */
function crossChecks(config: FacegateConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, number>();
  config.cameras.forEach((c, i) => {
    const first = seen.get(c.name);
    if (first !== undefined) problems.push({ path: ['cameras', i, 'name'], message: `camera name already used by cameras[${first}]`, value: c.name });
    else seen.set(c.name, i);
  });
  const url = config.mqtt.url;
  if (url !== undefined) {
    let protocol: string | undefined;
    try {
      protocol = new URL(url).protocol;
    } catch {
      problems.push({ path: ['mqtt', 'url'], message: 'not a URL (mqtt://host:1883, mqtts://…, ws://…, wss://…)', value: url });
    }
    if (protocol && !MQTT_PROTOCOLS.has(protocol)) problems.push({ path: ['mqtt', 'url'], message: `unsupported scheme ${protocol} (use mqtt, mqtts, ws or wss)`, value: url });
  }
  const { matchThreshold, unknownThreshold } = config.recognition;
  if (matchThreshold !== undefined && unknownThreshold !== undefined && unknownThreshold < matchThreshold) {
    problems.push({ path: ['recognition', 'unknownThreshold'], message: `must be ≥ recognition.matchThreshold (${matchThreshold})`, value: unknownThreshold });
  }
  return problems;
}

/** Problems of a raw configuration, with lines when `yaml` (the parsed file) is given. */
export function checkConfig(raw: unknown, yaml?: ParsedYaml): { config?: FacegateConfig; problems: ConfigProblem[] } {
  const input = raw ?? {};
  const result = configSchema.safeParse(input);
  if (!result.success) return { problems: problemsFromIssues(result.error.issues, input, yaml) };
  const problems = crossChecks(result.data).map((p) => ({ ...p, ...(yaml?.locate(p.path) ?? {}) }));
  return problems.length ? { problems } : { config: result.data, problems };
}

export function validateConfig(raw: unknown, source: string, yaml?: ParsedYaml, origins?: ReadonlyMap<string, string>): FacegateConfig {
  const { config, problems } = checkConfig(raw, yaml);
  if (!config) throw new ConfigError(source, problems, origins);
  return config;
}

/** Reads and parses a YAML file; an unreadable file or bad YAML is a ConfigError naming the line. */
export function readConfigFile(file: string): ParsedYaml {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  const yaml = parseYaml(text);
  if (yaml.problems.length) throw new ConfigError(file, yaml.problems);
  return yaml;
}

export interface ConfigOverrides {
  cameras?: { name: string; url: string }[];
  mqttUrl?: string;
  dataDir?: string;
  embedder?: string;
}

/** Secrets and deployment specifics that may come from the environment instead of the file. */
export const ENV_OVERRIDES = [
  { env: 'FACEGATE_MQTT_URL', path: ['mqtt', 'url'] },
  { env: 'FACEGATE_MQTT_USERNAME', path: ['mqtt', 'username'] },
  { env: 'FACEGATE_MQTT_PASSWORD', path: ['mqtt', 'password'] },
] as const;

/**
 * `key:` with nothing after it (YAML null) means "the default", as if the key were absent: a
 * section whose options are all commented out stays valid.
 */
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, dropNulls(v)]));
}

const asRecord = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** File (if any) ← env overrides ← flag overrides, validated once. */
export function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env): FacegateConfig {
  const yaml = file ? readConfigFile(file) : undefined;
  const raw = yaml?.data === null ? undefined : dropNulls(yaml?.data);
  // A file that is not a mapping at the top is reported by the schema, not hidden by the merge.
  if (raw !== undefined && raw !== null && asRecord(raw) !== raw) return validateConfig(raw, file ?? 'command line', yaml);
  const merged: Record<string, unknown> = { ...asRecord(raw) };
  const origins = new Map<string, string>();
  for (const { env: name, path } of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    merged[path[0]] = { ...asRecord(merged[path[0]]), [path[1]]: value };
    origins.set(path.join('.'), `env ${name}`);
  }
  if (overrides.cameras?.length) {
    const existing = Array.isArray(merged.cameras) ? (merged.cameras as { name?: unknown }[]) : [];
    const replaced = new Set(overrides.cameras.map((c) => c.name));
    const kept = existing.filter((c) => !replaced.has(String(c.name)));
    merged.cameras = [...kept, ...overrides.cameras];
    overrides.cameras.forEach((c, i) => origins.set(`cameras[${kept.length + i}]`, `--camera ${c.name}=…`));
  }
  if (overrides.mqttUrl) {
    merged.mqtt = { ...asRecord(merged.mqtt), url: overrides.mqttUrl };
    origins.set('mqtt.url', '--mqtt');
  }
  if (overrides.dataDir) {
    merged.dataDir = overrides.dataDir;
    origins.set('dataDir', '--data-dir');
  }
  if (overrides.embedder) {
    merged.recognition = { ...asRecord(merged.recognition), embedder: overrides.embedder };
    origins.set('recognition.embedder', '--model');
  }
  return validateConfig(merged, file ?? 'command line', yaml, origins);
}

/** Parses a `--camera NAME=URL` flag. */
export function parseCameraFlag(value: string): { name: string; url: string } {
  const i = value.indexOf('=');
  if (i <= 0 || i === value.length - 1) throw new Error(`--camera expects NAME=URL, got "${value}"`);
  return { name: value.slice(0, i), url: value.slice(i + 1) };
}
