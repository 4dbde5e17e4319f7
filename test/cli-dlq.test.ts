import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { RedisBackend } from '../src/buffer/redis/redis-store.ts';
import { resolveBufferSettings } from '../src/config/schema.ts';
import { makeBatch } from '../src/core/batch.ts';
import { EventTime } from '../src/core/event-time.ts';
import { silentLogger } from '../src/logger.ts';
import { Metrics } from '../src/metrics/registry.ts';
import { emitTo, ScriptedOutput } from './support/outputs.ts';
import { RedisServer, settingsFor } from './support/redis.ts';
import { waitFor } from './support/wait.ts';

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['src/cli.ts', ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('estuary dlq (against the configured Redis)', async () => {
  const redis = await RedisServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'estuary-dlq-'));
  const config = join(dir, 'estuary.yaml');
  writeFileSync(
    config,
    `service:
  buffer: { type: redis, redis_url: "${redis.url}" }
outputs:
  - { type: "null", id: es }
`,
  );
  const memoryConfig = join(dir, 'memory.yaml');
  writeFileSync(memoryConfig, 'outputs:\n  - { type: "null", id: es }\n');

  // A running replica whose sink refuses two chunks for good, then takes everything.
  const backend = new RedisBackend(settingsFor(redis.url), silentLogger());
  await backend.connect(5000);
  const output = new ScriptedOutput('es', ['fatal', 'fatal']);
  const buffer = backend.create(output, resolveBufferSettings({ flush_interval: 20 }), {
    logger: silentLogger(),
    metrics: new Metrics(),
  });
  await buffer.start();
  after(async () => {
    await buffer.stop(Date.now() + 1000);
    await backend.close();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const from of [0, 3]) {
    await emitTo(
      buffer,
      makeBatch(
        'app.dlq',
        [0, 1, 2].map((i) => ({ time: new EventTime(1_700_000_000, 0), record: { n: from + i } })),
      ),
    );
    await waitFor(async () => (await buffer.deadLetter.list()).length === (from === 0 ? 1 : 2));
  }

  it('list, show, replay, purge', async () => {
    const list = await cli('dlq', 'list', '--output', 'es', '-c', config);
    assert.equal(list.code, 0, list.stderr);
    const { output: listed, chunks } = JSON.parse(list.stdout) as {
      output: string;
      chunks: { id: string; reason: string; count: number; attempts: number; time: string }[];
    };
    assert.equal(listed, 'es');
    assert.equal(chunks.length, 2);
    assert.match(chunks[0]!.reason, /400 mapper_parsing_exception/);
    assert.equal(chunks[0]!.count, 3);
    assert.equal(chunks[0]!.attempts, 1);
    assert.match(chunks[0]!.time, /^\d{4}-\d\d-\d\dT/);

    const show = await cli('dlq', 'show', '--output', 'es', '-c', config, chunks[0]!.id);
    assert.equal(show.code, 0, show.stderr);
    const shown = JSON.parse(show.stdout) as { entries: { tag: string; record: { n: number } }[] };
    assert.deepEqual(
      shown.entries.map((e) => [e.tag, e.record.n]),
      [
        ['app.dlq', 0],
        ['app.dlq', 1],
        ['app.dlq', 2],
      ],
    );

    const replay = await cli('dlq', 'replay', '--output', 'es', '-c', config, chunks[0]!.id);
    assert.equal(replay.code, 0, replay.stderr);
    assert.deepEqual(JSON.parse(replay.stdout), { replayed: chunks[0]!.id });
    await waitFor(() => output.delivered.length === 3, {
      what: 'the running replica delivers the replayed chunk',
    });

    const purge = await cli('dlq', 'purge', '--output', 'es', '-c', config, '--all');
    assert.equal(purge.code, 0, purge.stderr);
    assert.deepEqual(JSON.parse(purge.stdout), { removed: 1 });
    assert.equal((await buffer.deadLetter.list()).length, 0);
  });

  it('says what is wrong: unknown output or chunk, memory buffer, bad usage', async () => {
    const unknown = await cli('dlq', 'list', '--output', 'nope', '-c', config);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown output "nope" \(outputs: es\)/);
    const missing = await cli('dlq', 'show', '--output', 'es', '-c', config, 'no-such-chunk');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no dead-letter chunk "no-such-chunk"/);
    const memory = await cli('dlq', 'list', '--output', 'es', '-c', memoryConfig);
    assert.equal(memory.code, 1);
    assert.match(memory.stderr, /buffer type memory.*admin API/);
    for (const args of [
      ['dlq', 'purge', '--output', 'es', '-c', config],
      ['dlq', 'frobnicate', '--output', 'es'],
    ]) {
      const usage = await cli(...args);
      assert.equal(usage.code, 2, args.join(' '));
      assert.match(usage.stderr, /Usage: estuary dlq/);
    }
  });
});
