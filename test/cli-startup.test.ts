import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RedisServer } from './support/redis.ts';
import { freePort, waitFor } from './support/wait.ts';

/**
 * `estuary run` with its Redis down at startup: /healthz must answer at once (a liveness probe
 * would otherwise kill the pod in a loop), /readyz must say 503 naming redis until it answers.
 */
async function redisDownAtStartup(workers: number, waitPastStartup: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'estuary-startup-'));
  const [httpPort, adminPort] = [await freePort(), await freePort()];
  // A port of our own with nothing listening: a Redis started and killed; started again below.
  const redis = await RedisServer.start();
  await redis.kill();
  // Hold the port while Redis is down (every connection dropped: unreachable), so that another
  // test running beside this one cannot take it and answer in HTTP where Redis is expected.
  const holder = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => holder.listen(redis.port, '127.0.0.1', resolve));
  const config = join(dir, 'estuary.yaml');
  writeFileSync(
    config,
    `service:
  log_level: info
  workers: ${workers}
  http: { listen: 127.0.0.1, port: ${adminPort} }
  buffer: { type: redis, redis_url: "${redis.url}", flush_interval: 50ms }
inputs:
  - { type: http, listen: 127.0.0.1, port: ${httpPort} }
outputs:
  - { type: file, id: archive, path: ${dir}/out.ndjson, format: record }
`,
  );
  const started = performance.now();
  const child = spawn(process.execPath, ['src/cli.ts', 'run', '-c', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const admin = (path: string) => fetch(`http://127.0.0.1:${adminPort}${path}`);
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`exited: ${stderr}`);
        return (await admin('/healthz').catch(() => undefined))?.status === 200;
      },
      { timeoutMs: 5000, intervalMs: 20, what: '/healthz 200' },
    );
    const healthyAfter = performance.now() - started;
    // Node's own startup and the module load take most of it; the Redis wait (10 s) none.
    assert.ok(healthyAfter < 3000, `/healthz answered after ${Math.round(healthyAfter)} ms`);

    // A worker that has not built its Estuary yet is "starting"; then the reason is redis.
    const notReady = await waitFor(
      async () => {
        const res = await admin('/readyz');
        assert.equal(res.status, 503);
        const body = (await res.json()) as { ready: boolean; buffer: string };
        assert.equal(body.ready, false);
        return /redis unreachable/.test(body.buffer) ? body : undefined;
      },
      { timeoutMs: 5000, what: '/readyz 503 naming redis' },
    );
    assert.match(notReady.buffer, /redis unreachable/);

    if (waitPastStartup) {
      // Still 503 past the 10 s startup wait (the inputs listen by then), and /healthz still 200.
      await new Promise((r) => setTimeout(r, 11_000));
      assert.equal((await admin('/healthz')).status, 200);
      const still = await admin('/readyz');
      assert.equal(still.status, 503);
      assert.match(((await still.json()) as { buffer: string }).buffer, /redis unreachable/);
    }

    await new Promise((resolve) => holder.close(resolve));
    await redis.start();
    await waitFor(async () => (await admin('/readyz')).status === 200, {
      timeoutMs: 15_000,
      what: '/readyz 200 once Redis is up',
    });
    const post = await fetch(`http://127.0.0.1:${httpPort}/app.a`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"n":1}',
    });
    assert.equal(post.status, 200, await post.text());
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    holder.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('estuary run with Redis unreachable at startup (a real process)', () => {
  it(
    '/healthz answers 200 at once; /readyz is 503 naming redis until Redis is up, then 200 without a restart',
    {
      timeout: 60_000,
    },
    () => redisDownAtStartup(1, true),
  );

  it(
    'the same with service.workers: 2 (the supervisor serves the admin port while workers start)',
    {
      timeout: 60_000,
    },
    () => redisDownAtStartup(2, false),
  );

  for (const workers of [1, 2]) {
    it(`the admin port taken: exit 1 before anything starts (workers: ${workers})`, {
      timeout: 30_000,
    }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'estuary-startup-'));
      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const adminPort = (taken.address() as { port: number }).port;
      try {
        const config = join(dir, 'estuary.yaml');
        writeFileSync(
          config,
          `service:
  workers: ${workers}
  http: { listen: 127.0.0.1, port: ${adminPort} }
inputs:
  - { type: http, listen: 127.0.0.1, port: ${await freePort()} }
outputs:
  - { type: "null", id: drop }
`,
        );
        const child = spawn(process.execPath, ['src/cli.ts', 'run', '-c', config], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr!.on('data', (d) => {
          stderr += d;
        });
        const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
        assert.equal(code, 1, stderr);
        assert.match(stderr, /startup failed/);
        assert.match(stderr, /EADDRINUSE/);
      } finally {
        taken.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
