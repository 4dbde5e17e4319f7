/**
 * msgpack values generated as bytes from a seed: every width of every type (not only the one
 * an encoder would choose), strings with multi-byte and broken UTF-8, binary, EventTimes and
 * timestamps of every size, arrays, and maps with keys a JavaScript object reorders, merges,
 * renames or refuses. A failure names the seed that reproduces it.
 *
 * Used by the msgpack → JSON transcoder's tests (test/core/msgpack-json.test.ts) and the
 * Elasticsearch output's generated batches (test/outputs/elasticsearch/generate.ts); `rng`
 * by every seeded test.
 */

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
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

/** Seeded choices, and the bytes written with them. */
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
export function bytesOf(value: number | bigint, size: number): number[] {
  let v = BigInt.asUintN(size * 8, BigInt(value));
  const out: number[] = [];
  for (let i = 0; i < size; i++) {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

export const utf8 = (s: string): number[] => [...Buffer.from(s)];

const STRING_BYTES = [
  ...'abcxyz ABC019_-.:/'.split('').map((c) => c.charCodeAt(0)),
  0x22, // "
  0x5c, // \
  0x00,
  0x08,
  0x09,
  0x0a,
  0x0c,
  0x0d,
  0x1f,
  0x7f,
];
const UTF8_PIECES = ['é', 'ü', '€', '日本', '😀', '\u2028', '\ufeff', '\ufffd'].map(utf8);
const INVALID_PIECES = [
  [0xff],
  [0xc0, 0x80],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0x80],
  [0xf0, 0x9f, 0x98],
];

/**
 * String body bytes: mostly ASCII (quotes, backslashes and control characters included),
 * sometimes multi-byte, sometimes broken UTF-8 when `allowInvalid`. Short (under 12 bytes),
 * or long (40 to 464, past str8 now and then) one time in ten — always when `long`.
 */
export function textBytes(g: Gen, allowInvalid: boolean, long = g.int(10) === 0): number[] {
  const length = long ? 40 + g.int(425) : g.int(12);
  const out: number[] = [];
  while (out.length < length) {
    const roll = g.int(20);
    if (roll < 14) out.push(g.pick(STRING_BYTES));
    else if (roll < 18) out.push(...g.pick(UTF8_PIECES));
    else if (allowInvalid) out.push(...g.pick(INVALID_PIECES));
  }
  return out;
}

/** A str of `body`, under any header wide enough for it (mostly the smallest). */
export function str(g: Gen, body: number[]): void {
  const n = body.length;
  const w = g.pick(n < 32 ? [0, 0, 0, 1, 2, 3] : n < 256 ? [1, 1, 2, 3] : [2, 3]);
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

/** A header for `n` items: the fix form when it fits (mostly), else 16- or 32-bit. */
export function header(g: Gen, n: number, fix: number, b16: number, b32: number): void {
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

/** Integers at the edges of every encoding, and of what a JavaScript number holds exactly. */
export const INTS: readonly bigint[] = [
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
  2n ** 53n - 1n,
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
  -(2n ** 63n),
];

const DOUBLES = [
  0,
  -0,
  1,
  2,
  1.5,
  12.5,
  -2.25,
  0.1,
  1e21,
  1e-7,
  -1e-7,
  5e9,
  4294967296,
  123456789.123,
  5e-324,
  1.7976931348623157e308,
  Number.NaN,
  Infinity,
  -Infinity,
];

/** An integer in one of the encodings wide enough for it. */
export function integer(g: Gen, v: bigint): void {
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

/** How many kinds `scalar` picks from; the first `KEYABLE_SCALARS` decode to a key. */
export const SCALAR_KINDS = 14;
/** nil, booleans, integers and floats: decoding makes a string key of them. */
export const KEYABLE_SCALARS = 5;

/** A scalar of one of the first `kinds` kinds (see SCALAR_KINDS). */
export function scalar(g: Gen, kinds = SCALAR_KINDS): void {
  switch (g.int(kinds)) {
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
      if (g.int(2) === 0) {
        b.writeFloatBE(d);
        g.push(0xca, ...b.subarray(0, 4));
      } else {
        b.writeDoubleBE(d);
        g.push(0xcb, ...b);
      }
      return;
    }
    case 4: {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(g.int(2 ** 32));
      g.push(0xcb, ...b, ...b); // arbitrary bit patterns, NaN payloads included
      return;
    }
    case 5: {
      // Binary: valid UTF-8 or not.
      const body = g.int(2) === 0 ? textBytes(g, false) : [0xff, 0xfe, ...textBytes(g, true)];
      if (body.length < 256 && g.int(2) === 0) g.push(0xc4, body.length);
      else {
        g.push(0xc5);
        g.be(body.length, 2);
      }
      g.push(...body);
      return;
    }
    case 6:
      // EventTime.
      g.push(0xd7, 0x00);
      g.be(g.int(2 ** 32), 4);
      g.be(g.int(1e9), 4);
      return;
    case 7: {
      // Timestamp ext -1, all three sizes.
      const size = g.pick([4, 8, 12]);
      if (size === 4) {
        g.push(0xd6, 0xff);
        g.be(g.int(2 ** 32), 4);
      } else if (size === 8) {
        g.push(0xd7, 0xff);
        g.be((BigInt(g.int(1e9)) << 34n) | BigInt(g.int(2 ** 32)), 8);
      } else {
        g.push(0xc7, 12, 0xff);
        g.be(g.int(1e9), 4);
        g.be(BigInt(g.int(2 ** 40)) - 2n ** 39n, 8);
      }
      return;
    }
    case 8:
      str(g, textBytes(g, false, true));
      return;
    default:
      str(g, textBytes(g, g.int(4) === 0));
  }
}

/** Writes one map key. */
export type KeyWriter = (g: Gen) => void;

/** Nested values stop at this depth (the top map's values are at 1). */
export const MAX_DEPTH = 5;

/** A scalar, array or map at `depth`; nested maps' keys from `key`. */
export function value(g: Gen, depth: number, key: KeyWriter = oddKey): void {
  const roll = g.int(10);
  if (depth >= MAX_DEPTH || roll < 6) scalar(g);
  else if (roll < 8) {
    const n = g.int(6);
    header(g, n, 0x90, 0xdc, 0xdd);
    for (let i = 0; i < n; i++) value(g, depth + 1, key);
  } else map(g, depth, key);
}

/** How many random keys a map gets: up to 8, and one time in fifty past 64. */
export function mapSize(g: Gen): number {
  return g.int(50) === 0 ? 65 + g.int(20) : g.int(9);
}

/** A map at `depth` (its values at `depth + 1`), keys from `key`. */
export function map(g: Gen, depth: number, key: KeyWriter = oddKey): void {
  const n = mapSize(g);
  header(g, n, 0x80, 0xde, 0xdf);
  for (let i = 0; i < n; i++) {
    key(g);
    value(g, depth + 1, key);
  }
}

/** Array indices: an object puts them first, ascending. */
const INTEGER_LIKE = ['0', '1', '2', '3', '4', '5'];
/** At the edges of what an object orders first (4294967294 is the last array index; the others are not indices). */
const NUMBER_LIKE = ['01', '4294967295', '4294967294', '-1', '1.5'];
/** Keys a JavaScript object reorders or renames (`__proto__`), and their neighbours. */
export const ODD_KEYS: readonly string[] = [...INTEGER_LIKE, ...NUMBER_LIKE, '__proto__', '__proto_', ''];

/**
 * A key as senders may write one: odd (integer-like, `__proto__`), repeated (a few common
 * names), any text (broken UTF-8 now and then), or not a string at all — numbers, booleans
 * and nil decode to strings; binary and ext, rarely, cannot be a key.
 */
export function oddKey(g: Gen): void {
  if (g.int(25) === 0) {
    scalar(g, g.int(10) === 0 ? SCALAR_KINDS : KEYABLE_SCALARS);
    return;
  }
  const roll = g.int(30);
  if (roll === 0) str(g, utf8(g.pick(INTEGER_LIKE)));
  else if (roll === 1) str(g, utf8(g.pick(NUMBER_LIKE)));
  else if (roll === 2) str(g, utf8('__proto__'));
  else if (roll === 3) str(g, utf8('__proto_'));
  else if (roll < 8)
    str(g, utf8(g.pick(['a', 'b', 'log', 'msg']))); // duplicates likely
  else str(g, textBytes(g, roll === 9));
}
