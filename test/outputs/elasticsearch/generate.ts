import { recordAt } from '../../../bench/records.ts';
import type { Batch } from '../../../src/core/batch.ts';
import { pack } from '../../../src/core/msgpack.ts';

/**
 * Batches as senders write them, generated from a seed: every width of every msgpack type
 * (not only the ones msgpackr picks), keys a JavaScript object reorders, merges or renames,
 * invalid UTF-8, binary, EventTimes and timestamps nested in records, Fluent Bit metadata,
 * times as EventTime, integer or float seconds — and the fields the output's settings read
 * (`@timestamp`, `tag`, `id`, `kubernetes.namespace_name`, …), present or not.
 */

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Gen {
  private parts: number[] = [];
  private readonly r: () => number;

  constructor(seed: number) {
    this.r = rng(seed);
  }

  int(n: number): number {
    return Math.floor(this.r() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  push(...bytes: number[]): void {
    for (const b of bytes) this.parts.push(b & 0xff);
  }

  be(value: number | bigint, size: number): void {
    this.push(...bytesOf(value, size));
  }

  /** The bytes pushed since the last take. */
  take(): Buffer {
    const out = Buffer.from(this.parts);
    this.parts = [];
    return out;
  }
}

/** `value` big-endian in `size` bytes (two's complement when negative). */
function bytesOf(value: number | bigint, size: number): number[] {
  let v = BigInt.asUintN(size * 8, BigInt(value));
  const out: number[] = [];
  for (let i = 0; i < size; i++) {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

const ASCII = 'abcxyz ABC019_-.:/"\\\n\t'.split('').map((c) => c.charCodeAt(0));
const UTF8 = ['é', '€', '日本', '😀', '\u2028'].map((s) => [...Buffer.from(s)]);
const INVALID = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x80]];

function text(g: Gen, allowInvalid: boolean, long = false): number[] {
  const length = long ? 40 + g.int(300) : g.int(12);
  const out: number[] = [];
  while (out.length < length) {
    const roll = g.int(20);
    if (roll < 15) out.push(g.pick(ASCII));
    else if (roll < 19) out.push(...g.pick(UTF8));
    else if (allowInvalid) out.push(...g.pick(INVALID));
  }
  return out;
}

/** A str of `body`, under any header wide enough for it. */
export function str(g: Gen, body: number[]): void {
  const n = body.length;
  const w = g.pick(n < 32 ? [0, 0, 0, 1, 2] : n < 256 ? [1, 1, 2, 3] : [2, 3]);
  if (w === 0) g.push(0xa0 | n);
  else if (w === 1) g.push(0xd9, n);
  else if (w === 2) {
    g.push(0xda);
    g.be(n, 2);
  } else {
    g.push(0xdb);
    g.be(n, 4);
  }
  g.push(...body);
}

const utf8 = (s: string) => [...Buffer.from(s)];

/** A header for `n` items: the fix form when it fits (mostly), else 16- or 32-bit. */
function header(g: Gen, n: number, fix: number, b16: number, b32: number): void {
  const w = n < 16 ? g.pick([0, 0, 0, 1, 2]) : g.pick([1, 1, 2]);
  if (w === 0) g.push(fix | n);
  else if (w === 1) {
    g.push(b16);
    g.be(n, 2);
  } else {
    g.push(b32);
    g.be(n, 4);
  }
}

const INTS: bigint[] = [
  0n,
  1n,
  5n,
  127n,
  128n,
  255n,
  256n,
  65535n,
  65536n,
  2n ** 31n - 1n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  2n ** 64n - 1n,
  -1n,
  -32n,
  -33n,
  -128n,
  -129n,
  -32768n,
  -32769n,
  -(2n ** 31n),
  -(2n ** 53n),
  -(2n ** 53n) - 1n,
];
const DOUBLES = [0, -0, 1, 2, 12.5, -2.25, 0.1, 1e21, 5e9, 4294967296, Number.NaN, Infinity, -1e-7];

/** An integer in one of the encodings wide enough for it. */
function integer(g: Gen, v: bigint): void {
  const fits = (lo: bigint, hi: bigint) => v >= lo && v <= hi;
  const options: Array<() => void> = [];
  if (fits(0n, 127n) || fits(-32n, -1n)) options.push(() => g.push(Number(v)));
  if (fits(0n, 255n)) options.push(() => g.push(0xcc, Number(v)));
  if (fits(0n, 65535n)) options.push(() => g.push(0xcd, ...bytesOf(v, 2)));
  if (fits(0n, 2n ** 32n - 1n)) options.push(() => g.push(0xce, ...bytesOf(v, 4)));
  if (fits(0n, 2n ** 64n - 1n)) options.push(() => g.push(0xcf, ...bytesOf(v, 8)));
  if (fits(-128n, 127n)) options.push(() => g.push(0xd0, Number(v)));
  if (fits(-32768n, 32767n)) options.push(() => g.push(0xd1, ...bytesOf(v, 2)));
  if (fits(-(2n ** 31n), 2n ** 31n - 1n)) options.push(() => g.push(0xd2, ...bytesOf(v, 4)));
  if (fits(-(2n ** 63n), 2n ** 63n - 1n)) options.push(() => g.push(0xd3, ...bytesOf(v, 8)));
  g.pick(options)();
}

function scalar(g: Gen): void {
  switch (g.int(14)) {
    case 0:
      g.push(g.pick([0xc0, 0xc2, 0xc3]));
      return;
    case 1:
    case 2:
      integer(g, g.pick(INTS));
      return;
    case 3: {
      const d = g.pick(DOUBLES);
      const b = Buffer.alloc(8);
      if (g.int(4) === 0) {
        b.writeFloatBE(d);
        g.push(0xca, ...b.subarray(0, 4));
      } else {
        b.writeDoubleBE(d);
        g.push(0xcb, ...b);
      }
      return;
    }
    case 4: {
      const body = g.int(2) === 0 ? text(g, false) : [0xff, 0xfe, ...text(g, true)];
      g.push(0xc4, body.length, ...body);
      return;
    }
    case 5:
      // EventTime.
      g.push(0xd7, 0x00);
      g.be(g.int(2 ** 32), 4);
      g.be(g.int(1e9), 4);
      return;
    case 6:
      g.push(0xd6, 0xff);
      g.be(g.int(2 ** 32), 4);
      return;
    case 7:
      str(g, text(g, false, true));
      return;
    default:
      str(g, text(g, g.int(8) === 0));
  }
}

function value(g: Gen, depth: number): void {
  const roll = g.int(10);
  if (depth >= 4 || roll < 6) scalar(g);
  else if (roll < 8) {
    const n = g.int(5);
    header(g, n, 0x90, 0xdc, 0xdd);
    for (let i = 0; i < n; i++) value(g, depth + 1);
  } else map(g, depth + 1, []);
}

/** Keys the settings under test read, and keys an object treats specially. */
const FIELD_KEYS = [
  '@timestamp',
  'tag',
  'fluentd_tag',
  'time',
  'id',
  'request_id',
  'msg',
  'é',
  'constructor',
];
const ODD_KEYS = ['5', '0', '01', '4294967295', '__proto__', '__proto_', ''];

function key(g: Gen): void {
  const roll = g.int(40);
  if (roll === 0) {
    // Not a string: decoding makes a string of it.
    if (g.int(2) === 0) integer(g, g.pick([0n, 5n, 300n, -1n]));
    else g.push(g.pick([0xc0, 0xc2, 0xc3]));
  } else if (roll < 3) str(g, utf8(g.pick(ODD_KEYS)));
  else if (roll < 12) str(g, utf8(g.pick(FIELD_KEYS)));
  else if (roll === 12) str(g, text(g, true));
  else str(g, utf8(`k${g.int(12)}`)); // repeats now and then
}

function kubernetes(g: Gen): void {
  const fields = [
    ['namespace_name', () => str(g, utf8(g.pick(['Shop', 'kube-system', 'a b,c*', 'ns.é'])))],
    ['pod_name', () => (g.int(4) === 0 ? integer(g, 42n) : str(g, utf8(`api-${g.int(100)}`)))],
    ['labels', () => map(g, 3, [])],
  ] as const;
  const chosen = fields.filter(() => g.int(5) > 0);
  header(g, chosen.length, 0x80, 0xde, 0xdf);
  for (const [name, write] of chosen) {
    str(g, utf8(name));
    write();
  }
}

/** A map of random keys, after the `fixed` fields written first. */
function map(g: Gen, depth: number, fixed: Array<[string, () => void]>): void {
  const n = g.int(50) === 0 ? 65 + g.int(10) : g.int(9);
  header(g, n + fixed.length, 0x80, 0xde, 0xdf);
  for (const [name, write] of fixed) {
    str(g, utf8(name));
    write();
  }
  for (let i = 0; i < n; i++) {
    key(g);
    if (depth === 0 && g.int(6) === 0) kubernetes(g);
    else value(g, depth);
  }
}

/** A record: a map, now and then with a `kubernetes` map and an `id` up front. */
export function record(g: Gen): Buffer {
  const fixed: Array<[string, () => void]> = [];
  if (g.int(3) === 0) fixed.push(['kubernetes', () => kubernetes(g)]);
  if (g.int(3) === 0)
    fixed.push(['id', () => (g.int(3) === 0 ? integer(g, g.pick(INTS)) : str(g, text(g, false)))]);
  map(g, 0, fixed);
  return g.take();
}

/** `[time, record]` or `[[time, metadata], record]`, time in any of the forms decodeEntries takes. */
function entry(g: Gen, recordBytes: Buffer): Buffer {
  const sec = 1_700_000_000 + g.int(3);
  const time = (): void => {
    const form = g.int(8);
    if (form === 0) integer(g, BigInt(sec));
    else if (form === 1) {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(sec + g.int(1000) / 1000);
      g.push(0xcb, ...b);
    } else {
      g.push(0xd7, 0x00);
      g.be(sec, 4);
      g.be(g.pick([0, 1, 999_999_999, g.int(1e9)]), 4);
    }
  };
  g.push(0x92);
  if (g.int(6) === 0) {
    g.push(0x92);
    time();
    if (g.int(2) === 0) g.push(0xc0);
    else map(g, 1, []);
  } else time();
  return Buffer.concat([g.take(), recordBytes]);
}

/** Batches of a few tags, `count` entries in all; records from `make` (default: generated). */
export function batches(seed: number, count: number, make?: (g: Gen, i: number) => Buffer): Batch[] {
  const g = new Gen(seed);
  const out: Batch[] = [];
  let left = count;
  while (left > 0) {
    const n = Math.min(left, 1 + g.int(6));
    const tag = g.pick(['app.golang', 'web/nginx', 'Kube.App', 'a"b\\c.é']);
    const payload = Buffer.concat(
      Array.from({ length: n }, (_, i) => entry(g, make ? make(g, count - left + i) : record(g))),
    );
    out.push({ tag, payload, count: n, bytes: payload.length });
    left -= n;
  }
  return out;
}

/** The bench's records (a Go service's log line, an nginx access line), as msgpackr packs them. */
export function benchRecord(_g: Gen, i: number): Buffer {
  return pack(recordAt(i));
}
