/**
 * What every output type promises the sink driver, checked for each registered type, in the
 * spirit of the OpenTelemetry Collector's generated lifecycle tests: start and stop in any
 * order, a write after stop that settles, the write signal honoured, and each answer of a
 * sink classified as retry, reject or halt. A new output type gets these checks by adding
 * one entry to FIXTURES (the first test fails until it has one). The cases themselves are
 * src/plugin/conformance.ts, which plugin authors run on their outputs too.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { builtinRegistry } from '../../src/builtins.ts';
import { HaltError, RetryableError } from '../../src/core/errors.ts';
import { type Logger, silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import type { Output } from '../../src/outputs/output.ts';
import { createStdoutOutput, stdoutSchema } from '../../src/outputs/stdout/index.ts';
import {
  type Built,
  type CaseNotes,
  caseOptions,
  chunkOf,
  describeOutcome,
  entryIds,
  failOnUnhandledRejections,
  outputCases,
} from '../../src/plugin/conformance.ts';
import type { ComponentDeps } from '../../src/registry.ts';
import { forwardReceiver } from '../support/forward-receiver.ts';
import { NO_DEADLINE } from '../support/outputs.ts';
import { useTestCredentials } from '../support/s3rver.ts';
import { type Reply, ScriptedHttpSink, type SeenRequest } from '../support/scripted-http.ts';
import { SilentServer } from '../support/silent-server.ts';
import { freePort, settlesWithin, waitFor } from '../support/wait.ts';

// ───────────────────────────── fixtures ─────────────────────────────

type Options = Record<string, unknown>;

/**
 * Cases a type does not pass yet, each with the work it waits for (run as `todo`); and
 * cases that do not apply to it, each with why (skipped).
 */
type Todo = CaseNotes;

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
  opentelemetry: {
    kind: 'http',
    options: (url, requestTimeout) => ({ endpoint: url, request_timeout: requestTimeout }),
    // A full success: an empty ExportLogsServiceResponse.
    ok: () => ({ status: 200, headers: { 'content-type': 'application/x-protobuf' } }),
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

// ───────────────────────────── the suite ─────────────────────────────

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'estuary-conformance-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

failOnUnhandledRejections();

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
    describe(`${type} output`, () => {
      const { stalled: stalledFixture } = fixture.kind === 'local' ? fixture : { stalled: undefined };
      outputCases({
        type,
        healthy: () => healthy(type, fixture, dir),
        stalled:
          stalledFixture && 'none' in stalledFixture
            ? stalledFixture
            : async () => (await stalled(type, fixture, dir))!,
        ...(fixture.kind === 'http' && {
          http: {
            against: (reply, requestTimeout) => httpSinkOutput(type, fixture, dir, reply, requestTimeout),
            ok: fixture.ok,
          },
          notApplicable: fixture.notApplicable,
        }),
        todo: fixture.todo,
      });
      if (fixture.kind === 'forward') forwardAnswers(type, fixture, caseOptions(fixture.todo));
    });
  }
});

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
