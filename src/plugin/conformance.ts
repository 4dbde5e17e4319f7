/**
 * What every output promises the sink driver, as node:test cases: start and stop in any
 * order, a write after stop that settles, the write signal honoured, and each answer of an
 * HTTP sink classified as retry, reject or halt. test/outputs/conformance.test.ts runs them
 * for every built-in type; the plugin test kit (testkit.ts) runs them for a plugin's output.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, it } from 'node:test';
import { makeChunk } from '../buffer/chunk.ts';
import { makeBatch } from '../core/batch.ts';
import { HaltError, RetryableError } from '../core/errors.ts';
import { EventTime } from '../core/event-time.ts';
import type { Chunk, Output, WriteResult } from '../outputs/output.ts';
import { type Reply, type SeenRequest, settlesWithin, waitFor } from './testing.ts';

/** An output ready for a case, and what to release after it (its sink, a stuck call). */
export interface Built {
  output: Output;
  close(): Promise<void>;
  /** A stalled sink: the write has reached it and waits on it now. */
  reached?(): boolean;
}

/** Case names (see the cases below: 'healthy', '429', 'abort' …) mapped to a reason. */
export type CaseNotes = Partial<Record<string, string>>;

export interface OutputCases {
  /** The type name the output must report. */
  type: string;
  /** A fresh output whose sink takes everything. */
  healthy(): Promise<Built> | Built;
  /** A fresh output whose sink takes the request and never answers, or why there is none. */
  stalled: (() => Promise<Built> | Built) | { none: string };
  /** Network sinks speaking HTTP: the answer cases run against outputs built by `against`. */
  http?: {
    /** An output pointed at a sink answering each request with `reply`, with this request timeout. */
    against(reply: (request: SeenRequest) => Reply, requestTimeout?: string): Promise<Built>;
    /** The sink's answer when it takes a request. */
    ok(request: SeenRequest): Reply;
  };
  /** Cases it does not pass yet, with the work they wait for (run as todo). */
  todo?: CaseNotes;
  /** Cases that do not apply to it, with why (skipped). */
  notApplicable?: CaseNotes;
}

/** The node:test options of a case: skipped with why, a todo, or neither. */
export function caseOptions(todo: CaseNotes = {}, notApplicable: CaseNotes = {}) {
  return (name: string): { todo?: string; skip?: string } => {
    const skip = notApplicable[name];
    return skip === undefined ? { todo: todo[name] } : { skip };
  };
}

/** A marker a chunk's record carries so a sink can refuse that one record (413 split case). */
export const TOO_LARGE = 'TOO-LARGE-FOR-THE-SINK';

/** `n` records `{ msg: "entry-<i>" }` under one tag; `pad` bytes each; record `tooLarge` marked. */
export function chunkOf(n: number, { pad = 0, tooLarge = -1 } = {}): Chunk {
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
export function entryIds(text: string): string[] {
  return [...new Set(text.match(/entry-\d+/g) ?? [])];
}

export function describeOutcome(outcome: { value?: unknown; error?: unknown }): string {
  return outcome.error === undefined ? `resolved ${JSON.stringify(outcome.value)}` : String(outcome.error);
}

/** The sink's answer with this status, in the JSON error shape sinks commonly use. */
export function httpStatus(code: number, headers: Record<string, string> = {}): Reply {
  return {
    status: code,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ error: { type: 'scripted', reason: `status ${code}` }, status: code }),
  };
}

/** Hooks (node:test, in the caller's scope) that fail a case after which a promise was rejected unhandled. */
export function failOnUnhandledRejections(): void {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  before(() => {
    process.on('unhandledRejection', onUnhandled);
  });
  after(() => {
    process.off('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    // An unhandled rejection is reported on a later turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled.splice(0).map(String), [], 'no unhandled rejection');
  });
}

/** No deadline: the write runs until the sink answers. */
const NO_DEADLINE = { signal: new AbortController().signal };

/** Registers the cases (node:test `it`) for one output type, in the caller's describe. */
export function outputCases(spec: OutputCases): void {
  const { type } = spec;
  const options = caseOptions(spec.todo, spec.notApplicable);
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

  it('stop() without start() resolves, twice', options('stop without start'), async () => {
    await withOutput(spec.healthy(), async ({ output }) => {
      await settlesWithin(output.stop?.() ?? Promise.resolve(), 2000);
      await settlesWithin(output.stop?.() ?? Promise.resolve(), 2000);
    });
  });

  it('starts and stops, twice on one instance and again on a second', options('start and stop'), async () => {
    for (let round = 0; round < 2; round++) {
      await withOutput(spec.healthy(), async ({ output }) => {
        assert.equal(output.type, type);
        await output.start?.();
        await output.stop?.();
        await output.stop?.();
      });
    }
  });

  it('a healthy sink takes a chunk: nothing to retry, nothing rejected', options('healthy'), async () => {
    await withOutput(spec.healthy(), async ({ output }) => {
      await output.start?.();
      const outcome = await settlesWithin(output.write(chunkOf(3), NO_DEADLINE), 5000);
      assert.equal(outcome.error, undefined, describeOutcome(outcome));
      const result = outcome.value as WriteResult | undefined;
      assert.equal(result?.retry?.length ?? 0, 0);
      assert.equal(result?.reject?.length ?? 0, 0);
    });
  });

  it('a write after stop() settles, resolved or rejected', options('write after stop'), async () => {
    await withOutput(spec.healthy(), async ({ output }) => {
      await output.start?.();
      await output.stop?.();
      await settlesWithin(output.write(chunkOf(1), NO_DEADLINE), 5000);
    });
  });

  it('an already aborted signal settles at once', options('aborted signal'), async () => {
    await withOutput(spec.healthy(), async ({ output }) => {
      await output.start?.();
      const outcome = await settlesWithin(output.write(chunkOf(1), { signal: AbortSignal.abort() }), 1000);
      if (outcome.error !== undefined)
        assert.ok(outcome.error instanceof RetryableError, String(outcome.error));
    });
  });

  const { stalled } = spec;
  it('a sink that never answers: the write gives up within 1s of the abort, with a RetryableError', {
    skip: 'none' in stalled ? stalled.none : undefined,
    ...options('abort'),
  }, async () => {
    if ('none' in stalled) return;
    await withOutput(stalled(), async ({ output, reached }) => {
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

  if (spec.http) httpAnswers(spec.http, options);
}

/** What each answer of an HTTP sink becomes. */
function httpAnswers(
  http: NonNullable<OutputCases['http']>,
  options: (name: string) => { todo?: string; skip?: string },
) {
  const writeAgainst = async (
    reply: (request: SeenRequest) => Reply,
    chunk = chunkOf(3),
    requestTimeout?: string,
  ) => {
    const built = await http.against(reply, requestTimeout);
    try {
      await built.output.start?.();
      return await settlesWithin(built.output.write(chunk, NO_DEADLINE), 5000);
    } finally {
      await built.output.stop?.();
      await built.close();
    }
  };

  for (const code of [401, 403, 404]) {
    it(`${code} halts: HaltError`, options(String(code)), async () => {
      const outcome = await writeAgainst(() => httpStatus(code));
      assert.ok(outcome.error instanceof HaltError, describeOutcome(outcome));
    });
  }

  for (const code of [500, 503]) {
    it(`${code} is retried: RetryableError`, options(String(code)), async () => {
      const outcome = await writeAgainst(() => httpStatus(code));
      assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
    });
  }

  it('429 is retried after the sink’s Retry-After', options('429'), async () => {
    const outcome = await writeAgainst(() => httpStatus(429, { 'retry-after': '7' }));
    assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
    assert.equal(outcome.error.retryAfterMs, 7000);
  });

  it(
    '413 splits the request until one entry is left, and rejects only that entry',
    options('413'),
    async () => {
      const taken: string[] = [];
      const outcome = await writeAgainst(
        (request) => {
          const ids = entryIds(request.text);
          if (ids.length > 1 || request.text.includes(TOO_LARGE)) return httpStatus(413);
          taken.push(...ids);
          return http.ok(request);
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
    },
  );

  it('no answer within the request timeout is retried: RetryableError', options('timeout'), async () => {
    const outcome = await writeAgainst(() => 'hang', chunkOf(1), '300ms');
    assert.ok(outcome.error instanceof RetryableError, describeOutcome(outcome));
    assert.ok(outcome.ms < 1500, `gave up after ${outcome.ms}ms`);
  });
}
