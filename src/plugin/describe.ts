/**
 * `estuary plugins`: every component type, built-in or from a plugin, with its options as
 * the schema states them (zod's own JSON Schema of the input side: what a config may write).
 */
import { z } from 'zod';
import type { ComponentRegistry, Factory, Kind } from '../registry.ts';

export interface OptionInfo {
  key: string;
  type: string;
  required: boolean;
  /** As JSON; absent when the option has none. */
  default?: string;
  description?: string;
}

interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  default?: unknown;
  description?: string;
}

export function describeOptions(schema: z.ZodObject): OptionInfo[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const required = new Set(json.required ?? []);
  return Object.entries(json.properties ?? {}).map(([key, s]) => {
    const fallback = s.default ?? defaultOf(schema.shape[key]);
    return {
      key,
      type: typeName(s),
      required: required.has(key),
      ...(fallback !== undefined && { default: JSON.stringify(fallback) }),
      ...(s.description !== undefined && { description: s.description }),
    };
  });
}

/**
 * A field's default where JSON Schema loses it (a default on a transform: sizes, durations),
 * as the config gets it (bytes, milliseconds).
 */
function defaultOf(field: z.ZodType | undefined): unknown {
  const parsed = field?.safeParse(undefined);
  return parsed?.success ? parsed.data : undefined;
}

function typeName(s: JsonSchema): string {
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join('|');
  if (s.const !== undefined) return JSON.stringify(s.const);
  const union = s.anyOf ?? s.oneOf;
  if (union) return [...new Set(union.map(typeName))].join(' or ');
  const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (types.length === 0) return 'any';
  return types
    .map((t) => {
      if (t === 'array') return `list of ${s.items ? typeName(s.items) : 'any'}`;
      if (t === 'object') return 'map';
      return t === 'integer' ? 'number' : t;
    })
    .join('|');
}

const KINDS: readonly Kind[] = ['input', 'filter', 'output'];

/** The listing `estuary plugins` prints: by kind, each type with where it comes from and its options. */
export function describeRegistry(registry: ComponentRegistry): string {
  const out: string[] = [];
  for (const kind of KINDS) {
    out.push(`${kind}s:`);
    const factories: Factory[] = registry.all(kind).sort((a, b) => a.type.localeCompare(b.type));
    for (const f of factories) {
      out.push(`  ${f.type} (${f.origin === undefined ? 'built-in' : `plugin ${f.origin}`})`);
      const options = describeOptions(f.schema);
      const width = Math.max(0, ...options.map((o) => o.key.length));
      for (const o of options) {
        const extra = o.required ? 'required' : o.default !== undefined ? `default ${o.default}` : 'optional';
        const text = `    ${o.key.padEnd(width)}  ${o.type}, ${extra}`;
        out.push(o.description ? `${text} — ${o.description}` : text);
      }
    }
  }
  return `${out.join('\n')}\n`;
}
