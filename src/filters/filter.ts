import type { Entry } from '../core/entry.ts';

/**
 * What an entry becomes: `tag` unset keeps its tag; another tag re-routes it from the first
 * filter. With `reject`, the entry goes on no further: it is put in the dead-letter queue of
 * each output its tag routes to, with that reason (a record a parser could not read, with
 * emit_invalid_record_to_error) — acknowledged data is never dropped silently.
 */
export interface Emission {
  entry: Entry;
  tag?: string;
  reject?: string;
}

/**
 * Hands entries a filter held (a joined multi-line group, a flushed window) back to the
 * pipeline, which runs them through the filters after this one (or, re-tagged, from the
 * first) and buffers them. Resolves once they are buffered.
 */
export type Release = (tag: string, emissions: readonly Emission[]) => Promise<void>;

/**
 * Runs on every entry whose tag its `match` fits, synchronously and cheaply. `apply` returns
 * the entry (changed or not), null to drop it, or the list of what it becomes — none, several,
 * or under other tags.
 *
 * A filter that holds entries (concat, throttle) gets `start` with the pipeline's Release to
 * hand them on later (on a timer), and must hand every one on by the time `stop` resolves:
 * nothing acknowledged is lost in a filter at shutdown. What it holds stays bounded.
 */
export interface Filter {
  readonly id: string;
  readonly type: string;
  apply(entry: Entry, tag: string): Entry | null | readonly Emission[];
  start?(release: Release): void;
  stop?(): Promise<void>;
}
