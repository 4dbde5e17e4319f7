import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';

/**
 * A stand-in for Loki's push endpoint on a free port of 127.0.0.1. It reads bodies the way
 * Loki does and shares no code with the output it tests: protobuf is decoded by protobufjs
 * from src/outputs/loki/push.proto (the output writes it by hand), snappy by the small block
 * decoder below (the output compresses with snappyjs), label sets by a parser of its own.
 *
 *   POST /loki/api/v1/push ─► tenant (X-Scope-OrgID; "fake" without) ─► streams
 *     ├ application/x-protobuf: snappy block ─► PushRequest
 *     └ application/json (gzip allowed): {"streams":[{"stream":{…},"values":[[ns, line, {meta}]]}]}
 *   per stream: label names [a-zA-Z_][a-zA-Z0-9_]*, at least one label
 *   per entry:  the distributor's checks: not older than now − 1 week (timestamp too old),
 *               line ≤ 256KiB; then the ingester's, against the stream's newest stored entry
 *               (not the clock): not older than it minus max_chunk_age/2 = 1h (too far behind)
 *               or, with `orderedWrites`, not older than it at all (out of order); an entry
 *               identical in time and line to a stored one of its stream is ignored, as Loki does
 *   valid entries are stored even when others are refused; then 400 with Loki's messages, else 204
 *
 * Faults (`faults`, one per push in order): any status with a body and `Retry-After`,
 * answered before storing anything or, with `afterStoring`, after.
 */

export interface LokiFakeOptions {
  port?: number;
  /** Require these credentials (401 otherwise). */
  auth?: { username: string; password: string } | { bearerToken: string };
  /** Loki with `auth_enabled: true`: a push without X-Scope-OrgID gets 401 "no org id". */
  multiTenant?: boolean;
  /** Loki's `max_line_size` (256KB by default). */
  maxLineBytes?: number;
  /**
   * The ingester's window behind each stream's newest entry — Loki's `max_chunk_age / 2`, 1h by
   * default: an entry older than the stream's newest minus this is refused as too far behind.
   * Measured from the stream's newest stored entry (which moves as entries are stored, within a
   * push too), never from the clock: a stream's first entry is never too far behind.
   */
  tooFarBehindMs?: number;
  /** The distributor's `reject_old_samples_max_age` (1 week): older entries are too old, whatever their stream. */
  rejectOldSamplesMaxAgeMs?: number;
  /** Loki with `unordered_writes: false`: an entry older than its stream's newest is out of order. */
  orderedWrites?: boolean;
  now?: () => number;
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
}

export interface PushFault {
  status: number;
  body?: string;
  /** Sent as `Retry-After`. */
  retryAfter?: number | string;
  /** Store the entries first, then answer with the fault (the client never learns they landed). */
  afterStoring?: boolean;
}

export interface PushLog {
  tenant: string;
  status: number;
  encoding: 'protobuf' | 'json';
  /** Bytes on the wire. */
  bytes: number;
  streams: number;
  entries: number;
  headers: IncomingMessage['headers'];
  /** What the fake answered (error text), '' for 204. */
  answer: string;
}

export interface StoredEntry {
  /** Unix nanoseconds. */
  ts: bigint;
  line: string;
  metadata: Record<string, string>;
}

export interface StoredStream {
  tenant: string;
  /** As Loki prints it: `{a="b", c="d"}`, names sorted. */
  key: string;
  labels: Record<string, string>;
  entries: StoredEntry[];
}

interface PushedStream {
  /** The labels as sent (protobuf text, or rebuilt from the JSON map). */
  text: string;
  labels: [string, string][] | string;
  entries: StoredEntry[];
}

const PROTO = fileURLToPath(new URL('../../src/outputs/loki/push.proto', import.meta.url));
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class LokiFake {
  readonly pushes: PushLog[] = [];
  faults: (PushFault | null)[] = [];
  /**
   * false: validate and answer as usual but keep no entries (nor push logs), for long
   * benchmark runs; `onEntry` still sees every accepted entry.
   */
  retain = true;
  onEntry: ((entry: StoredEntry) => void) | undefined;
  port = 0;
  private readonly server: Server;
  private readonly options: LokiFakeOptions;
  private readonly store = new Map<string, StoredStream>();
  /** Per stored stream: what it holds (for duplicates) and its newest time. */
  private readonly index = new Map<string, { seen: Set<string>; newest: bigint }>();
  private readonly pushRequest: protobuf.Type;

  private constructor(options: LokiFakeOptions) {
    this.options = options;
    this.pushRequest = protobuf.loadSync(PROTO).lookupType('logproto.PushRequest');
    const listener = (req: IncomingMessage, res: ServerResponse) => {
      void this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) answer(res, 500, `fake: ${String(err)}`);
      });
    };
    this.server = options.tls
      ? createTlsServer(
          { cert: readFileSync(options.tls.cert), key: readFileSync(options.tls.key) },
          listener,
        )
      : createServer(listener);
  }

  static async start(options: LokiFakeOptions = {}): Promise<LokiFake> {
    const fake = new LokiFake(options);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  /** Base URL (the output adds the push path). */
  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Stored streams, of one tenant or all, in the order they were created. */
  streams(tenant?: string): StoredStream[] {
    return [...this.store.values()].filter((s) => tenant === undefined || s.tenant === tenant);
  }

  /** The stream with exactly these labels. */
  stream(labels: Record<string, string>, tenant = 'fake'): StoredStream | undefined {
    return this.store.get(`${tenant}\0${labelsKey(Object.entries(labels))}`);
  }

  count(tenant?: string): number {
    return this.streams(tenant).reduce((n, s) => n + s.entries.length, 0);
  }

  lines(tenant?: string): string[] {
    return this.streams(tenant).flatMap((s) => s.entries.map((e) => e.line));
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const raw = await readBody(req);
    if (url.pathname !== '/loki/api/v1/push') return answer(res, 404, '404 page not found');
    if (req.method !== 'POST') return answer(res, 405, 'method not allowed');
    const json = (req.headers['content-type'] ?? '').startsWith('application/json');
    const log: PushLog = {
      tenant: '',
      status: 0,
      encoding: json ? 'json' : 'protobuf',
      bytes: raw.length,
      streams: 0,
      entries: 0,
      headers: req.headers,
      answer: '',
    };
    if (this.retain) this.pushes.push(log);
    const reply = (status: number, text: string, headers: Record<string, string> = {}) => {
      log.status = status;
      log.answer = text;
      answer(res, status, text, headers);
    };
    if (!this.authorized(req)) return reply(401, 'Unauthorized');
    const orgId = req.headers['x-scope-orgid'];
    const tenant = typeof orgId === 'string' && orgId !== '' ? orgId : undefined;
    if (this.options.multiTenant && tenant === undefined) return reply(401, 'no org id');
    log.tenant = tenant ?? 'fake';

    let streams: PushedStream[];
    try {
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      streams = json ? decodeJson(body.toString('utf8')) : this.decodeProtobuf(body);
    } catch (err) {
      return reply(400, `fake: unreadable push body: ${(err as Error).message}`);
    }
    log.streams = streams.length;
    log.entries = streams.reduce((n, s) => n + s.entries.length, 0);

    const fault = this.faults.shift() ?? undefined;
    const faultHeaders = (f: PushFault): Record<string, string> =>
      f.retryAfter === undefined ? {} : { 'retry-after': String(f.retryAfter) };
    if (fault && !fault.afterStoring)
      return reply(fault.status, fault.body ?? statusText(fault.status), faultHeaders(fault));

    const errors = this.ingest(log.tenant, streams);
    if (fault) return reply(fault.status, fault.body ?? statusText(fault.status), faultHeaders(fault));
    if (errors.length > 0) return reply(400, errors.join('\n'));
    reply(204, '');
  }

  private authorized(req: IncomingMessage): boolean {
    const auth = this.options.auth;
    if (!auth) return true;
    const header = req.headers.authorization ?? '';
    if ('bearerToken' in auth) return header === `Bearer ${auth.bearerToken}`;
    return header === `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  }

  private decodeProtobuf(body: Buffer): PushedStream[] {
    const message = this.pushRequest.decode(snappyDecode(body));
    const request = this.pushRequest.toObject(message, { longs: String, defaults: true }) as {
      streams: {
        labels: string;
        entries: {
          timestamp?: { seconds: string; nanos: number };
          line: string;
          structuredMetadata: { name: string; value: string }[];
        }[];
      }[];
    };
    return request.streams.map((s) => ({
      text: s.labels,
      labels: parseLabelText(s.labels),
      entries: s.entries.map((e) => ({
        ts: BigInt(e.timestamp?.seconds ?? 0) * 1_000_000_000n + BigInt(e.timestamp?.nanos ?? 0),
        line: e.line,
        metadata: Object.fromEntries(e.structuredMetadata.map((p) => [p.name, p.value])),
      })),
    }));
  }

  /** Distributor validation, then the ingester's per-stream rules; returns Loki's error messages. */
  private ingest(tenant: string, streams: PushedStream[]): string[] {
    const errors: string[] = [];
    const maxLine = this.options.maxLineBytes ?? 256 * 1024;
    const oldest =
      BigInt(this.now() - (this.options.rejectOldSamplesMaxAgeMs ?? 7 * 24 * 3_600_000)) * 1_000_000n;
    const behind = BigInt(this.options.tooFarBehindMs ?? 3_600_000) * 1_000_000n;
    for (const pushed of streams) {
      if (typeof pushed.labels === 'string') {
        errors.push(`Error parsing labels '${pushed.text}' with error: ${pushed.labels}`);
        continue;
      }
      if (pushed.labels.length === 0) {
        errors.push('error at least one label pair is required per stream');
        continue;
      }
      const bad = pushed.labels.find(([name]) => !LABEL_NAME.test(name));
      if (bad) {
        errors.push(`Error parsing labels '${pushed.text}' with error: invalid label name "${bad[0]}"`);
        continue;
      }
      const key = labelsKey(pushed.labels);
      const valid: StoredEntry[] = [];
      for (const e of pushed.entries) {
        const length = Buffer.byteLength(e.line);
        if (e.ts < oldest) {
          errors.push(
            `entry for stream '${key}' has timestamp too old: ${rfc3339(e.ts)}, oldest acceptable timestamp is: ${rfc3339(oldest)}`,
          );
        } else if (length > maxLine) {
          errors.push(
            `Max entry size '${maxLine}' bytes exceeded for stream '${key}' while adding an entry with length '${length}' bytes`,
          );
        } else valid.push(e);
      }
      const id = `${tenant}\0${key}`;
      let stream = this.store.get(id);
      let index = this.index.get(id);
      const refused: string[] = [];
      for (const e of valid) {
        if (index?.seen.has(`${e.ts}\0${e.line}`)) continue; // a duplicate: ignored
        let reason: string | undefined;
        if (this.options.orderedWrites) {
          if (index && e.ts < index.newest) reason = 'entry out of order';
        } else if (index && e.ts < index.newest - behind) {
          const cutoff = index.newest - behind;
          reason = `entry too far behind, entry timestamp is: ${rfc3339(e.ts)}, oldest acceptable timestamp is: ${rfc3339(cutoff)}`;
        }
        if (reason !== undefined) {
          refused.push(`entry with timestamp ${goTime(e.ts)} ignored, reason: '${reason}',\n`);
          continue;
        }
        if (!stream || !index) {
          stream = { tenant, key, labels: Object.fromEntries(pushed.labels), entries: [] };
          index = { seen: new Set(), newest: -1n };
          this.store.set(id, stream);
          this.index.set(id, index);
        }
        this.onEntry?.(e);
        if (this.retain) {
          stream.entries.push(e);
          index.seen.add(`${e.ts}\0${e.line}`);
        }
        if (e.ts > index.newest) index.newest = e.ts;
      }
      if (refused.length > 0) {
        errors.push(
          `${refused.join('')}user '${tenant}', total ignored: ${refused.length} out of ${pushed.entries.length} for stream: ${key}`,
        );
      }
    }
    return errors;
  }
}

/** Loki's JSON push body; label names are checked later, like the protobuf ones. */
function decodeJson(text: string): PushedStream[] {
  const body = JSON.parse(text) as { streams?: unknown };
  if (!Array.isArray(body.streams)) throw new Error('no streams array');
  return body.streams.map((s: { stream?: Record<string, unknown>; values?: unknown[] }) => {
    const labels = Object.entries(s.stream ?? {}).map(([k, v]) => {
      if (typeof v !== 'string') throw new Error(`label ${k} is not a string`);
      return [k, v] as [string, string];
    });
    const entries = (s.values ?? []).map((v) => {
      if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'string')
        throw new Error(`bad value ${JSON.stringify(v)}`);
      const metadata = (v[2] ?? {}) as Record<string, unknown>;
      for (const [k, m] of Object.entries(metadata))
        if (typeof m !== 'string') throw new Error(`structured metadata ${k} is not a string`);
      return { ts: BigInt(v[0]), line: v[1], metadata: metadata as Record<string, string> };
    });
    return { text: labelsKey(labels), labels, entries };
  });
}

/** `{a="b", c="d"}` → pairs; an error message when it does not parse. Values are Go-quoted strings. */
export function parseLabelText(text: string): [string, string][] | string {
  const pairs: [string, string][] = [];
  let i = 0;
  const ws = () => {
    while (text[i] === ' ') i++;
  };
  ws();
  if (text[i++] !== '{') return `1:${i}: parse error: expected {`;
  ws();
  if (text[i] === '}') return i === text.length - 1 ? pairs : `1:${i + 2}: parse error: unexpected text`;
  for (;;) {
    ws();
    const start = i;
    while (i < text.length && text[i] !== '=' && text[i] !== ' ') i++;
    const name = text.slice(start, i);
    ws();
    if (text[i++] !== '=') return `1:${i}: parse error: expected =`;
    ws();
    if (text[i++] !== '"') return `1:${i}: parse error: expected a quoted value`;
    let value = '';
    for (;;) {
      const c = text[i++];
      if (c === undefined) return `1:${i}: parse error: unterminated string`;
      if (c === '"') break;
      if (c !== '\\') {
        value += c;
        continue;
      }
      const e = text[i++];
      const simple: Record<string, string> = {
        n: '\n',
        t: '\t',
        r: '\r',
        b: '\b',
        f: '\f',
        '"': '"',
        '\\': '\\',
        '/': '/',
      };
      if (e !== undefined && e in simple) value += simple[e];
      else if (e === 'u') {
        value += String.fromCharCode(Number.parseInt(text.slice(i, i + 4), 16));
        i += 4;
      } else return `1:${i}: parse error: bad escape \\${e}`;
    }
    pairs.push([name, value]);
    ws();
    const sep = text[i++];
    if (sep === '}') return i === text.length ? pairs : `1:${i + 1}: parse error: unexpected text`;
    if (sep !== ',') return `1:${i}: parse error: expected , or }`;
  }
}

/** How Loki prints a label set: names sorted, `{a="b", c="d"}`. */
function labelsKey(labels: [string, string][]): string {
  const sorted = [...labels].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `{${sorted.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ')}}`;
}

/**
 * Snappy block format (what Loki reads from a protobuf push): a varint of the uncompressed
 * length, then elements — literals (tag 00) and copies with 1-, 2- or 4-byte offsets.
 */
export function snappyDecode(input: Uint8Array): Buffer {
  let pos = 0;
  let length = 0;
  for (let shift = 0; ; shift += 7) {
    const b = input[pos++];
    if (b === undefined) throw new Error('snappy: truncated length');
    length += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
  }
  const out = Buffer.alloc(length);
  let o = 0;
  const le = (n: number) => {
    let v = 0;
    for (let k = 0; k < n; k++) v += input[pos + k]! * 2 ** (8 * k);
    pos += n;
    return v;
  };
  while (pos < input.length) {
    const tag = input[pos++]!;
    const type = tag & 3;
    if (type === 0) {
      let len = tag >> 2;
      if (len >= 60) len = le(len - 59);
      len += 1;
      if (pos + len > input.length || o + len > length) throw new Error('snappy: literal overruns');
      Buffer.from(input.buffer, input.byteOffset + pos, len).copy(out, o);
      pos += len;
      o += len;
      continue;
    }
    let len: number;
    let offset: number;
    if (type === 1) {
      len = 4 + ((tag >> 2) & 7);
      offset = ((tag >> 5) << 8) | input[pos++]!;
    } else {
      len = 1 + (tag >> 2);
      offset = le(type === 2 ? 2 : 4);
    }
    if (offset === 0 || offset > o || o + len > length) throw new Error('snappy: bad copy');
    for (let k = 0; k < len; k++, o++) out[o] = out[o - offset]!;
  }
  if (o !== length) throw new Error(`snappy: ${o} bytes decoded, header said ${length}`);
  return out;
}

/** Go's time.Time.String() in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`. */
function goTime(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  const frac = ns % 1_000_000_000n;
  const base = new Date(Number(sec) * 1000).toISOString().slice(0, 19).replace('T', ' ');
  const digits = frac === 0n ? '' : `.${String(frac).padStart(9, '0').replace(/0+$/, '')}`;
  return `${base}${digits} +0000 UTC`;
}

/** RFC 3339 to the second, as Go's time.RFC3339 prints it. */
function rfc3339(ns: bigint): string {
  return `${new Date(Number(ns / 1_000_000n)).toISOString().slice(0, 19)}Z`;
}

function statusText(status: number): string {
  if (status === 429) return 'Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec)';
  if (status >= 500) return 'rpc error: code = Unavailable desc = transport is closing';
  return `status ${status}`;
}

function answer(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (status === 204) {
    res.writeHead(204);
    res.end();
    return;
  }
  // Loki answers errors as text, ending in a newline.
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}
