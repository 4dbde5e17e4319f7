import { z } from 'zod';
import { compileOnigmo } from '../core/onigmo.ts';
import { toJson } from '../core/to-json.ts';

/** A config check that reports the parser's own message (a regex's, a record path's). */
export function valid<T = string>(parse: (value: T) => unknown) {
  return z.superRefine<T>((value, ctx) => {
    try {
      parse(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });
}

/**
 * A regular expression option as Fluentd and Fluent Bit configs write it: Ruby (Onigmo)
 * syntax, bare or `/…/imx` (core/onigmo.ts translates it), checked when the config loads.
 */
export const rubyRegex = () =>
  z
    .string()
    .min(1)
    .check(valid((e) => compileOnigmo(e)));

/** The JavaScript RegExp of a `rubyRegex` option. */
export function compileRegex(expression: string): RegExp {
  return compileOnigmo(expression).regex;
}

/** A field's value as the text a regex is matched against; undefined when absent or null. */
export function fieldText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  // toJson, not JSON.stringify: a decoded uint64 is a BigInt, which JSON.stringify throws on.
  return typeof value === 'object' ? toJson(value) : String(value);
}
