import type { TaggedEntry } from '../../core/entry.ts';
import { errorMessage } from '../../core/errors.ts';
import type { RequestLimits } from '../../delivery/request.ts';
import {
  encodeJsonRequest,
  type OtlpResourceLogs,
  writeLogRecord,
  writeResource,
  writeScope,
} from '../../inputs/opentelemetry/otlp.ts';
import { ProtoWriter } from '../../inputs/opentelemetry/protobuf.ts';
import type { RecordKeys } from '../../inputs/opentelemetry/records.ts';
import type { Rejection } from '../output.ts';
import { fromRecord, type Mapped, type ResourceKeys } from './records.ts';

/**
 * Entries → OTLP export requests, and nothing else: no I/O. Each record is mapped and its
 * LogRecord encoded once (its size is what the request layer cuts by); a request groups its
 * records by resource, then by scope, in the order first seen.
 */

export interface OtlpItem extends Mapped {
  entry: TaggedEntry;
  /** The LogRecord message's content. */
  encoded: Buffer;
  /** Resource and InstrumentationScope content; as strings, the keys records are grouped by. */
  resourceBytes: Buffer;
  scopeBytes: Buffer;
  resourceKey: string;
  scopeKey: string;
}

export function toItems(
  entries: readonly TaggedEntry[],
  keys: RecordKeys,
  resourceKeys: ResourceKeys,
): { items: OtlpItem[]; rejected: Rejection[] } {
  const items: OtlpItem[] = [];
  const rejected: Rejection[] = [];
  const w = new ProtoWriter(4096);
  const encode = (write: () => void) => {
    w.pos = 0;
    write();
    return Buffer.from(w.finish());
  };
  for (const entry of entries) {
    try {
      const mapped = fromRecord(entry, keys, resourceKeys);
      const encoded = encode(() => writeLogRecord(w, mapped.record));
      const resourceBytes = encode(() => writeResource(w, mapped.resource));
      const scopeBytes = encode(() => writeScope(w, mapped.scope));
      items.push({
        ...mapped,
        entry,
        encoded,
        resourceBytes,
        scopeBytes,
        resourceKey: resourceBytes.toString('latin1'),
        scopeKey: scopeBytes.toString('latin1'),
      });
    } catch (err) {
      // A value nested past what the stack can walk: the same every try.
      rejected.push({
        entry,
        reason: `cannot encode the record as an OTLP log record: ${errorMessage(err)}`,
      });
    }
  }
  return { items, rejected };
}

/** Bytes a field of `n` content bytes takes: tag, length, content. */
function field(n: number): number {
  return 1 + (n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 5) + n;
}

/** Cut by protobuf bytes; a resource and scope counted with the first record of theirs in a request. */
export function requestLimits(maxBytes: number): RequestLimits<OtlpItem> {
  return {
    maxBytes,
    bytes: (item, previous) =>
      field(item.encoded.length) +
      (previous?.resourceKey === item.resourceKey && previous.scopeKey === item.scopeKey
        ? 0
        : field(item.resourceBytes.length) + field(item.scopeBytes.length) + 20),
  };
}

interface Group {
  resource: OtlpItem;
  scopes: Map<string, OtlpItem[]>;
}

function group(items: readonly OtlpItem[]): Group[] {
  const resources = new Map<string, Group>();
  for (const item of items) {
    let g = resources.get(item.resourceKey);
    if (!g) {
      g = { resource: item, scopes: new Map() };
      resources.set(item.resourceKey, g);
    }
    const scope = g.scopes.get(item.scopeKey);
    if (scope) scope.push(item);
    else g.scopes.set(item.scopeKey, [item]);
  }
  return [...resources.values()];
}

/** ExportLogsServiceRequest bytes. */
export function encodeProtobuf(items: readonly OtlpItem[]): Buffer {
  let size = 64;
  for (const item of items)
    size += item.encoded.length + item.resourceBytes.length + item.scopeBytes.length + 32;
  const w = new ProtoWriter(size);
  for (const g of group(items)) {
    const rl = w.begin(1);
    w.bytes(1, g.resource.resourceBytes);
    for (const records of g.scopes.values()) {
      const sl = w.begin(2);
      w.bytes(1, records[0]!.scopeBytes);
      for (const item of records) w.bytes(2, item.encoded);
      w.end(sl);
    }
    w.end(rl);
  }
  return w.finish();
}

/** The same request as OTLP/JSON. */
export function encodeJson(items: readonly OtlpItem[]): Buffer {
  const request: OtlpResourceLogs[] = group(items).map((g) => ({
    resource: g.resource.resource,
    scopeLogs: [...g.scopes.values()].map((records) => ({
      scope: records[0]!.scope,
      logRecords: records.map((item) => item.record),
    })),
  }));
  return encodeJsonRequest(request);
}
