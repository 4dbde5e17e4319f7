import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OutputBuffer } from '../src/buffer/buffer.ts';
import { MemoryBackend } from '../src/buffer/memory/memory-store.ts';
import { type BufferOverrides, resolveBufferSettings } from '../src/config/schema.ts';
import { makeBatch } from '../src/core/batch.ts';
import type { Entry } from '../src/core/entry.ts';
import { BackpressureError } from '../src/core/errors.ts';
import { EventTime } from '../src/core/event-time.ts';
import { TagPattern } from '../src/core/tag-pattern.ts';
import type { Filter, Release } from '../src/filters/filter.ts';
import { silentLogger } from '../src/logger.ts';
import { Metrics } from '../src/metrics/registry.ts';
import { MAX_EMISSIONS, MAX_RETAGS, MAX_TAG_LENGTH, Pipeline } from '../src/pipeline.ts';
import { buildFilter } from './support/filters.ts';
import { ScriptedOutput } from './support/outputs.ts';
import { waitFor } from './support/wait.ts';

const batch = (tag: string, ...ns: number[]) =>
  makeBatch(
    tag,
    ns.map((n) => ({ time: new EventTime(1_700_000_000, n), record: { n } })),
  );

function setup(
  routes: [string, string][],
  filters: [string, Filter][] = [],
  overrides: Record<string, BufferOverrides> = {},
) {
  const metrics = new Metrics();
  const backend = new MemoryBackend();
  const outputs = routes.map(([id, match]) => {
    const output = new ScriptedOutput(id);
    const buffer = backend.create(output, resolveBufferSettings({ flush_interval: 10 }, overrides[id]), {
      logger: silentLogger(),
      metrics,
    });
    void buffer.start();
    return { id, output, buffer, match: new TagPattern(match) };
  });
  const pipeline = new Pipeline(
    filters.map(([m, filter]) => ({ match: new TagPattern(m), filter })),
    outputs,
    metrics,
    silentLogger(),
  );
  const stop = () => Promise.all(outputs.map((o) => (o.buffer as OutputBuffer).stop(Date.now())));
  return { pipeline, outputs, metrics, stop };
}

describe('pipeline', () => {
  it('a sender waiting for room in one output holds none in the others', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => {
      release = r;
    });
    const one = batch('both.x', 1, 2, 3);
    const limit = {
      total_limit_size: one.bytes * 2,
      overflow_action: 'block' as const,
      chunk_limit_records: 3,
    };
    const { pipeline, outputs, stop } = setup(
      [
        ['full', 'both.*'],
        ['free', '{both,free}.*'],
      ],
      [],
      { full: limit, free: limit },
    );
    outputs[0]!.output.script = [{ hold }];
    await pipeline.emit(one, { wait: false });
    await pipeline.emit(batch('both.x', 4, 5, 6), { wait: false });
    // `full` has no room: these wait, and must not fill `free` with reservations meanwhile.
    const waiting = [7, 10, 13].map((n) => pipeline.emit(batch('both.x', n, n + 1, n + 2), { wait: true }));
    await waitFor(() => outputs[1]!.output.delivered.length === 6, {
      what: 'the first two delivered by free',
    });
    for (let n = 100; n < 106; n += 3) await pipeline.emit(batch('free.x', n, n + 1, n + 2), { wait: false });
    release();
    await Promise.all(waiting);
    await waitFor(
      () => outputs[0]!.output.delivered.length === 15 && outputs[1]!.output.delivered.length === 21,
      {
        what: 'everything delivered',
      },
    );
    await stop();
  });

  it('gives every output whose pattern matches its own copy', async () => {
    const { pipeline, outputs, stop } = setup([
      ['all', '**'],
      ['app', 'app.**'],
      ['web', 'app.web'],
      ['db', 'db.*'],
    ]);
    await pipeline.emit(batch('app.web', 1, 2), { wait: false });
    await pipeline.emit(batch('app.api', 3), { wait: false });
    await waitFor(() => outputs[0]!.output.delivered.length === 3);
    await waitFor(() => outputs[1]!.output.delivered.length === 3);
    await waitFor(() => outputs[2]!.output.delivered.length === 2);
    assert.equal(outputs[3]!.output.delivered.length, 0);
    await stop();
  });

  it('counts and drops records no output matches', async () => {
    const { pipeline, metrics, stop } = setup([['db', 'db.*']]);
    await pipeline.emit(batch('app.web', 1, 2, 3), { wait: false });
    const m = await metrics.registry.getSingleMetric('estuary_records_unrouted_total')!.get();
    assert.equal(m.values[0]!.value, 3);
    await stop();
  });

  it('runs matching filters in order; a filter may drop or change records', async () => {
    const calls: string[] = [];
    const dropOdd: Filter = {
      id: 'f1',
      type: 't',
      apply: (e) => {
        calls.push('f1');
        return (e.record.n as number) % 2 ? null : e;
      },
    };
    const double: Filter = {
      id: 'f2',
      type: 't',
      apply: (e) => {
        calls.push('f2');
        return { ...e, record: { n: (e.record.n as number) * 10 } };
      },
    };
    const other: Filter = { id: 'f3', type: 't', apply: () => assert.fail('filter for another tag ran') };
    const { pipeline, outputs, stop } = setup(
      [['all', '**']],
      [
        ['app.**', dropOdd],
        ['db.**', other],
        ['**', double],
      ],
    );
    await pipeline.emit(batch('app.web', 1, 2, 3, 4), { wait: false });
    await waitFor(() => outputs[0]!.output.delivered.length === 2);
    assert.deepEqual(
      outputs[0]!.output.delivered.map((e) => e.record.n),
      [20, 40],
    );
    assert.deepEqual(calls.slice(0, 3), ['f1', 'f1', 'f2']);
    await stop();
  });

  it('passes a batch through still encoded when no filter applies', async () => {
    const { pipeline, outputs, stop } = setup([['all', '**']]);
    const b = batch('x', 1);
    let staged: unknown;
    const buf = outputs[0]!.buffer;
    const original = buf.stage.bind(buf);
    buf.stage = async (given, permit) => {
      staged = given;
      return original(given, permit);
    };
    await pipeline.emit(b, { wait: false });
    assert.equal(staged, b, 'the very same batch object, payload not re-encoded');
    await stop();
  });

  it('a filter may emit several entries or none; a re-tagged one starts over from the first filter of its tag', async () => {
    const split: Filter = {
      id: 'split',
      type: 't',
      // n → n copies; n = 0 → nothing; the copy numbered 2 goes on as `other.<tag>`.
      apply: (e, tag) =>
        Array.from({ length: e.record.n as number }, (_, i) => ({
          entry: { ...e, record: { n: e.record.n, copy: i } },
          ...(i === 2 ? { tag: `other.${tag}` } : {}),
        })),
    };
    const seen: string[] = [];
    const mark: Filter = {
      id: 'mark',
      type: 't',
      apply: (e, tag) => {
        seen.push(`${tag}:${e.record.n}/${e.record.copy}`);
        return { ...e, record: { ...e.record, marked: true } };
      },
    };
    const { pipeline, outputs, stop } = setup(
      [
        ['app', 'app.**'],
        ['other', 'other.**'],
      ],
      [
        ['app.**', split],
        ['**', mark],
      ],
    );
    await pipeline.emit(batch('app.web', 0, 3, 1), { wait: false });
    await waitFor(
      () => outputs[0]!.output.delivered.length === 3 && outputs[1]!.output.delivered.length === 1,
    );
    assert.deepEqual(
      outputs[0]!.output.delivered.map((e) => [e.tag, e.record.n, e.record.copy, e.record.marked]),
      [
        ['app.web', 3, 0, true],
        ['app.web', 3, 1, true],
        ['app.web', 1, 0, true],
      ],
    );
    assert.deepEqual(
      outputs[1]!.output.delivered.map((e) => [e.tag, e.record.n, e.record.copy, e.record.marked]),
      [['other.app.web', 3, 2, true]],
    );
    // `mark` ran once per entry: the re-tagged copy went through it under its new tag only.
    assert.deepEqual(seen.sort(), ['app.web:1/0', 'app.web:3/0', 'app.web:3/1', 'other.app.web:3/2']);
    await stop();
  });

  it('an entry re-tagged more than MAX_RETAGS times is dropped and counted; the others go on', async () => {
    const loop: Filter = {
      id: 'loop',
      type: 'rewrite_tag',
      apply: (e, tag) => (e.record.n === 1 ? [{ entry: e, tag: tag === 'a.x' ? 'a.y' : 'a.x' }] : e),
    };
    const { pipeline, outputs, metrics, stop } = setup([['all', '**']], [['a.*', loop]]);
    await pipeline.emit(batch('a.x', 1, 2), { wait: false });
    await pipeline.emit(batch('a.x', 3), { wait: false });
    await waitFor(() => outputs[0]!.output.delivered.length === 2, { what: 'the records not looping' });
    assert.deepEqual(
      outputs[0]!.output.delivered.map((e) => e.record.n),
      [2, 3],
    );
    const dropped = await metrics.registry.getSingleMetric('estuary_records_dropped_total')!.get();
    assert.deepEqual(
      dropped.values.map((v) => [v.labels.plugin_id, v.labels.reason, v.value]),
      [['loop', 'retag_loop', 1]],
    );
    assert.equal(MAX_RETAGS, 8);
    await stop();
  });

  it('a filter holding entries hands them on later, through the filters after it, and all of them at stop', async () => {
    let release!: Release;
    const held: Entry[] = [];
    const hold: Filter = {
      id: 'hold',
      type: 't',
      start: (r) => {
        release = r;
      },
      apply: (e) => {
        held.push(e);
        return [];
      },
      stop: () =>
        release(
          'app.web',
          held.splice(0).map((entry) => ({ entry })),
        ),
    };
    const before: Filter = {
      id: 'before',
      type: 't',
      apply: () => assert.fail('a filter before the holder ran again'),
    };
    const after: Filter = {
      id: 'after',
      type: 't',
      apply: (e) => ({ ...e, record: { ...e.record, after: true } }),
    };
    const { pipeline, outputs, stop } = setup(
      [['all', '**']],
      [
        ['never.*', before],
        ['app.*', hold],
        ['**', after],
      ],
    );
    pipeline.start();
    await pipeline.emit(batch('app.web', 1, 2), { wait: false });
    await pipeline.emit(batch('x.y', 9), { wait: false });
    await waitFor(() => outputs[0]!.output.delivered.length === 1, { what: 'the record not held' });
    assert.equal(held.length, 2);
    await release('app.web', [
      { entry: held.shift()! },
      { entry: { time: new EventTime(1, 0), record: { n: 5 } }, tag: 'x.z' },
    ]);
    await waitFor(() => outputs[0]!.output.delivered.length === 3, { what: 'the released records' });
    await pipeline.stop();
    await waitFor(() => outputs[0]!.output.delivered.length === 4, { what: 'the rest, at stop' });
    assert.deepEqual(
      outputs[0]!.output.delivered.map((e) => [e.tag, e.record.n, e.record.after]),
      [
        ['x.y', 9, true],
        ['app.web', 1, true],
        ['x.z', 5, true],
        ['app.web', 2, true],
      ],
    );
    await stop();
  });

  it('records a filter joined from acknowledged batches are buffered on their own: a full buffer refusing the next batch loses none', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => {
      release = r;
    });
    const concat = buildFilter(
      'filters:\n  - { type: concat, key: log, multiline_start_regexp: "^START", flush_interval: 0 }\n',
    );
    const one = batch('app.x', 1);
    const { pipeline, outputs, stop } = setup([['all', '**']], [['app.**', concat]], {
      all: { total_limit_size: one.bytes * 3, overflow_action: 'block', chunk_limit_records: 1 },
    });
    outputs[0]!.output.script = [{ hold }];
    pipeline.start();
    const lines = (...logs: string[]) =>
      makeBatch(
        'app.x',
        logs.map((log, i) => ({ time: new EventTime(1_700_000_000, i), record: { log } })),
      );
    await pipeline.emit(lines('START a', 'a-2'), { wait: false }); // held by concat: acknowledged
    // Fill the buffer behind a held write.
    for (let n = 0; n < 3; n++) await pipeline.emit(batch('other.x', n), { wait: true }).catch(() => {});
    await assert.rejects(
      pipeline.emit(batch('other.x', 9), { wait: false }),
      BackpressureError,
      'the buffer is full now',
    );
    // This batch starts a new event, so the held one is complete: it waits for room on its own,
    // while this batch (nothing of it to buffer yet) is acknowledged.
    await pipeline.emit(lines('START c'), { wait: false });
    release();
    await pipeline.stop();
    await waitFor(() => outputs[0]!.output.delivered.filter((e) => e.tag === 'app.x').length === 2, {
      what: 'both events delivered',
    });
    assert.deepEqual(
      outputs[0]!.output.delivered.filter((e) => e.tag === 'app.x').map((e) => e.record.log),
      ['START a\na-2', 'START c'],
    );
    await stop();
  });

  it('a filter throwing on one record does not fail its batch: the record goes on unchanged, counted', async () => {
    const picky: Filter = {
      id: 'picky',
      type: 't',
      apply: (e) => {
        if (e.record.n === 2) throw new Error('cannot take 2');
        return { ...e, record: { ...e.record, seen: true } };
      },
    };
    const { pipeline, outputs, metrics, stop } = setup([['all', '**']], [['**', picky]]);
    await pipeline.emit(batch('x', 1, 2, 3), { wait: false });
    await waitFor(() => outputs[0]!.output.delivered.length === 3);
    assert.deepEqual(
      outputs[0]!.output.delivered.map((e) => [e.record.n, e.record.seen]),
      [
        [1, true],
        [2, undefined],
        [3, true],
      ],
    );
    const errors = await metrics.registry.getSingleMetric('estuary_filter_errors_total')!.get();
    assert.deepEqual(
      errors.values.map((v) => [v.labels.plugin_id, v.value]),
      [['picky', 1]],
    );
    await stop();
  });

  it('copies multiplying through re-tags stop at MAX_EMISSIONS; a tag over MAX_TAG_LENGTH is not taken', async () => {
    const fork: Filter = {
      id: 'fork',
      type: 't',
      // Keep the record and add a copy under a longer tag: 2^n copies after n rounds.
      apply: (e, tag) => (tag.length < 40 ? [{ entry: e }, { entry: e, tag: `${tag}.x` }] : e),
    };
    const long: Filter = {
      id: 'long',
      type: 't',
      apply: (e) => [{ entry: e, tag: `y.${'z'.repeat(MAX_TAG_LENGTH)}` }],
    };
    const { pipeline, outputs, metrics, stop } = setup(
      [['all', '**']],
      [
        ['a.**', fork],
        ['b.**', long],
      ],
    );
    await pipeline.emit(batch('a', 1), { wait: false });
    await pipeline.emit(batch('b', 2), { wait: false });
    await waitFor(() => outputs[0]!.output.delivered.some((e) => e.record.n === 2), { what: 'the b record' });
    const fromA = outputs[0]!.output.delivered.filter((e) => e.record.n === 1);
    assert.ok(fromA.length <= MAX_EMISSIONS, `${fromA.length} copies`);
    assert.equal(outputs[0]!.output.delivered.find((e) => e.record.n === 2)!.tag, 'b');
    const dropped = await metrics.registry.getSingleMetric('estuary_records_dropped_total')!.get();
    assert.ok(dropped.values.some((v) => v.labels.reason === 'retag_loop' && v.value > 0));
    await stop();
  });

  it('an entry a filter rejects goes to the dead-letter queue of every output its tag routes to, with the reason', async () => {
    const picky: Filter = {
      id: 'picky',
      type: 't',
      apply: (e) => (e.record.n === 2 ? [{ entry: e, reject: 'picky: 2 is not allowed' }] : e),
    };
    const { pipeline, outputs, stop } = setup(
      [
        ['one', 'x.**'],
        ['two', 'x.**'],
      ],
      [['**', picky]],
    );
    await pipeline.emit(batch('x.y', 1, 2, 3), { wait: false });
    for (const o of outputs) {
      const dead = await o.buffer.deadLetter.list();
      assert.deepEqual(
        dead.map((d) => [d.reason, d.count]),
        [['picky: 2 is not allowed', 1]],
      );
      const shown = await o.buffer.deadLetter.show(dead[0]!.id);
      assert.deepEqual(
        shown?.entries.map((e) => [e.tag, e.record.n]),
        [['x.y', 2]],
      );
    }
    await waitFor(() => outputs.every((o) => o.output.delivered.length === 2), {
      what: 'the others delivered',
    });
    await stop();
  });

  it('a release of many held entries at once (a stop) buffers them all: the copy cap is per entry', async () => {
    let release!: Release;
    const hold: Filter = {
      id: 'hold',
      type: 't',
      start: (r) => {
        release = r;
      },
      apply: () => [],
    };
    const { pipeline, outputs, stop } = setup([['all', '**']], [['**', hold]]);
    pipeline.start();
    const many = Array.from({ length: MAX_EMISSIONS * 3 }, (_, n) => ({
      entry: { time: new EventTime(1, n), record: { n } },
    }));
    await release('x', many);
    await waitFor(() => outputs[0]!.output.delivered.length === many.length, {
      what: 'every released entry',
    });
    await stop();
  });
});
