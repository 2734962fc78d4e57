// The flags every model bench takes (--json PATH, --no-readme, --quick) plus its own string flags,
// parsed with node's util.parseArgs; unknown flags fail with the bench's usage line.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

export interface BenchArgs<K extends string> {
  /** Where the JSON results go (absolute). */
  json: string;
  /** Whether to rewrite the results section of models/README.md. */
  readme: boolean;
  /** Fewer repetitions, for a smoke run. */
  quick: boolean;
  /** The bench's own flags, as given. */
  extra: Partial<Record<K, string>>;
}

export function parseBenchArgs<K extends string>(argv: readonly string[], bench: string, defaultJson: string, extraFlags: readonly K[] = []): BenchArgs<K> {
  const usage = `usage: ${bench} [--json PATH] [--no-readme] [--quick]${extraFlags.map((f) => ` [--${f} VALUE]`).join('')}`;
  const options: Record<string, { type: 'string' | 'boolean' }> = { json: { type: 'string' }, 'no-readme': { type: 'boolean' }, quick: { type: 'boolean' } };
  for (const flag of extraFlags) options[flag] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; ${usage}`);
  }
  const extra: Partial<Record<K, string>> = {};
  for (const flag of extraFlags) {
    const v = values[flag];
    if (typeof v === 'string') extra[flag] = v;
  }
  return {
    json: resolve(typeof values.json === 'string' ? values.json : defaultJson),
    readme: values['no-readme'] !== true,
    quick: values.quick === true,
    extra,
  };
}
