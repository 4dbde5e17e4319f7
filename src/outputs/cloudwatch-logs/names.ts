import type { EntryCursor } from '../../core/entry-cursor.ts';
import { KeyFormat } from '../s3/key-format.ts';
import type { CloudWatchLogsConfig } from './config.ts';

/** A log stream of a log group: one object per pair, so a chunk's events group by identity. */
export interface Destination {
  readonly group: string;
  readonly stream: string;
  /** `group` NUL `stream`: unique per pair (NUL is in neither name). */
  readonly key: string;
}

/**
 * Stands for a field the record lacks in a resolved template. KeyFormat removes control
 * characters from tags and record values, so only a missing field makes it.
 */
const MISSING = '\u0000';

/** More distinct pairs than this and the memo starts over (a stream per pod, for months). */
const MAX_REMEMBERED = 10_000;

/**
 * The group and stream of each record, as Fluent Bit names them: `log_group_template` /
 * `log_stream_template` where set and resolvable (`$TAG`, `$TAG[n]`, record fields), else
 * `log_group_name` and `log_stream_name` or `log_stream_prefix` + tag. Values from tags and
 * records are made valid names (characters CloudWatch refuses become `_`), so a record never
 * fails for the name its fields give it.
 */
export class Destinations {
  private readonly group: string;
  private readonly stream: string | undefined;
  private readonly prefix: string;
  private readonly groupFormat: KeyFormat | undefined;
  private readonly streamFormat: KeyFormat | undefined;
  private readonly byKey = new Map<string, Destination>();
  /** Without templates a tag decides the destination: one lookup per tag. */
  private readonly byTag = new Map<string, Destination>();

  constructor(c: CloudWatchLogsConfig) {
    this.group = c.log_group_name;
    this.stream = c.log_stream_name;
    this.prefix = c.log_stream_prefix ?? '';
    this.groupFormat =
      c.log_group_template === undefined ? undefined : new KeyFormat(c.log_group_template, '.', MISSING);
    this.streamFormat =
      c.log_stream_template === undefined ? undefined : new KeyFormat(c.log_stream_template, '.', MISSING);
  }

  /** Where the record under `cursor` goes. */
  of(tag: string, cursor: EntryCursor): Destination {
    if (!this.groupFormat && !this.streamFormat) {
      let dest = this.byTag.get(tag);
      if (!dest) {
        if (this.byTag.size >= MAX_REMEMBERED) this.byTag.clear();
        dest = this.pair(this.group, this.fallbackStream(tag));
        this.byTag.set(tag, dest);
      }
      return dest;
    }
    const decode = () => cursor.decode(tag).record;
    const src = cursor.payload;
    let group = this.group;
    if (this.groupFormat) {
      const name = this.groupFormat.resolveAt(tag, cursor.sec, cursor.nsec, src, cursor.recordStart, decode);
      if (!name.includes(MISSING)) group = groupName(name);
    }
    let stream: string | undefined;
    if (this.streamFormat) {
      const name = this.streamFormat.resolveAt(tag, cursor.sec, cursor.nsec, src, cursor.recordStart, decode);
      if (!name.includes(MISSING)) stream = streamName(name);
    }
    return this.pair(group, stream ?? this.fallbackStream(tag));
  }

  private fallbackStream(tag: string): string {
    return this.stream ?? streamName(this.prefix + tag);
  }

  private pair(group: string, stream: string): Destination {
    const key = `${group}\u0000${stream}`;
    let dest = this.byKey.get(key);
    if (!dest) {
      if (this.byKey.size >= MAX_REMEMBERED) this.byKey.clear();
      dest = { group, stream, key };
      this.byKey.set(key, dest);
    }
    return dest;
  }
}

/** A valid log group name: `[.\-_/#A-Za-z0-9]`, at most 512 characters. */
function groupName(name: string): string {
  return name.replace(/[^.\-_/#A-Za-z0-9]/g, '_').slice(0, 512) || '_';
}

/** A valid log stream name: no `:` or `*`, at most 512 characters. */
function streamName(name: string): string {
  return name.replace(/[:*]/g, '_').slice(0, 512) || '_';
}
