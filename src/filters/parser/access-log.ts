import type { Format, Values } from './format.ts';
import { groupsOf } from './format.ts';
import { compileStrptime } from './strptime.ts';
import { textTime } from './time.ts';

/**
 * Web server logs, with the fields of Fluent Bit's parsers.conf. Their regexes are rewritten
 * so that every quantifier stops at a character it cannot take: a line fails or matches in
 * one pass, never by backtracking over it. The quoted request, which Fluent Bit splits with a
 * lazy group (quadratic on a long line), is taken whole and split here. That also keeps the
 * request inside its quotes: Fluent Bit's `(?<method>\S+)` runs past the closing quote of a
 * one-word request (`"GET"`, `"-"`, `""`) and reads the rest of the line into the wrong fields.
 */

const CLF_TIME = { key: 'time', read: textTime(compileStrptime('%d/%b/%Y:%H:%M:%S %z')), keep: false };

/** A combined log line; the agent is `[^"]*` for nginx, anything up to the last quote for apache2. */
const combined = (agent: string) =>
  new RegExp(
    String.raw`^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<request>[^"]*)" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^"]*)" "(?<agent>${agent})")?$`,
  );
const COMBINED_FIELDS = ['remote', 'host', 'user', 'time', 'request', 'code', 'size', 'referer', 'agent'];

const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);

/** The method: a run of non-spaces at the start; undefined when the request opens otherwise. */
function method(request: string): string | undefined {
  let end = 0;
  while (end < request.length && !isSpace(request[end])) end++;
  return end === 0 ? undefined : request.slice(0, end);
}

/**
 * nginx's `"(?<method>\S+)(?: +(?<path>[^"]*?)(?: +\S*)?)?"`: the path is what follows the
 * method and its spaces, less a last space-separated word (the protocol) when there is one.
 */
function nginxRequest(request: string, out: Values): boolean {
  const m = method(request);
  if (m === undefined) return false;
  out.method = m;
  let start = m.length;
  if (start === request.length) return true;
  if (request[start] !== ' ') return false;
  while (request[start] === ' ') start++;
  let end = request.length;
  while (end > start && !isSpace(request[end - 1])) end--;
  if (end > start && request[end - 1] === ' ') {
    while (end > start && request[end - 1] === ' ') end--;
  } else end = request.length;
  out.path = request.slice(start, end);
  return true;
}

/** apache2's `"(?<method>\S+)(?: +(?<path>[^ ]*) +\S*)?"`: method, or method path protocol. */
function apacheRequest(request: string, out: Values): boolean {
  const m = method(request);
  if (m === undefined) return false;
  out.method = m;
  if (m.length === request.length) return true;
  const rest = / +([^ ]*) +\S*$/y;
  rest.lastIndex = m.length;
  const r = rest.exec(request);
  if (!r) return false;
  out.path = r[1];
  return true;
}

function accessLog(
  split: (request: string, out: Values) => boolean,
  agent: string,
  hostField: 'host' | 'none',
): Format['parse'] {
  const read = groupsOf(combined(agent), COMBINED_FIELDS);
  return (text) => {
    const g = read(text);
    if (!g) return undefined;
    const out: Values = {};
    if (hostField === 'host') {
      // apache2 names the client `host`, and has no virtual host field.
      out.host = g.remote;
    } else {
      out.remote = g.remote;
      out.host = g.host;
    }
    out.user = g.user;
    out.time = g.time;
    // nginx logs `""` for a connection that sent no request: a line without method and path.
    if (g.request !== '' && !split(g.request as string, out)) return undefined;
    out.code = g.code;
    out.size = g.size;
    if (g.referer !== undefined) out.referer = g.referer;
    if (g.agent !== undefined) out.agent = g.agent;
    return out;
  };
}

/** nginx's `combined`: remote, host, user, time, method, path, code, size, referer, agent. */
export const nginx: Format = { parse: accessLog(nginxRequest, '[^"]*', 'none'), time: CLF_TIME };

/** Apache's combined log: host, user, time, method, path, code, size, referer, agent. */
export const apache2: Format = { parse: accessLog(apacheRequest, '[^\\n]*', 'host'), time: CLF_TIME };

const APACHE_ERROR =
  /^\[[^ \]]* (?<time>[^\]]*)\] \[(?<level>[^\]]*)\](?: \[pid (?<pid>[^\]]*)\])?(?: \[client (?<client>[^\]]*)\])? (?<message>[\s\S]*)$/;

/**
 * Apache's error log: time, level, pid, client, message. Fluent Bit leaves the time a field;
 * here it becomes the record time (2.4 writes microseconds, 2.2 none), in `offset` (the
 * log's zone, which it does not write).
 */
export function apacheError(offset = 0): Format {
  return {
    parse: groupsOf(APACHE_ERROR, ['time', 'level', 'pid', 'client', 'message']),
    time: {
      key: 'time',
      read: textTime(
        compileStrptime('%b %d %H:%M:%S.%N %Y', offset),
        compileStrptime('%b %d %H:%M:%S %Y', offset),
      ),
      keep: false,
    },
  };
}
