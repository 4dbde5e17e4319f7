import type { Entry } from '../core/entry.ts';

/** Pure, synchronous, cheap: returns the entry (changed or not), or null to drop it. */
export interface Filter {
  readonly id: string;
  readonly type: string;
  apply(entry: Entry, tag: string): Entry | null;
}
