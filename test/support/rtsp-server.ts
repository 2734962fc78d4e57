// A real RTSP server on loopback for tests and benchmarks: GStreamer's GstRtspServer (rtsp_server.py,
// run by Debian's /usr/bin/python3 with python3-gi) serving an H.264 MP4 in a loop over RTP/UDP and
// RTP-over-TCP. Needs the Debian packages installed by test/support/install-test-deps.sh.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Debian's interpreter: the `python3` first on PATH may be another one, without `gi`. */
export const SYSTEM_PYTHON = '/usr/bin/python3';
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'rtsp_server.py');

export interface RtspServerOptions {
  /** H.264 MP4 to serve (e.g. from makeFaceVideo). */
  video: string;
  /** TCP port on 127.0.0.1; default: a free one chosen by the server. Kept across restart(). */
  port?: number;
  /** Mount path, default `/stream`. */
  mount?: string;
  /** How long to wait for the server to listen, default 15 s. */
  readyTimeoutMs?: number;
}

export interface RtspServer {
  /** rtsp://127.0.0.1:<port><mount> */
  readonly url: string;
  readonly port: number;
  /** pid of the server process now running (undefined when stopped or killed). */
  readonly pid: number | undefined;
  /** Whether the server process is running (false after a crash, too). */
  readonly alive: boolean;
  /** The running (or last) server process's recent stderr. */
  readonly stderr: string;
  /** Times the server died unasked and was relaunched on its port. */
  readonly crashes: number;
  /** Graceful stop (SIGTERM); resolves when the process has exited. */
  stop(): Promise<void>;
  /** SIGKILL, like a crash; resolves when the process has exited. */
  kill(): Promise<void>;
  /** Stops the server if running and starts it again on the same port and mount. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server keeps its sockets open but sends nothing. */
  pause(): void;
  resume(): void;
}

/** Why the RTSP server cannot run here (missing packages), or undefined when it can. */
export function rtspServerUnavailable(): string | undefined {
  if (!existsSync(SYSTEM_PYTHON)) return `${SYSTEM_PYTHON} not found`;
  const probe = spawnSync(
    SYSTEM_PYTHON,
    ['-c', "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"],
    { encoding: 'utf8', env: pythonEnv(), timeout: 15_000 },
  );
  if (probe.status !== 0) {
    return `GStreamer RTSP server for ${SYSTEM_PYTHON} missing (run test/support/install-test-deps.sh): ${(probe.stderr ?? '').trim().split('\n').at(-1) ?? ''}`;
  }
  return undefined;
}

function pythonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  return env;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  /** The server's last stderr output (GStreamer warnings, a Python traceback). */
  stderr: () => string;
}

async function launch(video: string, port: number, mount: string, timeoutMs: number): Promise<{ running: Running; port: number }> {
  const child = spawn(SYSTEM_PYTHON, [SCRIPT, video, String(port), mount], {
    // stdin stays open: the server exits when it closes (this process died).
    stdio: ['pipe', 'pipe', 'pipe'],
    env: pythonEnv(),
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (t: string) => {
    stderr = (stderr + t).slice(-4000);
  });
  child.stdin?.on('error', () => undefined);
  const bound = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`RTSP server did not start within ${timeoutMs} ms: ${stderr.trim()}`));
    }, timeoutMs);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (t: string) => {
      out += t;
      const ready = /READY (\d+)/.exec(out);
      if (ready?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(Number(ready[1]));
      } else if (/ERROR/.test(out)) {
        clearTimeout(timer);
        reject(new Error(`RTSP server: ${out.trim()} ${stderr.trim()}`));
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`RTSP server exited (${signal ?? code}) before listening: ${stderr.trim()}`));
    });
  });
  return { running: { child, exited, stderr: () => stderr }, port: bound };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Launches a server and checks that its port really accepts connections: "READY" comes from the
 * server itself, but a bench once found a freshly started server refusing connections for good.
 */
async function launchChecked(video: string, port: number, mount: string, timeoutMs: number): Promise<{ running: Running; port: number }> {
  let problem = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const launched = await launch(video, port, mount, timeoutMs);
    for (let probe = 0; probe < 10; probe++) {
      if (await accepts(launched.port)) return launched;
      await sleep(200);
    }
    const { child } = launched.running;
    problem = `server pid ${child.pid} reported port ${launched.port} but refuses connections (exit code ${child.exitCode}, signal ${child.signalCode})`;
    child.kill('SIGKILL');
    await launched.running.exited;
  }
  throw new Error(`RTSP server: ${problem}`);
}

export async function startRtspServer(options: RtspServerOptions): Promise<RtspServer> {
  const mount = options.mount ?? '/stream';
  const timeoutMs = options.readyTimeoutMs ?? 15_000;
  const first = await launchChecked(options.video, options.port ?? 0, mount, timeoutMs);
  let running: Running | undefined = first.running;
  const port = first.port;
  let crashes = 0;
  // GStreamer's RTSP server can abort under load (gst_rtsp_media_get_rates: assertion failed, seen
  // on a busy CI machine): a server that dies unasked is relaunched on its port, like a camera
  // rebooting; the cameras under test reconnect on their own. stop/kill/restart clear `running`
  // first, so they are never undone.
  const supervise = (r: Running): void => {
    void r.exited.then(async () => {
      if (running !== r) return;
      crashes++;
      for (let attempt = 0; attempt < 20 && running === r; attempt++) {
        try {
          const next = (await launch(options.video, port, mount, timeoutMs)).running;
          if (running !== r) {
            next.child.kill('SIGKILL');
            return;
          }
          running = next;
          supervise(next);
          return;
        } catch {
          await sleep(250);
        }
      }
    });
  };
  supervise(first.running);

  const signalAndWait = async (signal: NodeJS.Signals): Promise<void> => {
    const r = running;
    running = undefined;
    if (r === undefined) return;
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGCONT');
      r.child.kill(signal);
    }
    await r.exited;
  };

  return {
    url: `rtsp://127.0.0.1:${port}${mount}`,
    port,
    get pid() {
      return running?.child.pid;
    },
    get alive() {
      return running !== undefined && running.child.exitCode === null && running.child.signalCode === null;
    },
    get stderr() {
      return running?.stderr() ?? '';
    },
    get crashes() {
      return crashes;
    },
    stop: () => signalAndWait('SIGTERM'),
    kill: () => signalAndWait('SIGKILL'),
    async restart() {
      await signalAndWait('SIGTERM');
      // The port may be briefly unavailable after a kill: retry for a few seconds.
      let lastErr: unknown;
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          running = (await launch(options.video, port, mount, timeoutMs)).running;
          supervise(running);
          return;
        } catch (err) {
          lastErr = err;
          await sleep(250);
        }
      }
      throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
    },
    pause() {
      running?.child.kill('SIGSTOP');
    },
    resume() {
      running?.child.kill('SIGCONT');
    },
  };
}
