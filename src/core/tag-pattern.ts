/**
 * Fluentd tag patterns: `a.*` (one part), `a.**` (zero or more parts, so `a` too),
 * `{a,b}` (either, nestable), `/regex/`, `\` escapes, several patterns separated by white
 * space. Compiled to one anchored RegExp, the same translation Fluentd's GlobMatchPattern does.
 */
export class TagPattern {
  readonly source: string;
  private readonly regex: RegExp;

  constructor(source: string) {
    const parts = source.trim().split(/\s+/).filter(Boolean);
    if (parts.length === 0) throw new Error('tag pattern is empty');
    this.source = source;
    this.regex = new RegExp(parts.map(compileOne).join('|'));
  }

  matches(tag: string): boolean {
    return this.regex.test(tag);
  }
}

function compileOne(pattern: string): string {
  if (pattern.startsWith('/')) {
    if (pattern.length < 2 || !pattern.endsWith('/')) throw new Error(`invalid regex pattern ${pattern}`);
    return `(?:^(?:${pattern.slice(1, -1)})$)`;
  }
  const stack: string[][] = [];
  const out: string[] = [''];
  const append = (s: string) => {
    out[out.length - 1] += s;
  };
  const closeGroup = () => {
    const alternatives = stack.pop()!;
    alternatives.push(out.pop()!);
    append(`(?:${alternatives.join('|')})`);
  };
  let escaping = false;
  let dot = false;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (escaping) {
      append(escapeRegex(c));
      escaping = false;
      i += 1;
      continue;
    }
    if (pattern.startsWith('**', i)) {
      // A dot before `**` is optional, so `a.**` also matches `a` (but not `ab`).
      if (dot) {
        append('(?![^.])');
        dot = false;
      }
      if (pattern[i + 2] === '.') {
        append('(?:.*\\.|^)');
        i += 3;
      } else {
        append('.*');
        i += 2;
      }
      continue;
    }
    if (dot) {
      append('\\.');
      dot = false;
    }
    if (c === '\\') escaping = true;
    else if (c === '.') dot = true;
    else if (c === '*') append('[^.]*');
    else if (c === '{') {
      stack.push([]);
      out.push('');
    } else if (c === '}' && stack.length > 0) closeGroup();
    else if (c === ',' && stack.length > 0) {
      stack[stack.length - 1]!.push(out.pop()!);
      out.push('');
    } else append(escapeRegex(c));
    i += 1;
  }
  while (stack.length > 0) closeGroup();
  return `(?:^${out[0]}$)`;
}

function escapeRegex(c: string): string {
  return /[a-zA-Z0-9_]/.test(c) ? c : `\\${c}`;
}
