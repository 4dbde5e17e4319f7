import { type Format, setField, type Values } from './format.ts';

const isSpace = (c: number) => c === 32 || c === 9;

/** A quoted value's escapes (`\"`, `\\`, `\n`, `\t`, `\uXXXX`); an unknown one stands for its character. */
function unquote(body: string): string {
  if (!body.includes('\\')) return body;
  try {
    return JSON.parse(`"${body}"`) as string;
  } catch {
    return body.replace(/\\(.)/g, '$1');
  }
}

/**
 * logfmt (`level=info msg="hello world" took=12ms cached`), as Fluent Bit reads it: a key with
 * no `=` is `true`, values stay text. Undefined for a line with no pair, an unterminated quote
 * or a key that opens with `=` or `"`.
 */
export const logfmt: Format = {
  parse(text) {
    const out: Values = {};
    let any = false;
    let i = 0;
    while (i < text.length) {
      while (isSpace(text.charCodeAt(i))) i++;
      if (i >= text.length) break;
      const keyStart = i;
      while (i < text.length && !isSpace(text.charCodeAt(i)) && text[i] !== '=' && text[i] !== '"') i++;
      if (i === keyStart) return undefined;
      const key = text.slice(keyStart, i);
      if (text[i] === '"') return undefined;
      if (text[i] !== '=') {
        setField(out, key, true);
        any = true;
        continue;
      }
      i++;
      if (text[i] === '"') {
        let end = i + 1;
        while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
        if (end >= text.length) return undefined;
        setField(out, key, unquote(text.slice(i + 1, end)));
        i = end + 1;
      } else {
        const start = i;
        while (i < text.length && !isSpace(text.charCodeAt(i))) i++;
        setField(out, key, text.slice(start, i));
      }
      any = true;
    }
    return any ? out : undefined;
  },
  time: { key: 'time', keep: false },
};
