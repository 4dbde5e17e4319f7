import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type DecodeLimits,
  decodeJsonRequest,
  decodeRequest,
  decodeResponse,
  emptyLogRecord,
  encodeJsonRequest,
  encodeResponse,
  OtlpFormatError,
  type OtlpResourceLogs,
  parseOtlpJson,
} from '../../../src/inputs/opentelemetry/otlp.ts';
import { otlpRequest } from '../../support/otlp.ts';

const limits: DecodeLimits = {
  maxDepth: 100,
  maxRecords: 1_000_000,
  tooMany: () => new Error('too many'),
  charge: () => {},
};

/** Every kind of value, the int64 edges, strings whose lengths take 1, 2 and 3 varint bytes. */
function sample(): OtlpResourceLogs[] {
  const record = {
    ...emptyLogRecord(),
    timeUnixNano: 18_446_744_073_709_551_615n,
    observedTimeUnixNano: 1n,
    severityNumber: 24,
    severityText: 'FATAL4',
    body: {
      s: 'x'.repeat(200),
      long: 'y'.repeat(20_000),
      t: true,
      f: false,
      ints: [0, -1, 2 ** 53 - 1, -(2 ** 53) + 1, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n],
      d: 0.5,
      bin: Buffer.from([0, 255, 128]),
      empty: null,
      nested: { a: [[{ b: 'deep' }]] },
    },
    attributes: { ü: 'ñ', '': 'empty key' },
    flags: 0xffff_ffff,
    traceId: Buffer.alloc(16, 0xab),
    spanId: Buffer.alloc(8, 0xcd),
    eventName: 'e',
  };
  Object.defineProperty(record.body, '__proto__', {
    value: 'a key, not a prototype',
    enumerable: true,
    writable: true,
    configurable: true,
  });
  const request = otlpRequest(
    [record],
    { 'service.name': 'svc' },
    { name: 'lib', version: '1', attributes: { k: 1 } },
  );
  return decodeRequest(request, limits);
}

describe('OTLP codec', () => {
  it('protobuf and JSON give the same request, every value kind and edge kept', () => {
    const fromProto = sample();
    const rec = fromProto[0]!.scopeLogs[0]!.logRecords[0]!;
    const body = rec.body as Record<string, unknown>;
    assert.equal(rec.timeUnixNano, 18_446_744_073_709_551_615n);
    assert.deepEqual(body.ints, [
      0,
      -1,
      2 ** 53 - 1,
      -(2 ** 53) + 1,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 53n + 1n,
    ]);
    assert.equal((body.long as string).length, 20_000);
    assert.equal(Object.getPrototypeOf(body), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(body, '__proto__')?.value, 'a key, not a prototype');
    assert.equal(rec.flags, 0xffff_ffff);
    const fromJson = decodeJsonRequest(parseOtlpJson(encodeJsonRequest(fromProto).toString()), limits);
    assert.deepEqual(fromJson, fromProto);
  });

  it('partial_success both ways, in both encodings', () => {
    for (const json of [false, true]) {
      const partial = { rejected: 300, message: 'refused: too long' };
      assert.deepEqual(decodeResponse(encodeResponse(partial, json), json), partial);
      assert.deepEqual(decodeResponse(encodeResponse({ rejected: 0, message: '' }, json), json), {
        rejected: 0,
        message: '',
      });
    }
  });

  it('mutated and cut bodies: OtlpFormatError or a value, never anything else', () => {
    const valid = otlpRequest(
      [
        {
          ...emptyLogRecord(),
          timeUnixNano: 5n,
          body: { a: [1, 'two', { three: Buffer.from('3') }] },
          attributes: { x: 1.5 },
        },
      ],
      { r: 'v' },
    );
    // A fixed seed: the same mutations every run.
    let seed = 0x2f6e2b1;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const body = Buffer.from(valid.subarray(0, Math.floor(random() * (valid.length + 1))));
      for (let flips = Math.floor(random() * 4); flips > 0 && body.length > 0; flips--)
        body[Math.floor(random() * body.length)] = Math.floor(random() * 256);
      try {
        decodeRequest(body, { ...limits, maxDepth: 8 });
      } catch (err) {
        assert.ok(err instanceof OtlpFormatError, `mutation ${i}: ${String(err)}`);
        refused += 1;
      }
    }
    assert.ok(refused > 100, `only ${refused} of 3000 refused: the mutations do not bite`);
  });
});
