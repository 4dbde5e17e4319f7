import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.ts';
import type { Entry } from '../../src/core/entry.ts';
import { EventTime } from '../../src/core/event-time.ts';
import type { Emission, Filter } from '../../src/filters/filter.ts';
import { startEstuary } from '../support/estuary.ts';
import { buildFilter } from '../support/filters.ts';
import { postJson } from '../support/http.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { freePort, waitFor } from '../support/wait.ts';

function build(yaml: string): Filter {
  return buildFilter(`filters:\n  - type: concat\n${yaml}`, 'c.yaml');
}

let clock = 0;
const entry = (record: Record<string, unknown>): Entry => ({
  time: new EventTime(1_700_000_000, clock++),
  record,
});

/** Every record the filter gives for `records` of `tag`, in order. */
function run(f: Filter, tag: string, records: Record<string, unknown>[]): Entry[] {
  const out: Entry[] = [];
  for (const r of records) {
    const result = f.apply(entry(r), tag);
    if (result === null) continue;
    if (Array.isArray(result)) out.push(...(result as Emission[]).map((e) => e.entry));
    else out.push(result as Entry);
  }
  return out;
}

describe('concat filter', () => {
  it("Docker's fluentd log driver: a line split over 16 KiB joined by partial_id, per container; metadata dropped", () => {
    const f = build(
      '    key: log\n    use_partial_metadata: true\n    separator: ""\n    stream_identity_key: container_id\n',
    );
    const piece = (c: string, id: string, ordinal: number, last: boolean, log: string) => ({
      container_id: c,
      log,
      partial_message: 'true',
      partial_id: id,
      partial_ordinal: String(ordinal),
      partial_last: String(last),
    });
    const a1 = 'a'.repeat(16_384);
    const out = run(f, 'docker.web', [
      piece('c1', 'p1', 1, false, a1),
      piece('c2', 'p9', 1, false, 'other container, '),
      { container_id: 'c1', log: 'a whole line\n' },
      piece('c1', 'p1', 2, false, 'b'.repeat(100)),
      piece('c2', 'p9', 2, true, 'done\n'),
      piece('c1', 'p1', 3, true, 'end\n'),
    ]);
    assert.deepEqual(
      out.map((e) => e.record),
      [
        { container_id: 'c1', log: 'a whole line\n' },
        { container_id: 'c2', log: 'other container, done\n' },
        { container_id: 'c1', log: `${a1}${'b'.repeat(100)}end\n` },
      ],
    );
    assert.equal(out[2]!.time.nsec, clock - 1, "the joined record has the last piece's time");
  });

  it('CRI: stdout and stderr pieces are joined apart (partial_cri_stream_key)', () => {
    const f = build('    key: message\n    use_partial_cri_logtag: true\n    separator: ""\n');
    const out = run(f, 'kube.app', [
      { stream: 'stdout', logtag: 'P', message: 'long stdout line part 1 ' },
      { stream: 'stderr', logtag: 'F', message: 'an error line' },
      { stream: 'stdout', logtag: 'F', message: 'part 2' },
    ]);
    assert.deepEqual(
      out.map((e) => [e.record.stream, e.record.message]),
      [
        ['stderr', 'an error line'],
        ['stdout', 'long stdout line part 1 part 2'],
      ],
    );
  });

  it('CRI: P pieces up to the F one, logtag F; a lone F line passes as it is', () => {
    const f = build('    key: message\n    use_partial_cri_logtag: true\n    separator: ""\n');
    const out = run(f, 'kube.app', [
      { stream: 'stdout', logtag: 'P', message: 'first ' },
      { stream: 'stdout', logtag: 'P', message: 'second ' },
      { stream: 'stdout', logtag: 'F', message: 'third' },
      { stream: 'stdout', logtag: 'F', message: 'whole' },
    ]);
    assert.deepEqual(
      out.map((e) => e.record),
      [
        { stream: 'stdout', logtag: 'F', message: 'first second third' },
        { stream: 'stdout', logtag: 'F', message: 'whole' },
      ],
    );
  });

  it('multiline_start_regexp: a stack trace joined; the next start emits it; continuous_line_regexp breaks a group', () => {
    const f = build(
      '    key: log\n    multiline_start_regexp: "^\\\\d{4}-\\\\d{2}-\\\\d{2}"\n    continuous_line_regexp: "^(\\\\s+at |Caused by:)"\n    use_first_timestamp: true\n',
    );
    const out = run(f, 'app', [
      { log: 'stray line before any start' },
      { log: '2024-05-01 ERROR boom' },
      { log: '    at a.B(C.java:1)' },
      { log: 'Caused by: x' },
      { log: '2024-05-01 INFO next' },
      { log: 'not a continuation' },
      { log: '2024-05-01 INFO last' },
    ]);
    assert.deepEqual(
      out.map((e) => e.record.log),
      [
        'stray line before any start',
        '2024-05-01 ERROR boom\n    at a.B(C.java:1)\nCaused by: x',
        '2024-05-01 INFO next',
        'not a continuation',
      ],
    );
    assert.equal(out[1]!.time.nsec, out[0]!.time.nsec + 1, "use_first_timestamp: the first piece's time");
  });

  it('n_lines joins every n records; multiline_end_regexp ends a group; max_bytes emits a group at once', () => {
    const n = build('    key: m\n    n_lines: 3\n    separator: "|"\n');
    assert.deepEqual(
      run(
        n,
        't',
        [1, 2, 3, 4, 5, 6, 7].map((i) => ({ m: i })),
      ).map((e) => e.record.m),
      ['1|2|3', '4|5|6'],
    );
    const end = build('    key: m\n    multiline_end_regexp: ";$"\n');
    assert.deepEqual(
      run(end, 't', [{ m: 'select *' }, { m: 'from t;' }, { m: 'x;' }]).map((e) => e.record.m),
      ['select *\nfrom t;', 'x;'],
    );
    // Each piece counts its bytes plus 64: an empty piece still holds memory.
    const capped = build('    key: m\n    n_lines: 1000\n    max_bytes: 150\n');
    assert.deepEqual(
      run(capped, 't', [{ m: 'abcd' }, { m: 'efgh' }, { m: 'ij' }, { m: 'kl' }]).map((e) => e.record.m),
      ['abcd\nefgh\nij'],
    );
    const empties = build(
      '    key: m\n    use_partial_cri_logtag: true\n    separator: ""\n    max_bytes: 1KiB\n',
    );
    const held = run(
      empties,
      't',
      Array.from({ length: 40 }, () => ({ logtag: 'P', m: '' })),
    );
    assert.equal(held.length, 2, 'forty empty pieces do not wait for ever under max_bytes');
  });

  it('a record without the key passes alone and leaves the open group be', () => {
    const f = build('    key: m\n    n_lines: 2\n');
    assert.deepEqual(
      run(f, 't', [{ m: 'a' }, { other: 1 }, { m: 'b' }]).map((e) => e.record),
      [{ other: 1 }, { m: 'a\nb' }],
    );
  });

  it('a config with no way, or two ways, to join stops startup with file, line and key', () => {
    for (const [yaml, want] of [
      ['    key: log\n', /^c\.yaml:3: filters\[0\]\.key: set exactly one way to join/],
      [
        '    key: log\n    n_lines: 2\n    use_partial_metadata: true\n',
        /^c\.yaml:3: filters\[0\]\.key: set exactly one way/,
      ],
      [
        '    key: log\n    partial_key: p\n',
        /^c\.yaml:2: filters\[0\]\.partial_value: partial_key needs partial_value/,
      ],
    ] as const) {
      assert.throws(
        () => build(yaml),
        (err: unknown) => err instanceof ConfigError && want.test(err.message),
        yaml,
      );
    }
  });
});

describe('concat in a running Estuary (HTTP in)', () => {
  it('pieces from separate requests are joined; an unfinished group goes out after flush_interval, and at stop', async () => {
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - { type: http, port: ${port}, listen: 127.0.0.1 }
filters:
  - { type: concat, match: "cri.**", key: message, use_partial_cri_logtag: true, separator: "", flush_interval: 300ms }
  - { type: concat, match: "held.**", key: message, use_partial_cri_logtag: true, separator: "", flush_interval: 1h }
outputs:
  - { type: scripted, id: concat-out, match: "**" }
`);
    const out = scriptedInstances.get('concat-out')!;
    let stopped = false;
    try {
      const post = async (tag: string, logtag: string, message: string) =>
        assert.equal((await postJson(port, tag, { logtag, message })).status, 200);
      await post('cri.a', 'P', 'one ');
      await post('cri.a', 'P', 'two ');
      await post('cri.a', 'F', 'three');
      await waitFor(() => out.delivered.length === 1, { what: 'the joined line' });
      assert.equal(out.delivered[0]!.record.message, 'one two three');

      await post('cri.a', 'P', 'never finished');
      await waitFor(() => out.delivered.length === 2, { what: 'the unfinished group, after flush_interval' });
      assert.deepEqual(out.delivered[1]!.record, { logtag: 'F', message: 'never finished' });

      await post('held.b', 'P', 'held until shutdown');
      await e.stop();
      stopped = true;
      await waitFor(() => out.delivered.length === 3, { what: 'the held group, at stop' });
      assert.equal(out.delivered[2]!.record.message, 'held until shutdown');
    } finally {
      if (!stopped) await e.stop();
    }
  });
});
