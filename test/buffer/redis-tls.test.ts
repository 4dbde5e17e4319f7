import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Estuary } from '../../src/app.ts';
import { RedisBackend } from '../../src/buffer/redis/redis-store.ts';
import { builtinRegistry } from '../../src/builtins.ts';
import { loadConfigFile } from '../../src/config/load.ts';
import { silentLogger } from '../../src/logger.ts';
import { postJson } from '../support/http.ts';
import { scriptedInstances, scriptedOutput } from '../support/outputs.ts';
import { RedisServer, settingsFor } from '../support/redis.ts';
import { selfSignedCert } from '../support/tls.ts';
import { freePort, waitFor } from '../support/wait.ts';

describe('redis buffer over TLS (rediss://, a real redis-server with --tls-port)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'estuary-redis-tls-'));
  const serverDir = mkdtempSync(join(dir, 'server-'));
  const otherDir = mkdtempSync(join(dir, 'other-'));
  const server = selfSignedCert(serverDir);
  const other = selfSignedCert(otherDir);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('with tls.ca_file (relative to the config file) the records are delivered end to end', async () => {
    const redis = await RedisServer.startTls(server);
    const port = await freePort();
    const file = join(dir, 'estuary.yaml');
    writeFileSync(
      file,
      `
service:
  buffer:
    type: redis
    redis_url: ${redis.url}
    tls: { ca_file: ${basename(serverDir)}/cert.pem }
    flush_interval: 50ms
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: scripted, id: tls_sink }
`,
    );
    const registry = builtinRegistry().register(scriptedOutput);
    const app = await Estuary.create(loadConfigFile(file, registry, {}), {
      registry,
      logger: silentLogger(),
    });
    after(async () => {
      await app.stop();
      await redis.stop();
    });
    await app.start();
    assert.equal(app.ready(), true, 'connected over TLS');
    const records = Array.from({ length: 100 }, (_, n) => ({ n }));
    const res = await postJson(port, 'app.tls', records);
    assert.equal(res.status, 200);
    const sink = scriptedInstances.get('tls_sink')!;
    await waitFor(() => sink.delivered.length === 100, { what: 'delivered through Redis over TLS' });
    assert.deepEqual(
      sink.delivered.map((e) => e.record.n),
      records.map((r) => r.n),
    );
    // The data did go through this Redis.
    assert.match(await redis.command('INFO', 'stats'), /total_commands_processed:\d+/);
  });

  it('a wrong CA is refused: not ready, and the log says the certificate was not accepted and what to check', async () => {
    const redis = await RedisServer.startTls(server);
    const lines: { msg: string; err?: string }[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        cb();
      },
    });
    const backend = new RedisBackend(
      settingsFor(redis.url, { tls: { ca: readFileSync(other.cert) } }),
      pino({ level: 'info' }, stream),
    );
    after(async () => {
      await backend.close();
      await redis.stop();
    });
    assert.equal(await backend.connect(2000), false, 'never connected');
    assert.equal(backend.ready(), false);
    const err = lines.find((l) => l.msg === 'redis connection error')?.err ?? '';
    assert.match(err, /^redis TLS: the server's certificate was not accepted \(/, JSON.stringify(lines));
    assert.match(err, /tls\.ca_file/);
  });

  it('a plain redis:// client against the TLS port does not pass for connected', async () => {
    const redis = await RedisServer.startTls(server);
    const backend = new RedisBackend(settingsFor(redis.url.replace('rediss://', 'redis://')), silentLogger());
    after(async () => {
      await backend.close();
      await redis.stop();
    });
    assert.equal(await backend.connect(1500), false);
  });
});
