import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEstuary } from '../../support/estuary.ts';
import { postJson } from '../../support/http.ts';
import { LokiFake } from '../../support/loki-fake.ts';
import { freePort, waitFor } from '../../support/wait.ts';

/**
 * Loki refuses an entry older than its stream's newest entry minus max_chunk_age/2 ("entry
 * too far behind"; 1h in Loki, 2 s here). Records flow continuously (timestamps = now) while
 * Loki is down (503) for longer than that window: when it is back, chunks must reach it in
 * order, or a newer chunk moves the stream's newest entry ahead and the older chunks, retried
 * afterwards, are refused for good.
 *
 * `buffer.ordered` (the default for loki) holds newer chunks behind the oldest one while it
 * waits on its backoff: nothing is refused. The control, `ordered: false` with four flush
 * threads, shows the refusals do happen otherwise, deterministically: once Loki is back, a
 * freshly sealed chunk goes at once while chunks sealed early in the outage wait up to
 * max_interval (2 s) for their next retry, by which time they are more than 2 s behind.
 */

const WINDOW_MS = 2000;
const OUTAGE_MS = 5000;

async function outage(outputBuffer: string) {
  const fake = await LokiFake.start({ tooFarBehindMs: WINDOW_MS });
  const port = await freePort();
  const e = await startEstuary(`
service:
  shutdown_timeout: 2s
  buffer: { flush_interval: 100ms, retry: { wait: 1s, max_interval: 2s, randomize: false } }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - type: loki
    id: loki
    match: "app.**"
    url: ${fake.url}
    labels: '{job="shop"}'
    ${outputBuffer}
`).catch(async (err: unknown) => {
    await fake.stop();
    throw err;
  });

  // A steady sender: one record every 20 ms, stamped with the time it arrives.
  const acked: number[] = [];
  const refused: number[] = [];
  let sending = true;
  const sender = (async () => {
    for (let seq = 0; sending; seq++) {
      const res = await postJson(port, 'app.shop', { seq, msg: 'order placed' });
      await res.arrayBuffer();
      if (res.ok) acked.push(seq);
      else refused.push(res.status);
      await sleep(20);
    }
  })();
  const stored = () => new Set(fake.lines().map((l) => (JSON.parse(l) as { seq: number }).seq));
  const buffer = e.app.buffer('loki')!;

  try {
    await waitFor(() => fake.count() >= 10, { what: 'the first entries, before the outage' });
    fake.faults = Array.from({ length: 100_000 }, () => ({ status: 503 }));
    const down = Date.now();
    await waitFor(() => Date.now() - down >= OUTAGE_MS, { timeoutMs: OUTAGE_MS + 1000 });
    fake.faults = [];
    const back = Date.now();
    // Records keep flowing a while after Loki is back, then stop.
    await waitFor(() => Date.now() - back >= 500, { timeoutMs: 2000 });
    sending = false;
    await sender;
    // Until every acked record is in Loki or in the dead-letter queue.
    await waitFor(
      async () => {
        const dead = (await buffer.deadLetter.list()).reduce((n, d) => n + d.count, 0);
        const s = buffer.stats();
        return s.queueLength + s.stageLength === 0 && stored().size + dead >= acked.length;
      },
      { timeoutMs: 8000, what: 'the buffer to drain' },
    );
    assert.deepEqual(refused, [], 'the input accepted everything');
    assert.ok(fake.pushes.some((p) => p.status === 503));
    const dead = await buffer.deadLetter.list();
    const deadSeqs = new Set<number>();
    for (const d of dead)
      for (const entry of (await buffer.deadLetter.show(d.id))!.entries)
        deadSeqs.add(entry.record.seq as number);
    return {
      acked,
      stored: stored(),
      dead,
      deadSeqs,
      refusedPushes: fake.pushes.filter((p) => p.status === 400),
    };
  } finally {
    sending = false;
    await sender.catch(() => {});
    await e.stop();
    await fake.stop();
  }
}

describe('loki: an outage longer than the too-far-behind window', () => {
  it('ordered (the default): every record delivered, none refused as too far behind', async () => {
    const { acked, stored, dead, refusedPushes } = await outage('');
    assert.deepEqual(
      refusedPushes.map((p) => p.answer),
      [],
    );
    assert.deepEqual(dead, []);
    assert.ok(acked.length > (OUTAGE_MS / 20) * 0.5, `${acked.length} records sent`);
    assert.deepEqual(
      [...stored].sort((a, b) => a - b),
      acked,
    );
  });

  it('control, ordered: false with 4 flush threads: older chunks retried late are refused as too far behind', async () => {
    const { acked, stored, dead, deadSeqs, refusedPushes } = await outage(
      'buffer: { ordered: false, flush_thread_count: 4 }',
    );
    assert.ok(refusedPushes.length > 0, 'Loki refused some pushes');
    assert.ok(dead.length > 0, 'dead-lettered');
    for (const d of dead) assert.match(d.reason, /entry too far behind/);
    const missing = acked.filter((seq) => !stored.has(seq));
    console.log(
      `ordered: false: ${refusedPushes.length} pushes refused, ${missing.length} of ${acked.length} records not in Loki, ${dead.length} dead-letter chunks`,
    );
    assert.ok(missing.length > 0, 'records missing from Loki');
    // Nothing lost either way: what Loki did not store is in the dead-letter queue (a refused
    // request is dead-lettered whole, so some of it may be in Loki too).
    assert.deepEqual(
      missing.filter((seq) => !deadSeqs.has(seq)),
      [],
    );
  });
});
