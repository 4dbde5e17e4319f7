import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ElasticsearchFake } from '../../support/elasticsearch-fake.ts';
import { startEstuary } from '../../support/estuary.ts';
import { postJson } from '../../support/http.ts';
import { sample } from '../../support/prom-text.ts';
import { RedisServer } from '../../support/redis.ts';
import { freePort, waitFor } from '../../support/wait.ts';

/**
 * A cluster that answers 401 to everything for a while — a rotated secret not yet rolled out
 * to the aggregators — then takes writes again. The output halts: it keeps every chunk, probes
 * with the oldest one at the retry backoff, and resumes by itself; the inputs keep accepting
 * meanwhile. Nothing is dead-lettered (not even with `retry.max_times: 1`: the retry policy
 * does not run down while halted) and every record is indexed exactly once.
 *
 * Issue 11 describes a 20 s outage; these use 4 s (2 s for the max_times case) to keep the
 * suite short: what matters is that the outage spans many probes at the backoff.
 */

const CREDS = { username: 'estuary', password: 'current-secret' };
const ROTATED = { username: 'estuary', password: 'next-secret' };
const RETRY_WAIT_MS = 200;

interface Scenario {
  /** Extra `service.buffer` keys (a YAML flow mapping's body). */
  buffer: string;
  /** Extra `retry` keys. */
  retry?: string;
  outageMs: number;
}

async function runOutage({ buffer, retry = '', outageMs }: Scenario) {
  const es = await ElasticsearchFake.start({ auth: CREDS });
  const port = await freePort();
  const e = await startEstuary(`
service:
  shutdown_timeout: 2s
  buffer:
    { ${buffer} flush_interval: 100ms,
      retry: { wait: ${RETRY_WAIT_MS}ms, max_interval: 1s, randomize: false ${retry} } }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - type: elasticsearch
    id: es
    match: "app.**"
    hosts: ["${es.url}"]
    username: ${CREDS.username}
    password: ${CREDS.password}
    index: app-logs
`).catch(async (err: unknown) => {
    await es.stop();
    throw err;
  });
  const admin = (path: string) => fetch(`http://127.0.0.1:${e.admin.port}${path}`);
  const halted = async () => sample(await e.metrics(), 'estuary_output_halted', { plugin_id: 'es' }).value;
  const outputStatus = async () => {
    const status = (await (await admin('/api/v1/status')).json()) as {
      outputs: { id: string; buffer: { halted: number; haltReason?: string } }[];
    };
    return status.outputs.find((o) => o.id === 'es')!.buffer;
  };

  // A steady sender: one record every 20 ms, each with its own sequence number.
  const acked: number[] = [];
  const refused: number[] = [];
  const ackedDuringOutage: number[] = [];
  let outage = false;
  let sending = true;
  const sender = (async () => {
    for (let seq = 0; sending; seq++) {
      const res = await postJson(port, 'app.web', { seq, msg: 'GET /cart 200' });
      await res.arrayBuffer();
      if (res.ok) {
        acked.push(seq);
        if (outage) ackedDuringOutage.push(seq);
      } else refused.push(res.status);
      await sleep(20);
    }
  })();

  // estuary_output_halted, scraped every 50 ms for the whole run.
  const seen: { at: number; halted: number }[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      seen.push({ at: Date.now(), halted: await halted().catch(() => Number.NaN) });
      await sleep(50);
    }
  })();

  try {
    await waitFor(() => es.count() >= 5, { what: 'the first documents, before the outage' });
    assert.equal(await halted(), 0);

    const requestsBefore = es.requests.length;
    es.auth = ROTATED;
    outage = true;
    const outageStart = Date.now();
    await waitFor(async () => (await halted()) === 1, { timeoutMs: 3000, what: 'estuary_output_halted 1' });
    const status = await outputStatus();
    assert.equal(status.halted, 1);
    assert.match(
      status.haltReason ?? '',
      /401 unauthorized.*security_exception: unable to authenticate user/,
    );

    await waitFor(() => Date.now() - outageStart >= outageMs, { timeoutMs: outageMs + 1000 });
    // Still halted at the end of the outage, and still nothing dead-lettered.
    assert.equal(await halted(), 1);
    assert.deepEqual(await e.app.buffer('es')!.deadLetter.list(), []);
    es.auth = CREDS;
    outage = false;
    // Every request in between was answered 401 (refused before the bulk handler logs it).
    const refusedBulks = es.requests.slice(requestsBefore).filter((r) => r.path.endsWith('/_bulk')).length;
    const restored = Date.now();

    await waitFor(async () => (await halted()) === 0, {
      timeoutMs: 3000,
      what: 'estuary_output_halted back to 0',
    });
    const resumedAfter = Date.now() - restored;
    assert.equal((await outputStatus()).haltReason, undefined);

    // A little more traffic after the resume, then everything acked must be indexed.
    const target = acked.length + 10;
    await waitFor(() => acked.length >= target, { what: 'records after the resume' });
    sending = false;
    await sender;
    await waitFor(() => es.count() === acked.length, {
      timeoutMs: 5000,
      what: `${acked.length} documents (have ${es.count()})`,
    });
    watching = false;
    await watcher;

    // Inputs accepted throughout: no 503, and records came in during the outage.
    assert.deepEqual(refused, []);
    assert.ok(
      ackedDuringOutage.length >= outageMs / 100,
      `${ackedDuringOutage.length} acked during the outage`,
    );
    // Every record indexed exactly once: one document per acked sequence number, none else.
    const seqs = es.documents('app-logs').map((d) => d.source.seq as number);
    assert.equal(seqs.length, acked.length);
    assert.deepEqual(
      [...seqs].sort((a, b) => a - b),
      acked,
    );
    // Dead-letter queue empty, in the API and in the metrics.
    assert.deepEqual(await e.app.buffer('es')!.deadLetter.list(), []);
    const text = await e.metrics();
    assert.equal(sample(text, 'estuary_dead_letter_records', { plugin_id: 'es' }).value, 0);
    assert.equal(sample(text, 'estuary_output_halted', { plugin_id: 'es' }).value, 0);

    // Halted from the first refusals to the restore, without flapping; 0 before and after.
    const during = seen.filter((s) => s.at > outageStart + 1000 && s.at < restored);
    assert.ok(during.length > 5, `${during.length} scrapes during the outage`);
    assert.ok(
      during.every((s) => s.halted === 1),
      'halted stayed 1 during the outage',
    );
    assert.equal(seen.filter((s) => s.at < outageStart).at(-1)?.halted, 0);
    assert.equal(seen.at(-1)!.halted, 0);

    // Probes, not a hammering: one write at a time, at the retry backoff (≥ 200 ms apart).
    assert.ok(refusedBulks >= 2, `${refusedBulks} probes answered 401`);
    assert.ok(refusedBulks <= outageMs / RETRY_WAIT_MS + 2, `${refusedBulks} probes in ${outageMs}ms`);
    // Resumed by itself, within one backoff cap (1 s) of the cluster taking writes again.
    assert.ok(resumedAfter < 1500, `resumed ${resumedAfter}ms after the restore`);
  } finally {
    sending = false;
    watching = false;
    await sender.catch(() => {});
    await watcher.catch(() => {});
    await e.stop();
    await es.stop();
  }
}

describe('elasticsearch answers 401 for a while: the output halts, keeps everything, resumes', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis?.stop();
  });

  it('memory buffer', async () => {
    await runOutage({ buffer: '', outageMs: 4000 });
  });

  it('redis buffer', async () => {
    await runOutage({
      buffer: `type: redis, redis_url: "${redis.url}", recovery_timeout: 3s,`,
      outageMs: 4000,
    });
  });

  it('retry.max_times 1 does not dead-letter during a halt (the policy does not run down)', async () => {
    await runOutage({ buffer: '', retry: ', max_times: 1', outageMs: 2000 });
  });
});
