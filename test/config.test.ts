// The configuration a technician edits: the YAML file, its JSON Schema and commented example,
// errors that name the key path, value, reason and line, env overrides, `facegate config check`,
// the reload plan, and the file watcher + reloader against real files.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { resolveConfigFile } from '../agent/config/config-file.js';
import { ConfigReloader, type ReloadOutcome, type ReloadTarget } from '../agent/config/config-reloader.js';
import { configJsonSchemaText, schemaKeyPaths } from '../agent/config/json-schema.js';
import { ConfigError, loadConfig, validateConfig } from '../agent/config/load-config.js';
import { computeReloadPlan } from '../agent/config/reload-plan.js';
import type { CameraSettings, FacegateConfig } from '../agent/config/schema.js';
import { createLogger } from '../agent/logging.js';
import { runCli } from './support/cli.js';
import { repoRoot } from './support/samples.js';

const tmp = mkdtempSync(join(tmpdir(), 'facegate-config-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const exampleFile = join(repoRoot, 'config', 'facegate.example.yaml');
const schemaFile = join(repoRoot, 'config', 'facegate.schema.json');

/** Writes a YAML file in the temp folder and returns its path. */
let fileCount = 0;
const yamlFile = (text: string, name = `c${++fileCount}.yaml`): string => {
  const file = join(tmp, name);
  writeFileSync(file, text);
  return file;
};

/** The ConfigError lines of loading `text`. */
const problemsOf = (text: string, env: NodeJS.ProcessEnv = {}): { file: string; problems: string[] } => {
  const file = yamlFile(text);
  try {
    loadConfig(file, {}, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${(err as Error).message}`);
    return { file, problems: err.problems };
  }
  assert.fail('the configuration was accepted');
};

/** The example with every commented-out option (`# key: value`) uncommented. */
const uncommentedExample = (): string => readFileSync(exampleFile, 'utf8').replace(/^( *)# ( *[a-z][A-Za-z0-9]*:(?: .*)?)$/gm, '$1$2');

/** Key paths present in parsed YAML data, in schemaKeyPaths' notation (`cameras[].url`). */
function dataKeyPaths(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v) => dataKeyPaths(v, `${prefix}[]`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const path = prefix ? `${prefix}.${k}` : k;
    return [path, ...dataKeyPaths(v, path)];
  });
}

describe('config files: schema, example', () => {
  it('config/facegate.schema.json is the JSON Schema generated from the zod schema (npm run config:schema)', () => {
    assert.equal(readFileSync(schemaFile, 'utf8'), configJsonSchemaText(), 'config/facegate.schema.json is stale: run `npm run config:schema`');
  });

  it('the example validates as shipped and with every commented option uncommented, and names every key path', () => {
    const shipped = loadConfig(exampleFile, {}, {});
    assert.equal(shipped.cameras.length, 2);
    const full = uncommentedExample();
    const fullConfig = loadConfig(yamlFile(full), {}, {});
    assert.equal(fullConfig.mqtt.tls?.ca, '/etc/facegate/ca.pem', 'commented options uncomment into place');
    const mentioned = new Set(dataKeyPaths(parse(full)));
    const missing = schemaKeyPaths().filter((p) => !mentioned.has(p));
    assert.deepEqual(missing, [], `config/facegate.example.yaml does not mention: ${missing.join(', ')}`);
    // The documented defaults are the schema's: the example parsed equals the bare defaults
    // wherever it does not set a value on purpose.
    const defaults = validateConfig({}, 'defaults');
    for (const section of ['events', 'gallery', 'log'] as const) assert.deepEqual(shipped[section], defaults[section], `${section} in the example differs from the defaults`);
    assert.deepEqual({ ...shipped.mqtt }, defaults.mqtt);
    assert.deepEqual({ ...shipped.recognition }, defaults.recognition);
    assert.deepEqual(shipped.cameras[0], { ...shipped.cameras[0], enabled: true, fps: 5, width: 1280, height: 720, transport: 'tcp' });
  });

  it('editors validate the example with the JSON Schema, and it rejects what the agent rejects', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const validate = ajv.compile(JSON.parse(readFileSync(schemaFile, 'utf8')) as object);
    for (const text of [readFileSync(exampleFile, 'utf8'), uncommentedExample()]) {
      const data = parse(text) as unknown;
      assert.ok(validate(data), JSON.stringify(validate.errors));
    }
    assert.equal(validate({ cameras: [{ name: 'a', url: 'x', fpss: 2 }] }), false);
    assert.equal(validate({ mqtt: { prefix: 'a/b' } }), false);
  });
});

describe('config errors', () => {
  it('a misspelt key is an error naming the path, the line and the likely key', () => {
    const { file, problems } = problemsOf('cameras:\n  - name: door\n    url: rtsp://x/y\n    fsp: 5\n');
    assert.deepEqual(problems, [`${file}:4:5: cameras[0].fsp: unknown key "fsp" (did you mean "fps"?)`]);
  });

  it('an unknown top-level key lists the known keys', () => {
    const { file, problems } = problemsOf('log:\n  level: info\nfrobnicate: true\n');
    assert.equal(problems.length, 1);
    assert.match(problems[0] as string, new RegExp(`^${file}:3:1: frobnicate: unknown key "frobnicate"; known keys here: agent, .*cameras, mqtt`));
  });

  it('a wrong type names the path, the value, the reason and the line', () => {
    const { file, problems } = problemsOf('cameras:\n  - name: door\n    url: rtsp://x/y\n    fps: fast\n  - { name: yard, url: /dev/video0, transport: quic }\n');
    assert.deepEqual(problems, [
      `${file}:4:10: cameras[0].fps: Invalid input: expected number, received string (got "fast")`,
      `${file}:5:48: cameras[1].transport: Invalid option: expected one of "tcp"|"udp" (got "quic")`,
    ]);
  });

  it('a missing camera URL points at the camera', () => {
    const { file, problems } = problemsOf('cameras:\n  - name: door\n    fps: 2\n');
    assert.deepEqual(problems, [`${file}:2:5: cameras[0].url: required string is missing`]);
  });

  it('bad YAML names the line', () => {
    const { file, problems } = problemsOf('cameras:\n  - name: door\n    url: rtsp://x/y\n   fps: 2\n');
    assert.equal(problems.length, 1);
    assert.match(problems[0] as string, new RegExp(`^${file}:4:\\d+: not valid YAML: `));
  });

  it('reports every problem at once, in file order, and never prints a password', () => {
    const { file, problems } = problemsOf('mqtt:\n  password: 1234\n  prefix: "a/b"\nevents:\n  minVotes: 0\n');
    assert.deepEqual(problems, [
      `${file}:2:13: mqtt.password: Invalid input: expected string, received number (value hidden)`,
      `${file}:3:11: mqtt.prefix: Invalid string: must match pattern /^[^#+/]+$/ (got "a/b")`,
      `${file}:5:13: events.minVotes: Too small: expected number to be >0 (got 0)`,
    ]);
    assert.ok(!problems.join('\n').includes('1234'));
  });

  it('checks rules across keys: duplicate camera names, broker URL (credentials hidden), threshold order', () => {
    const { file, problems } = problemsOf(
      'cameras:\n  - { name: door, url: a }\n  - { name: door, url: b }\nmqtt:\n  url: "http://facegate:s3cret@broker"\nrecognition:\n  matchThreshold: 0.6\n  unknownThreshold: 0.5\n',
    );
    assert.deepEqual(problems, [
      `${file}:3:13: cameras[1].name: camera name already used by cameras[0] (got "door")`,
      `${file}:5:8: mqtt.url: unsupported scheme http: (use mqtt, mqtts, ws or wss) (got "http://***@broker")`,
      `${file}:8:21: recognition.unknownThreshold: must be ≥ recognition.matchThreshold (0.6) (got 0.5)`,
    ]);
  });

  it('an empty key means its default; an empty file is the defaults', () => {
    const config = loadConfig(yamlFile('mqtt:\nevents:\n  cooldownSeconds:\n  minVotes: 2\n'), {}, {});
    assert.equal(config.events.cooldownSeconds, 30);
    assert.equal(config.events.minVotes, 2);
    assert.deepEqual(loadConfig(yamlFile(''), {}, {}), validateConfig({}, 'defaults'));
  });

  it('an unreadable file is an error naming it', () => {
    assert.throws(() => loadConfig(join(tmp, 'nope.yaml'), {}, {}), (err: Error) => err instanceof ConfigError && /nope\.yaml: cannot read: ENOENT/.test(err.message));
  });
});

describe('config sources', () => {
  it('env FACEGATE_MQTT_URL/USERNAME/PASSWORD override the file; flags override env; errors name the variable', () => {
    const file = yamlFile('mqtt:\n  url: mqtt://file:1883\n  username: file\n  password: file\n');
    const env = { FACEGATE_MQTT_URL: 'mqtts://env:8883', FACEGATE_MQTT_USERNAME: 'env-user', FACEGATE_MQTT_PASSWORD: 'env-secret' };
    const config = loadConfig(file, {}, env);
    assert.deepEqual([config.mqtt.url, config.mqtt.username, config.mqtt.password], ['mqtts://env:8883', 'env-user', 'env-secret']);
    assert.equal(loadConfig(file, { mqttUrl: 'mqtt://flag:1883' }, env).mqtt.url, 'mqtt://flag:1883');
    assert.equal(loadConfig(file, {}, { FACEGATE_MQTT_URL: '' }).mqtt.url, 'mqtt://file:1883', 'an empty variable is unset');
    assert.throws(() => loadConfig(file, {}, { FACEGATE_MQTT_URL: 'broker.lan' }), (err: Error) =>
      err instanceof ConfigError && err.problems[0] === 'env FACEGATE_MQTT_URL: mqtt.url: not a URL (mqtt://host:1883, mqtts://…, ws://…, wss://…) (got "broker.lan")');
  });

  it('the file is --config, else env FACEGATE_CONFIG, else config/facegate.yaml when it exists', () => {
    assert.deepEqual(resolveConfigFile('a.yaml', { FACEGATE_CONFIG: '/etc/b.yaml' }, '/srv'), { file: '/srv/a.yaml', origin: '--config' });
    assert.deepEqual(resolveConfigFile(undefined, { FACEGATE_CONFIG: '/etc/b.yaml' }, '/srv'), { file: '/etc/b.yaml', origin: 'env FACEGATE_CONFIG' });
    const dir = mkdtempSync(join(tmp, 'cwd-'));
    assert.deepEqual(resolveConfigFile(undefined, {}, dir), { file: undefined, origin: 'none' });
    mkdirSync(join(dir, 'config'));
    writeFileSync(join(dir, 'config', 'facegate.yaml'), 'log: { level: warn }\n');
    assert.deepEqual(resolveConfigFile(undefined, {}, dir), { file: join(dir, 'config', 'facegate.yaml'), origin: 'default' });
  });
});

const camera = (name: string, extra: Partial<CameraSettings> = {}): CameraSettings => ({ name, url: `rtsp://cam/${name}`, enabled: true, fps: 5, width: 640, height: 360, transport: 'tcp', ...extra });
const configWith = (raw: Record<string, unknown>): FacegateConfig => validateConfig(raw, 'test');

describe('reload plan', () => {
  it('starts added cameras, stops removed and disabled ones, restarts changed ones and leaves the others alone', () => {
    const running = configWith({ cameras: [camera('a'), camera('b'), camera('c'), camera('d'), camera('e', { enabled: false })] });
    const incoming = configWith({ cameras: [camera('a'), camera('c', { fps: 2 }), camera('d', { enabled: false }), camera('e'), camera('f')] });
    const plan = computeReloadPlan(running, incoming);
    assert.deepEqual(plan.stop, ['b', 'd']);
    assert.deepEqual(plan.start.map((c) => c.name), ['e', 'f']);
    assert.deepEqual(plan.restart.map((c) => [c.name, c.fps]), [['c', 2]]);
    assert.deepEqual(plan.unchanged, ['a']);
    assert.deepEqual(plan.live, []);
    assert.deepEqual(plan.needsRestart, []);
    assert.deepEqual(plan.next.cameras, incoming.cameras);
    assert.equal(plan.empty, false);
  });

  it('applies thresholds, event rules and the log level at once; the rest waits for a restart and keeps its running value', () => {
    const running = configWith({ cameras: [camera('a')], mqtt: { url: 'mqtt://old:1883' }, recognition: { matchThreshold: 0.6 } });
    const incoming = configWith({
      cameras: [camera('a')],
      mqtt: { url: 'mqtt://new:1883', statsIntervalSeconds: 5 },
      recognition: { matchThreshold: 0.55, unknownThreshold: 0.7, embedder: 'other', maxBatch: 4 },
      events: { cooldownSeconds: 5 },
      log: { level: 'debug' },
      dataDir: '/srv/facegate',
    });
    const plan = computeReloadPlan(running, incoming);
    assert.deepEqual(plan.live.sort(), ['events.cooldownSeconds', 'log.level', 'recognition.matchThreshold', 'recognition.unknownThreshold']);
    assert.deepEqual(plan.needsRestart.sort(), ['dataDir', 'mqtt.statsIntervalSeconds', 'mqtt.url', 'recognition.embedder', 'recognition.maxBatch']);
    assert.deepEqual(plan.unchanged, ['a']);
    assert.equal(plan.next.recognition.matchThreshold, 0.55);
    assert.equal(plan.next.recognition.unknownThreshold, 0.7);
    assert.equal(plan.next.events.cooldownSeconds, 5);
    assert.equal(plan.next.log.level, 'debug');
    assert.equal(plan.next.mqtt.url, 'mqtt://old:1883');
    assert.equal(plan.next.recognition.embedder, undefined);
    assert.equal(plan.next.recognition.maxBatch, 8);
    assert.equal(plan.next.dataDir, undefined);
    // Removing a threshold goes back to the model's own.
    const back = computeReloadPlan(plan.next, configWith({ cameras: [camera('a')], mqtt: { url: 'mqtt://old:1883' } }));
    assert.equal(back.next.recognition.matchThreshold, undefined);
    assert.ok(back.live.includes('recognition.matchThreshold'));
  });

  it('an identical file is an empty plan', () => {
    const config = configWith({ cameras: [camera('a')], events: { minVotes: 2 } });
    assert.equal(computeReloadPlan(config, structuredClone(config)).empty, true);
  });
});

/** Records what the reloader asks of the agent. */
class RecordingTarget implements ReloadTarget {
  calls: string[] = [];
  errors: { source: string; message: string; details?: unknown }[] = [];
  refuseLive = false;
  constructor(public config: FacegateConfig) {}
  applyLiveSettings(config: FacegateConfig): void {
    if (this.refuseLive) throw new Error('thresholds unusable');
    this.calls.push('live');
    this.config = config;
  }
  startCamera(cam: CameraSettings): boolean {
    this.calls.push(`start ${cam.name}`);
    return true;
  }
  async stopCamera(name: string): Promise<boolean> {
    this.calls.push(`stop ${name}`);
    return true;
  }
  reportError(source: string, message: string, details?: unknown): void {
    this.errors.push({ source, message, details });
  }
}

describe('config reloader (real files, fs.watch)', () => {
  const waitForOutcome = (outcomes: ReloadOutcome[], count: number, timeoutMs = 10_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (outcomes.length >= count) {
          clearInterval(poll);
          resolve();
        } else if (Date.now() - started > timeoutMs) {
          clearInterval(poll);
          reject(new Error(`expected ${count} reloads, saw ${outcomes.length}`));
        }
      }, 20);
    });

  it('applies an edit written in place and one replaced by rename; rejects a broken file and keeps the running config', async () => {
    const dir = mkdtempSync(join(tmp, 'watch-'));
    const file = join(dir, 'facegate.yaml');
    const v1 = 'cameras:\n  - { name: a, url: rtsp://cam/a }\n  - { name: b, url: rtsp://cam/b }\n';
    writeFileSync(file, v1);
    const target = new RecordingTarget(loadConfig(file, {}, {}));
    const outcomes: ReloadOutcome[] = [];
    const reloader = new ConfigReloader(target, { file, env: {}, log: createLogger('silent'), debounceMs: 100, pollMs: 0, onReload: (o) => outcomes.push(o) });
    reloader.start();
    try {
      // In place: b removed, c added, a untouched.
      writeFileSync(file, 'cameras:\n  - { name: a, url: rtsp://cam/a }\n  - { name: c, url: rtsp://cam/c }\n');
      await waitForOutcome(outcomes, 1);
      assert.equal(outcomes[0]?.status, 'applied');
      assert.deepEqual(target.calls, ['live', 'stop b', 'start c']);
      // Replaced by rename, as vim and sed -i do: a changed.
      target.calls = [];
      writeFileSync(join(dir, '.facegate.yaml.swp'), 'cameras:\n  - { name: a, url: rtsp://cam/a, fps: 2 }\n  - { name: c, url: rtsp://cam/c }\nevents: { cooldownSeconds: 3 }\n');
      renameSync(join(dir, '.facegate.yaml.swp'), file);
      await waitForOutcome(outcomes, 2);
      assert.deepEqual(target.calls, ['live', 'stop a', 'start a']);
      assert.equal(target.config.events.cooldownSeconds, 3);
      // Broken: nothing is applied, the errors are reported with their lines.
      target.calls = [];
      const running = target.config;
      writeFileSync(file, 'cameras:\n  - { name: a, url: rtsp://cam/a, fps: 0 }\n');
      await waitForOutcome(outcomes, 3);
      const rejected = outcomes[2];
      assert.equal(rejected?.status, 'rejected');
      assert.deepEqual(rejected?.status === 'rejected' ? rejected.problems : [], [`${file}:2:40: cameras[0].fps: Too small: expected number to be >0 (got 0)`]);
      assert.deepEqual(target.calls, []);
      assert.equal(target.config, running);
      assert.equal(target.errors.length, 1);
      assert.equal(target.errors[0]?.source, 'config');
      assert.deepEqual((target.errors[0]?.details as { problems: string[] }).problems, rejected?.status === 'rejected' ? rejected.problems : []);
      // Unusable thresholds (the agent refuses them): rejected too, cameras untouched.
      target.refuseLive = true;
      writeFileSync(file, 'cameras:\n  - { name: a, url: rtsp://cam/a, fps: 2 }\nrecognition: { matchThreshold: 0.3 }\n');
      await waitForOutcome(outcomes, 4);
      assert.equal(outcomes[3]?.status, 'rejected');
      assert.deepEqual(target.calls, []);
    } finally {
      await reloader.stop();
    }
  });

  it('folds a burst of writes into one reload and ignores a write that changes nothing', async () => {
    const file = yamlFile('events: { minVotes: 3 }\n');
    const target = new RecordingTarget(loadConfig(file, {}, {}));
    const outcomes: ReloadOutcome[] = [];
    const reloader = new ConfigReloader(target, { file, env: {}, log: createLogger('silent'), debounceMs: 200, pollMs: 0, onReload: (o) => outcomes.push(o) });
    reloader.start();
    try {
      for (let votes = 4; votes <= 8; votes++) writeFileSync(file, `events: { minVotes: ${votes} }\n`);
      await waitForOutcome(outcomes, 1);
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(outcomes.length, 1);
      assert.equal(target.config.events.minVotes, 8);
      writeFileSync(file, 'events: { minVotes: 8 }\n');
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(outcomes.length, 1, 'same content: no reload');
      writeFileSync(file, 'events: { minVotes: 8 }  # a comment changes the bytes, not the config\n');
      await waitForOutcome(outcomes, 2);
      assert.equal(outcomes[1]?.status, 'unchanged');
    } finally {
      await reloader.stop();
    }
  });
});

describe('facegate config check', { timeout: 120_000 }, () => {
  it('exits 0 with a summary for the example', async () => {
    const r = await runCli(['config', 'check', exampleFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /facegate\.example\.yaml: valid/);
    assert.match(r.stdout, /cameras: +1 enabled, 1 disabled \(garage\)/);
    assert.match(r.stdout, /entrance: rtsp:\/\/\*\*\*@192\.0\.2\.10:554\/stream1 1280x720 @ 5 fps over tcp/, 'camera credentials are hidden');
    assert.match(r.stdout, /broker: +embedded broker on 127\.0\.0\.1:1883/);
    assert.match(r.stdout, /embedder: +dlib-resnet/);
  });

  it('exits 1 printing every error of a broken file: typo key, wrong type, missing URL', async () => {
    const file = yamlFile('cameras:\n  - name: door\n    url: rtsp://x/y\n    fsp: 5\n  - name: yard\n    fps: fast\nmqtt:\n  prefix: facegate\n', 'broken.yaml');
    const r = await runCli(['config', 'check', file]);
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.stderr.trim().split('\n'), [
      `${file}: 3 errors`,
      `${file}:4:5: cameras[0].fsp: unknown key "fsp" (did you mean "fps"?)`,
      `${file}:5:5: cameras[1].url: required string is missing`,
      `${file}:6:10: cameras[1].fps: Invalid input: expected number, received string (got "fast")`,
    ]);
  });

  it('exits 1 on bad YAML and on an unknown embedder, naming the line', async () => {
    const badYaml = yamlFile('cameras:\n  - name: door\n    url: "rtsp://x/y\n', 'bad-yaml.yaml');
    const badModel = yamlFile('recognition:\n  minFaceSize: 40\n  embedder: facenet-9000\n', 'bad-model.yaml');
    const [a, b] = [await runCli(['config', 'check', badYaml]), await runCli(['config', 'check', badModel])];
    assert.equal(a.code, 1);
    assert.match(a.stderr, new RegExp(`^${badYaml}: 1 error\\n${badYaml}:\\d+:\\d+: not valid YAML: Missing closing "quote`));
    assert.equal(b.code, 1);
    assert.match(b.stderr, new RegExp(`${badModel}:3:13: recognition\\.embedder: unknown model "facenet-9000"; registered: `));
  });

  it('reads env FACEGATE_CONFIG and prints JSON with --json', async () => {
    const file = yamlFile('cameras:\n  - { name: door, url: /dev/video0 }\n', 'env.yaml');
    const r = await runCli(['config', 'check', '--json'], 'warn', { FACEGATE_CONFIG: file, FACEGATE_MQTT_PASSWORD: 'from-env' });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { file: string; valid: boolean; problems: string[]; summary: string[] };
    assert.equal(result.file, file);
    assert.equal(result.valid, true);
    assert.ok(result.summary.some((l) => l.includes('mqtt.password from env FACEGATE_MQTT_PASSWORD')), result.summary.join('\n'));
    assert.ok(!r.stdout.includes('from-env'), 'the password itself is never printed');
  });
});
