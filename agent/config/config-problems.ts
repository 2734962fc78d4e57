// Turns what is wrong with a configuration into problems a technician can act on: the key path
// (cameras[1].fps), the bad value, the reason, and the line and column in the YAML file. The YAML
// is parsed with `yaml`'s document API so every key and value keeps its source range.
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { configJsonSchema, type JsonSchemaNode } from './json-schema.js';

export type KeyPath = readonly (string | number)[];

export interface ConfigProblem {
  /** Key path; empty for the whole file (unreadable, not YAML). */
  path: KeyPath;
  /** Why it is wrong. */
  message: string;
  /** The offending value, when there is one (secrets are hidden). */
  value?: unknown;
  /** 1-based position in the file, when the problem comes from a file. */
  line?: number;
  column?: number;
}

/** A YAML file parsed with positions. */
export interface ParsedYaml {
  /** The plain data (undefined for an empty file). */
  data: unknown;
  /** YAML syntax errors; the data is unusable when there are any. */
  problems: ConfigProblem[];
  /** Position of a key path (of its key with `key`, else of its value), or of its nearest ancestor present. */
  locate: (path: KeyPath, key?: boolean) => { line: number; column: number } | undefined;
}

export function parseYaml(text: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = doc.errors.map((e) => {
    const pos = lineCounter.linePos(e.pos[0]);
    return { path: [], message: `not valid YAML: ${e.message.split('\n')[0] ?? e.code}`, line: pos.line, column: pos.col };
  });
  const locate = (path: KeyPath, key = false): { line: number; column: number } | undefined => {
    let node: unknown = doc.contents;
    let found: Node | undefined = isNodeWithRange(node) ? node : undefined;
    for (let i = 0; i < path.length; i++) {
      const segment = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === segment);
        if (!pair) break;
        if (last && key && isNodeWithRange(pair.key)) {
          found = pair.key;
          break;
        }
        node = pair.value;
        // `key:` with no value has a null value node without a range: point at the key.
        found = isNodeWithRange(node) ? node : isNodeWithRange(pair.key) ? pair.key : found;
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment];
        if (!isNodeWithRange(node)) break;
        found = node;
      } else {
        break;
      }
    }
    if (!found?.range) return undefined;
    const pos = lineCounter.linePos(found.range[0]);
    return { line: pos.line, column: pos.col };
  };
  return { data: problems.length ? undefined : doc.toJS({ maxAliasCount: 100 }), problems, locate };
}

function isNodeWithRange(n: unknown): n is Node & { range: [number, number, number] } {
  return typeof n === 'object' && n !== null && Array.isArray((n as { range?: unknown }).range);
}

/** `cameras[1].fps` */
export function formatPath(path: KeyPath): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out || '(top level)';
}

const SECRET_KEYS = new Set(['password']);

/** A short, single-line rendering of a value; secrets are never printed. */
export function formatValue(path: KeyPath, value: unknown): string {
  if (SECRET_KEYS.has(String(path[path.length - 1]))) return '(hidden)';
  let text: string;
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) text = `a list of ${value.length}`;
  else if (typeof value === 'object' && value !== null) text = 'a mapping';
  // Credentials in a URL (rtsp://user:pass@camera) stay out of logs and the errors topic.
  else text = (JSON.stringify(value) ?? String(value)).replace(/\/\/[^/@\s"]*@/g, '//***@');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** "cameras[1].fps: Too small: expected number to be >0 (got 0)" (the position is the caller's prefix). */
export function formatProblem(p: ConfigProblem): string {
  const path = p.path.length ? `${formatPath(p.path)}: ` : '';
  const secret = SECRET_KEYS.has(String(p.path[p.path.length - 1]));
  const got = !('value' in p) ? '' : secret ? ' (value hidden)' : ` (got ${formatValue(p.path, p.value)})`;
  return `${path}${p.message}${got}`;
}

const valueAt = (root: unknown, path: KeyPath): unknown => {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
};

/** The JSON Schema node describing a key path (array indices go to `items`). */
function schemaAt(path: KeyPath): JsonSchemaNode | undefined {
  let node: JsonSchemaNode | undefined = configJsonSchema();
  for (const seg of path) {
    if (!node) return undefined;
    node = typeof seg === 'number' ? node.items : node.properties?.[seg];
  }
  return node;
}

/** Edit distance counting a swap of neighbours as one edit (fsp → fps), for "did you mean". */
function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) => Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => (d[i] as number[])[j] as number;
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return at(x.length, y.length);
}

function unknownKeyMessage(parent: KeyPath, key: string): string {
  const known = Object.keys(schemaAt(parent)?.properties ?? {});
  const best = known.map((k) => ({ k, d: editDistance(key, k) })).sort((a, b) => a.d - b.d)[0];
  if (best && best.d <= Math.max(1, Math.floor(best.k.length / 3))) return `unknown key "${key}" (did you mean "${best.k}"?)`;
  return `unknown key "${key}"${known.length ? `; known keys here: ${known.join(', ')}` : ''}`;
}

/** zod issues → problems with the bad value and, given a parsed file, the line. */
export function problemsFromIssues(issues: readonly z.core.$ZodIssue[], input: unknown, yaml?: ParsedYaml): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const place = (path: KeyPath, key = false): Partial<ConfigProblem> => yaml?.locate(path, key) ?? {};
  for (const issue of issues) {
    const path = issue.path as (string | number)[];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...path, key], message: unknownKeyMessage(path, key), ...place([...path, key], true) });
      continue;
    }
    const value = valueAt(input, path);
    if (issue.code === 'invalid_type' && value === undefined) {
      out.push({ path, message: `required ${issue.expected} is missing`, ...place(path) });
      continue;
    }
    out.push({ path, message: issue.message, value, ...place(path) });
  }
  return out.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}
