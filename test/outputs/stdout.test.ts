import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { makeChunk } from '../../src/buffer/chunk.ts';
import { makeBatch } from '../../src/core/batch.ts';
import { HaltError, RetryableError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { createStdoutOutput, stdoutOutput, stdoutSchema } from '../../src/outputs/stdout/index.ts';
import { NO_DEADLINE } from '../support/outputs.ts';
import { waitFor } from '../support/wait.ts';

const deps = { id: 'stdout.0', logger: silentLogger(), metrics: new Metrics(), configDir: '/' };
const time = new EventTime(1_700_000_000, 123_456_789);

function chunkOf(...tags: string[]) {
  return makeChunk(
    'c1',
    tags.map((tag, i) => makeBatch(tag, [{ time, record: { i } }])),
    0,
  );
}

/** Records each write call and holds its callback until `release()`. */
function sink() {
  const writes: string[] = [];
  let release: (() => void) | undefined;
  const stream = new Writable({
    highWaterMark: 1,
    write(data: Buffer, _enc, cb) {
      writes.push(data.toString());
      release = () => cb();
    },
  });
  return { stream, writes, release: () => release?.() };
}

describe('stdout output', () => {
  it('defaults to the json format and refuses unknown options', () => {
    assert.deepEqual(stdoutSchema.parse({}), { format: 'json' });
    assert.equal(stdoutOutput.schema.safeParse({ format: 'xml' }).success, false);
    assert.equal(stdoutOutput.schema.safeParse({ stream: 'x' }).success, false);
  });

  it('writes the whole chunk in one write, as json lines', async () => {
    const out = new PassThrough();
    const writes: string[] = [];
    out.on('data', (d: Buffer) => writes.push(d.toString()));
    const output = createStdoutOutput(stdoutSchema.parse({}), deps, out);
    assert.equal(await output.write(chunkOf('a', 'b'), NO_DEADLINE), undefined);
    assert.equal(writes.length, 1);
    assert.equal(
      writes[0],
      '{"tag":"a","time":"2023-11-14T22:13:20.123456789Z","record":{"i":0}}\n' +
        '{"tag":"b","time":"2023-11-14T22:13:20.123456789Z","record":{"i":1}}\n',
    );
    await output.stop?.();
  });

  it('honours the fluentd and record formats', async () => {
    for (const [format, line] of [
      ['fluentd', '2023-11-14T22:13:20.123456789Z\ta\t{"i":0}\n'],
      ['record', '{"i":0}\n'],
    ] as const) {
      const out = new PassThrough();
      const output = createStdoutOutput(stdoutSchema.parse({ format }), deps, out);
      await output.write(chunkOf('a'), NO_DEADLINE);
      assert.equal(out.read()?.toString(), line);
    }
  });

  it('resolves only once the stream took the data (backpressure)', async () => {
    const { stream, writes, release } = sink();
    const output = createStdoutOutput(stdoutSchema.parse({}), deps, stream);
    let done = false;
    const pending = output.write(chunkOf('a'), NO_DEADLINE).then(() => {
      done = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(writes.length, 1);
    assert.equal(done, false);
    release();
    await pending;
    assert.equal(done, true);
  });

  it('writes nothing for an empty chunk', async () => {
    const { stream, writes } = sink();
    const output = createStdoutOutput(stdoutSchema.parse({}), deps, stream);
    assert.equal(await output.write(makeChunk('c0', [], 0), NO_DEADLINE), undefined);
    assert.equal(writes.length, 0);
  });

  it('a closed stream halts the output (nothing gets through until it is back), and does not crash the process', async () => {
    const stream = new Writable({
      write(_data, _enc, cb) {
        cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      },
    });
    const output = createStdoutOutput(stdoutSchema.parse({}), deps, stream);
    await assert.rejects(output.write(chunkOf('a'), NO_DEADLINE), HaltError);
    await assert.rejects(output.write(chunkOf('a'), NO_DEADLINE), HaltError);
    await new Promise((r) => setImmediate(r));
    await output.stop?.();
    await output.stop?.();
  });

  it('a reader that stopped reading: the write is abandoned at the deadline, and the next one never queues', async () => {
    const { stream, writes, release } = sink();
    const output = createStdoutOutput(stdoutSchema.parse({}), deps, stream);
    const first = new AbortController();
    const stuck = output.write(chunkOf('a'), { signal: first.signal });
    await new Promise((r) => setImmediate(r));
    first.abort(new Error('write_timeout'));
    await assert.rejects(
      stuck,
      (err: Error) => err instanceof RetryableError && /abandoned: write_timeout/.test(err.message),
    );
    // The retry waits for the stuck write instead of piling a second copy into the stream.
    const second = new AbortController();
    const retry = output.write(chunkOf('a'), { signal: second.signal });
    second.abort();
    await assert.rejects(retry, RetryableError);
    await new Promise((r) => setImmediate(r));
    assert.equal(writes.length, 1, 'the abandoned retry never reached the stream');
    release();
    const next = output.write(chunkOf('b'), NO_DEADLINE);
    await waitFor(() => writes.length === 2, { what: 'the next chunk written once the reader is back' });
    release();
    await next;
  });
});

describe('stdout output — a record that cannot be encoded', () => {
  it('is rejected alone with the reason; the others are written', async () => {
    const deep: Record<string, unknown> = { a: [] };
    let cur = deep.a as unknown[];
    for (let i = 0; i < 3000; i++) {
      const next: unknown[] = [];
      cur.push(next);
      cur = next;
    }
    const { stream, writes, release } = sink();
    const output = createStdoutOutput(stdoutSchema.parse({ format: 'record' }), deps, stream);
    const chunk = makeChunk(
      'c1',
      [
        makeBatch('t', [
          { time, record: { ok: 0 } },
          { time, record: deep },
          { time, record: { ok: 2 } },
        ]),
      ],
      0,
    );
    const writing = output.write(chunk, NO_DEADLINE);
    await waitFor(() => writes.length === 1);
    release();
    const result = await writing;
    assert.equal(writes[0], '{"ok":0}\n{"ok":2}\n');
    assert.equal(result?.reject?.length, 1);
    assert.match(
      result!.reject![0]!.reason,
      /^cannot encode the record: EncodeError: nested too deep to write as JSON$/,
    );
  });
});
