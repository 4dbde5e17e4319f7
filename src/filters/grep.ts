import { z } from 'zod';
import { getPath, parseRecordPath } from '../core/record-path.ts';
import { defineComponent } from '../registry.ts';
import type { Filter } from './filter.ts';

const rule = z.strictObject({
  /** Record key or path (`log`, `$.kubernetes.namespace_name`). */
  key: z.string().min(1).check(valid(parseRecordPath)),
  /** A JavaScript regular expression, unanchored. */
  pattern: z.string().check(valid((p) => new RegExp(p))),
});

/** A check that reports the parser's own message. */
function valid(parse: (text: string) => unknown) {
  return z.superRefine<string>((value, ctx) => {
    try {
      parse(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });
}

const schema = z.strictObject({
  /** Keep a record only if every rule matches (Fluentd `<regexp>`, Fluent Bit `Regex`). */
  regexp: z.array(rule).default([]),
  /** Drop a record if any rule matches (Fluentd `<exclude>`, Fluent Bit `Exclude`). */
  exclude: z.array(rule).default([]),
});

function compile(rules: z.output<typeof rule>[]) {
  return rules.map((r) => ({ path: parseRecordPath(r.key), regex: new RegExp(r.pattern) }));
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

export const grepFilter = defineComponent({
  kind: 'filter',
  type: 'grep',
  schema,
  create(config, deps): Filter {
    const keep = compile(config.regexp);
    const drop = compile(config.exclude);
    return {
      id: deps.id,
      type: 'grep',
      apply(entry) {
        for (const r of keep) {
          const v = text(getPath(entry.record, r.path));
          if (v === undefined || !r.regex.test(v)) return null;
        }
        for (const r of drop) {
          const v = text(getPath(entry.record, r.path));
          if (v !== undefined && r.regex.test(v)) return null;
        }
        return entry;
      },
    };
  },
});
