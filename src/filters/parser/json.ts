import { isLogRecord } from '../../core/entry.ts';
import { parseJson } from '../../core/json-parse.ts';
import type { Format, Values } from './format.ts';

/** A JSON object; any other JSON value (or none) is not a record. */
export function parseJsonObject(text: string): Values | undefined {
  try {
    const value = parseJson(text);
    return isLogRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export const json: Format = { parse: parseJsonObject, time: { key: 'time', keep: false } };

/** Docker's json-file lines (`log`, `stream`, `time`): Fluent Bit's `docker` keeps `time`. */
export const docker: Format = { parse: parseJsonObject, time: { key: 'time', keep: true } };
