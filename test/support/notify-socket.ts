// A fake systemd notify socket (test/support/notify_socket.py, Debian's python3): what a service
// sends with sd_notify / systemd-notify arrives in `messages`, one entry per datagram.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYSTEM_PYTHON } from './rtsp-server.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'notify_socket.py');

export interface NotifySocket {
  path: string;
  /** Datagrams received, in order (BARRIER=1 included). */
  messages: string[];
  stop(): Promise<void>;
}

export async function startNotifySocket(): Promise<NotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), 'facegate-notify-'));
  const path = join(dir, 'notify.sock');
  const child: ChildProcess = spawn(SYSTEM_PYTHON, [SCRIPT, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (b: Buffer) => {
      buffered += b.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const parsed = JSON.parse(line) as { ready?: boolean; message?: string };
        if (parsed.ready) resolve();
        else if (parsed.message !== undefined) messages.push(parsed.message);
      }
    });
    child.once('exit', (code) => reject(new Error(`notify socket exited (${code}): ${stderr}`)));
  });
  return {
    path,
    messages,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
