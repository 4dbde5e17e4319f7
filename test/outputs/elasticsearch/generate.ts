import { recordAt } from '../../../bench/records.ts';
import type { Batch } from '../../../src/core/batch.ts';
import { pack } from '../../../src/core/msgpack.ts';
import {
  Gen,
  header,
  INTS,
  integer,
  type KeyWriter,
  map,
  mapSize,
  ODD_KEYS,
  str,
  textBytes,
  utf8,
  value,
} from '../../support/msgpack-gen.ts';

/**
 * Batches as senders write them, generated from a seed: every width of every msgpack type
 * (not only the ones msgpackr picks), keys a JavaScript object reorders, merges or renames,
 * invalid UTF-8, binary, EventTimes and timestamps nested in records, Fluent Bit metadata,
 * times as EventTime, integer or float seconds — and the fields the output's settings read
 * (`@timestamp`, `tag`, `id`, `kubernetes.namespace_name`, …), present or not. The values
 * come from test/support/msgpack-gen.ts; the keys, records, entries and batches are these.
 */

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

/** A key: often one the settings read, now and then an odd one or not a string at all. */
const key: KeyWriter = (g) => {
  const roll = g.int(40);
  if (roll === 0) {
    // Not a string: decoding makes a string of it.
    if (g.int(2) === 0) integer(g, g.pick([0n, 5n, 300n, -1n]));
    else g.push(g.pick([0xc0, 0xc2, 0xc3]));
  } else if (roll < 3) str(g, utf8(g.pick(ODD_KEYS)));
  else if (roll < 12) str(g, utf8(g.pick(FIELD_KEYS)));
  else if (roll === 12) str(g, textBytes(g, true));
  else str(g, utf8(`k${g.int(12)}`)); // repeats now and then
};

function kubernetes(g: Gen): void {
  const fields = [
    ['namespace_name', () => str(g, utf8(g.pick(['Shop', 'kube-system', 'a b,c*', 'ns.é'])))],
    ['pod_name', () => (g.int(4) === 0 ? integer(g, 42n) : str(g, utf8(`api-${g.int(100)}`)))],
    ['labels', () => map(g, 3, key)],
  ] as const;
  const chosen = fields.filter(() => g.int(5) > 0);
  header(g, chosen.length, 0x80, 0xde, 0xdf);
  for (const [name, write] of chosen) {
    str(g, utf8(name));
    write();
  }
}

/** A record: a map, now and then with a `kubernetes` map and an `id` up front (and later as a value). */
export function record(g: Gen): Buffer {
  const fixed: Array<[string, () => void]> = [];
  if (g.int(3) === 0) fixed.push(['kubernetes', () => kubernetes(g)]);
  if (g.int(3) === 0)
    fixed.push(['id', () => (g.int(3) === 0 ? integer(g, g.pick(INTS)) : str(g, textBytes(g, false)))]);
  const n = mapSize(g);
  header(g, n + fixed.length, 0x80, 0xde, 0xdf);
  for (const [name, write] of fixed) {
    str(g, utf8(name));
    write();
  }
  for (let i = 0; i < n; i++) {
    key(g);
    if (g.int(6) === 0) kubernetes(g);
    else value(g, 1, key);
  }
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
    else map(g, 1, key);
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
