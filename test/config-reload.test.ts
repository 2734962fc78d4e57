// Hot reload with real parts: `facegate run --config FILE` as a child process, a GStreamer RTSP
// camera and a looped video file, Mosquitto. The file is edited while the agent runs: a camera is
// added and another removed while the untouched RTSP camera keeps its one ffmpeg run (no reconnect,
// frames keep coming); then a broken file is rejected, its errors logged and published on
// <prefix>/<agent>/errors, and the cameras keep streaming.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { makeVideo } from '../agent/camera/slideshow-video.js';
import { Mosquitto } from './support/mosquitto.js';
import { type RtspServer, startRtspServer } from './support/rtsp-server.js';
import { repoRoot } from './support/samples.js';

interface CameraStat {
  state: string;
  framesIn: number;
  reconnects: number;
}
interface LogLine {
  level: number;
  msg: string;
  camera?: string;
  [key: string]: unknown;
}

const waitFor = async (what: string, cond: () => boolean, timeoutMs: number, detail: () => string = () => ''): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('config hot reload (facegate run, RTSP, Mosquitto)', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'facegate-reload-'));
  const configFile = join(dir, 'facegate.yaml');
  let broker: Mosquitto;
  let rtsp: RtspServer;
  let video: string;
  let agent: ChildProcess;
  let subscriber: mqtt.MqttClient;
  const logs: LogLine[] = [];
  let rawOutput = '';
  let stats: { cameras: Record<string, CameraStat> } | undefined;
  const errors: { source: string; message: string; details?: { file: string; problems: string[] } }[] = [];

  const camerasYaml = (cams: string[]): string => cams.map((c) => `  - ${c}`).join('\n');
  const writeConfig = (cams: string[], extra = ''): void => {
    writeFileSync(
      configFile,
      `agent: { id: reload }\ndataDir: ${join(dir, 'data')}\ncameras:\n${camerasYaml(cams)}\nmqtt:\n  url: ${broker.url}\n  statsIntervalSeconds: 1\nlog: { level: info }\n${extra}`,
    );
  };
  const keep = (): string => `{ name: keep, url: "${rtsp.url}", fps: 3, width: 320, height: 240 }`;
  const fileCam = (name: string): string => `{ name: ${name}, url: "${video}", fps: 3, width: 320, height: 240 }`;
  const streamingRuns = (camera: string): number => logs.filter((l) => l.camera === camera && l.msg === 'camera streaming').length;
  const tail = (): string => rawOutput.split('\n').slice(-30).join('\n');

  before(async () => {
    // Gray frames only: this test is about cameras and configuration, not faces.
    video = (await makeVideo({ segments: [{ image: null, seconds: 4 }], width: 320, height: 240, fps: 10 })).path;
    broker = await Mosquitto.start();
    rtsp = await startRtspServer({ video });
    subscriber = mqtt.connect(broker.url, { clientId: 'reload-subscriber' });
    await new Promise<void>((resolve) => subscriber.on('connect', () => resolve()));
    subscriber.on('message', (topic, payload) => {
      if (topic === 'facegate/reload/stats') stats = JSON.parse(payload.toString()) as typeof stats;
      else if (topic === 'facegate/reload/errors') errors.push(JSON.parse(payload.toString()) as (typeof errors)[number]);
    });
    await subscriber.subscribeAsync('facegate/reload/#', { qos: 1 });
    writeConfig([keep(), fileCam('old')]);
    const env = { ...process.env };
    delete env.FACEGATE_LOG_LEVEL; // the level comes from the file
    agent = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'agent', 'main.ts'), 'run', '--config', configFile], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let pending = '';
    agent.stdout?.on('data', (b: Buffer) => {
      rawOutput += b.toString();
      pending += b.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        try {
          logs.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
      }
    });
    agent.stderr?.on('data', (b: Buffer) => (rawOutput += b.toString()));
  });

  after(async () => {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGKILL');
      await new Promise((r) => agent.once('exit', r));
    }
    subscriber?.end(true);
    await rtsp?.stop();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs JSON to stdout at the configured level and streams both cameras', async () => {
    await waitFor('both cameras streaming', () => ['keep', 'old'].every((c) => (stats?.cameras[c]?.framesIn ?? 0) > 0), 150_000, tail);
    assert.ok(logs.some((l) => l.msg === 'configuration loaded' && l.file === configFile), 'says which file it runs');
    assert.ok(logs.some((l) => l.msg === 'watching the configuration file for changes'));
    assert.ok(logs.every((l) => l.level >= 30), 'no debug lines at level info');
    assert.equal(streamingRuns('keep'), 1);
  });

  it('adds and removes cameras live without interrupting the untouched one', async () => {
    const before = stats?.cameras.keep as CameraStat;
    writeConfig([keep(), fileCam('new')], 'events: { cooldownSeconds: 5 }\ngallery: { pollSeconds: 7 }\nrecognition: { matchThreshold: 0.5 }\n');
    await waitFor('the reload', () => logs.some((l) => l.msg === 'configuration reloaded'), 30_000, tail);
    const reloaded = logs.find((l) => l.msg === 'configuration reloaded') as LogLine;
    assert.deepEqual([reloaded.stopped, reloaded.started, reloaded.restarted, reloaded.unchanged, reloaded.live], [['old'], ['new'], [], ['keep'], ['recognition.matchThreshold', 'events.cooldownSeconds']]);
    const restartNeeded = logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('changed options need a restart'));
    assert.deepEqual(restartNeeded?.keys, ['gallery.pollSeconds']);
    await waitFor('the new camera streaming, the old one gone', () => (stats?.cameras.new?.framesIn ?? 0) > 0 && stats?.cameras.old === undefined, 60_000, tail);
    const framesAtSwap = stats?.cameras.keep?.framesIn ?? 0;
    await waitFor('more frames from the untouched camera', () => (stats?.cameras.keep?.framesIn ?? 0) > framesAtSwap + 3, 30_000, tail);
    const after = stats?.cameras.keep as CameraStat;
    assert.equal(after.state, 'streaming');
    assert.equal(after.reconnects, before.reconnects, 'the untouched camera was not reconnected');
    assert.ok(after.framesIn > before.framesIn);
    assert.equal(streamingRuns('keep'), 1, 'one ffmpeg run for the untouched camera');
    assert.equal(streamingRuns('new'), 1);
  });

  it('rejects a broken file: errors logged and published with their lines, the running config stays', async () => {
    const framesBefore = stats?.cameras.keep?.framesIn ?? 0;
    writeConfig([keep(), `{ name: new, url: "${video}", fps: fast }`, '{ name: third, url: /dev/null, fsp: 2 }']);
    await waitFor('the rejection on the errors topic', () => errors.length > 0, 30_000, tail);
    const reported = errors[0];
    assert.equal(reported?.source, 'config');
    const text = readFileSync(configFile, 'utf8').split('\n');
    const at = (needle: string): string => {
      const line = text.findIndex((l) => l.includes(needle));
      return `${line + 1}:${(text[line] as string).indexOf(needle) + 1}`;
    };
    assert.deepEqual(reported?.details?.problems, [
      `${configFile}:${at('fast')}: cameras[1].fps: Invalid input: expected number, received string (got "fast")`,
      `${configFile}:${at('fsp')}: cameras[2].fsp: unknown key "fsp" (did you mean "fps"?)`,
    ]);
    const rejected = logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration rejected'));
    assert.ok(rejected, 'the rejection is logged');
    assert.equal(rejected.level, 50);
    assert.deepEqual(rejected.problems, reported?.details?.problems);
    await waitFor('frames after the rejection', () => (stats?.cameras.keep?.framesIn ?? 0) > framesBefore + 3 && (stats?.cameras.new?.framesIn ?? 0) > 0, 30_000, tail);
    assert.deepEqual(Object.keys(stats?.cameras ?? {}).sort(), ['keep', 'new']);
    assert.equal(streamingRuns('keep'), 1);
    assert.equal(streamingRuns('new'), 1, 'the camera with the broken entry keeps running as it was');
  });

  it('rejects thresholds the embedder cannot use, changing nothing', async () => {
    const before = errors.length;
    writeConfig([keep(), fileCam('new'), fileCam('third')], 'recognition: { unknownThreshold: 0.3 }\n');
    await waitFor('the rejection', () => errors.length > before, 30_000, tail);
    assert.match(errors[before]?.details?.problems[0] ?? '', /unknown threshold \(0\.3\) must be a number ≥ the match threshold/);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(stats?.cameras.third, undefined, 'no camera of the rejected file was started');
    assert.equal(streamingRuns('keep'), 1);
  });

  it('stops on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    agent.kill('SIGTERM');
    assert.equal(await exited, 0, tail());
  });
});
