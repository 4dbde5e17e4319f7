import { z } from 'zod';
import { FORMATS } from '../format.ts';
import { checkPathTemplate } from './path-template.ts';

/**
 * Unix permission bits. YAML 1.2 reads an unquoted `0640` as decimal 640, so numbers above
 * 0o777 are refused rather than silently giving odd permissions; write `0o640` or `"0640"`.
 */
const fileMode = () =>
  z.union([z.number().int(), z.string()]).transform((value, ctx) => {
    const mode = typeof value === 'number' ? value : /^(?:0o?)?[0-7]{3}$/.test(value) ? parseMode(value) : -1;
    if (mode < 0 || mode > 0o777) {
      ctx.addIssue({
        code: 'custom',
        message: `expected permission bits like 0o640 or "0640", got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return mode;
  });

function parseMode(text: string): number {
  return Number.parseInt(text.replace(/^0o?/, ''), 8);
}

export const fileSchema = z.strictObject({
  /**
   * File to append to. May hold strftime directives (`%Y%m%d%H`…) taken from each record's
   * time and `${tag}`, `${tag[0]}`, `${tag[-1]}` parts of its tag; relative to the config file.
   */
  path: z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const problem = checkPathTemplate(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  /** `json` ({"tag","time","record"} per line), `record` (the record alone) or `fluentd` (time, tag, json). */
  format: z.enum(FORMATS).default('json'),
  /** Zone for the strftime directives in `path`. */
  timezone: z.enum(['utc', 'local']).default('utc'),
  /** Create missing parent directories. */
  mkdir: z.boolean().default(true),
  /** fsync after each chunk, so a chunk the buffer has let go of survives a power cut. */
  fsync: z.boolean().default(true),
  /** Permissions of files this output creates (the umask still applies). */
  file_mode: fileMode().default(0o640),
  /** Open files kept between chunks; past this the least recently used is closed. */
  max_open_files: z.number().int().min(1).default(64),
});
export type FileConfig = z.output<typeof fileSchema>;
