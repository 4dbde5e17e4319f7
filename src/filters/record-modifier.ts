import { hostname } from 'node:os';
import { z } from 'zod';
import { deletePath, parseRecordPath } from '../core/record-path.ts';
import { defineComponent } from '../registry.ts';
import type { Filter } from './filter.ts';

const schema = z.strictObject({
  /** Keys to set; values may use `${tag}`, `${tag_parts[N]}` and `${hostname}`. */
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
    const host = hostname();
    const removals = config.remove_keys.map(parseRecordPath);
    const allow = config.allowlist_keys && new Set(config.allowlist_keys);
    const sets = Object.entries(config.record);
    const templated = sets.some(([, v]) => typeof v === 'string' && v.includes('${'));
    return {
      id: deps.id,
      type: 'record_modifier',
      apply(entry, tag) {
        let record = entry.record;
        if (allow) record = Object.fromEntries(Object.entries(record).filter(([k]) => allow.has(k)));
        else record = { ...record };
        for (const path of removals) deletePath(record, path);
        if (sets.length > 0) {
          const parts = templated ? tag.split('.') : [];
          for (const [key, value] of sets) {
            record[key] =
              typeof value === 'string'
                ? value.replace(
                    /\$\{(tag|hostname|tag_parts\[(-?\d+)\])\}/g,
                    (_, name: string, index?: string) => {
                      if (name === 'tag') return tag;
                      if (name === 'hostname') return host;
                      return parts.at(Number(index)) ?? '';
                    },
                  )
                : value;
          }
        }
        return { ...entry, record };
      },
    };
  },
});
