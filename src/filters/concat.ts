import { z } from 'zod';
import { duration, size } from '../config/values.ts';
import type { Entry, LogRecord } from '../core/entry.ts';
import { getPath, parseRecordPath, withPath } from '../core/record-path.ts';
import { type Logger, rateLimited } from '../logger.ts';
import { defineComponent } from '../registry.ts';
import { compileRegex, fieldText, rubyRegex, valid } from './checks.ts';
import type { Emission, Filter, Release } from './filter.ts';

/** Where Docker puts the partial-message metadata, by `partial_metadata_format`. */
const PARTIAL_METADATA = {
  'docker-fluentd': {
    id: 'partial_id',
    ordinal: 'partial_ordinal',
    last: 'partial_last',
    flag: 'partial_message',
  },
  'docker-journald': {
    id: 'CONTAINER_PARTIAL_ID',
    ordinal: 'CONTAINER_PARTIAL_ORDINAL',
    last: 'CONTAINER_PARTIAL_LAST',
    flag: 'CONTAINER_PARTIAL_MESSAGE',
  },
  'docker-journald-lowercase': {
    id: 'container_partial_id',
    ordinal: 'container_partial_ordinal',
    last: 'container_partial_last',
    flag: 'container_partial_message',
  },
} as const;

/** Option names are fluent-plugin-concat's, so Fluentd configs carry over. */
const schema = z
  .strictObject({
    /** The field holding each piece of the line (a record path). */
    key: z.string().min(1).check(valid(parseRecordPath)),
    /** Put between the pieces when they are joined. */
    separator: z.string().default('\n'),
    /** Join every n records. */
    n_lines: z.number().int().min(1).optional(),
    /** A record matching this starts a new group (the group before it is emitted). */
    multiline_start_regexp: rubyRegex().optional(),
    /** A record matching this ends its group. */
    multiline_end_regexp: rubyRegex().optional(),
    /** With a start regexp: a record matching this continues the group; one that does not ends it and passes alone. */
    continuous_line_regexp: rubyRegex().optional(),
    /** Records are joined only with records of the same tag and the same value of this field (e.g. `container_id`). */
    stream_identity_key: z.string().min(1).check(valid(parseRecordPath)).optional(),
    /** A group that gets no record for this long is emitted as it is. */
    flush_interval: duration().default(60_000),
    /** The joined record takes the first piece's time (default: the last piece's). */
    use_first_timestamp: z.boolean().default(false),
    /** A record whose `partial_key` field is `partial_value` is a piece; the next record without it ends the group. */
    partial_key: z.string().min(1).optional(),
    partial_value: z.string().optional(),
    keep_partial_key: z.boolean().default(false),
    /** Join by Docker's partial-message metadata (its `fluentd` and `journald` log drivers split lines over 16 KiB). */
    use_partial_metadata: z.boolean().default(false),
    partial_metadata_format: z
      .enum(['docker-fluentd', 'docker-journald', 'docker-journald-lowercase'])
      .default('docker-fluentd'),
    keep_partial_metadata: z.boolean().default(false),
    /** Join CRI pieces: `P` (partial) pieces up to the `F` (full) one, by the logtag field. */
    use_partial_cri_logtag: z.boolean().default(false),
    partial_cri_logtag_key: z.string().min(1).default('logtag'),
    partial_cri_stream_key: z.string().min(1).default('stream'),
    /** A group reaching this many bytes of pieces is emitted at once: what a stream holds stays bounded. */
    max_bytes: size().default(1024 * 1024),
    /** Open groups at most (streams being joined); past it the oldest is emitted. */
    max_groups: z.number().int().min(1).default(10_000),
  })
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
    const modes = [
      c.n_lines !== undefined,
      c.multiline_start_regexp !== undefined || c.multiline_end_regexp !== undefined,
      c.partial_key !== undefined,
      c.use_partial_metadata,
      c.use_partial_cri_logtag,
    ].filter(Boolean).length;
    if (modes !== 1)
      issue(
        'key',
        'set exactly one way to join: n_lines, multiline_start_regexp / multiline_end_regexp, partial_key, use_partial_metadata or use_partial_cri_logtag',
      );
    if (c.continuous_line_regexp !== undefined && c.multiline_start_regexp === undefined)
      issue('continuous_line_regexp', 'continuous_line_regexp goes with multiline_start_regexp');
    if (c.partial_key !== undefined && c.partial_value === undefined)
      issue('partial_value', 'partial_key needs partial_value (the value that marks a piece)');
  });
type ConcatConfig = z.output<typeof schema>;

/** The pieces of one stream waiting for the rest of their line. */
interface Group {
  tag: string;
  stream: string;
  entries: Entry[];
  bytes: number;
  /** When the last piece came (ms), for flush_interval. */
  lastAt: number;
}

/** What a record does to its stream's group. */
type Step =
  | 'alone' // not a piece: passes on by itself (any open group first)
  | 'start' // begins a group (any open group is emitted first)
  | 'append' // joins the open group (or begins one)
  | 'end' // joins the open group and completes it
  | 'break'; // the open group is emitted, then this record passes alone

/**
 * fluent-plugin-concat: pieces of one line (Docker's 16 KiB splits, CRI `P`/`F` pieces) or of
 * one event (a stack trace over many lines) joined back into one record, per tag and stream.
 * The joined record is the first piece's record with `key` holding the pieces joined by
 * `separator`. Pieces wait in memory, bounded by `max_bytes` per group and `max_groups`; a
 * group with no new piece for `flush_interval` is emitted as it is, and every group is emitted
 * at shutdown.
 */
export const concatFilter = defineComponent({
  kind: 'filter',
  type: 'concat',
  schema,
  create(config, deps): Filter {
    return new ConcatFilter(deps.id, config, deps.logger);
  },
});

class ConcatFilter implements Filter {
  readonly id: string;
  readonly type = 'concat';
  private readonly c: ConcatConfig;
  private readonly keyPath: string[];
  private readonly streamPath: string[] | undefined;
  private readonly start_: RegExp | undefined;
  private readonly end: RegExp | undefined;
  private readonly continuous: RegExp | undefined;
  private readonly meta: (typeof PARTIAL_METADATA)[keyof typeof PARTIAL_METADATA];
  /** Open groups in the order they were last touched (a Map keeps insertion order). */
  private readonly groups = new Map<string, Group>();
  private release: Release | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly warnRelease: (err: unknown) => void;

  constructor(id: string, config: ConcatConfig, logger: Logger) {
    this.id = id;
    this.c = config;
    this.keyPath = parseRecordPath(config.key);
    this.streamPath =
      config.stream_identity_key === undefined ? undefined : parseRecordPath(config.stream_identity_key);
    this.start_ =
      config.multiline_start_regexp === undefined ? undefined : compileRegex(config.multiline_start_regexp);
    this.end =
      config.multiline_end_regexp === undefined ? undefined : compileRegex(config.multiline_end_regexp);
    this.continuous =
      config.continuous_line_regexp === undefined ? undefined : compileRegex(config.continuous_line_regexp);
    this.meta = PARTIAL_METADATA[config.partial_metadata_format];
    this.warnRelease = rateLimited(60_000, (suppressed, err: unknown) =>
      logger.warn({ err, suppressed }, 'concat: a timed-out group could not be buffered'),
    );
  }

  start(release: Release): void {
    this.release = release;
    if (this.c.flush_interval > 0) {
      // A group is emitted between flush_interval and 1.25 × flush_interval after its last piece.
      const every = Math.min(Math.max(this.c.flush_interval / 4, 50), 5_000);
      this.timer = setInterval(() => this.flushIdle(Date.now()), every);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const byTag = new Map<string, Emission[]>();
    for (const group of this.groups.values()) {
      const list = byTag.get(group.tag) ?? [];
      list.push({ entry: this.joined(group) });
      byTag.set(group.tag, list);
    }
    this.groups.clear();
    if (this.release) await Promise.all([...byTag].map(([tag, emissions]) => this.release!(tag, emissions)));
  }

  apply(entry: Entry, tag: string): Entry | null | readonly Emission[] {
    const piece = fieldText(getPath(entry.record, this.keyPath));
    // A record without the field is no piece of anything.
    if (piece === undefined) return entry;
    const stream = this.streamPath
      ? `${tag}\u0000${fieldText(getPath(entry.record, this.streamPath)) ?? ''}`
      : tag;
    const key = this.c.use_partial_metadata
      ? `${stream}\u0000${fieldText(entry.record[this.meta.id]) ?? ''}`
      : stream;
    const step = this.step(entry.record, piece, this.groups.has(key));
    const out: Emission[] = [];
    const open = this.groups.get(key);
    switch (step) {
      case 'alone':
      case 'break':
        if (open) out.push(this.take(key, open));
        out.push({ entry });
        break;
      case 'start': {
        if (open) out.push(this.take(key, open));
        this.add(key, tag, stream, entry, piece, out);
        // A line that both starts and ends an event is one by itself.
        const group = this.end?.test(piece) ? this.groups.get(key) : undefined;
        if (group) out.push(this.take(key, group));
        break;
      }
      case 'append':
        this.add(key, tag, stream, entry, piece, out);
        break;
      case 'end': {
        this.add(key, tag, stream, entry, piece, out);
        const group = this.groups.get(key);
        if (group) out.push(this.take(key, group));
        break;
      }
    }
    return out;
  }

  private step(record: LogRecord, piece: string, open: boolean): Step {
    const c = this.c;
    if (c.n_lines !== undefined) return 'append'; // add() completes the group at n_lines
    if (c.use_partial_cri_logtag) {
      const tag = fieldText(record[c.partial_cri_logtag_key]);
      if (tag === 'P') return 'append';
      return open ? 'end' : 'alone';
    }
    if (c.use_partial_metadata) {
      if (fieldText(record[this.meta.flag]) !== 'true' && record[this.meta.id] === undefined) return 'alone';
      return fieldText(record[this.meta.last]) === 'true' ? 'end' : 'append';
    }
    if (c.partial_key !== undefined) {
      if (fieldText(record[c.partial_key]) === c.partial_value) return 'append';
      return open ? 'end' : 'alone';
    }
    // Multiline regexps.
    if (this.start_?.test(piece)) return 'start';
    if (this.end?.test(piece)) return open || !this.start_ ? 'end' : 'alone';
    if (!open) return this.start_ ? 'alone' : 'append';
    if (this.continuous && !this.continuous.test(piece)) return 'break';
    return 'append';
  }

  /** Adds a piece to its group (opened if need be); a group over its limits is emitted into `out`. */
  private add(key: string, tag: string, stream: string, entry: Entry, piece: string, out: Emission[]): void {
    let group = this.groups.get(key);
    if (group)
      this.groups.delete(key); // re-inserted below: the Map stays in last-touched order
    else {
      if (this.groups.size >= this.c.max_groups) {
        const [oldestKey, oldest] = this.groups.entries().next().value as [string, Group];
        out.push(this.take(oldestKey, oldest));
      }
      group = { tag, stream, entries: [], bytes: 0, lastAt: 0 };
    }
    group.entries.push(entry);
    group.bytes += Buffer.byteLength(piece) + this.c.separator.length;
    group.lastAt = Date.now();
    this.groups.set(key, group);
    if (group.bytes >= this.c.max_bytes || group.entries.length === this.c.n_lines)
      out.push(this.take(key, group));
  }

  private take(key: string, group: Group): Emission {
    this.groups.delete(key);
    return { entry: this.joined(group) };
  }

  /** The group as one record: the first piece's fields, `key` joined, partial markers dropped. */
  private joined(group: Group): Entry {
    const first = group.entries[0]!;
    const last = group.entries[group.entries.length - 1]!;
    if (group.entries.length === 1 && !this.dropsMarkers()) return first;
    const text = group.entries
      .map((e) => fieldText(getPath(e.record, this.keyPath)) ?? '')
      .join(this.c.separator);
    const record = withPath(first.record, this.keyPath, text);
    const c = this.c;
    if (c.partial_key !== undefined && !c.keep_partial_key) delete record[c.partial_key];
    if (c.use_partial_metadata && !c.keep_partial_metadata)
      for (const k of Object.values(this.meta)) delete record[k];
    if (c.use_partial_cri_logtag) record[c.partial_cri_logtag_key] = 'F';
    return { ...first, time: c.use_first_timestamp ? first.time : last.time, record };
  }

  private dropsMarkers(): boolean {
    const c = this.c;
    return (
      (c.partial_key !== undefined && !c.keep_partial_key) ||
      (c.use_partial_metadata && !c.keep_partial_metadata) ||
      c.use_partial_cri_logtag
    );
  }

  /** Groups with no piece for flush_interval, handed on as they are. */
  private flushIdle(now: number): void {
    const byTag = new Map<string, Emission[]>();
    for (const [key, group] of this.groups) {
      // Last-touched order: the first group still fresh ends the scan.
      if (now - group.lastAt < this.c.flush_interval) break;
      const list = byTag.get(group.tag) ?? [];
      list.push(this.take(key, group));
      byTag.set(group.tag, list);
    }
    for (const [tag, emissions] of byTag) this.release?.(tag, emissions).catch(this.warnRelease);
  }
}
