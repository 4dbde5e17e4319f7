import { z } from 'zod';
import { duration, size } from '../config/values.ts';
import type { Entry, LogRecord } from '../core/entry.ts';
import { getPath, parseRecordPath, withPath } from '../core/record-path.ts';
import type { Logger } from '../logger.ts';
import { type ComponentDeps, defineComponent } from '../registry.ts';
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
  /** The first piece's entry: the joined record is its record with `key` replaced. */
  first: Entry;
  /** The last piece's time. */
  lastTime: Entry['time'];
  /** Each piece's text (only that is kept of the later pieces). */
  pieces: string[];
  /** What the group holds, counted as its pieces' bytes plus a fixed cost per piece. */
  bytes: number;
  /** When the last piece came (ms), for flush_interval. */
  lastAt: number;
}

/** Counted per piece on top of its text: an empty piece still costs memory. */
const PIECE_COST = 64;

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
    return new ConcatFilter(deps.id, config, deps);
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
  /** Hand-ons still being buffered: stop() waits for them. */
  private readonly handing = new Set<Promise<void>>();
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;
  private readonly lost: { inc(n?: number): void };

  constructor(id: string, config: ConcatConfig, deps: ComponentDeps) {
    this.id = id;
    this.c = config;
    this.logger = deps.logger;
    this.lost = deps.metrics.recordsDropped.labels({
      plugin_id: id,
      type: 'concat',
      reason: 'filter_release_failed',
    });
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
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    const byTag = new Map<string, Emission[]>();
    for (const [key, group] of this.groups) add(byTag, group.tag, this.take(key, group));
    for (const [tag, emissions] of byTag) this.handOn(tag, emissions);
    while (this.handing.size > 0) await Promise.all(this.handing);
  }

  apply(entry: Entry, tag: string): Entry | null | readonly Emission[] {
    const piece = fieldText(getPath(entry.record, this.keyPath));
    // A record without the field is no piece of anything; after stop nothing is held.
    if (piece === undefined || this.stopped) return entry;
    const key = this.keyOf(entry.record, tag);
    const step = this.step(entry.record, piece, this.groups.has(key));
    // Joined groups hold pieces of batches already acknowledged: they go on through the
    // pipeline's Release, buffered on their own, so a refusal of this batch (a full buffer
    // under wait: false) cannot take them with it. Only this record's own fate is returned.
    const joined = new Map<string, Emission[]>();
    const open = this.groups.get(key);
    let inline: Entry | undefined;
    switch (step) {
      case 'alone':
      case 'break':
        if (open) add(joined, open.tag, this.take(key, open));
        inline = entry;
        break;
      case 'start': {
        if (open) add(joined, open.tag, this.take(key, open));
        this.add(key, tag, entry, piece, joined);
        // A line that both starts and ends an event is one by itself.
        const group = this.end?.test(piece) ? this.groups.get(key) : undefined;
        if (group) add(joined, tag, this.take(key, group));
        break;
      }
      case 'append':
        this.add(key, tag, entry, piece, joined);
        break;
      case 'end': {
        this.add(key, tag, entry, piece, joined);
        const group = this.groups.get(key);
        if (group) add(joined, tag, this.take(key, group));
        break;
      }
    }
    if (!this.release) {
      // Not started by a pipeline (a test calling apply): everything comes back here.
      const all = [...joined].flatMap(([to, list]) => list.map((e) => (to === tag ? e : { ...e, tag: to })));
      return inline ? [...all, { entry: inline }] : all;
    }
    for (const [to, list] of joined) this.handOn(to, list);
    return inline ?? [];
  }

  /** The group a record's piece belongs to: tag, stream (stream_identity_key, CRI stream), Docker's partial_id. */
  private keyOf(record: LogRecord, tag: string): string {
    const c = this.c;
    let key = tag;
    if (this.streamPath) key += `\u0000${fieldText(getPath(record, this.streamPath)) ?? ''}`;
    if (c.use_partial_cri_logtag) key += `\u0000${fieldText(record[c.partial_cri_stream_key]) ?? ''}`;
    if (c.use_partial_metadata) key += `\u0000${fieldText(record[this.meta.id]) ?? ''}`;
    return key;
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
  private add(key: string, tag: string, entry: Entry, piece: string, out: Map<string, Emission[]>): void {
    let group = this.groups.get(key);
    if (group)
      this.groups.delete(key); // re-inserted below: the Map stays in last-touched order
    else {
      if (this.groups.size >= this.c.max_groups) {
        const [oldestKey, oldest] = this.groups.entries().next().value as [string, Group];
        add(out, oldest.tag, this.take(oldestKey, oldest));
      }
      group = { tag, first: entry, lastTime: entry.time, pieces: [], bytes: 0, lastAt: 0 };
    }
    group.pieces.push(piece);
    group.lastTime = entry.time;
    group.bytes += Buffer.byteLength(piece) + PIECE_COST;
    group.lastAt = Date.now();
    this.groups.set(key, group);
    if (group.bytes >= this.c.max_bytes || group.pieces.length === this.c.n_lines)
      add(out, tag, this.take(key, group));
  }

  private take(key: string, group: Group): Emission {
    this.groups.delete(key);
    return { entry: this.joined(group) };
  }

  /** The group as one record: the first piece's fields, `key` joined, partial markers dropped. */
  private joined(group: Group): Entry {
    const { first } = group;
    if (group.pieces.length === 1 && !this.dropsMarkers()) return first;
    const record = withPath(first.record, this.keyPath, group.pieces.join(this.c.separator));
    const c = this.c;
    if (c.partial_key !== undefined && !c.keep_partial_key) delete record[c.partial_key];
    if (c.use_partial_metadata && !c.keep_partial_metadata)
      for (const k of Object.values(this.meta)) delete record[k];
    if (c.use_partial_cri_logtag) record[c.partial_cri_logtag_key] = 'F';
    return { ...first, time: c.use_first_timestamp ? first.time : group.lastTime, record };
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
      add(byTag, group.tag, this.take(key, group));
    }
    for (const [tag, emissions] of byTag) this.handOn(tag, emissions);
  }

  /** Buffers joined records through the pipeline; stop() waits for every one. A failure is counted as loss. */
  private handOn(tag: string, emissions: Emission[]): void {
    const release = this.release;
    if (!release) return;
    const handing: Promise<void> = release(tag, emissions)
      .catch((err: unknown) => {
        this.lost.inc(emissions.length);
        this.logger.error(
          { err, tag, records: emissions.length },
          'concat: joined records could not be buffered; lost',
        );
      })
      .finally(() => this.handing.delete(handing));
    this.handing.add(handing);
  }
}

function add(byTag: Map<string, Emission[]>, tag: string, emission: Emission): void {
  const list = byTag.get(tag);
  if (list) list.push(emission);
  else byTag.set(tag, [emission]);
}
