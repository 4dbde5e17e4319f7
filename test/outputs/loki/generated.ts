import type { Batch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { eventTimeBytes, pack } from '../../../src/core/msgpack.ts';
import { rng } from '../../support/msgpack-gen.ts';

/**
 * Seeded records, as msgpack bytes, for comparing the output's bytes path with its decoded
 * one: shapes of Fluent Bit's kubernetes filter and of the bench, and the odd ones a
 * JavaScript object would not keep as the bytes say (repeated and non-string keys, integer
 * keys, `__proto__`, arrays and binary where a path goes, broken UTF-8). A failure names
 * the seed that reproduces it.
 */

/** A map written pair by pair: a key may repeat or be a number, as msgpack allows. */
export class Pairs {
  readonly pairs: readonly (readonly [unknown, unknown])[];
  constructor(pairs: readonly (readonly [unknown, unknown])[]) {
    this.pairs = pairs;
  }
}

/** A msgpack str of exactly these bytes (broken UTF-8 included). */
export class RawStr {
  readonly bytes: Buffer;
  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }
}

export function packValue(value: unknown): Buffer {
  if (value instanceof Pairs) {
    const n = value.pairs.length;
    const head = n < 16 ? Buffer.from([0x80 | n]) : Buffer.from([0xde, n >> 8, n & 0xff]);
    return Buffer.concat([head, ...value.pairs.flatMap(([k, v]) => [packValue(k), packValue(v)])]);
  }
  if (value instanceof RawStr) return Buffer.concat([Buffer.from([0xd9, value.bytes.length]), value.bytes]);
  if (Array.isArray(value)) {
    const n = value.length;
    const head = n < 16 ? Buffer.from([0x90 | n]) : Buffer.from([0xdc, n >> 8, n & 0xff]);
    return Buffer.concat([head, ...value.map(packValue)]);
  }
  return pack(value);
}

export interface RawEntry {
  time: EventTime;
  record: unknown;
  metadata?: unknown;
}

/** A batch of these entries, packed as they stand. */
export function rawBatch(tag: string, entries: readonly RawEntry[]): Batch {
  const payload = Buffer.concat(
    entries.map((e) =>
      e.metadata === undefined
        ? Buffer.concat([Buffer.from([0x92]), eventTimeBytes(e.time), packValue(e.record)])
        : Buffer.concat([
            Buffer.from([0x92, 0x92]),
            eventTimeBytes(e.time),
            packValue(e.metadata),
            packValue(e.record),
          ]),
    ),
  );
  return { tag, payload, count: entries.length, bytes: payload.length };
}

class Gen {
  readonly r: () => number;
  /** How often the odd shapes show up (0: never). */
  readonly odd: number;
  constructor(seed: number, odd: number) {
    this.r = rng(seed);
    this.odd = odd;
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
}

const TEXT = [
  'GET /health 200',
  'order "42" paid\n',
  'tab\there',
  'ünïcödé ✓ 😀',
  '',
  'a=b c',
  '\u0000\u001f',
];
const LABELISH: readonly unknown[] = ['ann', 'bob', 'cid', 'web', 'shop', '', 3, 2.5, true, null, 10n ** 20n];

function scalar(g: Gen): unknown {
  switch (g.int(9)) {
    case 0:
      return g.int(1000) - 500;
    case 1:
      return g.r() * 100;
    case 2:
      return g.chance(0.5);
    case 3:
      return null;
    case 4:
      return Buffer.from(g.pick(['bin text', '\xff\xfe']), 'latin1');
    case 5:
      return new EventTime(1_800_000_000 + g.int(100), g.int(1e9));
    case 6:
      return 2n ** 63n + BigInt(g.int(1000));
    default:
      return g.pick(TEXT);
  }
}

function value(g: Gen, depth: number): unknown {
  if (depth > 3 || g.chance(0.6)) return scalar(g);
  if (g.chance(0.5)) return Array.from({ length: g.int(4) }, () => value(g, depth + 1));
  return map(g, depth + 1, ['a', 'b', 'log', 'app', 'x.y']);
}

function key(g: Gen, keys: readonly string[]): unknown {
  if (g.chance(g.odd * 0.3))
    return g.pick([1, '1', '__proto__', '07', 'é', new RawStr(Buffer.from([0x61, 0xff]))]);
  return g.pick(keys);
}

function map(g: Gen, depth: number, keys: readonly string[]): Pairs {
  const pairs: [unknown, unknown][] = [];
  const n = g.int(5);
  for (let i = 0; i < n; i++) {
    const k = key(g, keys);
    // Repeated keys only where asked: otherwise a key appears once.
    if (!g.chance(g.odd) && pairs.some(([seen]) => seen === k)) continue;
    pairs.push([k, value(g, depth)]);
  }
  return new Pairs(pairs);
}

function kubernetes(g: Gen): unknown {
  if (g.chance(g.odd)) return g.pick(['not a map', [1, 2], Buffer.from('bin')]);
  const labels = new Pairs([
    ['app', g.pick(['checkout', 'cart', ''])],
    ['app.kubernetes.io/name', g.pick(['checkout', 'cart'])],
    ...(g.chance(0.3) ? [['pod-template-hash', '7d9f8c6b5d'] as const] : []),
  ]);
  return new Pairs([
    ['pod_name', `checkout-${g.int(3)}`],
    ['namespace_name', g.pick(['shop', 'billing', 'kube-system', 'bad/tenant', '', 7])],
    ['pod_id', '5b8f2c1e-3a4d-4f5e-9b6a-7c8d9e0f1a2b'],
    ['labels', g.chance(0.1) ? 'none' : labels],
    ['host', 'ip-10-0-1-23'],
    ['container_name', g.pick(['checkout', 'istio-proxy'])],
    ...(g.chance(0.5) ? [['annotations', new Pairs([['prometheus.io/scrape', 'true']])] as const] : []),
  ]);
}

/** One record: the fields the test configurations read, often, and anything else now and then. */
export function record(g: Gen): Pairs {
  const pairs: [unknown, unknown][] = [];
  const add = (k: unknown, v: unknown, p = 0.8) => {
    if (g.chance(p)) pairs.push([k, v]);
  };
  add('log', g.pick(TEXT), 0.9);
  add('stream', g.pick(['stdout', 'stderr']));
  add('level', g.pick(LABELISH), 0.6);
  add('user', g.pick(LABELISH), 0.5);
  add('trace_id', g.pick(['abc', 'def', '', 42, { nested: true }]), 0.5);
  add('tenant', g.pick(['team-a', 'team-b', 'a/../b', 'team-a']), 0.5);
  add('kubernetes', kubernetes(g), 0.8);
  add('time', '2026-11-21T10:00:00.123456789Z', 0.5);
  add('items', [g.pick(LABELISH), { a: 1 }], 0.2);
  for (const [k, v] of map(g, 1, ['extra', 'n', 'msg', 'log']).pairs) {
    // Repeating a key of the record is one of the odd shapes.
    if (g.odd > 0 || !pairs.some(([seen]) => seen === k)) add(k, v, 0.5);
  }
  if (g.chance(g.odd)) pairs.push([g.pick(['log', 'stream', 'user', 1, '__proto__', '2']), scalar(g)]);
  // Shuffled: key order is the record's, and must survive.
  for (let i = pairs.length - 1; i > 0; i--) {
    const j = g.int(i + 1);
    [pairs[i], pairs[j]] = [pairs[j]!, pairs[i]!];
  }
  return new Pairs(pairs);
}

/** `count` generated entries; `odd` is how often the odd shapes appear (0 for none). */
export function generatedEntries(seed: number, count: number, odd: number): RawEntry[] {
  const g = new Gen(seed, odd);
  const base = 1_800_000_000;
  return Array.from({ length: count }, (_, i) => ({
    time: new EventTime(base + g.int(5), g.pick([0, i, 999_999_999])),
    record: record(g),
    ...(g.chance(0.1) ? { metadata: { otel: { trace: 't1' } } } : {}),
  }));
}
