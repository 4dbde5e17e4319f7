import { z } from 'zod';
import { parseRecordPath, withoutPath } from '../core/record-path.ts';
import { defineComponent } from '../registry.ts';
import type { Filter } from './filter.ts';
import { parseValueTemplate, renderValue } from './value-template.ts';

const schema = z.strictObject({
  /** Keys to set; string values may use `${tag}`, `${tag_parts[N]}`, `${hostname}` (no record fields: see record_transformer). */
  record: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  /** Keys (or paths) to delete. */
  remove_keys: z.array(z.string()).default([]),
  /** When set, only these top-level keys are kept (applied before `record`). */
  allowlist_keys: z.array(z.string()).optional(),
});

export const recordModifierFilter = defineComponent({
  kind: 'filter',
  type: 'record_modifier',
  schema,
  create(config, deps): Filter {
    const removals = config.remove_keys.map(parseRecordPath);
    const allow = config.allowlist_keys && new Set(config.allowlist_keys);
    const sets = Object.entries(config.record).map(
      ([key, value]) => [key, typeof value === 'string' ? parseValueTemplate(value, false) : value] as const,
    );
    return {
      id: deps.id,
      type: 'record_modifier',
      apply(entry, tag) {
        let record = entry.record;
        if (allow) record = Object.fromEntries(Object.entries(record).filter(([k]) => allow.has(k)));
        // Copies what it changes: the same entry may be on its way to another route too.
        for (const path of removals) record = withoutPath(record, path);
        if (sets.length > 0) {
          if (record === entry.record) record = { ...record };
          for (const [key, value] of sets)
            record[key] = typeof value === 'object' ? renderValue(value, entry, tag) : value;
        }
        return record === entry.record ? entry : { ...entry, record };
      },
    };
  },
});
