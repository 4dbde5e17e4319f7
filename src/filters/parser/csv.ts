import { type Format, setField, type Values } from './format.ts';

/**
 * One CSV line (RFC 4180 quoting: `"a ""quoted"" value"`), split by `delimiter`; undefined when a
 * quote is left open or a quoted field is followed by anything but the delimiter. An empty
 * unquoted field is null, as Ruby's CSV (Fluentd) reads it.
 */
function splitCsv(text: string, delimiter: string): (string | null)[] | undefined {
  const fields: (string | null)[] = [];
  let i = 0;
  for (;;) {
    if (text[i] === '"') {
      let value = '';
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) return undefined;
        value += text.slice(j, q);
        if (text[q + 1] === '"') {
          value += '"';
          j = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      fields.push(value);
    } else {
      const end = text.indexOf(delimiter, i);
      const raw = text.slice(i, end < 0 ? text.length : end);
      if (raw.includes('"')) return undefined;
      fields.push(raw === '' ? null : raw);
      i = end < 0 ? text.length : end;
    }
    if (i >= text.length) return fields;
    if (!text.startsWith(delimiter, i)) return undefined;
    i += delimiter.length;
    if (i === text.length) {
      fields.push(null);
      return fields;
    }
  }
}

function byKeys(keys: readonly string[], fields: readonly (string | null)[]): Values {
  const out: Values = {};
  // Fields past the keys are dropped and missing ones left out, as Fluentd zips them.
  for (let i = 0; i < keys.length && i < fields.length; i++) setField(out, keys[i]!, fields[i]);
  return out;
}

export function csv(keys: readonly string[], delimiter = ','): Format {
  return {
    parse(text) {
      const fields = splitCsv(text, delimiter);
      return fields && byKeys(keys, fields);
    },
  };
}

/** Tab-separated (or `delimiter`-separated) values without quoting, as Fluentd's tsv. */
export function tsv(keys: readonly string[], delimiter = '\t'): Format {
  return { parse: (text) => byKeys(keys, text.split(delimiter)) };
}
