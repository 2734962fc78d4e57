// The configuration schema as JSON Schema (draft 2020-12), generated from the zod schema so the
// two cannot drift: written to config/facegate.schema.json for editors (`npm run config:schema`),
// and walked here to name the known keys of a mapping in error messages.
import { z } from 'zod';
import { configSchema } from './schema.js';

export interface JsonSchemaNode {
  type?: string | string[];
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  required?: string[];
  default?: unknown;
  [keyword: string]: unknown;
}

let cached: JsonSchemaNode | undefined;

/** JSON Schema of the file as written (defaults make keys optional). */
export function configJsonSchema(): JsonSchemaNode {
  if (!cached) {
    const generated = z.toJSONSchema(configSchema, { io: 'input', target: 'draft-2020-12' }) as JsonSchemaNode;
    cached = {
      $schema: generated.$schema,
      title: 'facegate configuration',
      description: 'The YAML configuration of the facegate agent (see config/facegate.example.yaml). Generated from agent/config/schema.ts by `npm run config:schema`; do not edit.',
      ...generated,
    };
  }
  return cached;
}

/** The file's text: stable key order, two-space indentation, final newline. */
export const configJsonSchemaText = (): string => `${JSON.stringify(configJsonSchema(), null, 2)}\n`;

/**
 * Every key path the schema knows, parents included: `mqtt`, `mqtt.tls`, `mqtt.tls.ca`,
 * `cameras[].url`…
 */
export function schemaKeyPaths(node: JsonSchemaNode = configJsonSchema(), prefix = ''): string[] {
  const out: string[] = [];
  if (node.items) out.push(...schemaKeyPaths(node.items, `${prefix}[]`));
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    out.push(path, ...schemaKeyPaths(child, path));
  }
  return out;
}
