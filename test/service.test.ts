// Running as a service: the systemd unit (systemd-analyze verify and security), the install
// script (staged into a temporary root), systemd's notify protocol (readiness, watchdog pings,
// stopping) against a real unix datagram socket, `facegate run` under it, and the pm2 file.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '../agent/logging.js';
import { SystemdNotifier } from '../agent/service/sd-notify.js';
import { startNotifySocket } from './support/notify-socket.js';
import { freePort } from './support/ports.js';
import { repoRoot } from './support/samples.js';

const unitFile = join(repoRoot, 'systemd', 'facegate.service');
const tmp = mkdtempSync(join(tmpdir(), 'facegate-service-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const run = (cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(cmd, args, { ...options, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const waitFor = async (what: string, cond: () => boolean, timeoutMs: number, detail: () => string = () => ''): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail()}`);
    await sleep(50);
  }
};

/** `Key=value` lines of the unit's [Service] section, values per key in order. */
function serviceDirectives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) section = line;
    else if (section === '[Service]' && line && !line.startsWith('#')) {
      const i = line.indexOf('=');
      out.set(line.slice(0, i), [...(out.get(line.slice(0, i)) ?? []), line.slice(i + 1)]);
    }
  }
  return out;
}

// systemd-analyze comes with Debian's systemd package (test/support/install-test-deps.sh).
const SYSTEMD_ANALYZE = spawnSync('systemd-analyze', ['--version']).status === 0 ? 'systemd-analyze' : undefined;

/** The unit as installed on this machine: ExecStart's node is the one running the tests. */
const installedCopy = (text: string, name = 'facegate.service'): string => {
  const dir = mkdtempSync(join(tmp, 'unit-'));
  const file = join(dir, name);
  writeFileSync(file, text.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `));
  return file;
};

describe('systemd unit', () => {
  const text = readFileSync(unitFile, 'utf8');
  const d = serviceDirectives(text);

  it('runs the built agent as a dedicated user, restarts on failure, with a watchdog and the hardening asked for', () => {
    assert.deepEqual(d.get('ExecStart'), ['/usr/bin/node /opt/facegate/dist/agent/main.js run --config /etc/facegate/facegate.yaml']);
    assert.deepEqual(d.get('User'), ['facegate']);
    assert.deepEqual(d.get('Type'), ['notify']);
    assert.deepEqual(d.get('NotifyAccess'), ['all'], 'systemd-notify runs as a child of the agent');
    assert.deepEqual(d.get('Restart'), ['on-failure']);
    assert.match(d.get('WatchdogSec')?.[0] ?? '', /^\d+s$/);
    for (const [key, value] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['DevicePolicy', 'closed'], ['ReadWritePaths', '/var/lib/facegate']]) {
      assert.deepEqual(d.get(key as string), [value], key);
    }
    assert.deepEqual(d.get('DeviceAllow'), ['char-nvidia* rw', 'char-video4linux rw'], 'GPU and V4L2 devices only');
    assert.equal(d.get('MemoryDenyWriteExecute'), undefined, 'V8 needs W+X memory');
    // Stop budget: the agent's graceful shutdown (10 s by default) must fit.
    assert.ok(Number.parseInt(d.get('TimeoutStopSec')?.[0] ?? '0', 10) > 10);
  });

  it('passes systemd-analyze verify with no message, and a broken copy does not', { skip: SYSTEMD_ANALYZE ? false : 'systemd-analyze missing (Debian package systemd)' }, async () => {
    const ok = await run('systemd-analyze', ['verify', installedCopy(text)]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stderr.trim(), '', 'verify printed warnings');
    const broken = await run('systemd-analyze', ['verify', installedCopy(text.replace('ProtectSystem=strict', 'ProtectSystem=sideways\nRestartt=always'))]);
    assert.match(broken.stderr, /Unknown key 'Restartt'/);
    assert.match(broken.stderr, /sideways/);
  });

  it('rates as well hardened by systemd-analyze security (exposure below 3)', { skip: SYSTEMD_ANALYZE ? false : 'systemd-analyze missing (Debian package systemd)' }, async () => {
    const r = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', installedCopy(text)]);
    const level = /Overall exposure level for facegate\.service: ([\d.]+)/.exec(r.stdout + r.stderr);
    assert.ok(level, `no exposure level in:\n${r.stdout}${r.stderr}`);
    assert.ok(Number(level[1]) < 3, `exposure ${level[1]}`);
  });
});

describe('systemd/install.sh', () => {
  it('stages code, unit, config, env file and command under a root, the config valid and the unit verified', async () => {
    assert.ok(existsSync(join(repoRoot, 'dist', 'agent', 'main.js')), 'dist/ is missing: `npm ci` builds it, or run `npm run build`');
    const root = join(tmp, 'root');
    const r = await run('bash', [join(repoRoot, 'systemd', 'install.sh'), '--root', root, '--skip-build']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const unit = readFileSync(join(root, 'etc/systemd/system/facegate.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=${process.execPath} /opt/facegate/dist/agent/main.js run --config /etc/facegate/facegate.yaml$`, 'm'));
    assert.ok(existsSync(join(root, 'opt/facegate/dist/agent/main.js')));
    assert.ok(existsSync(join(root, 'opt/facegate/models/manifest.json')));
    assert.ok(!existsSync(join(root, 'opt/facegate/test')), 'tests are not installed');
    assert.equal(readFileSync(join(root, 'etc/facegate/facegate.env'), 'utf8').includes('FACEGATE_MQTT_PASSWORD'), true);
    const check = await run(process.execPath, [join(root, 'opt/facegate/dist/agent/main.js'), 'config', 'check', join(root, 'etc/facegate/facegate.yaml')]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /data dir: +\/var\/lib\/facegate/);
    if (SYSTEMD_ANALYZE) {
      const v = await run('systemd-analyze', ['verify', join(root, 'etc/systemd/system/facegate.service')]);
      assert.equal(v.code, 0, v.stderr);
      assert.equal(v.stderr.trim(), '');
    }
    // A second run keeps an edited config.
    writeFileSync(join(root, 'etc/facegate/facegate.yaml'), 'log: { level: warn }\n');
    assert.equal((await run('bash', [join(repoRoot, 'systemd', 'install.sh'), '--root', root, '--skip-build'])).code, 0);
    assert.equal(readFileSync(join(root, 'etc/facegate/facegate.yaml'), 'utf8'), 'log: { level: warn }\n');
  });
});

describe('systemd notify protocol', { timeout: 180_000 }, () => {
  it('sends READY=1 with a status, pings the watchdog at half its timeout while healthy, then STOPPING=1', async () => {
    const socket = await startNotifySocket();
    try {
      let healthy = true;
      const env = { ...process.env, NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '400000', WATCHDOG_PID: String(process.pid) };
      const notifier = SystemdNotifier.fromEnv(createLogger('silent'), { env, isHealthy: () => healthy });
      assert.ok(notifier);
      assert.equal(notifier.watchdogIntervalMs, 200);
      assert.equal(await notifier.ready('running 2 camera(s)'), true);
      assert.deepEqual(socket.messages.slice(0, 2), ['READY=1\nSTATUS=running 2 camera(s)', 'BARRIER=1']);
      notifier.startWatchdog();
      await waitFor('3 watchdog pings', () => notifier.pings >= 3, 10_000);
      healthy = false;
      await sleep(300);
      const pingsWhenUnhealthy = socket.messages.filter((m) => m === 'WATCHDOG=1').length;
      await sleep(600);
      assert.equal(socket.messages.filter((m) => m === 'WATCHDOG=1').length, pingsWhenUnhealthy, 'no pings while unhealthy: systemd will restart');
      assert.ok(notifier.skipped >= 2);
      assert.equal(await notifier.stopping(), true);
      assert.equal(socket.messages.filter((m) => m !== 'BARRIER=1').at(-1), 'STOPPING=1');
    } finally {
      await socket.stop();
    }
  });

  it('does nothing without NOTIFY_SOCKET, and no watchdog for another PID or when systemd-notify is missing', async () => {
    const log = createLogger('silent');
    assert.equal(SystemdNotifier.fromEnv(log, { env: {} }), undefined);
    assert.equal(SystemdNotifier.fromEnv(log, { env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' } })?.watchdogIntervalMs, undefined);
    const missing = SystemdNotifier.fromEnv(log, { env: { NOTIFY_SOCKET: join(tmp, 'none.sock') }, binary: join(tmp, 'no-systemd-notify') });
    assert.equal(await missing?.ready(), false, 'a failed notification is reported, not thrown');
  });

  it('facegate run: READY=1 once running, watchdog pings, SIGHUP survives, STOPPING=1 and exit 0 on SIGTERM', async () => {
    const socket = await startNotifySocket();
    let agent: ChildProcess | undefined;
    let output = '';
    try {
      const config = join(tmp, 'notify.yaml');
      writeFileSync(config, `agent: { id: notify }\ndataDir: ${join(tmp, 'notify-data')}\nmqtt: { embeddedBrokerPort: ${await freePort()} }\n`);
      agent = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'agent', 'main.ts'), 'run', '--config', config], {
        cwd: repoRoot,
        env: { ...process.env, FACEGATE_LOG_LEVEL: 'info', NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '2000000' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      agent.stdout?.on('data', (b: Buffer) => (output += b.toString()));
      agent.stderr?.on('data', (b: Buffer) => (output += b.toString()));
      await waitFor('READY=1', () => socket.messages.some((m) => m.startsWith('READY=1')), 120_000, () => output);
      assert.match(output, /facegate agent running/, 'ready only after the agent started');
      await waitFor('2 watchdog pings', () => socket.messages.filter((m) => m === 'WATCHDOG=1').length >= 2, 10_000, () => output);
      agent.kill('SIGHUP');
      await waitFor('the reload', () => output.includes('SIGHUP: reloading the configuration'), 10_000, () => output);
      await sleep(500);
      assert.equal(agent.exitCode, null, 'SIGHUP does not end the agent');
      const exited = new Promise<number | null>((resolve) => agent?.once('exit', (code) => resolve(code)));
      agent.kill('SIGTERM');
      assert.equal(await exited, 0, output);
      assert.ok(socket.messages.includes('STOPPING=1'));
    } finally {
      if (agent && agent.exitCode === null) agent.kill('SIGKILL');
      await socket.stop();
    }
  });
});

describe('pm2 ecosystem file', () => {
  it('starts the built agent with run --config, restarts with a delay, waits for the graceful shutdown, writes log files', () => {
    const file = join(repoRoot, 'config', 'ecosystem.config.cjs');
    const { apps } = createRequire(import.meta.url)(file) as { apps: Record<string, unknown>[] };
    assert.equal(apps.length, 1);
    const app = apps[0] as Record<string, unknown>;
    assert.equal(app.name, 'facegate');
    assert.equal(app.script, join(repoRoot, 'dist', 'agent', 'main.js'));
    assert.deepEqual((app.args as string[]).slice(0, 2), ['run', '--config']);
    assert.equal(app.instances, 1);
    assert.equal(app.watch, false, 'the agent reloads its config itself');
    assert.ok((app.restart_delay as number) >= 1000);
    assert.ok((app.kill_timeout as number) > 10_000, 'kill_timeout covers the 10 s graceful shutdown');
    assert.match(app.out_file as string, /facegate\.out\.log$/);
    assert.match(app.error_file as string, /facegate\.err\.log$/);
  });
});
