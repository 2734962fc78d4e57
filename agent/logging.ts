// Structured logs with pino: JSON for services and pipes, readable lines when a person watches a
// terminal. Commands log to stderr (their stdout carries output); `facegate run` logs to stdout,
// where systemd's journal and pm2 collect it.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  /** File descriptor: 1 (stdout) or 2 (stderr, the default). */
  destination?: 1 | 2;
}

export function createLogger(level: string = process.env.FACEGATE_LOG_LEVEL ?? 'info', options: LoggerOptions = {}): Logger {
  const fd = options.destination ?? 2;
  const stream = fd === 1 ? process.stdout : process.stderr;
  if (stream.isTTY) {
    return pino({ level }, pretty({ destination: fd, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino({ level }, pino.destination({ dest: fd, sync: true }));
}

/** The level `facegate run` uses: env FACEGATE_LOG_LEVEL when set (tests, debugging), else the config's. */
export const effectiveLogLevel = (configured: string, env: NodeJS.ProcessEnv = process.env): string => env.FACEGATE_LOG_LEVEL || configured;
