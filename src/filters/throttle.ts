import { createHash } from 'node:crypto';
import { z } from 'zod';
import { duration } from '../config/values.ts';
import { getPath, parseRecordPath } from '../core/record-path.ts';
import { defineComponent } from '../registry.ts';
import { fieldText, valid } from './checks.ts';
import type { Emission, Filter } from './filter.ts';
import { buildTag, parseTagTemplate } from './tag-template.ts';

/** Option names are fluent-plugin-throttle's (`group_key`, `group_bucket_period_s`, `group_bucket_limit`, …). */
const schema = z.strictObject({
  /** The record paths whose values make a group (`$kubernetes['namespace_name']`); none: one group per tag. */
  group_key: z
    .union([z.string(), z.array(z.string())])
    .transform((keys) => (typeof keys === 'string' ? keys.split(',').map((k) => k.trim()) : keys))
    .pipe(z.array(z.string().min(1).check(valid(parseRecordPath))))
    .default([]),
  /** The window: each group may pass `group_bucket_limit` records per this long. */
  group_bucket_period_s: duration().default(60_000),
  /** Records a group may pass per window. */
  group_bucket_limit: z.number().int().min(1).default(6000),
  /** Over the limit: drop (true, counted) or only warn and pass (false). */
  group_drop_logs: z.boolean().default(true),
  /** Over the limit, re-tag instead of dropping (`$TAG`, `$TAG[n]`, record fields): a cheaper route takes them. */
  retag: z.string().min(1).check(valid(parseTagTemplate)).optional(),
  /** Groups tracked at once; records of groups past it share one bucket, so state stays bounded. */
  max_groups: z.number().int().min(1).default(100_000),
});

/** One group's count in its current window. */
interface Bucket {
  windowStart: number;
  count: number;
  warned: boolean;
}

const OVERFLOW_GROUP = '\u0000overflow';

/**
 * fluent-plugin-throttle: each group (of record field values, per tag) passes at most
 * `group_bucket_limit` records per `group_bucket_period_s` window; past it records are dropped
 * (counted in estuary_records_dropped_total{reason="throttled"}), passed with a warning, or
 * re-tagged to another route. One warning per group per window. Windows are fixed, from the
 * group's first record.
 */
export const throttleFilter = defineComponent({
  kind: 'filter',
  type: 'throttle',
  schema,
  create(config, deps): Filter {
    const paths = config.group_key.map(parseRecordPath);
    const retag = config.retag === undefined ? undefined : parseTagTemplate(config.retag);
    const period = config.group_bucket_period_s;
    const buckets = new Map<string, Bucket>();
    let lastSweep = 0;
    const dropped = deps.metrics.recordsDropped.labels({
      plugin_id: deps.id,
      type: 'throttle',
      reason: 'throttled',
    });
    return {
      id: deps.id,
      type: 'throttle',
      apply(entry, tag): typeof entry | null | readonly Emission[] {
        const values = paths.map((p) => fieldText(getPath(entry.record, p)) ?? '');
        let group = JSON.stringify([tag, ...values]);
        // Field values can be long: a digest keeps max_groups × key size bounded.
        if (group.length > 256) group = createHash('sha256').update(group).digest('base64');
        const now = Date.now();
        let bucket = buckets.get(group);
        if (!bucket) {
          // At most once a second: a flood of new groups must not make every record walk them all.
          if (buckets.size >= config.max_groups && now - lastSweep >= 1000) {
            lastSweep = now;
            sweep(buckets, now, period);
          }
          if (buckets.size >= config.max_groups) group = OVERFLOW_GROUP;
          bucket = buckets.get(group);
          if (!bucket) {
            bucket = { windowStart: now, count: 0, warned: false };
            buckets.set(group, bucket);
          }
        }
        if (now - bucket.windowStart >= period) {
          bucket.windowStart = now;
          bucket.count = 0;
          bucket.warned = false;
        }
        bucket.count += 1;
        if (bucket.count <= config.group_bucket_limit) return entry;
        if (!bucket.warned) {
          bucket.warned = true;
          deps.logger.warn(
            {
              tag,
              group: group === OVERFLOW_GROUP ? 'other groups (max_groups reached)' : values,
              limit: config.group_bucket_limit,
              period_ms: period,
              action: retag ? 'retag' : config.group_drop_logs ? 'drop' : 'pass',
            },
            'throttle: group over its rate for this window',
          );
        }
        if (retag) return [{ entry, tag: buildTag(retag, tag, entry.record) }];
        if (!config.group_drop_logs) return entry;
        dropped.inc();
        return null;
      },
    };
  },
});

/** Forgets groups whose window has passed: a group seen once does not hold its place for ever. */
function sweep(buckets: Map<string, Bucket>, now: number, period: number): void {
  for (const [group, bucket] of buckets) if (now - bucket.windowStart >= period) buckets.delete(group);
}
