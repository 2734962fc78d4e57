// Starts and stops a real Mosquitto broker (Debian package `mosquitto`) on a free loopback port,
// with a temporary config: anonymous access, no persistence (a restart forgets retained messages)
// unless started with `persistence: true` (sessions, queued and retained messages survive a restart).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

export const mosquittoAvailable = (): boolean => existsSync(MOSQUITTO);

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class Mosquitto {
  private child: ChildProcess | null = null;
  private log = '';

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly config: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** The broker's output so far (for failure messages). */
  get output(): string {
    return this.log;
  }

  static async start(port?: number, options: { persistence?: boolean } = {}): Promise<Mosquitto> {
    const dir = await mkdtemp(join(tmpdir(), 'facegate-mosquitto-'));
    const p = port ?? (await freePort());
    const config = join(dir, 'mosquitto.conf');
    const persistence = options.persistence ? `persistence true\npersistence_location ${dir}/\n` : 'persistence false\n';
    await writeFile(config, `listener ${p} 127.0.0.1\nallow_anonymous true\n${persistence}log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n`);
    const m = new Mosquitto(p, dir, config);
    await m.run();
    return m;
  }

  private async run(): Promise<void> {
    const child = spawn(MOSQUITTO, ['-c', this.config], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout?.on('data', (b: Buffer) => (this.log += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (this.log += b.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}:\n${this.log}`);
      if (await canConnect(this.port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`mosquitto did not listen on ${this.port} within 10 s:\n${this.log}`);
  }

  /** Stops the broker (SIGTERM, then SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** Stops and starts the broker on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.run();
  }

  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
