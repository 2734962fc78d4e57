// Structured logs with pino on stderr (stdout carries command output): JSON for services and
// pipes, readable lines when a person watches a terminal.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export function createLogger(level: string = process.env.FACEGATE_LOG_LEVEL ?? 'info'): Logger {
  if (process.stderr.isTTY) {
    return pino({ level }, pretty({ destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino({ level }, pino.destination({ dest: 2, sync: true }));
}
