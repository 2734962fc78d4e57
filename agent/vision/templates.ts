// Chip templates by name. The fixed ones are published constants; `dlib-150-mtcnn` was fitted on
// calibration faces (models/calibrate/fit-dlib-template.ts) and ships as JSON in models/templates/.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { modelsDir } from '../paths.js';
import { ARCFACE_112, type ChipTemplate, naiveDlibTemplate, SPHEREFACE_112x96 } from './align.js';

export interface FittedTemplateFile {
  name: string;
  width: number;
  height: number;
  points: [number, number][];
  fittedOn?: unknown;
}

const BUILT_IN: Record<string, () => ChipTemplate> = {
  'arcface-112': () => ARCFACE_112,
  'sphereface-112x96': () => SPHEREFACE_112x96,
  'dlib-150-naive': () => naiveDlibTemplate(),
};

export const templateFile = (name: string): string => join(modelsDir(), 'templates', `${name}.json`);

export function loadTemplate(name: string): ChipTemplate {
  const builtIn = BUILT_IN[name];
  if (builtIn) return builtIn();
  const file = templateFile(name);
  if (!existsSync(file)) throw new Error(`unknown chip template "${name}": no built-in and no file ${file}`);
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as FittedTemplateFile;
  if (!Array.isArray(parsed.points) || parsed.points.length !== 5) throw new Error(`template ${file}: needs 5 points`);
  return {
    name: parsed.name,
    width: parsed.width,
    height: parsed.height,
    points: parsed.points.map(([x, y]) => ({ x, y })) as unknown as ChipTemplate['points'],
  };
}
