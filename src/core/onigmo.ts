import { posixRanges, propertyRanges } from './unicode-class.ts';

/**
 * Ruby (Onigmo) regular expressions, as Fluentd and Fluent Bit configs hold them, turned into
 * JavaScript ones that match the same lines. Written as `/…/imx` or bare.
 *
 * What differs, and what is done about it:
 * - Ruby's `^` and `$` are always line anchors, at a `\n` only: lookarounds for a `\n` or the
 *   text's end. `\A`, `\z`, `\Z` become lookarounds on the whole text.
 * - Ruby's `.` is everything but `\n` (JS also stops at `\r`, U+2028, U+2029): `[^\n]`. Ruby's
 *   `/m` is JS's dotall: `.` becomes `[\s\S]`. `/x` (and inline `(?x)`) drops spaces and
 *   `#` comments here.
 * - `\h` / `\H` (hex digit), `\s` (ASCII space: JS's takes Unicode's), `\R`, `\e`, `\a`,
 *   `\x{…}` / `\u{…}`, `(?'name'…)`, `\k'name'`, `{,n}`, `(?#…)`, inline `(?i)` (to the end of its
 *   group, as Onigmo reads it): rewritten. POSIX brackets (`[[:alpha:]]`, Unicode as in Ruby)
 *   and `\p{…}` become ranges (see unicode-class.ts).
 * - Atomic groups `(?>X)` and possessive `X*+` `X++` `X?+`: JS has neither; `(?=(X))\1` is the
 *   exact equivalent (a lookahead is atomic), with a named group so no numbering shifts.
 *   Ruby's `X{n,m}+` is not possessive but a repeat of the interval: `(?:X{n,m})+`.
 * - With named groups, Ruby's plain `(…)` groups do not capture: they become `(?:…)`. Without
 *   any, they capture as in JS (`$1` in rewrite_tag); atomic groups and possessive quantifiers,
 *   whose helper groups would shift those numbers, are refused then.
 * What has no JS form (`\G`, `\K`, `\X`, `\g<…>` calls, numbered back-references next to named
 * groups, conditionals, absent operators, class intersections) is refused with its name.
 */
export interface Translated {
  source: string;
  flags: string;
  /** The pattern's own named groups, in order; helper groups are not listed. */
  names: string[];
}

export const HELPER_PREFIX = '__onigmo_atomic_';

interface Frame {
  /** Where the group's text starts in the output, for a quantifier that follows it. */
  start: number;
  dotAll: boolean;
  extended: boolean;
  ignoreCase: boolean;
  /** The atomic helper's name, closed with `))\k<name>`. */
  atomic?: string;
  /** An inline `(?i)` opened a group here that closes with the enclosing one. */
  inline?: boolean;
}

const UNSUPPORTED_ESCAPES: Record<string, string> = {
  G: '\\G (match start anchor)',
  K: '\\K (keep)',
  X: '\\X (extended grapheme cluster)',
  g: '\\g<…> (subexpression call)',
  y: '\\y (text segment boundary)',
  Y: '\\Y (text segment boundary)',
  O: '\\O (true anychar)',
};

class OnigmoError extends Error {}

function fail(what: string, at: number): never {
  throw new OnigmoError(`${what} at character ${at + 1} has no JavaScript equivalent`);
}

/**
 * Where the pattern of `/pattern/flags` (Fluentd's written form) lies in the expression, so
 * positions in errors count from its start; a bare pattern has no flags.
 */
function unwrap(expression: string): { pattern: string; start: number; flags: string } {
  const m = /^\/[\s\S]*\/([imx]*)$/.exec(expression);
  if (!m) return { pattern: expression, start: 0, flags: '' };
  return { pattern: expression.slice(0, expression.length - m[1]!.length - 1), start: 1, flags: m[1]! };
}

export function translateOnigmo(expression: string): Translated {
  const { pattern, start: first, flags } = unwrap(expression);
  let out = '';
  const names: string[] = [];
  let helpers = 0;
  const root: Frame = {
    start: 0,
    dotAll: flags.includes('m'),
    extended: flags.includes('x'),
    ignoreCase: flags.includes('i'),
  };
  const stack: Frame[] = [root];
  // Ruby numbers plain groups only in a pattern without named ones.
  const numbered = !/\(\?(?:<[A-Za-z_]|')/.test(pattern);
  const helper = (at: number) => {
    if (numbered)
      fail('an atomic group or possessive quantifier beside numbered groups (name the groups)', at);
    return `${HELPER_PREFIX}${helpers++}`;
  };
  const top = () => stack[stack.length - 1]!;
  /** Where the last quantifiable atom starts in `out`; -1 when there is none. */
  let atom = -1;

  const closeInline = () => {
    while (top().inline) {
      stack.pop();
      out += ')';
    }
  };

  for (let i = first; i < pattern.length; ) {
    const c = pattern[i]!;
    const frame = top();
    if (frame.extended && /\s/.test(c)) {
      i++;
      continue;
    }
    if (frame.extended && c === '#') {
      while (i < pattern.length && pattern[i] !== '\n') i++;
      continue;
    }
    switch (c) {
      case '\\': {
        const start = out.length;
        const [text, next, assertion] = outsideClass(pattern, i);
        out += text;
        i = next;
        atom = assertion ? -1 : start;
        break;
      }
      case '[': {
        const start = out.length;
        const [text, next] = charClass(pattern, i);
        out += text;
        i = next;
        atom = start;
        break;
      }
      case '.':
        atom = out.length;
        out += frame.dotAll ? '[\\s\\S]' : '[^\\n]';
        i++;
        break;
      case '(': {
        const start = out.length;
        const rest = pattern.slice(i);
        if (rest.startsWith('(?#')) {
          const end = pattern.indexOf(')', i);
          if (end < 0) fail('an unterminated (?# comment', i);
          i = end + 1;
          break;
        }
        const child: Frame = { ...frame, start, inline: false, atomic: undefined };
        const named = /^\(\?(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')/.exec(rest);
        const plain = /^\(\?(?:[:=!]|<[=!])/.exec(rest);
        const m = /^\(\?([imx]*)(?:-([imx]*))?([:)])/.exec(rest);
        if (named) {
          const name = (named[1] ?? named[2])!;
          names.push(name);
          out += `(?<${name}>`;
          i += named[0].length;
        } else if (plain) {
          out += plain[0];
          i += plain[0].length;
        } else if (rest.startsWith('(?>')) {
          child.atomic = helper(i);
          out += `(?=(?<${child.atomic}>`;
          i += 3;
        } else if (m && (m[1] || m[2])) {
          const on = m[1]!;
          const off = m[2] ?? '';
          const ignoreCase = on.includes('i') ? true : off.includes('i') ? false : frame.ignoreCase;
          child.dotAll = on.includes('m') ? true : off.includes('m') ? false : frame.dotAll;
          child.extended = on.includes('x') ? true : off.includes('x') ? false : frame.extended;
          child.ignoreCase = ignoreCase;
          out += ignoreCase === frame.ignoreCase ? '(?:' : ignoreCase ? '(?i:' : '(?-i:';
          // `(?i)` alone: to the end of the enclosing group, alternatives included.
          child.inline = m[3] === ')';
          i += m[0].length;
          if (child.inline) {
            stack.push(child);
            atom = -1;
            break;
          }
        } else if (rest.startsWith('(?~')) {
          fail('an absent operator (?~…)', i);
        } else if (rest.startsWith('(?(')) {
          fail('a conditional (?(…)…)', i);
        } else if (rest.startsWith('(?')) {
          fail(`the group ${rest.slice(0, 4)}`, i);
        } else {
          out += numbered ? '(' : '(?:';
          i++;
        }
        stack.push(child);
        atom = -1;
        break;
      }
      case ')': {
        closeInline();
        if (stack.length === 1) fail('an unmatched )', i);
        const closed = stack.pop()!;
        out += closed.atomic ? `))\\k<${closed.atomic}>` : ')';
        atom = closed.start;
        i++;
        break;
      }
      case '|':
        out += c;
        atom = -1;
        i++;
        break;
      case '^':
      case '$':
        // Ruby's line anchors see only \n (JS's `m` flag also stops at \r, U+2028, U+2029).
        out += c === '^' ? '(?<![^\n])' : '(?![^\n])';
        atom = -1;
        i++;
        break;
      case '*':
      case '+':
      case '?':
      case '{': {
        const q = quantifier(pattern, i);
        if (!q) {
          // A `{` that opens no interval is a literal brace, as in Ruby.
          atom = out.length;
          out += '\\{';
          i++;
          break;
        }
        if (atom < 0) fail(`the quantifier ${q.text} with nothing to repeat`, i);
        i = q.next;
        if (q.possessive) {
          const name = helper(i);
          out = `${out.slice(0, atom)}(?=(?<${name}>${out.slice(atom)}${q.text}))\\k<${name}>`;
        } else if (q.repeat) {
          out = `${out.slice(0, atom)}(?:${out.slice(atom)}${q.text})${q.repeat}`;
        } else {
          out += q.text;
        }
        break;
      }
      default:
        atom = out.length;
        out += c === '/' ? '\\/' : c;
        i++;
    }
  }
  closeInline();
  if (stack.length > 1) throw new OnigmoError('missing )');
  return { source: out, flags: root.ignoreCase ? 'i' : '', names };
}

/** `\…` outside a class: its JS text, where the pattern goes on, and whether it is an assertion. */
function outsideClass(p: string, i: number): [string, number, boolean] {
  const c = p[i + 1];
  if (c === undefined) fail('a trailing \\', i);
  switch (c) {
    case 'A':
      return ['(?<![\\s\\S])', i + 2, true];
    case 'z':
      return ['(?![\\s\\S])', i + 2, true];
    case 'Z':
      return ['(?=\\n?(?![\\s\\S]))', i + 2, true];
    case 'b':
    case 'B':
      return [`\\${c}`, i + 2, true];
    case 's':
      return [`[${SPACE}]`, i + 2, false];
    case 'S':
      return [`[^${SPACE}]`, i + 2, false];
    case 'p':
    case 'P': {
      const [set, next] = property(p, i);
      return [`[${set}]`, next, false];
    }
    case 'h':
      return ['[0-9a-fA-F]', i + 2, false];
    case 'H':
      return ['[^0-9a-fA-F]', i + 2, false];
    case 'R':
      return ['(?:\\r\\n|[\\n\\v\\f\\r\\x85\\u2028\\u2029])', i + 2, false];
    case 'k': {
      const m = /^\\k(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')/.exec(p.slice(i));
      if (!m) fail('a numbered \\k back-reference', i);
      return [`\\k<${m[1] ?? m[2]}>`, i + m[0].length, false];
    }
    default: {
      const [text, next] = common(p, i);
      return [text, next, false];
    }
  }
}

/** Escapes that read the same inside and outside a class. */
function common(p: string, i: number): [string, number] {
  const c = p[i + 1]!;
  if (c in UNSUPPORTED_ESCAPES) fail(UNSUPPORTED_ESCAPES[c]!, i);
  if (c >= '1' && c <= '9') fail(`the numbered back-reference \\${c} (use a named group)`, i);
  if (c === 'e') return ['\\x1b', i + 2];
  if (c === 'a') return ['\\x07', i + 2];
  if ((c === 'x' || c === 'u') && p[i + 2] === '{') {
    const m = /^\\[xu]\{([0-9a-fA-F]{1,8})\}/.exec(p.slice(i));
    const code = m ? Number.parseInt(m[1]!, 16) : Number.NaN;
    if (!m || code > 0xffff) fail(`a \\${c}{…} escape above U+FFFF`, i);
    return [`\\u${code.toString(16).padStart(4, '0')}`, i + m[0].length];
  }
  return [`\\${c}`, i + 2];
}

/** Ruby's `\s`: ASCII whitespace only (JS's `\s` also takes U+00A0, U+2028 …). */
const SPACE = '\\t\\n\\v\\f\\r ';
/** Its complement, in a class: every other BMP character. */
const NOT_SPACE = '\\x00-\\x08\\x0e-\\x1f\\x21-\\uffff';

/** `\p{Name}`, `\p{^Name}`, `\P{Name}` at `i`: its members as class ranges, and where the pattern goes on. */
function property(p: string, i: number): [string, number] {
  const m = /^\\([pP])\{(\^?)([A-Za-z_][\w =]*)\}/.exec(p.slice(i));
  if (!m) fail(`a \\${p[i + 1]} without {Name}`, i);
  const set = propertyRanges(m[3]!, (m[1] === 'P') !== (m[2] === '^'));
  if (set === undefined) fail(`the property \\p{${m[3]}}`, i);
  return [set, i + m[0].length];
}

/** A bracket expression from `[` at `i`: its JS text and where the pattern goes on. */
function charClass(p: string, i: number): [string, number] {
  let out = '[';
  let j = i + 1;
  if (p[j] === '^') {
    out += '^';
    j++;
  }
  // A `]` first in a class is a literal in Ruby; in JS `[]` is the empty class.
  if (p[j] === ']') {
    out += '\\]';
    j++;
  }
  while (j < p.length) {
    const c = p[j]!;
    if (c === ']') return [`${out}]`, j + 1];
    if (c === '\\') {
      const e = p[j + 1];
      if (e === 'h') out += '0-9a-fA-F';
      else if (e === 's') out += SPACE;
      else if (e === 'S') out += NOT_SPACE;
      else if (e === 'p' || e === 'P') {
        const [set, next] = property(p, j);
        out += set;
        j = next;
        continue;
      } else if (e === 'H' || e === 'R') fail(`\\${e} inside a character class`, j);
      else {
        const [text, next] = common(p, j);
        out += text;
        j = next;
        continue;
      }
      j += 2;
      continue;
    }
    if (c === '[') {
      const m = /^\[:(\^?)([a-z]+):\]/.exec(p.slice(j));
      if (!m) fail('a nested character class', j);
      const set = posixRanges(m[2]!, m[1] === '^');
      if (set === undefined) fail(`the POSIX bracket [:${m[1]}${m[2]}:]`, j);
      out += set;
      j += m[0].length;
      continue;
    }
    if (c === '&' && p[j + 1] === '&') fail('a class intersection &&', j);
    out += c;
    j++;
  }
  throw new OnigmoError(`an unterminated character class at character ${i + 1}`);
}

interface Quantifier {
  text: string;
  next: number;
  possessive: boolean;
  /** Ruby reads `X{n}+` as `(?:X{n})+` (and `X{n}?` as `(?:X{n})?`): what applies to the interval. */
  repeat?: string;
}

function quantifier(p: string, i: number): Quantifier | undefined {
  let text: string;
  let next: number;
  const interval = p[i] === '{';
  if (interval) {
    const m = /^\{(\d*)(,?)(\d*)\}/.exec(p.slice(i));
    if (!m || (m[1] === '' && m[3] === '') || (m[1] === '' && m[2] === '')) return undefined;
    text = `{${m[1] || '0'}${m[2]}${m[3]}}`;
    next = i + m[0].length;
  } else {
    text = p[i]!;
    next = i + 1;
  }
  // Ruby reads `X{n}?` (an exact interval) as `(?:X{n})?`, not as a lazy `{n}`.
  if (p[next] === '?' && interval && !text.includes(','))
    return { text, next: next + 1, possessive: false, repeat: '?' };
  if (p[next] === '?') return { text: `${text}?`, next: next + 1, possessive: false };
  if (p[next] === '+') {
    if (interval) return { text, next: next + 1, possessive: false, repeat: '+' };
    return { text, next: next + 1, possessive: true };
  }
  return { text, next, possessive: false };
}

/** The JS RegExp for a Ruby expression; throws what cannot be translated or does not compile. */
export function compileOnigmo(expression: string): { regex: RegExp; names: string[] } {
  const t = translateOnigmo(expression);
  return { regex: new RegExp(t.source, t.flags), names: t.names };
}
