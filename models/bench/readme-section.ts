// Generated sections of a README: the text between `<!-- KEY:start -->` and `<!-- KEY:end -->` is
// replaced by a command's latest results (appended at the end the first time).
import { readFileSync, writeFileSync } from 'node:fs';

export function writeReadmeSection(file: string, key: string, body: string): void {
  const start = `<!-- ${key}:start -->`;
  const end = `<!-- ${key}:end -->`;
  const section = `${start}\n${body.trim()}\n${end}`;
  const text = readFileSync(file, 'utf8');
  const s = text.indexOf(start);
  const e = text.indexOf(end);
  if ((s >= 0) !== (e >= 0) || (s >= 0 && e < s)) throw new Error(`${file}: the ${key} markers are incomplete or out of order; fix them by hand`);
  writeFileSync(file, s >= 0 ? text.slice(0, s) + section + text.slice(e + end.length) : `${text.trimEnd()}\n\n${section}\n`);
}
