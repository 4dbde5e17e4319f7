/**
 * What every output type promises the sink driver, checked for each registered type, in the
 * spirit of the OpenTelemetry Collector's generated lifecycle tests: start and stop in any
 * order, a write after stop that settles, the write signal honoured, and each answer of a
 * sink classified as retry, reject or halt. A new output type gets these checks by adding
 * one entry to FIXTURES (the first test fails until it has one).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { makeChunk } from '../../src/buffer/chunk.ts';
import { builtinRegistry } from '../../src/builtins.ts';
import { makeBatch } from '../../src/core/batch.ts';
import { HaltError, RetryableError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { type Logger, silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import type { Chunk, Output, WriteResult } from '../../src/outputs/output.ts';
import { createStdoutOutput, stdoutSchema } from '../../src/outputs/stdout/index.ts';
import type { ComponentDeps } from '../../src/registry.ts';
import { forwardReceiver } from '../support/forward-receiver.ts';
import { NO_DEADLINE } from '../support/outputs.ts';
import { useTestCredentials } from '../support/s3rver.ts';
import { type Reply, ScriptedHttpSink, type SeenRequest } from '../support/scripted-http.ts';
import { SilentServer } from '../support/silent-server.ts';
import { freePort, settlesWithin, waitFor } from '../support/wait.ts';

// ───────────────────────────── fixtures ─────────────────────────────

type Options = Record<string, unknown>;

/** An output ready for a case, and what to release after it (its sink, a stuck call). */
interface Built {
  output: Output;
  close(): Promise<void>;
  /** A stalled sink: the write has reached it and waits on it now. */
  reached?(): boolean;
}

/**
 * Cases a type does not pass yet, each with the work it waits for (run as `todo`); and
 * cases that do not apply to it, each with why (skipped).
 */
type Todo = Partial<Record<string, string>>;

/** An HTTP sink: the suite runs a scripted server and points the output at it. */
interface HttpFixture {
  kind: 'http';
  /** Options pointing the output at `url`, giving up on one request after `requestTimeout`. */
  options(url: string, requestTimeout: string): Options;
  /** The sink's answer when it takes a request (an Elasticsearch bulk response, a 204). */
  ok(request: SeenRequest): Reply;
  /** Headers the real sink puts on every answer. */
  headers?: Record<string, string>;
  todo?: Todo;
  notApplicable?: Todo;
}

/** A forward receiver: the suite runs a scripted TCP server. */
interface ForwardFixture {
  kind: 'forward';
  options(port: number): Options;
  todo?: Todo;
}

/** No network: lifecycle and the signal only. */
interface LocalFixture {
  kind: 'local';
  /** An output whose sink takes everything. */
  healthy(dir: string): Built;
  /** An output whose sink never answers, or why the type has none. */
  stalled: ((dir: string) => Built) | { none: string };
  todo?: Todo;
}

type Fixture = HttpFixture | ForwardFixture | LocalFixture;

const registry = builtinRegistry();

/** The type's registered factory, as the config loader uses it. */
function build(type: string, options: Options, dir: string, logger = silentLogger()): Output {
  const factory = registry.get('output', type)!;
  return factory.create(factory.schema.parse(options), deps(type, dir, logger));
}

function deps(type: string, dir: string, logger = silentLogger()): ComponentDeps {
  return { id: `${type}.conformance`, logger, metrics: new Metrics(), configDir: dir };
}

/** A Writable that takes everything, or (stalled) never calls back; `written` once it was called. */
function stream(stalled: boolean): Writable & { written: boolean } {
  const out = new Writable({
    write(_data, _enc, callback) {
      out.written = true;
      if (!stalled) callback();
    },
  }) as Writable & { written: boolean };
  out.written = false;
  return out;
}

/** A debug logger that tells `onMessage` each message it logs. */
function listeningLogger(onMessage: (msg: string) => void): Logger {
  const sink = new Writable({
    write(line: Buffer, _enc, callback) {
      onMessage((JSON.parse(line.toString()) as { msg: string }).msg);
      callback();
    },
  });
  return pino({ level: 'debug' }, sink);
}

const unbuilt = (output: Output): Built => ({ output, close: async () => {} });

const AWS_CALLS_SIZED =
  "calls are cut to the API's documented limits before they are sent (records, bytes per call and per record); the API has no 413 to split on";

const FIXTURES: Record<string, Fixture> = {
  elasticsearch: {
    kind: 'http',
    options: (url, requestTimeout) => ({ hosts: [url], request_timeout: requestTimeout }),
    ok: (request) => ({
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        took: 1,
        errors: false,
        items: entryIds(request.text).map(() => ({ create: { _index: 'fluentd', status: 201 } })),
      }),
    }),
    headers: { 'x-elastic-product': 'Elasticsearch' },
  },
  loki: {
    kind: 'http',
    options: (url, requestTimeout) => ({ url, encoding: 'json', request_timeout: requestTimeout }),
    ok: () => ({ status: 204 }),
  },
  s3: {
    kind: 'http',
    options(url, requestTimeout) {
      useTestCredentials();
      return {
        bucket: 'conformance',
        endpoint: url,
        force_path_style: true,
        request_timeout: requestTimeout,
      };
    },
    ok: () => ({ status: 200, headers: { etag: '"conformance"' } }),
    notApplicable: {
      '413':
        'nothing to split: an object is one request up to 5GiB (and parts past that); S3 has no 413 per record',
    },
  },
  firehose: {
    kind: 'http',
    options(url, requestTimeout) {
      useTestCredentials();
      return { delivery_stream: 'conformance', endpoint: url, request_timeout: requestTimeout };
    },
    ok: (request) =>
      awsJson({
        FailedPutCount: 0,
        Encrypted: false,
        RequestResponses: recordsIn(request).map((_, i) => ({ RecordId: `r${i}` })),
      }),
    notApplicable: { '413': AWS_CALLS_SIZED },
  },
  kinesis_streams: {
    kind: 'http',
    options(url, requestTimeout) {
      useTestCredentials();
      return { stream: 'conformance', endpoint: url, request_timeout: requestTimeout };
    },
    ok: (request) =>
      awsJson({
        FailedRecordCount: 0,
        Records: recordsIn(request).map((_, i) => ({
          SequenceNumber: String(i),
          ShardId: 'shardId-000000000000',
        })),
      }),
    notApplicable: { '413': AWS_CALLS_SIZED },
  },
  cloudwatch_logs: {
    kind: 'http',
    options(url, requestTimeout) {
      useTestCredentials();
      return {
        log_group_name: 'conformance',
        log_stream_name: 'c',
        endpoint: url,
        request_timeout: requestTimeout,
      };
    },
    // CreateLogStream, then PutLogEvents: both answer an empty object when they succeed.
    ok: () => awsJson({}),
    notApplicable: { '413': AWS_CALLS_SIZED },
  },
  forward: {
    kind: 'forward',
    options: (port) => ({ servers: [{ host: '127.0.0.1', port }], connect_timeout: '2s' }),
  },
  file: {
    kind: 'local',
    healthy: (dir) => unbuilt(build('file', { path: 'out/${tag}.log' }, dir)),
    stalled(dir) {
      // A named pipe nobody reads: the append blocks in the kernel, like a hung NFS mount.
      const fifo = join(dir, 'stalled.fifo');
      execFileSync('mkfifo', [fifo]);
      let opened = false;
      const logger = listeningLogger((msg) => {
        opened ||= msg === 'opened file';
      });
      const output = build('file', { path: fifo, fsync: false }, dir, logger);
      return {
        output,
        reached: () => opened,
        async close() {
          // A reader lets the blocked write(2) finish, so no thread of libuv's pool stays stuck.
          const reader = createReadStream(fifo);
          reader.resume();
          await output.stop?.();
          reader.destroy();
        },
      };
    },
  },
  stdout: {
    kind: 'local',
    // Not the registered factory's process.stdout: the test runner reads that one.
    healthy: (dir) => unbuilt(createStdoutOutput(stdoutSchema.parse({}), deps('stdout', dir), stream(false))),
    stalled(dir) {
      const stuck = stream(true);
      const output = createStdoutOutput(stdoutSchema.parse({}), deps('stdout', dir), stuck);
      return { output, close: async () => {}, reached: () => stuck.written };
    },
  },
  null: {
    kind: 'local',
    healthy: (dir) => unbuilt(build('null', {}, dir)),
    stalled: { none: 'the null output waits on nothing' },
  },
};

/** The records of a JSON 1.1 batch call (PutRecordBatch, PutRecords). */
function recordsIn(request: SeenRequest): unknown[] {
  return (JSON.parse(request.text) as { Records?: unknown[] }).Records ?? [];
}

/** A 200 answer of an AWS JSON 1.1 API. */
function awsJson(body: unknown): Reply {
  return {
    status: 200,
    headers: { 'content-type': 'application/x-amz-json-1.1' },
    body: JSON.stringify(body),
  };
}

// ───────────────────────────── sinks ─────────────────────────────

/** An output of a network type pointed at a sink that answers every request with `reply`. */
async function httpSinkOutput(
  type: string,
  fixture: HttpFixture,
  dir: string,
  reply: (request: SeenRequest) => Reply,
  requestTimeout = '30s',
): Promise<Built> {
  const sink = await ScriptedHttpSink.start((request) => {
    const answer = reply(request);
    return answer === 'hang' ? answer : { ...answer, headers: { ...fixture.headers, ...answer.headers } };
  });
  const output = build(type, fixture.options(sink.url, requestTimeout), dir);
  return { output, close: () => sink.close() };
}

/** The sink's answer with this status, in the JSON error shape sinks commonly use. */
function status(code: number, headers: Record<string, string> = {}): Reply {
  return {
    status: code,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ error: { type: 'scripted', reason: `status ${code}` }, status: code }),
  };
}

async function healthy(type: string, fixture: Fixture, dir: string): Promise<Built> {
  switch (fixture.kind) {
    case 'http':
      return httpSinkOutput(type, fixture, dir, fixture.ok);
    case 'forward': {
      const receiver = await forwardReceiver();
      return { output: build(type, fixture.options(receiver.port), dir), close: receiver.close };
    }
    case 'local':
      return fixture.healthy(dir);
  }
}

/** An output whose sink takes the connection and never answers; undefined when there is none. */
async function stalled(type: string, fixture: Fixture, dir: string): Promise<Built | undefined> {
  if (fixture.kind === 'local') return 'none' in fixture.stalled ? undefined : fixture.stalled(dir);
  const silent = await SilentServer.start();
  const options = fixture.kind === 'http' ? fixture.options(silent.url, '60s') : fixture.options(silent.port);
  return {
    output: build(type, options, dir),
    close: () => silent.stop(),
    reached: () => silent.accepted > 0,
  };
}

// ───────────────────────────── chunks ─────────────────────────────

const TOO_LARGE = 'TOO-LARGE-FOR-THE-SINK';

/** `n` records `{ msg: "entry-<i>" }` under one tag; `pad` bytes each; record `tooLarge` marked. */
function chunkOf(n: number, { pad = 0, tooLarge = -1 } = {}): Chunk {
  const time = new EventTime(1_700_000_000, 123_456_789);
  const entries = Array.from({ length: n }, (_, i) => ({
    time,
    record: {
      msg: `entry-${i}`,
      ...(pad > 0 ? { pad: 'x'.repeat(pad) } : {}),
      ...(i === tooLarge ? { mark: TOO_LARGE } : {}),
    },
  }));
  return makeChunk(`conformance-${n}`, [makeBatch('app.conformance', entries)], 0);
}

/** The `entry-<i>` markers a request body carries, once each. */
function entryIds(text: string): string[] {
  return [...new Set(text.match(/entry-\d+/g) ?? [])];
}

function describeOutcome(outcome: { value?: unknown; error?: unknown }): string {
  return outcome.error === undefined ? `resolved ${JSON.stringify(outcome.value)}` : String(outcome.error);
}

// ───────────────────────────── the suite ─────────────────────────────

let dir: string;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'estuary-conformance-'));
  process.on('unhandledRejection', onUnhandled);
});

after(async () => {
  process.off('unhandledRejection', onUnhandled);
  await rm(dir, { recursive: true, force: true });
});

afterEach(async () => {
  // An unhandled rejection is reported on a later turn of the event loop.
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(unhandled.splice(0).map(String), [], 'no unhandled rejection');
});

const types = registry.types('output');

describe('output conformance', () => {
  it('every registered output type has a fixture, and every fixture a registered type', () => {
    assert.deepEqual(
      types.filter((t) => !(t in FIXTURES)),
      [],
      'add these types to FIXTURES in test/outputs/conformance.test.ts',
    );
    assert.deepEqual(
      Object.keys(FIXTURES).filter((t) => !types.includes(t)),
      [],
    );
  });

  for (const type of types) {
    const fixture = FIXTURES[type];
    if (!fixture) continue;
    const todo = (name: string) => {
      const skip = fixture.kind === 'http' ? fixture.notApplicable?.[name] : undefined;
      return skip === undefined ? { todo: fixture.todo?.[name] } : { skip };
    };
    /** Runs `body` with a fresh output, closing it (and its sink) whatever happens. */
    const withOutput = async (make: Promise<Built> | Built, body: (built: Built) => Promise<void>) => {
      const built = await make;
      try {
        await body(built);
      } finally {
        // The sink first: a stalled one must let go before stop() can finish.
        await built.close();
        await built.output.stop?.();
      }
    };

    describe(`${type} output`, () => {
      it('stop() without start() resolves, twice', todo('stop without start'), async () => {
        await withOutput(healthy(type, fixture, dir), async ({ output }) => {
          await settlesWithin(output.stop?.() ?? Promise.resolve(), 2000);
          await settlesWithin(output.stop?.() ?? Promise.resolve(), 2000);
        });
      });

      it(
        'starts and stops, twice on one instance and again on a second',
        todo('start and stop'),
        async () => {
          for (let round = 0; round < 2; round++) {
            await withOutput(healthy(type, fixture, dir), async ({ output }) => {
              assert.equal(output.type, type);
              await output.start?.();
              await output.stop?.();
              await output.stop?.();
            });
          }
        },
      );

      it('a healthy sink takes a chunk: nothing to retry, nothing rejected', todo('healthy'), async () => {
        await withOutput(healthy(type, fixture, dir), async ({ output }) => {
          await output.start?.();
          const outcome = await settlesWithin(output.write(chunkOf(3), NO_DEADLINE), 5000);
          assert.equal(outcome.error, undefined, describeOutcome(outcome));
          const result = outcome.value as WriteResult | undefined;
          assert.equal(result?.retry?.length ?? 0, 0);
          assert.equal(result?.reject?.length ?? 0, 0);
        });
      });

      it('a write after stop() settles, resolved or rejected', todo('write after stop'), async () => {
        await withOutput(healthy(type, fixture, dir), async ({ output }) => {
          await output.start?.();
          await output.stop?.();
          await settlesWithin(output.write(chunkOf(1), NO_DEADLINE), 5000);
        });
      });

      it('an already aborted signal settles at once', todo('aborted signal'), async () => {
        await withOutput(healthy(type, fixture, dir), async ({ output }) => {
          await output.start?.();
          const outcome = await settlesWithin(
            output.write(chunkOf(1), { signal: AbortSignal.abort() }),
            1000,
          );
          if (outcome.error !== undefined)
            assert.ok(outcome.error instanceof RetryableError, String(outcome.error));
        });
      });

      const none = fixture.kind === 'local' && 'none' in fixture.stalled ? fixture.stalled.none : undefined;
      it('a sink that never answers: the write gives up within 1s of the abort, with a RetryableError', {
        skip: none,
        ...todo('abort'),
      }, async () => {
        await withOutput((await stalled(type, fixture, dir))!, async ({ output, reached }) => {
          await output.start?.();
          const deadline = new AbortController();
          // Larger than a pipe's buffer: a stalled pipe blocks it.
          const write = output.write(chunkOf(4, { pad: 20_000 }), { signal: deadline.signal });
          await waitFor(() => reached?.() ?? true, { what: 'the write to reach the sink' });
          deadline.abort(new Error('write_timeout'));
          const outcome = await settlesWithin(write, 1000);
          assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
        });
      });

      if (fixture.kind === 'http') httpAnswers(type, fixture, todo);
      if (fixture.kind === 'forward') forwardAnswers(type, fixture, todo);
    });
  }
});

/** What each answer of an HTTP sink becomes. */
function httpAnswers(type: string, fixture: HttpFixture, todo: (name: string) => { todo?: string }) {
  const writeAgainst = async (
    reply: (request: SeenRequest) => Reply,
    chunk = chunkOf(3),
    requestTimeout?: string,
  ) => {
    const built = await httpSinkOutput(type, fixture, dir, reply, requestTimeout);
    try {
      await built.output.start?.();
      return await settlesWithin(built.output.write(chunk, NO_DEADLINE), 5000);
    } finally {
      await built.output.stop?.();
      await built.close();
    }
  };

  for (const code of [401, 403, 404]) {
    it(`${code} halts: HaltError`, todo(String(code)), async () => {
      const outcome = await writeAgainst(() => status(code));
      assert.ok(outcome.error instanceof HaltError, describeOutcome(outcome));
    });
  }

  for (const code of [500, 503]) {
    it(`${code} is retried: RetryableError`, todo(String(code)), async () => {
      const outcome = await writeAgainst(() => status(code));
      assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
    });
  }

  it('429 is retried after the sink’s Retry-After', todo('429'), async () => {
    const outcome = await writeAgainst(() => status(429, { 'retry-after': '7' }));
    assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
    assert.equal(outcome.error.retryAfterMs, 7000);
  });

  it('413 splits the request until one entry is left, and rejects only that entry', todo('413'), async () => {
    const taken: string[] = [];
    const outcome = await writeAgainst(
      (request) => {
        const ids = entryIds(request.text);
        if (ids.length > 1 || request.text.includes(TOO_LARGE)) return status(413);
        taken.push(...ids);
        return fixture.ok(request);
      },
      chunkOf(4, { tooLarge: 2 }),
    );
    assert.equal(outcome.error, undefined, describeOutcome(outcome));
    const result = outcome.value as WriteResult | undefined;
    assert.deepEqual(
      result?.reject?.map((r) => r.entry.record.msg),
      ['entry-2'],
    );
    assert.equal(result?.retry?.length ?? 0, 0);
    assert.deepEqual(taken.sort(), ['entry-0', 'entry-1', 'entry-3']);
  });

  it('no answer within the request timeout is retried: RetryableError', todo('timeout'), async () => {
    const outcome = await writeAgainst(() => 'hang', chunkOf(1), '300ms');
    assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
    assert.ok(outcome.ms < 1500, `gave up after ${outcome.ms}ms`);
  });
}

/** What each answer of a forward receiver becomes. */
function forwardAnswers(type: string, fixture: ForwardFixture, todo: (name: string) => { todo?: string }) {
  const writeTo = async (port: number, extra: Options = {}) => {
    const output = build(type, { ...fixture.options(port), ...extra }, dir);
    try {
      await output.start?.();
      return await settlesWithin(output.write(chunkOf(2), NO_DEADLINE), 5000);
    } finally {
      await output.stop?.();
    }
  };

  it('a refused handshake (wrong shared_key) halts: HaltError', todo('handshake refused'), async () => {
    const receiver = await forwardReceiver({ sharedKey: 'right' });
    try {
      const outcome = await writeTo(receiver.port, {
        security: { self_hostname: 'edge', shared_key: 'wrong' },
      });
      assert.ok(outcome.error instanceof HaltError, describeOutcome(outcome));
      await waitFor(() => receiver.stats.refusedHandshakes === 1);
    } finally {
      await receiver.close();
    }
  });

  it('a reset connection is retried: RetryableError', todo('reset'), async () => {
    const receiver = await forwardReceiver({ answer: 'reset' });
    try {
      const outcome = await writeTo(receiver.port);
      assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
    } finally {
      await receiver.close();
    }
  });

  it('a refused connection is retried: RetryableError', todo('refused'), async () => {
    const outcome = await writeTo(await freePort());
    assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
  });

  it('no ack within ack_response_timeout is retried: RetryableError', todo('timeout'), async () => {
    const silent = await SilentServer.start();
    try {
      const outcome = await writeTo(silent.port, { ack_response_timeout: '300ms' });
      assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
      assert.ok(outcome.ms < 1500, `gave up after ${outcome.ms}ms`);
    } finally {
      await silent.stop();
    }
  });
}
