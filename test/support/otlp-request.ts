import {
  type KvList,
  type OtlpLogRecord,
  type OtlpScope,
  writeLogRecord,
  writeResource,
  writeScope,
} from '../../src/inputs/opentelemetry/otlp.ts';
import { ProtoWriter } from '../../src/inputs/opentelemetry/protobuf.ts';

/**
 * OTLP request bodies, for the tests (through test/support/otlp.ts) and the bench's OTLP load
 * generator (bench/load/otlp.ts). Only the input's own encoder is imported, so a load
 * generator does not load the test harness (the SDK, the input, pino) with it.
 */

/** An ExportLogsServiceRequest (protobuf) of one resource and one scope holding `records`. */
export function otlpRequest(
  records: readonly OtlpLogRecord[],
  resource: KvList = {},
  scope: OtlpScope = { name: '', version: '', attributes: {} },
): Buffer {
  const w = new ProtoWriter();
  const rl = w.begin(1);
  const res = w.begin(1);
  writeResource(w, resource);
  w.end(res);
  const sl = w.begin(2);
  const sc = w.begin(1);
  writeScope(w, scope);
  w.end(sc);
  for (const record of records) {
    const r = w.begin(2);
    writeLogRecord(w, record);
    w.end(r);
  }
  w.end(sl);
  w.end(rl);
  return Buffer.from(w.finish());
}
