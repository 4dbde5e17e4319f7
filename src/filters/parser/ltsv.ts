import { type Format, setField, type Values } from './format.ts';

/**
 * Labeled tab-separated values (`host:127.0.0.1<TAB>req:GET / HTTP/1.1`): a field without the
 * label delimiter is skipped, as Fluentd does; a line with no labeled field is not LTSV.
 */
export function ltsv(delimiter = '\t', labelDelimiter = ':'): Format {
  return {
    parse(text) {
      const out: Values = {};
      let any = false;
      for (const field of text.split(delimiter)) {
        const at = field.indexOf(labelDelimiter);
        if (at < 0) continue;
        setField(out, field.slice(0, at), field.slice(at + labelDelimiter.length));
        any = true;
      }
      return any ? out : undefined;
    },
    time: { key: 'time', keep: false },
  };
}
