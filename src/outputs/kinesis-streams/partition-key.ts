import type { EntryCursor } from '../../core/entry-cursor.ts';
import { keyPath } from '../../core/msgpack-fields.ts';
import { getPath, parseRecordPath } from '../../core/record-path.ts';
import { scalarText } from '../elasticsearch/encode.ts';
import { bytePathUsable, findPath, scalarAt, UNSURE } from '../elasticsearch/record-fields.ts';

/** Kinesis takes partition keys of 1 to 256 Unicode characters. */
const MAX_KEY_CHARS = 256;

/**
 * Each record's partition key from the `partition_key` field, read from its bytes (decoded only
 * when they cannot tell): a string or number, cut to 256 characters. '' where the record has
 * none: the packer gives those a random key, as Fluent Bit does.
 */
export function partitionKeyReader(field: string): (tag: string, cursor: EntryCursor) => string {
  const path = parseRecordPath(field);
  const bytes = bytePathUsable(path) ? keyPath(path) : undefined;
  return (tag, c) => {
    const src = c.payload;
    const at = bytes === undefined ? UNSURE : findPath(src, c.recordStart, src.length, bytes);
    let value: string | undefined;
    if (at === UNSURE) value = scalarText(getPath(c.decode(tag).record, path));
    else if (at >= 0) value = scalarText(scalarAt(src, at, src.length));
    if (value === undefined) return '';
    if (value.length <= MAX_KEY_CHARS) return value;
    // 256 UTF-16 units (what AWS's length check counts, and within 256 code points too), not
    // cutting a surrogate pair in two.
    const end = /[\uD800-\uDBFF]/.test(value[MAX_KEY_CHARS - 1]!) ? MAX_KEY_CHARS - 1 : MAX_KEY_CHARS;
    return value.slice(0, end);
  };
}
