// Runs the facegate CLI (agent/main.ts through the tsx loader) as a child process.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './samples.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `node --import tsx agent/main.ts ...args` in the repository root. Logs below `logLevel` are
 * silenced so stderr carries only what the test looks at.
 */
export function runCli(args: readonly string[], logLevel = 'warn', extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'agent', 'main.ts'), ...args],
      { cwd: repoRoot, env: { ...process.env, FACEGATE_LOG_LEVEL: logLevel, ...extraEnv }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** Parses stdout as JSON, failing with the CLI's output when it is not. */
export function parseJson(r: CliResult): unknown {
  try {
    return JSON.parse(r.stdout) as unknown;
  } catch {
    throw new Error(`CLI stdout is not JSON (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

/** The non-empty lines of stderr. */
export const stderrLines = (r: CliResult): string[] => r.stderr.split('\n').filter((l) => l.trim().length > 0);
