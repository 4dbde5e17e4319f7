import { createServer } from 'node:net';

/** Polls `check` until it returns a truthy value or `timeoutMs` passes; never a bare sleep. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  { timeoutMs = 5000, intervalMs = 10, what = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * How `work` settled, failing if it is still pending after `timeoutMs`: for "must not hang"
 * checks that then look at the value or the error.
 */
export async function settlesWithin<T>(
  work: Promise<T>,
  timeoutMs: number,
): Promise<{ value?: T; error?: unknown; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${timeoutMs}ms`)), timeoutMs);
  });
  try {
    return await Promise.race([
      work.then(
        (value) => ({ value, ms: Date.now() - started }),
        (error: unknown) => ({ error, ms: Date.now() - started }),
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
