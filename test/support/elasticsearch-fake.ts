import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A faithful stand-in for the parts of Elasticsearch (or OpenSearch) a log shipper talks to,
 * on a free port of 127.0.0.1: `GET /`, `_bulk` and `_index_template`. Answers have the real
 * shapes, headers and status codes, so the official client and our classification meet what
 * a cluster would send:
 *
 *   POST [/<index>]/_bulk  NDJSON (gzip too) ─► per item: create/index/update/delete against an
 *                          in-memory store by index + _id ─► {"took","errors","items":[{op:{…,status}}]}
 *
 * - create of an existing _id → 409 version_conflict_engine_exception; update of a missing
 *   document → 404 document_missing_exception; index names must be lowercase.
 * - Dynamic mapping, roughly: a field first seen as a number refuses a non-numeric string, an
 *   object refuses a scalar and the reverse → 400 document_parsing_exception.
 * - Data streams: an index template with `data_stream` makes matching names data streams:
 *   only `create`, `@timestamp` required.
 * - Elasticsearch answers carry `X-Elastic-Product: Elasticsearch` and check the
 *   `compatible-with` media types (N or N-1 of its major); OpenSearch sends no product
 *   header and refuses vendored media types.
 * - Faults: `requestFaults` (whole-request answers such as 429/503/401/403, optionally after
 *   indexing), `itemFault` (per-item 429/400/…), `maxBodyBytes` (413 above it), `delayMs`.
 */

export interface FakeOptions {
  flavor?: 'elasticsearch' | 'opensearch';
  /** Version answered by `GET /`; its major decides the compatible-with versions accepted. */
  version?: string;
  /** Require these credentials (401 otherwise). */
  auth?: { username: string; password: string } | { apiKey: string };
  port?: number;
}

/** A whole-request answer, used once per `_bulk` request in order. */
export interface RequestFault {
  status: number;
  type?: string;
  reason?: string;
  /** Seconds, sent as `Retry-After`. */
  retryAfter?: number;
  /** Index the documents first, then answer with the fault (the client never learns they landed). */
  afterIndexing?: boolean;
}

export interface ItemFault {
  status: number;
  type: string;
  reason: string;
}

/** One bulk action as the fake saw it. */
export interface FakeAction {
  op: 'create' | 'index' | 'update' | 'delete';
  index: string;
  id: string | undefined;
  source: Record<string, unknown> | undefined;
  /** 1 the first time this index + _id (or source, without an _id) arrives, then 2, 3, … */
  attempt: number;
}

export interface BulkLog {
  path: string;
  status: number;
  actions: number;
  ids: (string | undefined)[];
  /** Bytes on the wire (compressed when gzip). */
  bytes: number;
  headers: IncomingMessage['headers'];
  query: URLSearchParams;
}

export interface StoredDoc {
  index: string;
  id: string;
  source: Record<string, unknown>;
  version: number;
  routing?: string;
  pipeline?: string;
}

type FieldType = 'long' | 'float' | 'string' | 'boolean' | 'object' | 'date';

const ES_PRODUCT = { 'x-elastic-product': 'Elasticsearch' };

export class ElasticsearchFake {
  readonly flavor: 'elasticsearch' | 'opensearch';
  readonly version: string;
  /** Credentials required (401 otherwise); may be changed at run time, as a rotated secret is. */
  auth: FakeOptions['auth'];
  /** Every `_bulk` request, in arrival order. */
  readonly bulkRequests: BulkLog[] = [];
  /** Every request: method and path. */
  readonly requests: { method: string; path: string; headers: IncomingMessage['headers'] }[] = [];
  readonly templates = new Map<string, Record<string, unknown>>();
  readonly pipelines = new Set<string>();
  /** One per `_bulk` request, in order; `null` lets a request through untouched. */
  requestFaults: (RequestFault | null)[] = [];
  itemFault: ((action: FakeAction) => ItemFault | undefined) | undefined;
  /** Bodies above this many bytes (as received) get 413, like `http.max_content_length`. */
  maxBodyBytes = Number.POSITIVE_INFINITY;
  /** Every `_bulk` answer waits this long (after indexing). */
  delayMs = 0;
  /**
   * false: answer as if stored but keep nothing (no documents, no request logs), for long
   * benchmark runs; `onIndexed` still sees every document.
   */
  retain = true;
  onIndexed: ((source: Record<string, unknown>) => void) | undefined;

  private readonly docs = new Map<string, Map<string, StoredDoc>>();
  private readonly mappings = new Map<string, Map<string, FieldType>>();
  private readonly seen = new Map<string, number>();
  private readonly server: Server;
  private seqNo = 0;
  port = 0;

  private constructor(options: FakeOptions) {
    this.flavor = options.flavor ?? 'elasticsearch';
    this.version = options.version ?? (this.flavor === 'opensearch' ? '2.19.0' : '9.1.0');
    this.auth = options.auth;
    this.server = createServer((req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.json(res, 500, errorBody(500, 'exception', String(err)));
      });
    });
  }

  static async start(options: FakeOptions = {}): Promise<ElasticsearchFake> {
    const fake = new ElasticsearchFake(options);
    await new Promise<void>((resolve, reject) => {
      fake.server.once('error', reject);
      fake.server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
    });
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Stored documents, of one index (or data stream) or of all. */
  documents(index?: string): StoredDoc[] {
    const out: StoredDoc[] = [];
    for (const [name, docs] of this.docs)
      if (index === undefined || name === index) out.push(...docs.values());
    return out;
  }

  indices(): string[] {
    return [...this.docs.keys()].sort();
  }

  count(): number {
    return this.documents().length;
  }

  isDataStream(name: string): boolean {
    for (const template of this.templates.values()) {
      if (template.data_stream === undefined) continue;
      const patterns = template.index_patterns;
      const list = Array.isArray(patterns) ? patterns : [patterns];
      if (list.some((p) => typeof p === 'string' && globMatch(p, name))) return true;
    }
    return false;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    if (this.retain) this.requests.push({ method, path: url.pathname, headers: req.headers });
    const raw = await readBody(req);
    if (!this.authorized(req)) {
      const who = req.headers.authorization
        ? 'unable to authenticate user [estuary]'
        : 'missing authentication credentials';
      res.setHeader('www-authenticate', ['Basic realm="security", charset="UTF-8"', 'ApiKey']);
      return this.json(
        res,
        401,
        errorBody(401, 'security_exception', `${who} for REST request [${url.pathname}]`),
      );
    }
    if (!this.checkMedia(req, res, raw.length > 0)) return;
    const parts = url.pathname
      .split('/')
      .filter((p) => p !== '')
      .map(decodeURIComponent);
    if (parts.length === 0 && (method === 'GET' || method === 'HEAD'))
      return this.json(res, 200, this.info());
    if (parts[0] === '_index_template' && parts.length === 2) {
      const [status, body] = this.template(method, parts[1]!, raw);
      return this.json(res, status, body);
    }
    if (parts[0] === '_ingest' && parts[1] === 'pipeline' && parts.length === 3 && method === 'PUT') {
      this.pipelines.add(parts[2]!);
      return this.json(res, 200, { acknowledged: true });
    }
    const bulkAt = parts.indexOf('_bulk');
    if (bulkAt === parts.length - 1 && bulkAt <= 1 && (method === 'POST' || method === 'PUT')) {
      return this.bulk(req, res, raw, parts[0] === '_bulk' ? undefined : parts[0], url);
    }
    return this.json(res, 405, {
      error: `Incorrect HTTP method for uri [${url.pathname}] and method [${method}]`,
      status: 405,
    });
  }

  private authorized(req: IncomingMessage): boolean {
    const auth = this.auth;
    if (!auth) return true;
    const header = req.headers.authorization ?? '';
    if ('apiKey' in auth) return header === `ApiKey ${auth.apiKey}`;
    return header === `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
  }

  /**
   * Elasticsearch: compatible-with must name this major or the one before, on both headers
   * or neither. OpenSearch: vendored media types are not supported at all.
   */
  private checkMedia(req: IncomingMessage, res: ServerResponse, hasBody: boolean): boolean {
    const contentType = hasBody ? (req.headers['content-type'] ?? '') : '';
    const accept = req.headers.accept ?? '';
    const compat = (value: string) => /compatible-with=(\d+)/.exec(value)?.[1];
    const vendored = contentType.includes('vnd.elasticsearch') || accept.includes('vnd.elasticsearch');
    if (!vendored) return true;
    if (this.flavor === 'opensearch') {
      // It reads the Content-Type of a body; Accept and body-less requests pass.
      if (!contentType.includes('vnd.elasticsearch')) return true;
      this.json(res, 406, { error: `Content-Type header [${contentType}] is not supported`, status: 406 });
      return false;
    }
    const major = Number(this.version.split('.')[0]);
    const bodyless = !hasBody;
    const [c, a] = [compat(contentType), compat(accept)];
    const accepted = (v: string | undefined) =>
      v !== undefined && (Number(v) === major || Number(v) === major - 1);
    if ((!bodyless && !accepted(c)) || !accepted(a) || (!bodyless && c !== a)) {
      const body = errorBody(
        400,
        'media_type_header_exception',
        'Invalid media-type value on headers [Accept, Content-Type]',
      );
      (body.error as Record<string, unknown>).caused_by = {
        type: 'status_exception',
        reason: `Accept version must be either version ${major} or ${major - 1}, but found ${a ?? c}. Accept=${accept}`,
      };
      this.json(res, 400, body);
      return false;
    }
    res.setHeader('content-type', `application/vnd.elasticsearch+json;compatible-with=${a}`);
    return true;
  }

  private info(): Record<string, unknown> {
    if (this.flavor === 'opensearch') {
      return {
        name: 'fake-node',
        cluster_name: 'estuary-fake',
        cluster_uuid: 'fAkEcLuStErUuId000000A',
        version: {
          distribution: 'opensearch',
          number: this.version,
          build_type: 'tar',
          lucene_version: '9.12.1',
        },
        tagline: 'The OpenSearch Project: https://opensearch.org/',
      };
    }
    return {
      name: 'fake-node',
      cluster_name: 'estuary-fake',
      cluster_uuid: 'fAkEcLuStErUuId000000A',
      version: {
        number: this.version,
        build_flavor: 'default',
        build_type: 'docker',
        lucene_version: '10.2.2',
      },
      tagline: 'You Know, for Search',
    };
  }

  /** `_index_template/<name>`: HEAD, GET, PUT. */
  private template(method: string, name: string, raw: Buffer): [number, unknown] {
    const t = this.templates.get(name);
    if (method === 'HEAD') return [t ? 200 : 404, undefined];
    if (method === 'GET') {
      if (!t)
        return [
          404,
          errorBody(404, 'resource_not_found_exception', `index template matching [${name}] not found`),
        ];
      return [200, { index_templates: [{ name, index_template: t }] }];
    }
    if (method !== 'PUT' && method !== 'POST') {
      return [405, { error: `Incorrect HTTP method for uri [/_index_template/${name}]`, status: 405 }];
    }
    const body = parseJson(raw.toString('utf8'));
    if (!body || body.index_patterns === undefined) {
      const reason = 'Validation Failed: 1: index patterns are missing;';
      return [400, errorBody(400, 'action_request_validation_exception', reason)];
    }
    this.templates.set(name, body);
    return [200, { acknowledged: true }];
  }

  private async bulk(
    req: IncomingMessage,
    res: ServerResponse,
    raw: Buffer,
    urlIndex: string | undefined,
    url: URL,
  ): Promise<void> {
    const log: BulkLog = {
      path: url.pathname,
      status: 0,
      actions: 0,
      ids: [],
      bytes: raw.length,
      headers: req.headers,
      query: url.searchParams,
    };
    if (this.retain) this.bulkRequests.push(log);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      log.status = status;
      for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      this.json(res, status, body);
    };
    const contentType = req.headers['content-type'] ?? '';
    if (!/application\/(x-ndjson|json|vnd\.elasticsearch\+(x-ndjson|json))/.test(contentType)) {
      return answer(406, { error: `Content-Type header [${contentType}] is not supported`, status: 406 });
    }
    let text: string;
    try {
      text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
    } catch {
      return answer(400, errorBody(400, 'parse_exception', 'Failed to decompress the request body'));
    }
    if (raw.length > this.maxBodyBytes) {
      // Refused unread, as http.max_content_length does; the log still counts the actions.
      log.status = 413;
      log.actions = Math.floor(text.split('\n').filter((l) => l.trim() !== '').length / 2);
      res.writeHead(413, { 'content-length': '0', ...this.productHeader() });
      res.end();
      return;
    }
    const parsed = this.parseBulk(text, urlIndex, url.searchParams);
    if (typeof parsed === 'string') return answer(400, errorBody(400, 'illegal_argument_exception', parsed));
    log.actions = parsed.length;
    log.ids = parsed.map((a) => a.id);

    const fault = this.requestFaults.shift() ?? undefined;
    if (fault && !fault.afterIndexing) return answer(fault.status, faultBody(fault), retryAfter(fault));
    const started = Date.now();
    const items = parsed.map((action) => this.apply(action));
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (fault) return answer(fault.status, faultBody(fault), retryAfter(fault));
    answer(200, {
      errors: items.some((i) => Object.values(i)[0]!.error !== undefined),
      took: Date.now() - started,
      items,
    });
  }

  private parseBulk(
    text: string,
    urlIndex: string | undefined,
    query: URLSearchParams,
  ): ParsedAction[] | string {
    if (text !== '' && !text.endsWith('\n')) return 'The bulk request must be terminated by a newline [\\n]';
    const lines = text.split('\n');
    lines.pop();
    const actions: ParsedAction[] = [];
    const major = Number(this.version.split('.')[0]);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === '') continue;
      const header = parseJson(line);
      const keys = header ? Object.keys(header) : [];
      const op = keys[0] as FakeAction['op'] | undefined;
      if (!header || keys.length !== 1 || !op || !['create', 'index', 'update', 'delete'].includes(op)) {
        return `Malformed action/metadata line [${i + 1}], expected START_OBJECT or one of [create, delete, index, update] but found [${keys[0] ?? line}]`;
      }
      const meta = (header[op] ?? {}) as Record<string, unknown>;
      for (const key of Object.keys(meta)) {
        const known = [
          '_index',
          '_id',
          'routing',
          'pipeline',
          'require_alias',
          'dynamic_templates',
          'retry_on_conflict',
        ];
        if (key === '_type' && (this.flavor === 'opensearch' || major < 8)) continue;
        if (!known.includes(key))
          return `Action/metadata line [${i + 1}] contains an unknown parameter [${key}]`;
      }
      const index = (meta._index as string | undefined) ?? urlIndex;
      if (index === undefined) return `Validation Failed: 1: index is missing for request ${i + 1};`;
      let source: Record<string, unknown> | undefined;
      if (op !== 'delete') {
        const next = lines[++i];
        source = next === undefined ? undefined : parseJson(next);
        if (!source) return `Malformed content, must start with an object (line ${i + 1})`;
      }
      const id = meta._id === undefined || meta._id === null ? undefined : String(meta._id);
      const pipeline = (meta.pipeline as string | undefined) ?? query.get('pipeline') ?? undefined;
      const key = `${index}\u0000${id ?? JSON.stringify(source)}`;
      const attempt = (this.seen.get(key) ?? 0) + 1;
      if (this.retain) this.seen.set(key, attempt);
      actions.push({
        op,
        index,
        id,
        source,
        attempt,
        routing: meta.routing as string | undefined,
        pipeline,
      });
    }
    return actions;
  }

  /** One action against the store; the item as `_bulk` answers it. */
  private apply(a: ParsedAction): Record<string, Record<string, unknown>> {
    const fail = (status: number, type: string, reason: string, extra: Record<string, unknown> = {}) => ({
      [a.op]: {
        _index: a.index,
        _id: a.id ?? null,
        status,
        error: { type, reason, index_uuid: 'aAbBcCdDeEfFgGhHiIjJkK', shard: '0', index: a.index, ...extra },
      },
    });
    const injected = this.itemFault?.(a);
    if (injected) return fail(injected.status, injected.type, injected.reason);
    const invalid = invalidIndexName(a.index);
    if (invalid)
      return fail(400, 'invalid_index_name_exception', `Invalid index name [${a.index}], ${invalid}`);
    if (a.pipeline !== undefined && a.pipeline !== '_none' && !this.pipelines.has(a.pipeline)) {
      return fail(400, 'illegal_argument_exception', `pipeline with id [${a.pipeline}] does not exist`);
    }
    const dataStream = this.isDataStream(a.index);
    if (dataStream && a.op !== 'create') {
      return fail(
        400,
        'illegal_argument_exception',
        'only write ops with an op_type of create are allowed in data streams',
      );
    }
    if (dataStream && a.source?.['@timestamp'] === undefined) {
      return fail(
        400,
        'document_parsing_exception',
        '[1:2] failed to parse: data stream timestamp field [@timestamp] is missing',
      );
    }
    const docs = this.docs.get(a.index) ?? new Map<string, StoredDoc>();
    const id = a.id ?? randomBytes(15).toString('base64url');
    const existing = docs.get(id);
    let source = a.source ?? {};
    let result: string;
    let status: number;
    switch (a.op) {
      case 'create':
        if (existing) {
          return fail(
            409,
            'version_conflict_engine_exception',
            `[${id}]: version conflict, document already exists (current version [${existing.version}])`,
          );
        }
        result = 'created';
        status = 201;
        break;
      case 'index':
        result = existing ? 'updated' : 'created';
        status = existing ? 200 : 201;
        break;
      case 'update': {
        const doc = source.doc as Record<string, unknown> | undefined;
        if (!existing && source.doc_as_upsert !== true)
          return fail(404, 'document_missing_exception', `[${id}]: document missing`);
        source = { ...existing?.source, ...doc };
        result = existing ? 'updated' : 'created';
        status = existing ? 200 : 201;
        break;
      }
      case 'delete':
        if (!existing)
          return {
            delete: { _index: a.index, _id: id, _version: 1, result: 'not_found', status: 404, ...shards() },
          };
        docs.delete(id);
        return {
          delete: {
            _index: a.index,
            _id: id,
            _version: existing.version + 1,
            result: 'deleted',
            status: 200,
            ...shards(),
          },
        };
    }
    const conflict = this.mapping(a.index, source, id);
    if (conflict)
      return fail(400, 'document_parsing_exception', conflict.reason, { caused_by: conflict.cause });
    const version = (existing?.version ?? 0) + 1;
    this.onIndexed?.(source);
    if (this.retain) {
      docs.set(id, { index: a.index, id, source, version, routing: a.routing, pipeline: a.pipeline });
      this.docs.set(a.index, docs);
    }
    const backing = dataStream ? `.ds-${a.index}-2026.01.01-000001` : a.index;
    return {
      [a.op]: {
        _index: backing,
        _id: id,
        _version: version,
        result,
        ...shards(),
        _seq_no: this.seqNo++,
        _primary_term: 1,
        status,
      },
    };
  }

  /** Dynamic mapping, top-level fields and one level of objects: enough to make real conflicts. */
  private mapping(
    index: string,
    source: Record<string, unknown>,
    id: string,
  ): { reason: string; cause: unknown } | undefined {
    const fields = this.mappings.get(index) ?? new Map<string, FieldType>();
    this.mappings.set(index, fields);
    const check = (name: string, value: unknown): { reason: string; cause: unknown } | undefined => {
      if (value === null || value === undefined || Array.isArray(value)) return undefined;
      const type = typeOf(value);
      const known = fields.get(name);
      if (!known) {
        fields.set(name, type);
        if (type === 'object') {
          for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
            const inner = check(`${name}.${k}`, v);
            if (inner) return inner;
          }
        }
        return undefined;
      }
      const numeric = (t: FieldType) => t === 'long' || t === 'float';
      if (known === type || (numeric(known) && numeric(type))) {
        if (type !== 'object') return undefined;
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
          const inner = check(`${name}.${k}`, v);
          if (inner) return inner;
        }
        return undefined;
      }
      const preview = typeof value === 'object' ? JSON.stringify(value) : String(value);
      if (known === 'object') {
        return {
          reason: `[1:2] object mapping for [${name}] tried to parse field [${name}] as object, but found a concrete value`,
          cause: undefined,
        };
      }
      if (numeric(known) && type === 'string' && Number.isFinite(Number(value))) return undefined;
      if (known === 'string' && type !== 'object') return undefined;
      if (known === 'date' && type === 'string' && !Number.isNaN(Date.parse(value as string)))
        return undefined;
      const esType = known === 'string' ? 'text' : known;
      return {
        reason: `[1:2] failed to parse field [${name}] of type [${esType}] in document with id '${id}'. Preview of field's value: '${preview}'`,
        cause: { type: 'illegal_argument_exception', reason: `For input string: "${preview}"` },
      };
    };
    for (const [k, v] of Object.entries(source)) {
      const problem = check(k, v);
      if (problem) return problem;
    }
    return undefined;
  }

  private productHeader(): Record<string, string> {
    return this.flavor === 'elasticsearch' ? ES_PRODUCT : {};
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    const text = body === undefined ? '' : JSON.stringify(body);
    for (const [k, v] of Object.entries(this.productHeader())) res.setHeader(k, v);
    if (!res.hasHeader('content-type')) res.setHeader('content-type', 'application/json');
    res.setHeader('content-length', Buffer.byteLength(text));
    res.statusCode = status;
    res.end(text);
  }
}

interface ParsedAction extends FakeAction {
  routing: string | undefined;
  pipeline: string | undefined;
}

/** Real Elasticsearch error bodies for a whole request. */
export function errorBody(status: number, type: string, reason: string): Record<string, unknown> {
  return { error: { root_cause: [{ type, reason }], type, reason }, status };
}

function faultBody(fault: RequestFault): Record<string, unknown> {
  const defaults: Record<number, [string, string]> = {
    401: ['security_exception', 'unable to authenticate user [estuary] for REST request [/_bulk]'],
    403: [
      'security_exception',
      'action [indices:data/write/bulk] is unauthorized for user [estuary] with effective roles [viewer]',
    ],
    429: [
      'es_rejected_execution_exception',
      'rejected execution of coordinating operation [coordinating_and_primary_bytes=104857600, max_coordinating_and_primary_bytes=104857600]',
    ],
    503: ['unavailable_shards_exception', '[logs][0] primary shard is not active Timeout: [1m]'],
  };
  const [type, reason] = defaults[fault.status] ?? ['exception', `status ${fault.status}`];
  return errorBody(fault.status, fault.type ?? type, fault.reason ?? reason);
}

function retryAfter(fault: RequestFault): Record<string, string> {
  return fault.retryAfter === undefined ? {} : { 'retry-after': String(fault.retryAfter) };
}

/** An item answered 429, as a busy cluster does (write thread pool or indexing pressure). */
export const ITEM_429: ItemFault = {
  status: 429,
  type: 'es_rejected_execution_exception',
  reason:
    'rejected execution of primary operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, primary_operation_bytes=2048, max_coordinating_and_primary_bytes=104857600]',
};

/** An item a mapping refuses for good. */
export function mappingError(field: string, value: string): ItemFault {
  return {
    status: 400,
    type: 'document_parsing_exception',
    reason: `[1:2] failed to parse field [${field}] of type [long] in document. Preview of field's value: '${value}'`,
  };
}

function shards(): Record<string, unknown> {
  return { _shards: { total: 2, successful: 1, failed: 0 } };
}

function typeOf(value: unknown): FieldType {
  if (typeof value === 'number') return Number.isInteger(value) ? 'long' : 'float';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'object') return 'object';
  // date_detection: strict_date_optional_time strings become date fields.
  if (
    typeof value === 'string' &&
    /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)
  ) {
    return 'date';
  }
  return 'string';
}

function invalidIndexName(name: string): string | undefined {
  if (name !== name.toLowerCase()) return 'must be lowercase';
  if (/^[-_+]/.test(name)) return "must not start with '_', '-', or '+'";
  if (/[\\/*?"<>| ,#:]/.test(name))
    return 'must not contain the following characters [\\, /, *, ?, ", <, >, |, , ,, #, :]';
  if (name === '' || name === '.' || name === '..') return "must not be '.' or '..'";
  return undefined;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(name);
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
