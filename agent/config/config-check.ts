// `facegate config check [FILE]`: validates a configuration file the way the agent would load it
// (env overrides included) and, when it is valid, summarises what the agent would run.
import { hostname } from 'node:os';
import { ModelRegistry } from '../inference/model-registry.js';
import { redactUrl } from '../events/mqtt-publisher.js';
import { ConfigError, ENV_OVERRIDES, loadConfig, readConfigFile } from './load-config.js';
import { type FacegateConfig } from './schema.js';

export interface ConfigCheckResult {
  file: string;
  valid: boolean;
  /** One line per problem: `file:line:column: key.path: reason (got value)`. */
  problems: string[];
  /** Human-readable lines describing the configuration (valid files only). */
  summary: string[];
}

/** The embedder named in the config must be a registered embedder (the agent would fail at start). */
function embedderProblem(config: FacegateConfig): string | undefined {
  const name = config.recognition.embedder;
  if (!name) return undefined;
  try {
    const entry = ModelRegistry.load().get(name);
    return entry.role === 'embedder' ? undefined : `recognition.embedder: model ${name} is a ${entry.role}, not an embedder`;
  } catch (err) {
    return `recognition.embedder: ${(err as Error).message}`;
  }
}

function embedderName(config: FacegateConfig): string {
  if (config.recognition.embedder) return config.recognition.embedder;
  try {
    return `${ModelRegistry.load().defaultFor('embedder').name} (the default)`;
  } catch {
    return 'the default embedder';
  }
}

export function summarizeConfig(config: FacegateConfig, env: NodeJS.ProcessEnv = process.env): string[] {
  const enabled = config.cameras.filter((c) => c.enabled);
  const disabled = config.cameras.filter((c) => !c.enabled).map((c) => c.name);
  const fromEnv = ENV_OVERRIDES.filter((o) => env[o.env]).map((o) => `${o.path.join('.')} from env ${o.env}`);
  const mqtt = config.mqtt;
  const broker = mqtt.url ? redactUrl(mqtt.url) : `embedded broker on 127.0.0.1:${mqtt.embeddedBrokerPort}`;
  const auth = [mqtt.username ? `user ${mqtt.username}` : '', mqtt.password ? 'password set' : '', mqtt.tls ? 'TLS' : ''].filter(Boolean).join(', ');
  const rec = config.recognition;
  const thresholds = [rec.matchThreshold !== undefined ? `match ≤ ${rec.matchThreshold}` : '', rec.unknownThreshold !== undefined ? `unknown ≥ ${rec.unknownThreshold}` : ''].filter(Boolean).join(', ');
  return [
    `agent:     ${config.agent.id ?? `${hostname()} (the host name)`}`,
    `cameras:   ${enabled.length} enabled${disabled.length ? `, ${disabled.length} disabled (${disabled.join(', ')})` : ''}`,
    ...enabled.map((c) => `  ${c.name}: ${redactUrl(c.url)} ${c.width}x${c.height} @ ${c.fps} fps${c.url.startsWith('rtsp') ? ` over ${c.transport}` : ''}`),
    `broker:    ${broker}${auth ? ` (${auth})` : ''}, topics ${mqtt.prefix}/…`,
    `embedder:  ${embedderName(config)}${thresholds ? `, thresholds ${thresholds}` : ''}`,
    `events:    cooldown ${config.events.cooldownSeconds} s, ${config.events.minVotes} votes, unknown faces ${config.events.reportUnknown ? 'reported' : 'not reported'}`,
    `data dir:  ${config.dataDir ?? '(env FACEGATE_DATA_DIR, else ./.facegate-data)'}`,
    `log level: ${config.log.level}`,
    ...(fromEnv.length ? [`env:       ${fromEnv.join('; ')}`] : []),
  ];
}

export function checkConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): ConfigCheckResult {
  let config: FacegateConfig;
  try {
    config = loadConfig(file, {}, env);
  } catch (err) {
    if (err instanceof ConfigError) return { file, valid: false, problems: err.problems, summary: [] };
    throw err;
  }
  const embedder = embedderProblem(config);
  if (embedder) {
    const at = readConfigFile(file).locate(['recognition', 'embedder']);
    return { file, valid: false, problems: [`${file}${at ? `:${at.line}:${at.column}` : ''}: ${embedder}`], summary: [] };
  }
  return { file, valid: true, problems: [], summary: summarizeConfig(config, env) };
}
