// The registered models (models/manifest.json): find them by name or role, make sure their files
// exist (building the generated ones on first use), and verify checksums.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelEntry, ModelManifest, ModelRole } from '../../models/manifest-types.js';
import { modelsDir } from '../paths.js';

export type { ModelEntry, ModelRole };

export class ModelRegistry {
  private constructor(
    readonly dir: string,
    readonly manifest: ModelManifest,
  ) {}

  static load(dir = modelsDir()): ModelRegistry {
    const file = join(dir, 'manifest.json');
    if (!existsSync(file)) throw new Error(`models manifest not found at ${file}: run \`npm run models\``);
    return new ModelRegistry(dir, JSON.parse(readFileSync(file, 'utf8')) as ModelManifest);
  }

  get models(): readonly ModelEntry[] {
    return this.manifest.models;
  }

  get(name: string): ModelEntry {
    const entry = this.manifest.models.find((m) => m.name === name);
    if (!entry) {
      throw new Error(`unknown model "${name}"; registered: ${this.manifest.models.map((m) => m.name).join(', ')}`);
    }
    return entry;
  }

  defaultFor(role: ModelRole): ModelEntry {
    const entry = this.manifest.models.find((m) => m.role === role && m.default);
    if (!entry) throw new Error(`no default ${role} model in ${join(this.dir, 'manifest.json')}`);
    return entry;
  }

  pathOf(entry: ModelEntry): string {
    return join(this.dir, entry.file);
  }

  /** Files that are missing or whose checksum differs from the manifest. */
  problems(entries: readonly ModelEntry[] = this.manifest.models): { entry: ModelEntry; reason: string }[] {
    const out: { entry: ModelEntry; reason: string }[] = [];
    for (const entry of entries) {
      const path = this.pathOf(entry);
      if (!existsSync(path)) out.push({ entry, reason: `missing file ${path}` });
      else if (statSync(path).size !== entry.bytes) out.push({ entry, reason: `size of ${path} differs from the manifest` });
      else if (createHash('sha256').update(readFileSync(path)).digest('hex') !== entry.sha256) {
        out.push({ entry, reason: `sha256 of ${path} differs from the manifest` });
      }
    }
    return out;
  }

  /**
   * Makes sure the files of `entries` exist and match the manifest. Generated models that are
   * missing or stale are rebuilt from the installed npm packages (a few seconds).
   */
  async ensure(entries: readonly ModelEntry[], log: (line: string) => void = () => {}): Promise<void> {
    const problems = this.problems(entries);
    if (problems.length === 0) return;
    const shipped = problems.filter((p) => !p.entry.generated);
    if (shipped.length > 0) throw new Error(`model files are damaged: ${shipped.map((p) => `${p.entry.name}: ${p.reason}`).join('; ')}`);
    log(`building models (${problems.map((p) => `${p.entry.name}: ${p.reason}`).join('; ')})`);
    const { buildModels } = await import('../../models/build/build-models.js');
    await buildModels(log);
    const still = this.problems(entries);
    if (still.length > 0) throw new Error(`models still differ after a rebuild: ${still.map((p) => `${p.entry.name}: ${p.reason}`).join('; ')}`);
  }
}
