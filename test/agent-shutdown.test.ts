// Graceful shutdown of `facegate run` (issue 7 §2): on SIGTERM the agent stops its cameras, lets
// in-flight frames finish, delivers what the broker accepts, publishes 'offline' and exits within
// shutdownTimeoutSeconds — also when the broker is gone (undelivered events stay in the outbox).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { faceApiSamplePath, makeVideo, type TestVideo } from '../agent/camera/slideshow-video.js';
import { Outbox } from '../agent/events/outbox.js';
import { Mosquitto, mosquittoAvailable } from './support/mosquitto.js';
import { MqttRecorder } from './support/mqtt-recorder.js';
import { repoRoot } from './support/samples.js';

const BOUND_S = 4;

interface RunningAgent {
  child: ChildProcess;
  /** stdout (the run logs, JSON) and stderr (onnxruntime, crashes) as they arrived. */
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function runAgent(configFile: string): RunningAgent {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'agent', 'main.ts'), 'run', '--config', configFile], {
    cwd: repoRoot,
    env: { ...process.env, FACEGATE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  return { child, output: () => output, exit };
}

describe('facegate run: graceful shutdown on SIGTERM', { skip: mosquittoAvailable() ? false : 'mosquitto is not installed', timeout: 240_000 }, () => {
  let broker: Mosquitto;
  let video: TestVideo;
  const dirs: string[] = [];
  const children: ChildProcess[] = [];

  before(async () => {
    // Gray gaps longer than the tracker's 2 s track age: every loop is a new visit, so events keep coming.
    video = await makeVideo({ segments: [{ image: null, seconds: 3 }, { image: faceApiSamplePath(6), seconds: 2 }], width: 640, height: 360, fps: 10 });
    broker = await Mosquitto.start();
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await broker?.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  let kept: { dataDir: string; eventIds: string[] } | undefined;

  /** Starts an agent with a config file; resolves once it is online and analysing frames. */
  async function startAgent(id: string, dataDir = mkdtempSync(join(tmpdir(), 'facegate-shutdown-'))): Promise<{ agent: RunningAgent; dataDir: string; sub: MqttRecorder }> {
    dirs.push(dataDir);
    const configFile = join(dataDir, 'facegate.yaml');
    writeFileSync(
      configFile,
      [
        `agent: { id: ${id} }`,
        `dataDir: ${JSON.stringify(dataDir)}`,
        `cameras: [{ name: door, url: ${JSON.stringify(video.path)}, fps: 3, width: 640, height: 360 }]`,
        `mqtt: { url: ${JSON.stringify(broker.url)}, statsIntervalSeconds: 1 }`,
        'events: { minVotes: 1, cooldownSeconds: 0 }',
        `shutdownTimeoutSeconds: ${BOUND_S}`,
        '',
      ].join('\n'),
    );
    const sub = await MqttRecorder.connect(broker.url, [`facegate/${id}/#`]);
    const agent = runAgent(configFile);
    children.push(agent.child);
    await sub.next((m) => m.topic === `facegate/${id}/availability` && m.text === 'online', 90_000, 'online').catch((err: Error) => {
      throw new Error(`${err.message}\n${agent.output()}`);
    });
    await sub.next((m) => m.topic === `facegate/${id}/identity` || m.topic === `facegate/${id}/door/identity`, 90_000, 'an identity event (faces are being analysed)');
    return { agent, dataDir, sub };
  }

  it('delivers, publishes offline and exits 0 within the bound', async () => {
    const { agent, dataDir, sub } = await startAgent('term');
    try {
      const mark = sub.mark();
      const sentAt = Date.now();
      agent.child.kill('SIGTERM');
      const exit = await agent.exit;
      const took = exit.at - sentAt;
      assert.equal(exit.code, 0, `graceful exit, not forced:\n${agent.output().slice(-2000)}`);
      assert.ok(took <= BOUND_S * 1000 + 1000, `exited ${took} ms after SIGTERM (bound ${BOUND_S} s)`);
      assert.match(agent.output(), /"msg":"stopping"/);
      assert.match(agent.output(), /"msg":"stopped"/);
      const offline = await sub.next((m) => m.topic === 'facegate/term/availability' && m.text === 'offline', 5000, 'offline', mark);
      assert.equal(offline.qos, 1);
      const late = await MqttRecorder.connect(broker.url, ['facegate/term/availability']);
      const retained = await late.next(() => true, 5000, 'retained availability').finally(() => late.close());
      assert.deepEqual([retained.text, retained.retain], ['offline', true]);
      // Every event it produced was acknowledged before it exited (in-flight frames included).
      const outbox = Outbox.open(dataDir);
      assert.equal(outbox.depth, 0, 'nothing left undelivered');
      outbox.close();
      const identities = sub.messages.filter((m) => m.topic === 'facegate/term/door/identity');
      assert.ok(identities.length >= 1);
      console.log(`# exited ${took} ms after SIGTERM (bound ${BOUND_S} s); ${identities.length} identity event(s) delivered`);
    } finally {
      await sub.close();
    }
  });

  it('exits within the bound when the broker is gone; what was not delivered stays in the outbox', async () => {
    const { agent, dataDir, sub } = await startAgent('term2');
    await sub.close();
    await broker.stop();
    try {
      // Faces keep arriving while the broker is down: their events go to the outbox (read it as it
      // fills). Only events written after the broker died count: earlier ones may still be acknowledged.
      const stoppedAt = Date.now();
      const deadline = stoppedAt + 60_000;
      let afterStop = 0;
      while (afterStop === 0) {
        const box = Outbox.open(dataDir);
        afterStop = box.after(0, 10_000).filter((e) => e.createdAt > stoppedAt).length;
        box.close();
        if (Date.now() > deadline) throw new Error(`no event reached the outbox while the broker was down\n${agent.output().split('\n').filter((l) => !l.includes('ECONNREFUSED')).join('\n').slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const sentAt = Date.now();
      agent.child.kill('SIGTERM');
      const exit = await agent.exit;
      const took = exit.at - sentAt;
      assert.equal(exit.code, 0, agent.output().slice(-2000));
      assert.ok(took <= BOUND_S * 1000 + 1000, `exited ${took} ms after SIGTERM (bound ${BOUND_S} s)`);
      const outbox = Outbox.open(dataDir);
      const waiting = outbox.depth;
      kept = { dataDir, eventIds: outbox.after(0, 1000).map((e) => e.eventId) };
      outbox.close();
      assert.ok(waiting >= afterStop, `the events produced while the broker was down wait in the outbox\n${agent.output().split('\n').filter((l) => !l.includes('ECONNREFUSED')).join('\n').slice(-3000)}`);
      assert.match(agent.output(), /stay in the outbox for the next run/);
      console.log(`# broker down: exited ${took} ms after SIGTERM; ${waiting} event(s) kept in the outbox`);
    } finally {
      await broker.restart();
    }
  });

  it('a restarted agent delivers the events its predecessor kept, first and in order', async () => {
    assert.ok(kept && kept.eventIds.length > 0, 'the previous test kept events');
    const { dataDir, eventIds } = kept;
    // startAgent subscribes before the agent starts, so nothing it sends is missed.
    const { agent, sub } = await startAgent('term2', dataDir);
    try {
      await sub.next(() => sub.messages.filter((m) => m.topic === 'facegate/term2/door/identity' && eventIds.includes((JSON.parse(m.text) as { eventId: string }).eventId)).length >= eventIds.length, 30_000, 'the kept events');
      const ids = sub.messages.filter((m) => m.topic === 'facegate/term2/door/identity').map((m) => (JSON.parse(m.text) as { eventId: string }).eventId);
      assert.deepEqual(ids.slice(0, eventIds.length), eventIds, 'the backlog goes out first, in the order it was written');
      agent.child.kill('SIGTERM');
      assert.equal((await agent.exit).code, 0);
    } finally {
      await sub.close();
    }
  });
});
