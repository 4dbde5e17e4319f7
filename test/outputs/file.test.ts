import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { makeChunk } from '../../src/buffer/chunk.ts';
import { MemoryBackend } from '../../src/buffer/memory/memory-store.ts';
import { resolveBufferSettings } from '../../src/config/schema.ts';
import { type Batch, encodeEntry, makeBatch } from '../../src/core/batch.ts';
import type { Entry } from '../../src/core/entry.ts';
import { HaltError, RetryableError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { eventTimeBytes } from '../../src/core/msgpack.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { fileOutput } from '../../src/outputs/file/index.ts';
import { sanitize } from '../../src/outputs/file/path-template.ts';
import type { Output } from '../../src/outputs/output.ts';
import { emitTo, NO_DEADLINE } from '../support/outputs.ts';
import { waitFor } from '../support/wait.ts';

const T = new EventTime(1_700_000_000, 123_456_789); // 2023-11-14T22:13:20.123456789Z

let dir: string;
let opened: string[];
/** Called as each file is opened (from the debug log line). */
let onOpen: () => void;
let outputs: Output[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'estuary-file-'));
  opened = [];
  onOpen = () => {};
  outputs = [];
});

afterEach(async () => {
  for (const o of outputs) await o.stop?.();
  await rm(dir, { recursive: true, force: true });
});

/** A file output built the way the loader builds it; its debug log records which files it opened. */
function create(options: Record<string, unknown>): Output {
  const sink = new Writable({
    write(line: Buffer, _enc, cb) {
      const parsed = JSON.parse(line.toString()) as { msg: string; path?: string };
      if (parsed.msg === 'opened file') {
        opened.push(parsed.path!);
        onOpen();
      }
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const output = fileOutput.create(fileOutput.schema.parse(options), {
    id: 'file.0',
    logger,
    metrics: new Metrics(),
    configDir: dir,
  });
  outputs.push(output);
  return output;
}

function entries(n: number, time = T): Entry[] {
  return Array.from({ length: n }, (_, i) => ({ time, record: { i } }));
}

function chunk(...batches: [tag: string, entries: Entry[]][]) {
  return makeChunk(
    'c1',
    batches.map(([tag, e]) => makeBatch(tag, e)),
    0,
  );
}

async function lines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  assert.ok(text.endsWith('\n'), 'file ends with a newline');
  return text.slice(0, -1).split('\n');
}

describe('file output config', () => {
  it('has Fluentd-like defaults', () => {
    assert.deepEqual(fileOutput.schema.parse({ path: 'out.log' }), {
      path: 'out.log',
      format: 'json',
      timezone: 'utc',
      mkdir: true,
      fsync: true,
      file_mode: 0o640,
      max_open_files: 64,
    });
  });

  it('takes file_mode as 0o640 or "0640", and refuses a YAML-decimal 640', () => {
    assert.equal(fileOutput.schema.parse({ path: 'x', file_mode: 0o600 }).file_mode, 0o600);
    assert.equal(fileOutput.schema.parse({ path: 'x', file_mode: '0640' }).file_mode, 0o640);
    assert.equal(fileOutput.schema.parse({ path: 'x', file_mode: '0o644' }).file_mode, 0o644);
    assert.equal(fileOutput.schema.safeParse({ path: 'x', file_mode: 640 }).success, false);
    assert.equal(fileOutput.schema.safeParse({ path: 'x', file_mode: 'rw-r-----' }).success, false);
  });

  it('refuses unknown placeholders, directories and unknown keys', () => {
    const bad = fileOutput.schema.safeParse({ path: '/logs/${hostname}.log' });
    assert.equal(bad.success, false);
    assert.match(bad.error!.issues[0]!.message, /unknown placeholder \$\{hostname\}/);
    assert.equal(fileOutput.schema.safeParse({ path: '/logs/' }).success, false);
    assert.equal(fileOutput.schema.safeParse({ path: 'x', append: true }).success, false);
    assert.equal(fileOutput.schema.safeParse({}).success, false);
  });
});

describe('file output', () => {
  it('appends json lines with nanosecond times, fsynced, with file_mode', async () => {
    const path = join(dir, 'out.log');
    const output = create({ path });
    assert.equal(await output.write(chunk(['app.web', entries(2)]), NO_DEADLINE), undefined);
    assert.deepEqual(await lines(path), [
      '{"tag":"app.web","time":"2023-11-14T22:13:20.123456789Z","record":{"i":0}}',
      '{"tag":"app.web","time":"2023-11-14T22:13:20.123456789Z","record":{"i":1}}',
    ]);
    assert.equal((await stat(path)).mode & 0o777, 0o640);
  });

  it('honours the record and fluentd formats', async () => {
    await create({ path: 'r.log', format: 'record' }).write(chunk(['a', entries(1)]), NO_DEADLINE);
    await create({ path: 'f.log', format: 'fluentd' }).write(chunk(['a', entries(1)]), NO_DEADLINE);
    assert.deepEqual(await lines(join(dir, 'r.log')), ['{"i":0}']);
    assert.deepEqual(await lines(join(dir, 'f.log')), ['2023-11-14T22:13:20.123456789Z\ta\t{"i":0}']);
  });

  it('resolves a relative path against the config directory and creates parents', async () => {
    const output = create({ path: 'nested/deeper/out.log' });
    await output.write(chunk(['a', entries(1)]), NO_DEADLINE);
    assert.equal((await lines(join(dir, 'nested/deeper/out.log'))).length, 1);
  });

  it('with mkdir: false, a missing directory is retryable (it may be mounted later)', async () => {
    const output = create({ path: 'missing/out.log', mkdir: false });
    await assert.rejects(output.write(chunk(['a', entries(1)]), NO_DEADLINE), RetryableError);
  });

  it('splits a multi-tag chunk into one file per ${tag}', async () => {
    const output = create({ path: 'by-tag/${tag}.log' });
    await output.write(
      chunk(['app.a', entries(2)], ['app.b', entries(3)], ['app.a', entries(1)]),
      NO_DEADLINE,
    );
    assert.deepEqual((await readdir(join(dir, 'by-tag'))).sort(), ['app.a.log', 'app.b.log']);
    assert.equal((await lines(join(dir, 'by-tag/app.a.log'))).length, 3);
    assert.equal((await lines(join(dir, 'by-tag/app.b.log'))).length, 3);
  });

  it('fills ${tag[N]} parts, negative indexes counting from the end', async () => {
    const output = create({ path: '${tag[0]}/${tag[1]}-${tag[-1]}.log' });
    await output.write(chunk(['kube.ns.pod', entries(1)]), NO_DEADLINE);
    assert.equal((await lines(join(dir, 'kube/ns-pod.log'))).length, 1);
  });

  it('picks the strftime path from each record time, across a day boundary', async () => {
    const before = new EventTime(1_704_067_199, 999_999_999); // 2023-12-31T23:59:59.999999999Z
    const after = new EventTime(1_704_067_200, 1); // 2024-01-01T00:00:00.000000001Z
    const output = create({ path: 'day-%Y%m%d.log' });
    await output.write(chunk(['a', [...entries(1, before), ...entries(1, after)]]), NO_DEADLINE);
    assert.deepEqual(await lines(join(dir, 'day-20231231.log')), [
      '{"tag":"a","time":"2023-12-31T23:59:59.999999999Z","record":{"i":0}}',
    ]);
    assert.deepEqual(await lines(join(dir, 'day-20240101.log')), [
      '{"tag":"a","time":"2024-01-01T00:00:00.000000001Z","record":{"i":0}}',
    ]);
  });

  it('uses local time for the path when timezone is local', async () => {
    const previous = process.env.TZ;
    process.env.TZ = 'Asia/Tokyo'; // UTC+9, no daylight saving
    try {
      const output = create({ path: 'h-%Y%m%d%H.log', timezone: 'local' });
      await output.write(chunk(['a', entries(1, new EventTime(1_704_056_400, 0))]), NO_DEADLINE); // 2023-12-31T21:00Z
      assert.deepEqual(await readdir(dir), ['h-2024010106.log']);
    } finally {
      if (previous === undefined) delete process.env.TZ;
      else process.env.TZ = previous;
    }
  });

  it('keeps files open between chunks and logs each open at debug', async () => {
    const output = create({ path: '${tag}.log' });
    await output.write(chunk(['a', entries(1)]), NO_DEADLINE);
    await output.write(chunk(['a', entries(1)]), NO_DEADLINE);
    assert.deepEqual(opened, [join(dir, 'a.log')]);
    assert.equal((await lines(join(dir, 'a.log'))).length, 2);
  });

  it('closes the least recently used file past max_open_files', async () => {
    const output = create({ path: '${tag}.log', max_open_files: 2 });
    await output.write(chunk(['a', entries(1)], ['b', entries(1)]), NO_DEADLINE);
    await output.write(chunk(['a', entries(1)]), NO_DEADLINE); // a is now the most recent
    await output.write(chunk(['c', entries(1)]), NO_DEADLINE); // evicts b
    await output.write(chunk(['a', entries(1)]), NO_DEADLINE); // still open
    await output.write(chunk(['b', entries(1)]), NO_DEADLINE); // reopened
    assert.deepEqual(
      opened.map((p) => p.slice(dir.length + 1)),
      ['a.log', 'b.log', 'c.log', 'b.log'],
    );
    assert.equal((await lines(join(dir, 'a.log'))).length, 3);
    assert.equal((await lines(join(dir, 'b.log'))).length, 2);
  });

  it('reopen() after logrotate moved the file: new writes go to a new file at the same path', async () => {
    const path = join(dir, 'app.log');
    const output = create({ path, format: 'record' });
    await output.write(chunk(['a', [{ time: T, record: { n: 'first' } }]]), NO_DEADLINE);
    await rename(path, `${path}.1`);
    await output.reopen?.();
    await output.write(chunk(['a', [{ time: T, record: { n: 'second' } }]]), NO_DEADLINE);
    assert.deepEqual(await lines(`${path}.1`), ['{"n":"first"}']);
    assert.deepEqual(await lines(path), ['{"n":"second"}']);
  });

  it('ends a line torn by a killed process before appending, so new lines stay whole', async () => {
    const path = join(dir, 'torn.log');
    await writeFile(path, '{"n":"whole"}\n{"n":"to');
    const output = create({ path, format: 'record' });
    await output.write(chunk(['a', [{ time: T, record: { n: 'next' } }]]), NO_DEADLINE);
    assert.equal(await readFile(path, 'utf8'), '{"n":"whole"}\n{"n":"to\n{"n":"next"}\n');
  });

  it('writes a chunk of 10,000 records as 10,000 lines', async () => {
    const path = join(dir, 'big.log');
    const output = create({ path });
    assert.equal(await output.write(chunk(['big', entries(10_000)]), NO_DEADLINE), undefined);
    const written = await lines(path);
    assert.equal(written.length, 10_000);
    assert.deepEqual(JSON.parse(written[9_999]!).record, { i: 9_999 });
  });

  it('serializes concurrent writes so lines never interleave', async () => {
    const output = create({ path: '${tag}.log', max_open_files: 1 });
    const long = 'x'.repeat(2_000);
    const writes = Array.from({ length: 20 }, (_, w) =>
      output.write(
        chunk(
          ['a', Array.from({ length: 300 }, (_, i) => ({ time: T, record: { w, i, long } }))],
          ['b', entries(10)],
        ),
        NO_DEADLINE,
      ),
    );
    await Promise.all(writes);
    const written = await lines(join(dir, 'a.log'));
    assert.equal(written.length, 6_000);
    for (const line of written) assert.equal(JSON.parse(line).record.long, long);
  });

  it('stop() is safe without start and twice; a later write opens again', async () => {
    const output = create({ path: 'out.log' });
    await output.stop?.();
    await output.write(chunk(['a', entries(1)]), NO_DEADLINE);
    await output.stop?.();
    await output.stop?.();
    assert.equal((await lines(join(dir, 'out.log'))).length, 1);
  });
});

describe('file output errors', () => {
  it('a configured path under a regular file halts the output (the filesystem, not the data, is wrong)', async () => {
    await writeFile(join(dir, 'plain'), 'not a directory');
    const output = create({ path: 'plain/out.log' });
    await assert.rejects(output.write(chunk(['a', entries(1)]), NO_DEADLINE), HaltError);
  });

  it('a directory where the configured file should be halts the output', async () => {
    await mkdir(join(dir, 'taken.log'));
    const output = create({ path: 'taken.log' });
    await assert.rejects(output.write(chunk(['a', entries(1)]), NO_DEADLINE), HaltError);
  });

  it('a path made from a tag that cannot be a file rejects only that tag’s entries and writes the rest', async () => {
    await mkdir(join(dir, 'bad.log'));
    const output = create({ path: '${tag}.log' });
    const result = await output.write(chunk(['good', entries(2)], ['bad', entries(3)]), NO_DEADLINE);
    assert.equal(result?.retry?.length ?? 0, 0);
    assert.equal(result?.reject?.length, 3);
    assert.ok(result?.reject?.every((r) => r.entry.tag === 'bad' && /EISDIR/.test(r.reason)));
    assert.equal((await lines(join(dir, 'good.log'))).length, 2);
  });

  it('returns the entries of a retryable file for retry and writes the rest', async () => {
    const output = create({ path: '${tag}/out.log', mkdir: false });
    await mkdir(join(dir, 'good'));
    const result = await output.write(chunk(['good', entries(2)], ['gone', entries(3)]), NO_DEADLINE);
    assert.deepEqual(
      result?.retry?.map((e) => e.tag),
      ['gone', 'gone', 'gone'],
    );
    assert.equal(result?.reject?.length ?? 0, 0);
    assert.equal((await lines(join(dir, 'good/out.log'))).length, 2);
  });

  it('a file that halts next to one that is written: its entries come back for retry', async () => {
    const output = create({ path: '%Y/out.log' }); // from the record's time, not its tag: configured
    await mkdir(join(dir, '2023', 'out.log'), { recursive: true });
    const result = await output.write(
      chunk(['a', [...entries(1, new EventTime(0, 0)), ...entries(2)]]),
      NO_DEADLINE,
    );
    assert.equal(result?.retry?.length, 2, 'the 2023 entries wait until the file system is fixed');
    assert.equal(result?.reject?.length ?? 0, 0);
    assert.equal((await lines(join(dir, '1970/out.log'))).length, 1);
  });
});

describe('file output and the write signal', () => {
  it('an aborted signal writes nothing and fails as retryable', async () => {
    const output = create({ path: 'out.log' });
    await assert.rejects(
      output.write(chunk(['a', entries(1)]), { signal: AbortSignal.abort(new Error('write_timeout')) }),
      (err: Error) => err instanceof RetryableError && /abandoned: write_timeout/.test(err.message),
    );
    await assert.rejects(stat(join(dir, 'out.log')), { code: 'ENOENT' });
  });

  it('is looked at between files: the files after the abort are not started', async () => {
    const deadline = new AbortController();
    onOpen = () => deadline.abort();
    const output = create({ path: '${tag}.log' });
    await assert.rejects(
      output.write(chunk(['first', entries(1)], ['second', entries(1)]), { signal: deadline.signal }),
      RetryableError,
    );
    await output.stop?.(); // waits for the write in progress
    assert.equal((await lines(join(dir, 'first.log'))).length, 1);
    await assert.rejects(stat(join(dir, 'second.log')), { code: 'ENOENT' });
  });
});

describe('file output tag sanitizing', () => {
  it('makes tag values inert', () => {
    assert.equal(sanitize('..'), '__');
    assert.equal(sanitize('.'), '_');
    assert.equal(sanitize(''), '_');
    assert.equal(sanitize('a/../../etc'), 'a_______etc');
    assert.equal(sanitize('a\\b\nc'), 'a_b_c');
    assert.equal(sanitize('app.web-1'), 'app.web-1');
  });

  it('keeps every file inside the directory, whatever the tag', async () => {
    const base = join(dir, 'logs');
    const output = create({ path: 'logs/${tag}/${tag[0]}-${tag[1]}.log' });
    const tags = ['..', '../../escape', 'a/../../b', '/etc/passwd', '.', 'x..y', '...'];
    const result = await output.write(
      chunk(...tags.map((t): [string, Entry[]] => [t, entries(1)])),
      NO_DEADLINE,
    );
    assert.equal(result, undefined);
    assert.deepEqual((await readdir(dir)).sort(), ['logs']);
    const files = (await readdir(base, { recursive: true })).filter((p) => p.endsWith('.log')).sort();
    assert.deepEqual(files, [
      '_/_-_.log',
      '__./_-_.log',
      '__/_-_.log',
      '______escape/_-_.log',
      '_etc_passwd/_etc_passwd-_.log',
      'a_______b/a_-_.log',
      'x__y/x-_.log',
    ]);
  });
});

/**
 * `[T, {"a": [[…[1]…]]}]`, 3,000 deep, as forward (max_nesting_depth up to 10,000) can buffer
 * it: msgpack decodes it, but JSON.stringify overflows the stack on it, every time.
 */
function deepEntryBytes(depth = 3000): Buffer {
  return Buffer.concat([
    Buffer.from([0x92]),
    eventTimeBytes(T),
    Buffer.from([0x81, 0xa1, 0x61]),
    Buffer.alloc(depth - 1, 0x91),
    Buffer.from([0x01]),
  ]);
}

/** ok 0, the deep record, ok 2, as one batch. */
function batchWithDeepRecord(tag: string): Batch {
  const payload = Buffer.concat([
    encodeEntry({ time: T, record: { ok: 0 } }),
    deepEntryBytes(),
    encodeEntry({ time: T, record: { ok: 2 } }),
  ]);
  return { tag, payload, count: 3, bytes: payload.length };
}

const CANNOT_ENCODE = /^cannot encode the record: EncodeError: nested too deep to write as JSON$/;

describe('file output — a record that cannot be encoded', () => {
  it('is rejected alone, with the reason; the others are written', async () => {
    const output = create({ path: 'out/${tag}.log' });
    const result = await output.write(makeChunk('c1', [batchWithDeepRecord('deep')], 0), NO_DEADLINE);
    assert.equal(result?.retry?.length ?? 0, 0);
    assert.equal(result?.reject?.length, 1);
    assert.match(result!.reject![0]!.reason, CANNOT_ENCODE);
    assert.ok(Array.isArray(result!.reject![0]!.entry.record.a));
    const written = (await lines(join(dir, 'out/deep.log'))).map((l) => JSON.parse(l).record);
    assert.deepEqual(written, [{ ok: 0 }, { ok: 2 }]);
  });

  it('behind the buffer: dead-lettered with the reason at the first write, never retried; the others delivered', async () => {
    const output = create({ path: 'out/${tag}.log' });
    let writes = 0;
    const write = output.write.bind(output);
    output.write = (chunk, options) => {
      writes += 1;
      return write(chunk, options);
    };
    const settings = resolveBufferSettings({ flush_interval: 10, retry: { wait: 5, randomize: false } });
    const buffer = new MemoryBackend().create(output, settings, {
      logger: silentLogger(),
      metrics: new Metrics(),
    });
    await buffer.start();
    try {
      await emitTo(buffer, batchWithDeepRecord('deep'));
      await waitFor(async () => (await buffer.deadLetter.list()).length === 1, {
        what: 'a dead-letter chunk',
      });
      const [dead] = await buffer.deadLetter.list();
      assert.equal(dead!.count, 1);
      assert.match(dead!.reason, CANNOT_ENCODE);
      const shown = await buffer.deadLetter.show(dead!.id);
      assert.equal(shown!.entries.length, 1);
      assert.ok(Array.isArray(shown!.entries[0]!.record.a), 'the deep record itself');
      const written = (await lines(join(dir, 'out/deep.log'))).map((l) => JSON.parse(l).record);
      assert.deepEqual(written, [{ ok: 0 }, { ok: 2 }]);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(writes, 1, 'written once: nothing retried');
    } finally {
      await buffer.stop(Date.now());
    }
  });

  it('a chunk of only such records is rejected whole, nothing written', async () => {
    const output = create({ path: 'out/${tag}.log' });
    const payload = deepEntryBytes();
    const batch = { tag: 'only', payload, count: 1, bytes: payload.length };
    const result = await output.write(makeChunk('c1', [batch], 0), NO_DEADLINE);
    assert.equal(result?.reject?.length, 1);
    assert.match(result!.reject![0]!.reason, CANNOT_ENCODE);
    await assert.rejects(stat(join(dir, 'out/only.log')), { code: 'ENOENT' });
  });
});
