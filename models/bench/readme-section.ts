// Generated sections of a README: the text between a start and an end marker is replaced by a
// command's latest results (appended at the end the first time).
import { readFileSync, writeFileSync } from 'node:fs';

/** Replaces `section` (which begins with `start` and ends with `end`) in `file`, or appends it. */
export function replaceMarkedSection(file: string, start: string, end: string, section: string): void {
  const text = readFileSync(file, 'utf8');
  const s = text.indexOf(start);
  const e = text.indexOf(end);
  if ((s >= 0) !== (e >= 0) || (s >= 0 && e < s)) throw new Error(`${file}: the markers ${start} … ${end} are incomplete or out of order; fix them by hand`);
  writeFileSync(file, s >= 0 ? text.slice(0, s) + section + text.slice(e + end.length) : `${text.trimEnd()}\n\n${section}\n`);
}

/** The section `<!-- KEY:start -->` body `<!-- KEY:end -->`. */
export function writeReadmeSection(file: string, key: string, body: string): void {
  const start = `<!-- ${key}:start -->`;
  const end = `<!-- ${key}:end -->`;
  replaceMarkedSection(file, start, end, `${start}\n${body.trim()}\n${end}`);
}
