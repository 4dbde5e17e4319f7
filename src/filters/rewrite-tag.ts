import { z } from 'zod';
import { getPath, parseRecordPath } from '../core/record-path.ts';
import { defineComponent } from '../registry.ts';
import { compileRegex, fieldText, rubyRegex, valid } from './checks.ts';
import type { Emission, Filter } from './filter.ts';
import { buildTag, parseTagTemplate, type TagTemplate } from './tag-template.ts';

/** One rule: when the field's text matches `regex`, the record goes on under `new_tag`. */
const ruleObject = z.strictObject({
  /** The field, as a record path (`log`, `$kubernetes['namespace_name']`, `$.a.b`). */
  key: z.string().min(1).check(valid(parseRecordPath)),
  /** A regular expression in Fluent Bit's (Onigmo) syntax, unanchored. */
  regex: rubyRegex(),
  /** `$TAG`, `$TAG[n]`, `$0`…`$9` (the regex's groups) and record fields (`$kubernetes['pod_name']`). */
  new_tag: z.string().min(1).check(valid(parseTagTemplate)),
  /** Whether the record also goes on under its own tag. */
  keep: z.boolean().default(false),
});

/** Fluent Bit's one-line form: `$key regex new_tag keep` (the regex without spaces). */
const ruleLine = z
  .string()
  .transform((line, ctx): z.input<typeof ruleObject> => {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 4 || !['true', 'false'].includes(parts[3]!.toLowerCase())) {
      ctx.addIssue({ code: 'custom', message: 'expected "$key regex new_tag keep" (keep: true or false)' });
      return z.NEVER;
    }
    const [key, regex, newTag, keep] = parts as [string, string, string, string];
    return { key, regex, new_tag: newTag, keep: keep.toLowerCase() === 'true' };
  })
  .pipe(ruleObject);

const schema = z.strictObject({
  /** Tried in order; the first that matches re-tags the record (Fluent Bit's `Rule`). */
  rules: z.array(z.union([ruleLine, ruleObject])).min(1),
});

interface Compiled {
  path: string[];
  regex: RegExp;
  template: TagTemplate;
  keep: boolean;
}

/**
 * Fluent Bit's `rewrite_tag`: a record whose field matches a rule goes on under a new tag,
 * built from the old one, the regex's groups and record fields — routed from the first filter
 * its new tag matches, so other filters and outputs can take it. With `keep`, the record also
 * goes on under its own tag. A record no rule matches passes unchanged; so does one whose new
 * tag comes out empty.
 */
export const rewriteTagFilter = defineComponent({
  kind: 'filter',
  type: 'rewrite_tag',
  schema,
  create(config, deps): Filter {
    const rules: Compiled[] = config.rules.map((r) => ({
      path: parseRecordPath(r.key),
      regex: compileRegex(r.regex),
      template: parseTagTemplate(r.new_tag),
      keep: r.keep,
    }));
    return {
      id: deps.id,
      type: 'rewrite_tag',
      apply(entry, tag): typeof entry | readonly Emission[] {
        for (const rule of rules) {
          const text = fieldText(getPath(entry.record, rule.path));
          if (text === undefined) continue;
          const match = rule.regex.exec(text);
          if (!match) continue;
          const newTag = buildTag(rule.template, tag, entry.record, match);
          if (newTag === '' || newTag === tag) return entry;
          return rule.keep ? [{ entry }, { entry, tag: newTag }] : [{ entry, tag: newTag }];
        }
        return entry;
      },
    };
  },
});
