// `npm run config:schema`: regenerates config/facegate.schema.json from the zod schema.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../paths.js';
import { configJsonSchemaText } from './json-schema.js';

const file = join(projectRoot(), 'config', 'facegate.schema.json');
writeFileSync(file, configJsonSchemaText());
process.stdout.write(`wrote ${file}\n`);
