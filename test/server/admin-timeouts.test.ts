import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { silentLogger } from '../../src/logger.ts';
import { ADMIN_TIMEOUTS, AdminServer, type AdminTarget } from '../../src/server/admin.ts';
import { openRaw } from '../support/raw-connection.ts';

const target: AdminTarget = {
  metrics: async () => ({ contentType: 'text/plain', text: '' }),
  readiness: async () => ({ ready: true }),
  status: async () => ({}),
  deadLetter: () => undefined,
};

/** Opens a raw connection, writes `bytes`; resolves with when it closed (ms) and what came back. */
async function holdOpen(port: number, bytes: string): Promise<{ closedAfter: number; received: string }> {
  const c = await openRaw(port);
  c.socket.write(bytes);
  return { closedAfter: await c.closed, received: c.received() };
}

describe('admin server timeouts', () => {
  test('the defaults: headers 10 s, a whole request 30 s, keep-alive idle 5 s', () => {
    assert.deepEqual(ADMIN_TIMEOUTS, { headerMs: 10_000, requestMs: 30_000, idleMs: 5_000 });
  });

  test('headers that never end: 408 and closed at the header timeout, while probes still answer', {
    timeout: 10_000,
  }, async () => {
    const admin = new AdminServer(
      target,
      { listen: '127.0.0.1', port: 0, authTokens: [], timeouts: { headerMs: 500 } },
      silentLogger(),
    );
    await admin.start();
    try {
      const held = Array.from({ length: 20 }, () =>
        holdOpen(admin.port, 'GET /healthz HTTP/1.1\r\nhost: x\r\n'),
      );
      const probe = await fetch(`http://127.0.0.1:${admin.port}/healthz`);
      assert.equal(probe.status, 200);
      for (const { closedAfter, received } of await Promise.all(held)) {
        assert.ok(closedAfter >= 450 && closedAfter < 2500, `closed after ${Math.round(closedAfter)} ms`);
        assert.match(received, /^HTTP\/1\.1 408 /);
      }
    } finally {
      await admin.stop();
    }
  });

  test('a body that never ends is cut at the request timeout', { timeout: 10_000 }, async () => {
    const admin = new AdminServer(
      target,
      { listen: '127.0.0.1', port: 0, authTokens: ['t'], timeouts: { requestMs: 800 } },
      silentLogger(),
    );
    await admin.start();
    try {
      const { closedAfter } = await holdOpen(
        admin.port,
        'DELETE /api/v1/outputs/x/dead-letter HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n',
      );
      assert.ok(closedAfter >= 750 && closedAfter < 2500, `closed after ${Math.round(closedAfter)} ms`);
    } finally {
      await admin.stop();
    }
  });
});
