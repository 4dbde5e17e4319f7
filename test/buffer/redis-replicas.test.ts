import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { unpack } from '../../src/core/msgpack.ts';
import { encodePackedForward } from '../../src/protocol/forward/modes.ts';
import { RawClient } from '../support/forward-client.ts';
import { postJson } from '../support/http.ts';
import { sample } from '../support/prom-text.ts';
import { RedisServer } from '../support/redis.ts';
import { freePort, waitFor } from '../support/wait.ts';

/**
 * Real aggregator processes (`node src/cli.ts run`): http (and forward) input → redis
 * buffer → file output, SIGKILLed like a pod that dies.
 */
const RECOVERY_MS = 3000;

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

interface Aggregator {
  child: ChildProcess;
  httpPort: number;
  adminPort: number;
  exited: Promise<number | null>;
  stderr: () => string;
}

async function aggregator(config: string, httpPort: number, adminPort: number): Promise<Aggregator> {
  const child = spawn(process.execPath, ['src/cli.ts', 'run', '-c', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  await waitFor(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited: ${stderr}`);
      return (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok;
    },
    { timeoutMs: 15_000, what: 'aggregator /readyz' },
  );
  return { child, httpPort, adminPort, exited, stderr: () => stderr };
}

function writeConfig(
  dir: string,
  name: string,
  redisUrl: string,
  httpPort: number,
  adminPort: number,
  extra = '',
  extraInput = '',
) {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `service:
  log_level: warn
  shutdown_timeout: 5s
  http: { listen: 127.0.0.1, port: ${adminPort} }
  buffer:
    type: redis
    redis_url: ${redisUrl}
    recovery_timeout: ${RECOVERY_MS}ms
    ${extra}
inputs:
  - { type: http, listen: 127.0.0.1, port: ${httpPort} }
${extraInput}
outputs:
  - { type: file, id: archive, path: ${dir}/archive-${name}.ndjson, format: record }
`,
  );
  return file;
}

async function post(port: number, records: { id: string }[]): Promise<number> {
  try {
    const res = await postJson(port, 'app.kill', records);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0; // refused or reset: the process is down
  }
}

/**
 * One PackedForward message with an ack `chunk`, on its own connection, as a forward client
 * with require_ack_response sends it: true once acked, false when refused, closed or timed out.
 */
async function sendForward(port: number, records: { id: string }[]): Promise<boolean> {
  let client: RawClient;
  try {
    client = await RawClient.connect({ port });
  } catch {
    return false;
  }
  try {
    const chunk = randomUUID();
    const payload = makeBatch(
      'app.kill',
      records.map((record) => ({ time: new EventTime(1_700_000_000, 0), record })),
    ).payload;
    await client.send(encodePackedForward('app.kill', payload, { chunk }));
    await waitFor(() => client.frames.length > 0 || client.closed, { timeoutMs: 10_000, intervalMs: 5 });
    if (client.frames.length === 0) return false;
    return (unpack(client.frames[0]!) as { ack?: string }).ack === chunk;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/** Record ids in the files, and lines that did not parse (a write torn by SIGKILL). */
function readArchive(files: string[]): { ids: string[]; torn: number } {
  const ids: string[] = [];
  let torn = 0;
  for (const file of files) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line === '') continue;
      try {
        ids.push((JSON.parse(line) as { id: string }).id);
      } catch {
        torn += 1;
      }
    }
  }
  return { ids, torn };
}

describe('redis buffer: aggregator processes die', () => {
  it('two replicas share one Redis: one is SIGKILLed with staged chunks, the other delivers them within recovery_timeout', async (t) => {
    const redis = await RedisServer.start();
    const dir = mkdtempSync(join(tmpdir(), 'estuary-replicas-'));
    after(async () => {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const extra = 'flush_interval: 1h';
    const a = await aggregator(
      writeConfig(dir, 'a', redis.url, ports[0]!, ports[1]!, extra),
      ports[0]!,
      ports[1]!,
    );
    const b = await aggregator(
      writeConfig(dir, 'b', redis.url, ports[2]!, ports[3]!, extra),
      ports[2]!,
      ports[3]!,
    );

    const sent: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const records = Array.from({ length: 100 }, (_, i) => ({ id: `r-${batch}-${i}` }));
      assert.equal(await post(a.httpPort, records), 200);
      sent.push(...records.map((r) => r.id));
    }
    // flush_interval 1h: all of it sits in A's open chunk. B reads the same numbers from Redis.
    const labels = { plugin_id: 'archive', type: 'file' };
    const metricsOf = async (x: Aggregator) =>
      (await fetch(`http://127.0.0.1:${x.adminPort}/metrics`)).text();
    const [ma, mb] = await Promise.all([metricsOf(a), metricsOf(b)]);
    assert.equal(sample(mb, 'fluentd_output_status_buffer_stage_length', labels).value, 1);
    assert.equal(
      sample(mb, 'fluentd_output_status_buffer_stage_byte_size', labels).value,
      sample(ma, 'fluentd_output_status_buffer_stage_byte_size', labels).value,
    );
    const files = [join(dir, 'archive-a.ndjson'), join(dir, 'archive-b.ndjson')];
    assert.equal(readArchive(files).ids.length, 0, 'nothing delivered before the kill');

    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor(
      () => {
        const got = new Set(readArchive(files).ids);
        return sent.every((id) => got.has(id));
      },
      { timeoutMs: RECOVERY_MS + 5000, intervalMs: 50, what: 'every record delivered by B' },
    );
    const elapsed = Date.now() - killedAt;
    const { ids } = readArchive(files);
    t.diagnostic(
      `delivered by the survivor ${elapsed}ms after the kill (recovery_timeout ${RECOVERY_MS}ms); ${ids.length} lines for ${sent.length} records`,
    );
    assert.ok(elapsed <= RECOVERY_MS + 500, `took ${elapsed}ms`);
    assert.equal(new Set(ids).size, sent.length, '0 lost');
    assert.ok(existsSync(files[1]!) && !existsSync(files[0]!), 'B wrote them');

    b.child.kill('SIGTERM');
    assert.equal(await b.exited, 0);
  });

  for (const transport of ['forward', 'http'] as const) {
    it(`kill test (${transport}): 100,000 records while the aggregator is SIGKILLed 3 times and restarted: every acked record in the file, 0 lost`, async (t) => {
      await killTest(t, transport);
    });
  }
});

async function killTest(t: TestContext, transport: 'forward' | 'http'): Promise<void> {
  const redis = await RedisServer.start();
  const dir = mkdtempSync(join(tmpdir(), 'estuary-kill-'));
  after(async () => {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const [httpPort, adminPort, forwardPort] = [await freePort(), await freePort(), await freePort()];
  // Chunks under 512KiB: Node appends those in one write(), which SIGKILL cannot tear.
  const config = writeConfig(
    dir,
    'k',
    redis.url,
    httpPort,
    adminPort,
    'flush_interval: 200ms\n    chunk_limit_size: 256KiB',
    `  - { type: forward, listen: 127.0.0.1, port: ${forwardPort} }`,
  );
  let current = await aggregator(config, httpPort, adminPort);

  const TOTAL = 100_000;
  const PER_BATCH = 500;
  const SENDERS = 4;
  const acked: string[] = [];
  let retries = 0;
  let nextBatch = 0;
  const senders = Array.from({ length: SENDERS }, async () => {
    for (let batch = nextBatch++; batch < TOTAL / PER_BATCH; batch = nextBatch++) {
      const records = Array.from({ length: PER_BATCH }, (_, i) => ({ id: `k-${batch}-${i}` }));
      const send = () =>
        transport === 'http'
          ? post(httpPort, records).then((status) => status === 200)
          : sendForward(forwardPort, records);
      while (!(await send())) {
        retries += 1;
        // The sender's own backoff while the aggregator is down or refusing.
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const r of records) acked.push(r.id);
    }
  });

  for (let kill = 1; kill <= 3; kill++) {
    await waitFor(() => acked.length >= kill * 22_000, {
      timeoutMs: 30_000,
      what: `${kill * 22_000} records acked before kill ${kill}`,
    });
    current.child.kill('SIGKILL');
    await current.exited;
    current = await aggregator(config, httpPort, adminPort);
  }
  await Promise.all(senders);

  const file = join(dir, 'archive-k.ndjson');
  await waitFor(
    () => {
      const got = new Set(readArchive([file]).ids);
      return acked.every((id) => got.has(id));
    },
    { timeoutMs: 20_000, intervalMs: 200, what: 'every acked record in the file' },
  );
  const { ids, torn } = readArchive([file]);
  const distinct = new Set(ids);
  const lost = acked.filter((id) => !distinct.has(id)).length;
  t.diagnostic(
    `acked ${acked.length}, lines ${ids.length}, duplicates ${ids.length - distinct.size}, torn lines ${torn}, lost ${lost}, sender retries ${retries}`,
  );
  assert.equal(acked.length, TOTAL);
  assert.equal(lost, 0);

  current.child.kill('SIGTERM');
  assert.equal(await current.exited, 0);
}
