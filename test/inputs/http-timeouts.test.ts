import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import type { Batch } from '../../src/core/batch.ts';
import { httpInput } from '../../src/inputs/http.ts';
import type { Input } from '../../src/inputs/input.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { sample } from '../support/prom-text.ts';
import { openRaw } from '../support/raw-connection.ts';
import { selfSignedCert } from '../support/tls.ts';
import { freePort } from '../support/wait.ts';

const running: Input[] = [];
after(() => Promise.all(running.map((i) => i.stop())));

async function startHttp(options: Record<string, unknown>, configDir = process.cwd()) {
  const port = await freePort();
  const batches: Batch[] = [];
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const metrics = new Metrics();
  const config = httpInput.schema.parse({ listen: '127.0.0.1', port, ...options });
  const input = httpInput.create(config, {
    id: 'web',
    logger,
    metrics,
    configDir,
  });
  running.push(input);
  await input.start(async (batch) => {
    batches.push(batch);
  });
  const timeouts = async () =>
    sample(await metrics.render(), 'estuary_input_requests_total', { result: 'timeout' }).value;
  return { port, batches, logs, timeouts };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CHUNKED =
  'POST /app.a HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n';
const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;

describe('http input timeouts', () => {
  it('headers that never end: 408 and the connection closed at header_timeout', {
    timeout: 10_000,
  }, async () => {
    const { port, logs, timeouts } = await startHttp({ header_timeout: '500ms' });
    const c = await openRaw(port);
    c.socket.write('POST /app.a HTTP/1.1\r\nhost: x\r\ncontent-type: appl');
    const closedAfter = await c.closed;
    assert.ok(closedAfter >= 450 && closedAfter < 2500, `closed after ${Math.round(closedAfter)} ms`);
    assert.match(
      c.received(),
      /^HTTP\/1\.1 408 .*\r\n\r\nrequest not complete within header_timeout \(0\.5s\)/s,
    );
    assert.equal(await timeouts(), 1, 'counted as result="timeout"');
    assert.equal(logs[0]?.msg, 'http request refused');
    assert.equal(logs[0]?.status, 408);
  });

  it('a connection that sends nothing is closed at header_timeout', { timeout: 10_000 }, async () => {
    const { port } = await startHttp({ header_timeout: '500ms' });
    const c = await openRaw(port);
    const closedAfter = await c.closed;
    assert.ok(closedAfter >= 450 && closedAfter < 2500, `closed after ${Math.round(closedAfter)} ms`);
  });

  it('a chunked body that sends nothing: 408 and closed at body_timeout', { timeout: 10_000 }, async () => {
    const { port, batches, timeouts } = await startHttp({ body_timeout: '500ms' });
    const c = await openRaw(port);
    c.socket.write(CHUNKED + chunk('{"a":'));
    const closedAfter = await c.closed;
    assert.ok(closedAfter >= 450 && closedAfter < 2500, `closed after ${Math.round(closedAfter)} ms`);
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
    assert.match(c.received(), /request body stalled/);
    assert.equal(batches.length, 0);
    assert.equal(await timeouts(), 1, 'counted as result="timeout"');
  });

  it('a chunked body that trickles for ever is cut at request_timeout', { timeout: 10_000 }, async () => {
    const { port, batches, timeouts } = await startHttp({ request_timeout: '1s', body_timeout: '30s' });
    const c = await openRaw(port);
    c.socket.write(`${CHUNKED + chunk('[')}`);
    const trickle = setInterval(() => c.socket.write(chunk('{"a":1},')), 100);
    try {
      const closedAfter = await c.closed;
      assert.ok(closedAfter >= 950 && closedAfter < 3000, `closed after ${Math.round(closedAfter)} ms`);
    } finally {
      clearInterval(trickle);
    }
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
    assert.equal(batches.length, 0);
    assert.equal(await timeouts(), 1);
  });

  it('a refused request (401) whose chunked body never ends: answered, and the connection closed with it', {
    timeout: 10_000,
  }, async () => {
    const { port } = await startHttp({ auth_tokens: ['secret'] });
    const c = await openRaw(port);
    c.socket.write(CHUNKED + chunk('{"a":1}'));
    const trickle = setInterval(() => c.socket.write(chunk(' ')), 100);
    try {
      const closedAfter = await c.closed;
      assert.ok(closedAfter < 1000, `closed after ${Math.round(closedAfter)} ms`);
    } finally {
      clearInterval(trickle);
    }
    assert.match(c.received(), /^HTTP\/1\.1 401 /);
    assert.match(c.received(), /\r\nconnection: close\r\n/i);
  });

  it('a slow body that keeps progressing is not cut by body_timeout', { timeout: 10_000 }, async () => {
    const { port, batches } = await startHttp({ body_timeout: '400ms', request_timeout: '10s' });
    const c = await openRaw(port);
    c.socket.write(CHUNKED + chunk('['));
    // 1.5 s in all, each piece well within body_timeout of the last.
    for (let i = 0; i < 10; i++) {
      await sleep(150);
      c.socket.write(chunk(`${i > 0 ? ',' : ''}{"i":${i}}`));
    }
    c.socket.write(`${chunk(']')}0\r\n\r\n`);
    for (let i = 0; i < 200 && !c.received().includes('\r\n\r\n'); i++) await sleep(10);
    assert.match(c.received(), /^HTTP\/1\.1 200 /);
    assert.equal(batches.length, 1);
    assert.equal(batches[0]!.count, 10);
    c.socket.destroy();
  });

  it('keep-alive: a connection idle past header_timeout still takes the next request; closed at idle_timeout', {
    timeout: 10_000,
  }, async () => {
    const { port, batches } = await startHttp({ header_timeout: '300ms', idle_timeout: '1500ms' });
    const c = await openRaw(port);
    const request =
      'POST /app.a HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}';
    c.socket.write(request);
    await sleep(800);
    assert.match(c.received(), /^HTTP\/1\.1 200 /);
    c.socket.write(request);
    await sleep(100);
    assert.equal(c.received().match(/HTTP\/1\.1 200 /g)?.length, 2, c.received());
    assert.equal(batches.length, 2);
    const idleFrom = performance.now();
    await c.closed;
    const idle = performance.now() - idleFrom;
    assert.ok(idle >= 1200 && idle < 3500, `closed after ${Math.round(idle)} ms idle`);
  });

  it('header_timeout longer than request_timeout is taken as request_timeout', async () => {
    const config = httpInput.schema.parse({});
    assert.equal(config.header_timeout, 10_000);
    assert.equal(config.body_timeout, 30_000);
    assert.equal(config.request_timeout, 120_000);
    assert.equal(config.idle_timeout, 72_000);
    assert.throws(() => httpInput.schema.parse({ header_timeout: '0s' }));
    const { port } = await startHttp({ header_timeout: '5s', request_timeout: '500ms' });
    const c = await openRaw(port);
    c.socket.write('POST /app.a HTTP/1.1\r\n');
    const closedAfter = await c.closed;
    assert.ok(closedAfter < 2500, `closed after ${Math.round(closedAfter)} ms`);
  });

  it('malformed HTTP: 400 in plain text, counted as bad_request, connection closed', {
    timeout: 10_000,
  }, async () => {
    const { port, logs } = await startHttp({});
    const c = await openRaw(port);
    c.socket.write('NOT HTTP AT ALL\r\n\r\n');
    await c.closed;
    assert.match(c.received(), /^HTTP\/1\.1 400 Bad Request\r\n.*\r\n\r\nmalformed HTTP request: /s);
    assert.equal(logs[0]?.status, 400);
  });

  it('HTTPS: the same header_timeout and request_timeout', { timeout: 10_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-http-timeouts-'));
    try {
      selfSignedCert(dir);
      const tls = { cert_file: 'cert.pem', key_file: 'key.pem' };
      const { port } = await startHttp({ tls, header_timeout: '500ms', request_timeout: '1s' }, dir);
      const hold = async (bytes: string, trickle: boolean) => {
        const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
        await new Promise<void>((resolve, reject) => {
          socket.once('secureConnect', resolve);
          socket.once('error', reject);
        });
        socket.on('error', () => {});
        socket.resume();
        const openedAt = performance.now();
        socket.write(bytes);
        const timer = trickle ? setInterval(() => socket.write(chunk(' ')), 100) : undefined;
        await new Promise((r) => socket.once('close', r));
        clearInterval(timer);
        return performance.now() - openedAt;
      };
      const [headers, body] = await Promise.all([
        hold('POST /app.a HTTP/1.1\r\nhost: x\r\n', false),
        hold(CHUNKED + chunk('['), true),
      ]);
      assert.ok(headers >= 450 && headers < 2500, `headers: closed after ${Math.round(headers)} ms`);
      assert.ok(body >= 950 && body < 3000, `body: closed after ${Math.round(body)} ms`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
