import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { BufferBackend, OutputBuffer } from '../../src/buffer/buffer.ts';
import { type BufferOverrides, resolveBufferSettings } from '../../src/config/schema.ts';
import { decodeEntries, makeBatch } from '../../src/core/batch.ts';
import { BackpressureError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { emitTo, ScriptedOutput, type Step } from '../support/outputs.ts';
import { waitFor } from '../support/wait.ts';

const FAST: BufferOverrides = {
  flush_interval: 20,
  retry: { wait: 20, randomize: false, exponential_backoff_base: 2, max_interval: 1000 },
};

function records(n: number, from = 0, tag = 'app.web') {
  return makeBatch(
    tag,
    Array.from({ length: n }, (_, i) => ({
      time: new EventTime(1_700_000_000 + from + i, from + i),
      record: { n: from + i, msg: 'x'.repeat(50) },
    })),
  );
}

/**
 * The buffer contract of DESIGN §3, written once. Every backend must pass it unchanged:
 * `makeBackend` gives a fresh backend per test.
 */
export function bufferContract(name: string, makeBackend: () => Promise<BufferBackend>): void {
  describe(`buffer contract: ${name}`, () => {
    const open: { buffer: OutputBuffer; backend: BufferBackend }[] = [];
    after(async () => {
      for (const { buffer, backend } of open) {
        await buffer.stop(Date.now());
        await backend.close();
      }
    });

    async function setup(overrides: BufferOverrides = {}, script: Step[] = []) {
      const backend = await makeBackend();
      const output = new ScriptedOutput(`out.${open.length}`, script);
      const metrics = new Metrics();
      const settings = resolveBufferSettings(FAST, overrides, {
        retry: { ...FAST.retry, ...overrides.retry },
      });
      const buffer = backend.create(output, settings, { logger: silentLogger(), metrics });
      metrics.registerOutput(buffer);
      await buffer.start();
      open.push({ buffer, backend });
      return { buffer, output, metrics };
    }

    async function emit(buffer: OutputBuffer, batch = records(10), wait = false) {
      await emitTo(buffer, batch, wait);
    }

    it('delivers staged records after flush_interval, in order, nanoseconds intact', async () => {
      const { buffer, output } = await setup();
      await emit(buffer, records(5, 0));
      await emit(buffer, records(5, 5));
      await waitFor(() => output.delivered.length === 10, { what: '10 records delivered' });
      assert.deepEqual(
        output.delivered.map((e) => e.record.n),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      assert.deepEqual([output.delivered[7]!.time.sec, output.delivered[7]!.time.nsec], [1_700_000_007, 7]);
      assert.equal(output.writes.length, 1, 'both batches share one chunk');
      const s = buffer.stats();
      assert.equal(s.emitCount, 2);
      assert.equal(s.emitRecords, 10);
    });

    it('seals a chunk at chunk_limit_records and at chunk_limit_size', async () => {
      const byRecords = await setup({ chunk_limit_records: 4, flush_interval: 60_000 });
      await emit(byRecords.buffer, records(4));
      await waitFor(() => byRecords.output.writes.length === 1, { what: 'sealed by record count' });
      const bySize = await setup({ chunk_limit_size: 1024, flush_interval: 60_000 });
      for (let i = 0; i < 20; i++) await emit(bySize.buffer, records(1, i));
      await waitFor(() => bySize.output.delivered.length >= 10, { what: 'sealed by size' });
      for (const w of bySize.output.writes)
        assert.ok(w.count * 70 <= 1024 + 70, `chunk of ${w.count} records exceeds 1KiB`);
    });

    it('splits a batch larger than chunk_limit_size', async () => {
      const { buffer, output } = await setup({ chunk_limit_size: 1024 });
      await emit(buffer, records(100));
      await waitFor(() => output.delivered.length === 100, { what: '100 records' });
      assert.ok(output.writes.length >= 7, `expected ≥7 chunks, got ${output.writes.length}`);
    });

    it('keeps each entry with its own tag in a multi-tag chunk', async () => {
      const { buffer, output } = await setup();
      await emit(buffer, records(2, 0, 'a'));
      await emit(buffer, records(2, 2, 'b'));
      await emit(buffer, records(2, 4, 'a'));
      await waitFor(() => output.delivered.length === 6);
      assert.deepEqual(
        output.delivered.map((e) => `${e.tag}${e.record.n}`),
        ['a0', 'a1', 'b2', 'b3', 'a4', 'a5'],
      );
    });

    it('flushes with flush_thread_count writes in flight, never more', async () => {
      let release!: () => void;
      const hold = new Promise<void>((r) => {
        release = r;
      });
      const { buffer, output } = await setup(
        { flush_thread_count: 3, chunk_limit_records: 1 },
        Array(6).fill({ hold }),
      );
      await emit(buffer, records(6));
      await waitFor(() => output.inflight === 3, { what: '3 writes in flight' });
      release();
      await waitFor(() => output.delivered.length === 6);
      assert.equal(output.maxInflight, 3);
    });

    it('retries a retryable failure with backoff: fails 3 times, then delivered once', async () => {
      const { buffer, output } = await setup({}, ['retryable', 'retryable', 'retryable']);
      await emit(buffer, records(3));
      await waitFor(() => output.delivered.length === 3, { what: 'delivery after 3 failures' });
      assert.deepEqual(
        output.writes.map((w) => w.attempt),
        [0, 1, 2, 3],
      );
      const gaps = output.writes.slice(1).map((w, i) => w.at - output.writes[i]!.at);
      // wait 20ms, base 2, no jitter: at least 20, 40, 80 (timers never fire early).
      for (const [i, gap] of gaps.entries()) assert.ok(gap >= 20 * 2 ** i - 2, `gap ${i} was ${gap}ms`);
      const s = buffer.stats();
      assert.equal(s.retryCount, 3);
      assert.equal(s.numErrors, 3);
      assert.equal(s.writeCount, 4);
      assert.equal(s.deadLetterChunks, 0);
      assert.equal(new Set(output.delivered.map((e) => e.record.n)).size, 3);
    });

    it("waits at least the sink's Retry-After", async () => {
      const { buffer, output } = await setup({}, [{ retryAfterMs: 250 }]);
      await emit(buffer, records(1));
      await waitFor(() => output.delivered.length === 1, { timeoutMs: 3000 });
      assert.ok(output.writes[1]!.at - output.writes[0]!.at >= 248);
    });

    it('dead-letters a chunk on a fatal error without retrying', async () => {
      const { buffer, output } = await setup({}, ['fatal']);
      await emit(buffer, records(4));
      await waitFor(async () => (await buffer.deadLetter.list()).length === 1, { what: 'dead-letter chunk' });
      const [dead] = await buffer.deadLetter.list();
      assert.match(dead!.reason, /400 mapper_parsing_exception/);
      assert.equal(dead!.count, 4);
      assert.equal(output.writes.length, 1);
      assert.equal(buffer.stats().numErrors, 1);
      const shown = await buffer.deadLetter.show(dead!.id);
      assert.deepEqual(
        shown!.entries.map((e) => e.record.n),
        [0, 1, 2, 3],
      );
    });

    it('dead-letters a chunk once retry.max_times is exhausted', async () => {
      const { buffer, output } = await setup({ retry: { max_times: 2 } }, Array(10).fill('retryable'));
      await emit(buffer, records(2));
      await waitFor(async () => (await buffer.deadLetter.list()).length === 1);
      assert.equal(output.writes.length, 3, 'first try + 2 retries');
      assert.match((await buffer.deadLetter.list())[0]!.reason, /max_times 2.*503/);
    });

    it('dead-letters a chunk once retry.timeout passes', async () => {
      const { buffer } = await setup({ retry: { timeout: 100 } }, Array(100).fill('retryable'));
      await emit(buffer, records(2));
      await waitFor(async () => (await buffer.deadLetter.list()).length === 1, { timeoutMs: 3000 });
      assert.match((await buffer.deadLetter.list())[0]!.reason, /timeout/);
    });

    it('keeps retrying with retry.forever', async () => {
      const { buffer, output } = await setup(
        { retry: { forever: true, max_times: 1, max_interval: 20 } },
        Array(5).fill('retryable'),
      );
      await emit(buffer, records(1));
      await waitFor(() => output.delivered.length === 1, { timeoutMs: 3000 });
      assert.equal((await buffer.deadLetter.list()).length, 0);
    });

    it('sends only rejected entries to the dead-letter queue, with the reason', async () => {
      const { buffer, output } = await setup({}, [
        { reject: (e) => (e.record.n as number) % 2 === 0, reason: 'mapper_parsing_exception: n' },
      ]);
      await emit(buffer, records(6));
      await waitFor(async () => (await buffer.deadLetter.list()).length === 1);
      assert.deepEqual(
        output.delivered.map((e) => e.record.n),
        [1, 3, 5],
      );
      const [dead] = await buffer.deadLetter.list();
      assert.equal(dead!.reason, 'mapper_parsing_exception: n');
      assert.deepEqual(
        (await buffer.deadLetter.show(dead!.id))!.entries.map((e) => e.record.n),
        [0, 2, 4],
      );
      assert.equal(output.writes.length, 1, 'rejected entries are not retried');
    });

    it('deadLetterNow: entries refused before buffering go straight to the queue; replay delivers them', async () => {
      const { buffer, output } = await setup();
      const entries = decodeEntries(records(3, 0, 'app.x').payload).map((e) => ({ ...e, tag: 'app.x' }));
      await buffer.deadLetterNow(entries, 'parser.0: log is not json');
      const [dead] = await buffer.deadLetter.list();
      assert.equal(dead!.reason, 'parser.0: log is not json');
      assert.equal(dead!.count, 3);
      assert.deepEqual(
        (await buffer.deadLetter.show(dead!.id))!.entries.map((e) => [e.tag, e.record.n]),
        [
          ['app.x', 0],
          ['app.x', 1],
          ['app.x', 2],
        ],
      );
      assert.equal(await buffer.deadLetter.replay(dead!.id), true);
      await waitFor(() => output.delivered.length === 3, { what: 'the replayed records' });
      const off = await setup({ dead_letter: { enabled: false } });
      await off.buffer.deadLetterNow(entries, 'nope');
      assert.deepEqual(await off.buffer.deadLetter.list(), []);
      const dropped = await off.metrics.registry.getSingleMetric('estuary_records_dropped_total')!.get();
      assert.deepEqual(
        dropped.values.map((v) => [v.labels.reason, v.value]),
        [['dead_letter_disabled', 3]],
      );
    });

    it('retries only the entries the output asked to retry', async () => {
      const { buffer, output } = await setup({}, [{ retry: (e) => (e.record.n as number) >= 4 }]);
      await emit(buffer, records(6));
      await waitFor(() => output.delivered.length === 6);
      assert.deepEqual(
        output.writes.map((w) => w.count),
        [6, 2],
      );
      assert.deepEqual(
        output.delivered.map((e) => e.record.n),
        [0, 1, 2, 3, 4, 5],
      );
      assert.equal(buffer.stats().retryCount, 1);
    });

    it('overflow block: refuses non-waiting senders, holds waiting ones until there is room', async () => {
      let release!: () => void;
      const hold = new Promise<void>((r) => {
        release = r;
      });
      const batch = records(10);
      const { buffer, output } = await setup(
        { total_limit_size: batch.bytes * 2, overflow_action: 'block', chunk_limit_records: 10 },
        [{ hold }],
      );
      await emit(buffer, batch);
      await emit(buffer, records(10, 10));
      await assert.rejects(emit(buffer, records(10, 20)), BackpressureError);
      let waited = false;
      const blocked = emit(buffer, records(10, 30), true).then(() => {
        waited = true;
      });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(waited, false, 'a waiting sender is held while the buffer is full');
      release();
      await blocked;
      await waitFor(() => output.delivered.length === 30, { what: 'all accepted records' });
    });

    it('overflow throw_exception: refuses even senders that would wait', async () => {
      let release!: () => void;
      const hold = new Promise<void>((r) => {
        release = r;
      });
      const batch = records(10);
      const { buffer } = await setup({ total_limit_size: batch.bytes, overflow_action: 'throw_exception' }, [
        { hold },
      ]);
      await emit(buffer, batch);
      await assert.rejects(emit(buffer, records(10, 10), true), BackpressureError);
      release();
    });

    it('overflow drop_oldest_chunk: drops the oldest queued chunk and counts it', async () => {
      let release!: () => void;
      const hold = new Promise<void>((r) => {
        release = r;
      });
      const batch = records(10);
      const { buffer, output, metrics } = await setup(
        { total_limit_size: batch.bytes * 2, overflow_action: 'drop_oldest_chunk', chunk_limit_records: 10 },
        [{ hold }],
      );
      await emit(buffer, records(10, 0)); // in flight, held
      await waitFor(() => output.inflight === 1);
      await emit(buffer, records(10, 10)); // queued
      await emit(buffer, records(10, 20)); // no room: drops 10..19
      release();
      await waitFor(() => output.delivered.length === 20);
      assert.deepEqual(
        output.delivered.map((e) => e.record.n).filter((n) => (n as number) >= 10),
        Array.from({ length: 10 }, (_, i) => 20 + i),
      );
      const dropped = await metrics.registry.getSingleMetric('estuary_records_dropped_total')!.get();
      assert.equal(dropped.values.find((v) => v.labels.reason === 'overflow')?.value, 10);
    });

    it('overflow drop_oldest_chunk: holds the limit while the sink fails (chunks waiting on a retry count)', async () => {
      const batch = records(10);
      const { buffer, metrics } = await setup(
        {
          total_limit_size: batch.bytes * 3,
          overflow_action: 'drop_oldest_chunk',
          chunk_limit_records: 10,
          retry: { wait: 60_000, forever: true },
        },
        Array(1000).fill('retryable'),
      );
      for (let i = 0; i < 30; i++) {
        await emit(buffer, records(10, i * 10));
        // Each chunk is tried once and then waits on its (long) retry timer.
        await waitFor(() => buffer.stats().writeCount >= i + 1, { what: `write ${i + 1}` });
      }
      await buffer.refreshStats?.();
      const s = buffer.stats();
      assert.ok(
        s.stageBytes + s.queueBytes <= batch.bytes * 3 + batch.bytes,
        `holds ${s.stageBytes + s.queueBytes} bytes`,
      );
      const dropped = await metrics.registry.getSingleMetric('estuary_records_dropped_total')!.get();
      assert.ok((dropped.values.find((v) => v.labels.reason === 'overflow')?.value ?? 0) >= 200);
    });

    it('halt: keeps every chunk, probes with the oldest one alone, resumes by itself; nothing dead-lettered', async () => {
      const { buffer, output, metrics } = await setup(
        { chunk_limit_records: 2, flush_thread_count: 4, retry: { max_times: 0, max_interval: 100 } },
        ['halt', 'halt', 'halt'],
      );
      await emit(buffer, records(2));
      await waitFor(() => buffer.stats().halted === 1, { what: 'halted' });
      assert.match(buffer.stats().haltReason ?? '', /401 unauthorized/);
      // Newer chunks wait while the oldest one probes, whatever flush_thread_count allows.
      await emit(buffer, records(4, 2));
      await waitFor(() => output.delivered.length === 6, { what: 'every record once the sink takes them' });
      assert.equal(buffer.stats().halted, 0);
      assert.deepEqual(
        output.writes.slice(0, 3).map((w) => w.id),
        Array(3).fill(output.writes[0]!.id),
        'while halted, only the oldest chunk probes the sink',
      );
      assert.deepEqual(
        output.delivered.map((e) => e.record.n),
        [0, 1, 2, 3, 4, 5],
      );
      assert.equal((await buffer.deadLetter.list()).length, 0, 'max_times 0 does not run down while halted');
      const halted = await metrics.registry.getSingleMetric('estuary_output_halted')!.get();
      assert.equal(halted.values[0]?.value, 0);
    });

    it('retry.timeout does not run while halted; a halt ends only on an answer to a write begun after it', async () => {
      const { buffer, output } = await setup({ retry: { timeout: 300, wait: 20, max_interval: 40 } }, [
        'retryable',
        ...Array(20).fill('halt'),
        'retryable',
      ]);
      await emit(buffer, records(2));
      // 20 halts at 20–40 ms apart: well past retry.timeout, which must not count them.
      await waitFor(() => output.delivered.length === 2, {
        timeoutMs: 5000,
        what: 'delivered after the halt',
      });
      assert.equal((await buffer.deadLetter.list()).length, 0);
      assert.ok(output.writes.at(-1)!.at - output.writes[0]!.at > 300, 'the halt outlasted retry.timeout');
    });

    it('a partial write whose retries run out dead-letters only the records left', async () => {
      const { buffer, output } = await setup({ retry: { max_times: 0 } }, [
        {
          retry: (e) => (e.record.n as number) >= 2,
        },
      ]);
      await emit(buffer, records(4));
      await waitFor(async () => (await buffer.deadLetter.list()).length === 1, { what: 'dead-lettered' });
      const [dead] = await buffer.deadLetter.list();
      assert.match(dead!.reason, /max_times 0/);
      assert.deepEqual(
        (await buffer.deadLetter.show(dead!.id))!.entries.map((e) => e.record.n),
        [2, 3],
      );
      assert.deepEqual(
        output.delivered.map((e) => e.record.n),
        [0, 1],
      );
      await buffer.refreshStats?.();
      assert.equal(buffer.stats().queueLength, 0, 'nothing left queued');
    });

    it('no sender gets room once stop() began, even one already waiting for it', async () => {
      let release!: () => void;
      const hold = new Promise<void>((r) => {
        release = r;
      });
      const batch = records(10);
      const { buffer } = await setup(
        { total_limit_size: batch.bytes, overflow_action: 'block', chunk_limit_records: 10 },
        [{ hold }],
      );
      await emit(buffer, batch);
      const waiting = emit(buffer, records(10, 10), true);
      const late = buffer.reserve(batch.bytes, { wait: true });
      const stopping = buffer.stop(Date.now() + 2000);
      release();
      await assert.rejects(waiting, BackpressureError);
      await assert.rejects(late, BackpressureError);
      await stopping;
      await assert.rejects(emit(buffer, records(1, 30), true), BackpressureError);
    });

    it('write_timeout: a write that never answers (and ignores the signal) is given up and retried', async () => {
      const { buffer, output, metrics } = await setup({ write_timeout: 150 }, ['hang']);
      await emit(buffer, records(3));
      await waitFor(() => output.delivered.length === 3, { what: 'delivered on the next try' });
      assert.equal(output.writes.length, 2);
      assert.ok(output.writes[1]!.at - output.writes[0]!.at >= 150, 'not before the deadline');
      const flushes = await metrics.flushDuration.get();
      const timeouts = flushes.values.find(
        (v) => v.labels.result === 'timeout' && v.metricName === 'estuary_flush_duration_seconds_count',
      );
      assert.equal(timeouts?.value, 1);
    });

    it('ordered: a chunk waiting on its backoff holds newer ones back; unordered lets them pass', async () => {
      const run = async (ordered: boolean) => {
        const { buffer, output } = await setup(
          { ordered, chunk_limit_records: 2, flush_interval: 10, retry: { wait: 150, randomize: false } },
          ['retryable'],
        );
        await emit(buffer, records(2, 0));
        await waitFor(() => output.writes.length === 1, { what: 'first chunk tried' });
        await emit(buffer, records(2, 2));
        await waitFor(() => output.delivered.length === 4, { what: 'all delivered' });
        return output.delivered.map((e) => e.record.n);
      };
      assert.deepEqual(await run(true), [0, 1, 2, 3]);
      assert.deepEqual(await run(false), [2, 3, 0, 1]);
    });

    it('admission: waiting senders are served in arrival order and never overfill the buffer', async () => {
      let release!: () => void;
      const hold = new Promise<void>((r) => {
        release = r;
      });
      const batch = records(10);
      const limit = batch.bytes * 2;
      const { buffer, output } = await setup(
        { total_limit_size: limit, overflow_action: 'block', chunk_limit_records: 10 },
        [{ hold }],
      );
      await emit(buffer, records(10, 0));
      await emit(buffer, records(10, 10));
      const order: number[] = [];
      const senders = Array.from({ length: 8 }, (_, i) =>
        emit(buffer, records(10, 20 + 10 * i), true).then(() => order.push(i)),
      );
      let peak = 0;
      const watch = setInterval(async () => {
        await buffer.refreshStats?.();
        const s = buffer.stats();
        peak = Math.max(peak, s.stageBytes + s.queueBytes);
      }, 5);
      release();
      await Promise.all(senders);
      await waitFor(() => output.delivered.length === 100, { what: 'every record' });
      clearInterval(watch);
      assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.ok(peak <= limit, `held ${peak} bytes, limit ${limit}`);
    });

    it('replays a dead-letter chunk into the queue, and purges', async () => {
      const { buffer, output } = await setup({}, ['fatal', 'fatal']);
      await emit(buffer, records(2, 0));
      await waitFor(async () => (await buffer.deadLetter.list()).length === 1);
      await emit(buffer, records(2, 2));
      await waitFor(async () => (await buffer.deadLetter.list()).length === 2);
      const [first] = await buffer.deadLetter.list();
      assert.equal(await buffer.deadLetter.replay(first!.id), true);
      await waitFor(() => output.delivered.length === 2);
      assert.equal(await buffer.deadLetter.purge(), 1);
      assert.equal((await buffer.deadLetter.list()).length, 0);
      assert.equal(await buffer.deadLetter.replay('no-such-id'), false);
    });

    it('stop() drains the buffer before the deadline when the output is slow, and is safe twice', async () => {
      const { buffer, output } = await setup({ flush_interval: 60_000, chunk_limit_records: 5 });
      const slowWrite = output.write.bind(output);
      output.write = async (chunk) => {
        await new Promise((r) => setTimeout(r, 30));
        return slowWrite(chunk);
      };
      await emit(buffer, records(12));
      await buffer.stop(Date.now() + 5000);
      assert.equal(output.delivered.length, 12);
      await buffer.stop(Date.now() + 5000);
    });
  });
}
