import { z } from 'zod';
import { getPath, parseRecordPath } from '../core/record-path.ts';
import { defineComponent } from '../registry.ts';
import { compileRegex, fieldText, rubyRegex, valid } from './checks.ts';
import type { Filter } from './filter.ts';

const rule = z.strictObject({
  /** Record key or path (`log`, `$.kubernetes.namespace_name`). */
  key: z.string().min(1).check(valid(parseRecordPath)),
  /** A regular expression in Fluentd's (Ruby) syntax, unanchored. */
  pattern: rubyRegex(),
});

const schema = z.strictObject({
  /** Keep a record only if every rule matches (Fluentd `<regexp>`, Fluent Bit `Regex`). */
  regexp: z.array(rule).default([]),
  /** Drop a record if any rule matches (Fluentd `<exclude>`, Fluent Bit `Exclude`). */
  exclude: z.array(rule).default([]),
});

function compile(rules: z.output<typeof rule>[]) {
  return rules.map((r) => ({ path: parseRecordPath(r.key), regex: compileRegex(r.pattern) }));
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
          const v = fieldText(getPath(entry.record, r.path));
          if (v === undefined || !r.regex.test(v)) return null;
        }
        for (const r of drop) {
          const v = fieldText(getPath(entry.record, r.path));
          if (v !== undefined && r.regex.test(v)) return null;
        }
        return entry;
      },
    };
  },
});
