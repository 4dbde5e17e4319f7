import type { ValueTime } from './time.ts';

/** Fields read from one line. */
export type Values = Record<string, unknown>;

/**
 * One format: `parse` reads a line (its trailing newline already cut) into fresh fields, or
 * undefined when the line is not of this format. `time` is where the format keeps its time and
 * how it reads it, unless the config says otherwise.
 */
export interface Format {
  parse(text: string): Values | undefined;
  time?: { key: string; read?: ValueTime; keep: boolean };
}

/**
 * Sets a field read from a line. A line may name a field `__proto__`: as an assignment that
 * would set the object's prototype (and lose the field); defined, it is a field like any other,
 * as JSON.parse makes it.
 */
export function setField(values: Values, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(values, key, { value, writable: true, enumerable: true, configurable: true });
  else values[key] = value;
}

/** A regex's named groups as fields; a group that took no part is left out, as in Fluent Bit. */
export function groupsOf(regex: RegExp, names: readonly string[]): Format['parse'] {
  return (text) => {
    const groups = regex.exec(text)?.groups;
    if (!groups) return undefined;
    const values: Values = {};
    for (const name of names) {
      const v = groups[name];
      if (v !== undefined) setField(values, name, v);
    }
    return values;
  };
}
