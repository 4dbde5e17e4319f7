import { z } from 'zod';

/** A config check that reports the parser's own message (a regex's, a record path's). */
export function valid(parse: (text: string) => unknown) {
  return z.superRefine<string>((value, ctx) => {
    try {
      parse(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });
}

/** A field's value as the text a regex is matched against; undefined when absent or null. */
export function fieldText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
