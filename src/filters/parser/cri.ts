import type { Format } from './format.ts';

/**
 * Container runtime (CRI) log lines, `<time> <stream> <P|F> <log>`, as containerd and CRI-O
 * write them, with the field names of Fluent Bit's `cri` parser: time, stream, logtag, message.
 * Read by position rather than by regex: it is the hot path of every Kubernetes node's logs.
 */
export const cri: Format = {
  parse(text) {
    const a = text.indexOf(' ');
    if (a <= 0) return undefined;
    const b = text.indexOf(' ', a + 1);
    const stream = text.slice(a + 1, b < 0 ? text.length : b);
    if (b < 0 || (stream !== 'stdout' && stream !== 'stderr')) return undefined;
    const c = text.indexOf(' ', b + 1);
    return {
      time: text.slice(0, a),
      stream,
      logtag: text.slice(b + 1, c < 0 ? text.length : c),
      message: c < 0 ? '' : text.slice(c + 1),
    };
  },
  time: { key: 'time', keep: false },
};
