import assert from 'node:assert/strict';
import { RetryableError } from '../../src/core/errors.ts';
import { SilentServer } from '../../src/plugin/testing.ts';

export { SilentServer };

/**
 * Points a write at a SilentServer with a signal that aborts after `abortMs`, and checks the
 * write gives up then: a RetryableError matching `message`, within half a second of the abort.
 */
export async function assertAbandonedAtAbort(
  write: (url: string, signal: AbortSignal) => Promise<unknown>,
  message: RegExp,
  abortMs = 300,
): Promise<void> {
  const silent = await SilentServer.start();
  try {
    const started = Date.now();
    await assert.rejects(write(silent.url, AbortSignal.timeout(abortMs)), (err: Error) => {
      assert.ok(err instanceof RetryableError, String(err));
      assert.match(err.message, message);
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took >= abortMs - 20 && took < abortMs + 500, `abandoned after ${took}ms`);
    assert.equal(silent.accepted, 1, 'the request reached the server');
  } finally {
    await silent.stop();
  }
}
