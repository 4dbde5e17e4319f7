import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type Document, LineCounter, parseDocument, parse as parseYaml, Scalar, visit } from 'yaml';
import { z } from 'zod';
import { errorMessage } from '../core/errors.ts';
import type { TagPattern } from '../core/tag-pattern.ts';
import { importPlugin } from '../plugin/loader.ts';
import type { ComponentRegistry, Factory, Kind } from '../registry.ts';
import { substituteEnv } from './env.ts';
import { ConfigError, type ConfigIssue, formatPath } from './errors.ts';
import {
  type BufferSettings,
  bufferOverridesSchema,
  resolveBufferSettings,
  rootSchema,
  type ServiceConfig,
  serviceSchema,
} from './schema.ts';
import { SECRET_KEY, tagPattern } from './values.ts';

export interface ComponentConfig {
  id: string;
  type: string;
  /** The component's own options, validated by its factory's schema. */
  options: unknown;
}
export interface FilterConfig extends ComponentConfig {
  match: TagPattern;
}
export interface OutputConfig extends ComponentConfig {
  match: TagPattern;
  buffer: BufferSettings;
}

export interface EstuaryConfig {
  file: string;
  dir: string;
  service: ServiceConfig;
  inputs: ComponentConfig[];
  filters: FilterConfig[];
  outputs: OutputConfig[];
  /** The document after env substitution, for `estuary check` (print it with maskSecrets). */
  resolved: unknown;
}

const COMMON: Record<Kind, z.ZodRawShape> = {
  input: { type: z.string(), id: z.string().min(1).optional() },
  filter: { type: z.string(), id: z.string().min(1).optional(), match: tagPattern().prefault('**') },
  output: {
    type: z.string(),
    id: z.string().min(1).optional(),
    match: tagPattern().prefault('**'),
    buffer: bufferOverridesSchema.optional(),
  },
};

export function loadConfigFile(file: string, registry: ComponentRegistry, env = process.env): EstuaryConfig {
  return loadConfig(readConfigFile(file), file, registry, env);
}

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, line: 0, key: '', message: `cannot read: ${(err as Error).message}` }]);
  }
}

/**
 * Without plugins: the types of a `plugins:` list must be in `registry` already (tests).
 * `estuary` itself loads with loadConfigWithPlugins.
 */
export function loadConfig(
  text: string,
  file: string,
  registry: ComponentRegistry,
  env = process.env,
): EstuaryConfig {
  return validate(parse(text, file, env), registry);
}

export interface ConfigWithPlugins {
  config: EstuaryConfig;
  /** `registry` and the types of the config's plugins: build the app with this one. */
  registry: ComponentRegistry;
}

/**
 * Parse, import the modules of `plugins:` in order, register their types on a copy of
 * `registry`, then validate the rest: plugin types are checked by their own schemas, with
 * the same `file:line: key:` errors as built-ins.
 */
export async function loadConfigWithPlugins(
  text: string,
  file: string,
  registry: ComponentRegistry,
  env = process.env,
): Promise<ConfigWithPlugins> {
  const parsed = parse(text, file, env);
  const withPlugins = await registerPlugins(parsed, registry);
  return { config: validate(parsed, withPlugins), registry: withPlugins };
}

/** `estuary plugins`: the types of a config file's plugins, its components left unchecked. */
export async function loadPluginsOfFile(
  file: string,
  registry: ComponentRegistry,
  env = process.env,
): Promise<ComponentRegistry> {
  const parsed = parse(readConfigFile(file), file, env);
  const withPlugins = await registerPlugins(parsed, registry);
  const problems = parsed.issues.filter((i) => i.key.startsWith('plugins'));
  if (problems.length) throw new ConfigError(problems);
  return withPlugins;
}

/** A copy of `registry` with the types of every module of `plugins:`; problems go to parsed.issues. */
async function registerPlugins(parsed: Parsed, registry: ComponentRegistry): Promise<ComponentRegistry> {
  const withPlugins = registry.copy();
  const dir = dirname(resolve(parsed.file));
  const listed = new Map<string, number>();
  for (const [index, spec] of parsed.plugins.entries()) {
    const at = parsed.place(['plugins', index]);
    const twice = listed.get(spec);
    if (twice !== undefined) {
      parsed.issues.push({ ...at, message: `"${spec}" is listed twice (also plugins[${twice}])` });
      continue;
    }
    listed.set(spec, index);
    let factories: Factory[];
    try {
      ({ factories } = await importPlugin(spec, dir));
    } catch (err) {
      parsed.issues.push({ ...at, message: errorMessage(err) });
      parsed.pluginFailed = true;
      continue;
    }
    for (const f of factories) {
      const taken = withPlugins.get(f.kind, f.type);
      if (!taken) {
        withPlugins.register(f);
        continue;
      }
      const other =
        taken.origin === undefined
          ? `the built-in ${f.kind} type "${f.type}"`
          : taken.origin === spec
            ? `another ${f.kind} "${f.type}" of the same plugin`
            : `${f.kind} type "${f.type}" of ${taken.origin} (plugins[${listed.get(taken.origin)}])`;
      parsed.issues.push({ ...at, message: `${f.kind} type "${f.type}" of ${spec} clashes with ${other}` });
    }
  }
  return withPlugins;
}

export async function loadConfigFileWithPlugins(
  file: string,
  registry: ComponentRegistry,
  env = process.env,
): Promise<ConfigWithPlugins> {
  return loadConfigWithPlugins(readConfigFile(file), file, registry, env);
}

type Place = (path: readonly PropertyKey[]) => Omit<ConfigIssue, 'message'>;

/** A document read, its env substituted and its top level checked; issues so far kept for the end. */
interface Parsed {
  file: string;
  raw: unknown;
  root: z.output<typeof rootSchema>;
  plugins: string[];
  /** A `plugins:` entry could not be loaded: an unknown type may be one of its. */
  pluginFailed?: boolean;
  issues: ConfigIssue[];
  place: Place;
}

function parse(text: string, file: string, env: NodeJS.ProcessEnv): Parsed {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const issues: ConfigIssue[] = [];
  const lineOf = (offset: number | undefined) => (offset === undefined ? 0 : lines.linePos(offset).line);
  for (const e of doc.errors)
    issues.push({ file, line: lineOf(e.pos[0]), key: '', message: `YAML: ${e.message.split('\n')[0]}` });
  if (issues.length) throw new ConfigError(issues);

  substituteDocument(doc, env, (node, names) =>
    issues.push({
      file,
      line: lineOf(node.range?.[0]),
      key: '',
      message: `environment variable ${names.join(', ')} is not set (use \${${names[0]}:-default} for a default)`,
    }),
  );

  const raw = doc.toJS() ?? {};
  const place = (path: readonly PropertyKey[]) => ({
    file,
    line: lineOf(nodeAt(doc, path)),
    key: formatPath(path),
  });
  const root = rootSchema.safeParse(raw, { reportInput: true });
  if (!root.success) {
    for (const issue of root.error.issues) issues.push(...describeIssue(issue, [], place));
    throw new ConfigError(issues);
  }
  return { file, raw, root: root.data, plugins: root.data.plugins, issues, place };
}

function validate(parsed: Parsed, registry: ComponentRegistry): EstuaryConfig {
  const { file, raw, root, issues, place, pluginFailed } = parsed;
  const collect = (error: z.ZodError, prefix: PropertyKey[] = []) => {
    for (const issue of error.issues) issues.push(...describeIssue(issue, prefix, place));
  };
  const service = serviceSchema.safeParse(root.service ?? {}, { reportInput: true });
  if (!service.success) collect(service.error, ['service']);
  // With a bad service section, components are still checked, against the defaults.
  const serviceConfig = service.success ? service.data : serviceSchema.parse({});
  const out: EstuaryConfig = {
    file,
    dir: dirname(resolve(file)),
    service: serviceConfig,
    inputs: [],
    filters: [],
    outputs: [],
    resolved: raw,
  };
  const ids = new Map<string, string>();
  for (const kind of ['input', 'filter', 'output'] as const) {
    const section = `${kind}s` as const;
    root[section].forEach((item, index) => {
      const path = [section, index];
      const factory = registry.get(kind, item.type);
      if (!factory) {
        const known = registry.types(kind).sort().join(', ');
        issues.push({
          ...place([...path, 'type']),
          message: pluginFailed
            ? `unknown ${kind} type "${item.type}" (is it of the plugin that failed to load?)`
            : `unknown ${kind} type "${item.type}" (known: ${known})`,
        });
        return;
      }
      const parsed = factory.schema.extend(COMMON[kind]).safeParse(item, { reportInput: true });
      if (!parsed.success) {
        collect(parsed.error, path);
        return;
      }
      const { type, id: givenId, match, buffer, ...options } = parsed.data as Record<string, unknown>;
      const id = (givenId as string | undefined) ?? `${type}.${index}`;
      const previous = ids.get(id);
      if (previous) {
        issues.push({ ...place([...path, 'id']), message: `duplicate id "${id}" (also ${previous})` });
        return;
      }
      ids.set(id, formatPath(path));
      const base = { id, type: type as string, options };
      if (kind === 'input') out.inputs.push(base);
      else if (kind === 'filter') out.filters.push({ ...base, match: match as TagPattern });
      else {
        const settings = resolveBufferSettings(
          factory.bufferDefaults,
          serviceConfig.buffer,
          buffer as z.output<typeof bufferOverridesSchema>,
        );
        out.outputs.push({ ...base, match: match as TagPattern, buffer: settings });
      }
    });
  }
  if (issues.length) throw new ConfigError(issues);
  return out;
}

/** Replaces `${VAR}` in every scalar value; an unquoted scalar is re-typed (`port: ${PORT}` is a number). */
function substituteDocument(
  doc: Document,
  env: NodeJS.ProcessEnv,
  onMissing: (node: Scalar, names: string[]) => void,
) {
  visit(doc, {
    Scalar(key, node) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const { value, missing } = substituteEnv(node.value, env);
      if (missing.length) onMissing(node, missing);
      if (node.type === Scalar.PLAIN && value !== '') {
        try {
          const typed: unknown = parseYaml(value);
          if (typeof typed === 'number' || typeof typed === 'boolean') {
            node.value = typed;
            return;
          }
        } catch {
          // not a plain YAML scalar: keep the text
        }
      }
      node.value = value;
    },
  });
}

/** The start offset of the deepest node on `path` that exists (an unknown key points at its parent). */
function nodeAt(doc: Document, path: readonly PropertyKey[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as unknown[], true);
    if (node && typeof node === 'object' && 'range' in node) {
      const range = (node as { range?: [number, number, number] }).range;
      if (range) return range[0];
    }
  }
  return undefined;
}

function describeIssue(issue: z.core.$ZodIssue, prefix: PropertyKey[], place: Place): ConfigIssue[] {
  const path = [...prefix, ...issue.path];
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({ ...place([...path, k]), message: 'unknown key' }));
    case 'invalid_type':
      return [
        {
          ...place(path),
          message:
            issue.input === undefined
              ? `required, expected ${issue.expected}`
              : `expected ${issue.expected}, got ${describe(issue.input)}`,
        },
      ];
    case 'invalid_value':
      return [
        {
          ...place(path),
          message: `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(issue.input)}`,
        },
      ];
    case 'invalid_union': {
      // Our unions are "number or string" shapes; the first branch's words are the clearest.
      const inner = issue.errors.flat()[0];
      const got = describe(issue.input);
      return [
        {
          ...place(path),
          message: inner
            ? `${inner.message.replace(/^Invalid input: /, '')}, got ${got}`
            : `invalid value ${got}`,
        },
      ];
    }
    default:
      return [
        {
          ...place(path),
          message: `${issue.message.replace(/^Invalid input: /, '')}${'input' in issue && issue.input !== undefined && issue.code !== 'custom' ? `, got ${describe(issue.input)}` : ''}`,
        },
      ];
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return `${typeof value} ${String(value)}`;
}

/** A copy with every secret-looking value replaced, and passwords cut out of URLs. */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key));
  if (value && typeof value === 'object') {
    // HTTP headers carry credentials under any name (X-Api-Key, a vendor's own): all hidden.
    if (key === 'headers') return Object.fromEntries(Object.keys(value).map((k) => [k, '******']));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]));
  }
  if (SECRET_KEY.test(key) && value !== '' && value !== null && value !== undefined) return '******';
  if (typeof value === 'string')
    return value.replace(/(\w+:\/\/[^:/@\s]*:)[^@/\s]+@/g, '$1******@').replace(SECRET_QUERY, '$1******');
  return value;
}

/** `?token=…`, `&sig=…`, `api_key=…` in a URL's query. */
const SECRET_QUERY =
  /([?&][^=&#\s]*(?:token|key|secret|password|sig|signature|auth|code)[^=&#\s]*=)[^&#\s]*/gi;
