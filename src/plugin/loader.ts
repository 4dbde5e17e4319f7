/**
 * Finds and imports the modules of a config's `plugins:` list. An entry is a path (relative
 * to the config file's directory) or a package name, looked up in the node_modules above the
 * config file's directory, then above Estuary's own.
 */
import { readFileSync } from 'node:fs';
import { findPackageJSON } from 'node:module';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { errorMessage } from '../core/errors.ts';
import type { Factory } from '../registry.ts';
import { pluginApi, pluginFactories } from './host.ts';

const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));

/** The export conditions an ESM import by Node matches, in no particular order (the package's order wins). */
const CONDITIONS = new Set(['node', 'import', 'default']);

export interface ImportedPlugin {
  /** The module file. */
  path: string;
  factories: Factory[];
}

/** `./x.js`, `/abs/x.ts`, `../x.mjs`: a file; anything else a package name (`name`, `@scope/name`, `name/sub`). */
export function isPathSpec(spec: string): boolean {
  return spec.startsWith('.') || isAbsolute(spec) || /\.(m?[jt]s)$/.test(spec);
}

/** The file a `plugins:` entry names; throws saying where it looked. */
export function resolvePlugin(spec: string, configDir: string): string {
  if (isPathSpec(spec)) return resolve(configDir, spec);
  const [, name, sub] = /^((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(spec) ?? [];
  if (!name) throw new Error(`"${spec}" is neither a path nor a package name`);
  for (const dir of [configDir, PROJECT_DIR]) {
    let packageJson: string | undefined;
    try {
      packageJson = findPackageJSON(name, pathToFileURL(`${dir}/`));
    } catch {
      // not installed above this directory
    }
    if (!packageJson) continue;
    const pkg = JSON.parse(readFileSync(packageJson, 'utf8')) as { exports?: unknown; main?: unknown };
    const entry = entryOf(pkg, sub ? `.${sub}` : '.');
    if (!entry)
      throw new Error(`package ${name} (${packageJson}) exports no "${sub ? `.${sub}` : '.'}" for import`);
    return resolve(dirname(packageJson), entry);
  }
  throw new Error(
    `package ${name} is not installed in a node_modules above ${configDir} or above Estuary (${PROJECT_DIR})`,
  );
}

/** A package's entry for `subpath`, read from `exports` (no patterns) or `main`. */
function entryOf(pkg: { exports?: unknown; main?: unknown }, subpath: string): string | undefined {
  const { exports } = pkg;
  if (exports === undefined || exports === null) {
    if (subpath !== '.') return subpath;
    return typeof pkg.main === 'string' ? pkg.main : 'index.js';
  }
  const bySubpath =
    typeof exports === 'object' &&
    !Array.isArray(exports) &&
    Object.keys(exports).some((k) => k.startsWith('.'));
  if (!bySubpath) return subpath === '.' ? target(exports) : undefined;
  return target((exports as Record<string, unknown>)[subpath]);
}

function target(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    for (const v of value) {
      const t = target(v);
      if (t !== undefined) return t;
    }
    return undefined;
  }
  if (value && typeof value === 'object')
    for (const [condition, v] of Object.entries(value)) {
      if (!CONDITIONS.has(condition)) continue;
      const t = target(v);
      if (t !== undefined) return t;
    }
  return undefined;
}

/**
 * Imports the module and calls its default export with the api. Every failure is an Error
 * whose message names the module: not found, failed to evaluate, no default function, or
 * definitions Estuary cannot use.
 */
export async function importPlugin(spec: string, configDir: string): Promise<ImportedPlugin> {
  const path = resolvePlugin(spec, configDir);
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const hint =
      code === 'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING'
        ? ' (Node strips no types under node_modules: publish the plugin as .js)'
        : '';
    throw new Error(`cannot import ${path}: ${errorMessage(err)}${hint}`, { cause: err });
  }
  if (typeof module.default !== 'function')
    throw new Error(
      `${path}: the default export must be a function (api) => definitions, got ${typeof module.default}`,
    );
  let definitions: unknown;
  try {
    definitions = await (module.default as (api: typeof pluginApi) => unknown)(pluginApi);
  } catch (err) {
    throw new Error(`${path}: the default export threw: ${errorMessage(err)}`, { cause: err });
  }
  return { path, factories: pluginFactories(definitions, spec) };
}
