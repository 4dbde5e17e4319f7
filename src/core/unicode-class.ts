/**
 * Onigmo's Unicode classes (POSIX brackets, `\p{…}`) for a regex that runs without the `u`
 * flag (Fluentd expressions escape characters a `u` regex refuses): the class is listed as
 * ranges of the Basic Multilingual Plane, read once from a `u` regex of the matching Unicode
 * property. Characters beyond the BMP are not members (a negated class takes their halves).
 */

/** POSIX bracket → the JS `u` class body with the members Onigmo gives it (checked against Ruby). */
const POSIX: Record<string, string> = {
  alpha: '\\p{Alphabetic}',
  digit: '\\p{Nd}',
  alnum: '\\p{Alphabetic}\\p{Nd}',
  upper: '\\p{Uppercase}',
  lower: '\\p{Lowercase}',
  space: '\\p{White_Space}',
  blank: '\\p{Zs}\\t',
  punct: '\\p{P}$+<=>^`|~',
  cntrl: '\\p{Cc}',
  xdigit: '0-9a-fA-F',
  word: '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}',
  graph: '^\\p{White_Space}\\p{Cc}\\p{Cs}\\p{Cn}',
  print: '^\\p{Cc}\\p{Cs}\\p{Cn}\\p{Zl}\\p{Zp}',
  ascii: '\\x00-\\x7f',
};

const cache = new Map<string, string>();

const hex = (cp: number) => `\\u${cp.toString(16).padStart(4, '0')}`;

/** The members of `body` (a `u` class body) as ranges, or of its complement with `negate`. */
function ranges(body: string, negate: boolean): string {
  const key = `${negate ? '^' : ''}${body}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const re = new RegExp(`[${body}]`, 'u');
  let out = '';
  let start = -1;
  for (let cp = 0; cp <= 0x10000; cp++) {
    const surrogate = cp >= 0xd800 && cp <= 0xdfff;
    const member = cp <= 0xffff && (surrogate ? negate : re.test(String.fromCharCode(cp)) !== negate);
    if (member && start < 0) start = cp;
    if (!member && start >= 0) {
      out += start === cp - 1 ? hex(start) : `${hex(start)}-${hex(cp - 1)}`;
      start = -1;
    }
  }
  cache.set(key, out);
  return out;
}

/** `[:alpha:]`'s ranges (negated: `[:^alpha:]`); undefined for a name Onigmo does not have. */
export function posixRanges(name: string, negate: boolean): string | undefined {
  const body = POSIX[name];
  return body === undefined ? undefined : ranges(body, negate);
}

/**
 * `\p{Name}` as Onigmo reads it — a POSIX name (`Alpha`, `Word`), a general category (`L`,
 * `Lu`, `Letter`), a binary property or a script (`Han`, `Greek`) — as ranges; undefined when
 * JavaScript knows no such property.
 */
export function propertyRanges(name: string, negate: boolean): string | undefined {
  const posix = POSIX[name.toLowerCase()];
  if (posix !== undefined) return ranges(posix, negate);
  for (const body of [`\\p{${name}}`, `\\p{Script=${name}}`]) {
    try {
      new RegExp(body, 'u');
    } catch {
      continue;
    }
    return ranges(body, negate);
  }
  return undefined;
}
