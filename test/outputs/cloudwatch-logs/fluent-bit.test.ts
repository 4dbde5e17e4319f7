import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it, type TestContext } from 'node:test';
import { findAnchor } from '../../../bench/anchors.ts';
import { CloudWatchFake } from '../../support/cloudwatch-fake.ts';
import { selfSignedCert } from '../../support/tls.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * Fluent Bit 5.1.1's own `cloudwatch_logs` output (../shared/interop) against the fake, over TLS
 * with the fake's self-signed certificate: an independent client of the real API takes the
 * fake's answers as CloudWatch's (it checks, for one, the request id AWS puts on every answer),
 * which is what the benchmark's `--anchor fluent-bit` run relies on. And what Estuary does
 * better, shown on the anchor: events CloudWatch refuses for their time come in a 200 answer.
 */

let dir: string;
let fake: CloudWatchFake;
let running: ChildProcess | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'estuary-cw-fluent-bit-'));
  fake = await CloudWatchFake.start({ tls: selfSignedCert(dir) });
});
afterEach(() => {
  running?.kill();
  running = undefined;
  fake.reset();
});
after(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Fluent Bit sending `samples` dummy records to the fake; undefined (the test skipped) where it is not here. */
function fluentBit(t: TestContext, samples: number): ChildProcess | undefined {
  const anchor = findAnchor('fluent-bit');
  if ('missing' in anchor) {
    t.skip(`no Fluent Bit: ${anchor.missing}`);
    return undefined;
  }
  const config = join(dir, 'fluent-bit.conf');
  writeFileSync(
    config,
    `[SERVICE]
    flush 0.2
    log_level info
[INPUT]
    name dummy
    dummy {"count": 0, "level": "info"}
    samples ${samples}
    rate 50
[OUTPUT]
    name cloudwatch_logs
    match *
    region eu-west-1
    log_group_name g
    log_stream_prefix fb-
    endpoint 127.0.0.1
    port ${fake.port}
    tls.ca_file ${join(dir, 'cert.pem')}
`,
  );
  const [bin, ...args] = anchor.command(config);
  running = spawn(bin!, args, {
    env: {
      PATH: process.env.PATH ?? '',
      AWS_ACCESS_KEY_ID: 'FAKEKEY',
      AWS_SECRET_ACCESS_KEY: 'fake-secret',
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    stdio: 'ignore',
  });
  return running;
}

describe("Fluent Bit's cloudwatch_logs against the fake", () => {
  it('creates its stream once and stores each record once (no DescribeLogStreams, no retry)', async (t) => {
    fake.addGroup('g');
    if (!fluentBit(t, 5)) return;
    await waitFor(() => fake.events('g', 'fb-dummy.0').length >= 5, { timeoutMs: 15_000, what: '5 events' });
    assert.deepEqual(fake.messages('g', 'fb-dummy.0'), Array(5).fill('{"count":0,"level":"info"}'));
    assert.deepEqual(
      fake.calls.filter((c) => c.op !== 'PutLogEvents').map((c) => `${c.op} ${c.answer}`),
      ['CreateLogStream 200'],
    );
    assert.ok(fake.callsOf('PutLogEvents').every((c) => c.answer === '200'));
    assert.match(String(fake.callsOf('PutLogEvents')[0]!.headers.authorization), /\/logs\/aws4_request/);
  });

  it('events CloudWatch refuses for their time: each call taken (200, rejectedLogEventsInfo), nothing stored', async (t) => {
    fake.addGroup('g');
    // The fake's clock 15 days on: every event of Fluent Bit's is too old.
    fake.now = () => Date.now() + 15 * 86_400_000;
    if (!fluentBit(t, 3)) return;
    await waitFor(() => fake.callsOf('PutLogEvents').reduce((n, c) => n + c.events.length, 0) >= 3, {
      timeoutMs: 15_000,
      what: 'the 3 events sent',
    });
    assert.deepEqual(fake.messages('g', 'fb-dummy.0'), [], 'CloudWatch stored none');
    // Every call was taken with a 200: a client that does not read rejectedLogEventsInfo (Fluent
    // Bit) counts these events as sent; Estuary dead-letters them (delivery.test.ts).
    assert.ok(fake.callsOf('PutLogEvents').every((c) => c.answer === '200'));
  });
});
