/**
 * JSON.parse, but a text with an escaped object key has its objects built here: V8 (Node 24
 * and 26; https://github.com/nodejs/node/issues/63785) may take a short escaped key for one
 * seen earlier that holds a backslash (the text {"k\t":1}, parsed after {"k\\":1}, gives the
 * key k\ instead of k + tab), and the record would be stored under another key than sent.
 * Strings alone are read right, so here keys are read as strings. Texts with no escaped key,
 * nearly all, keep the native parser.
 */
export function parseJson(text: string): unknown {
  // Validates, and V8's message names the position of an error.
  const value: unknown = JSON.parse(text);
  return hasEscapedKey(text) ? buildJson(text) : value;
}

/** Whether a key of `text` (valid JSON) holds an escape. */
function hasEscapedKey(text: string): boolean {
  for (let i = text.indexOf('\\'); i >= 0; ) {
    // In valid JSON a backslash starts an escape inside a string: find that string's end.
    let end = i;
    while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
    let next = end + 1;
    while (isJsonSpace(text.charCodeAt(next))) next++;
    if (text.charCodeAt(next) === 0x3a /* : */) return true;
    i = text.indexOf('\\', end + 1);
  }
  return false;
}

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Builds the value of `text`, which JSON.parse has validated, with keys read as strings. */
function buildJson(text: string): unknown {
  // Open containers, innermost last, and the key each object's next value goes under; a loop,
  // not recursion, whatever the depth.
  const open: (Record<string, unknown> | unknown[])[] = [];
  const keys: string[] = [];
  let root: unknown;
  const put = (value: unknown) => {
    const top = open.at(-1);
    if (top === undefined) root = value;
    else if (Array.isArray(top)) top.push(value);
    // As JSON.parse: an own property, even `__proto__`.
    else
      Object.defineProperty(top, keys.at(-1)!, {
        value,
        writable: true,
        enumerable: true,
        configurable: true,
      });
  };
  for (let i = 0; i < text.length; ) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const container = c === 0x7b ? {} : [];
      put(container);
      open.push(container);
      keys.push('');
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      keys.pop();
      i++;
    } else if (c === 0x22 /* " */) {
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
      const string = JSON.parse(text.slice(i, end + 1)) as string;
      let next = end + 1;
      while (isJsonSpace(text.charCodeAt(next))) next++;
      if (text.charCodeAt(next) === 0x3a) {
        keys[keys.length - 1] = string;
        i = next + 1;
      } else {
        put(string);
        i = end + 1;
      }
    } else if (c === 0x2c /* , */ || isJsonSpace(c)) {
      i++;
    } else {
      // A number, true, false or null: up to the next delimiter.
      let end = i + 1;
      while (end < text.length && !isDelimiter(text.charCodeAt(end))) end++;
      put(JSON.parse(text.slice(i, end)));
      i = end;
    }
  }
  return root;
}

function isDelimiter(c: number): boolean {
  return c === 0x2c || c === 0x7d || c === 0x5d || isJsonSpace(c);
}
