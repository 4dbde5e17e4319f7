import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startEstuary } from '../support/estuary.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { assertAllDelivered, ForwardLoad, SentinelGroup } from '../support/redis.ts';
import { freePort, waitFor } from '../support/wait.ts';

/**
 * The Sentinel deployment the README documents (a master, a replica, three sentinels;
 * `wait_replicas: 1`), failed over for real under acknowledged forward load.
 */
describe('redis buffer with Sentinel: the master is SIGKILLed under load', () => {
  it('Sentinel promotes the replica, Estuary follows it without a restart, every acked record is delivered', async (t) => {
    const group = await SentinelGroup.start({ downAfterMs: 1000, failoverTimeoutMs: 3000 });
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer:
    type: redis
    sentinels: [${group.addresses.map((a) => `"${a}"`).join(', ')}]
    sentinel_name: ${group.name}
    wait_replicas: 1
    recovery_timeout: 3s
    flush_interval: 100ms
    chunk_limit_records: 1000
    retry: { wait: 50ms, max_interval: 500ms }
inputs:
  - { type: forward, id: fwd, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: scripted, id: sentinel_sink }
`);
    let load: ForwardLoad | undefined;
    after(async () => {
      await load?.stop();
      await e.stop();
      await group.stop();
    });
    const sink = scriptedInstances.get('sentinel_sink')!;
    const [oldMaster] = group.nodes;
    assert.equal(await group.master(), oldMaster);

    load = new ForwardLoad(port, { tag: 'app.sentinel' });
    await waitFor(() => load!.acked.size >= 20_000 && sink.delivered.length > 0, {
      timeoutMs: 15_000,
      what: '20000 records acked, some delivered, before the kill',
    });

    await oldMaster!.kill();
    const killedAt = Date.now();
    const newMaster = await group.waitForFailover(oldMaster!);
    const failoverMs = Date.now() - killedAt;

    // The new master has no replica until the old one rejoins: WAIT 1 cannot be met, so
    // nothing may be acked meanwhile (a batch it did store is sent again, hence duplicates).
    // Estuary must be connected to it and refusing before the old master comes back.
    const ackedAtPromotion = load.acked.size;
    const unackedAtPromotion = load.unacked;
    const promotedAt = Date.now();
    await waitFor(async () => (await e.readyz()) === 200, {
      timeoutMs: 10_000,
      what: '/readyz 200 again, connected to the new master',
    });
    const readyMs = Date.now() - promotedAt;
    await waitFor(() => load!.unacked >= unackedAtPromotion + 3, {
      timeoutMs: 10_000,
      what: 'senders refused by the new master while it has no replica',
    });
    assert.equal(load.acked.size, ackedAtPromotion, 'nothing acked while no replica has it');
    assert.match(
      await newMaster.command('CLIENT', 'LIST'),
      /name=estuary:/,
      'Estuary is connected to the promoted replica',
    );

    await group.rejoin(oldMaster!);
    const ackedAtRejoin = load.acked.size;
    const deliveredAtRejoin = sink.delivered.length;
    await waitFor(() => load!.acked.size >= ackedAtRejoin + 20_000, {
      timeoutMs: 15_000,
      what: '20000 more records acked once the old master is a replica again',
    });
    await assertAllDelivered(
      t,
      load,
      sink,
      `failover ${failoverMs} ms after the kill, /readyz 200 ${readyMs} ms after it; ` +
        `${ackedAtPromotion} acked before the promotion, ${load.acked.size - ackedAtRejoin} after the rejoin`,
    );
    assert.ok(sink.delivered.length > deliveredAtRejoin, 'the output kept receiving after the failover');
    assert.equal(await e.readyz(), 200);
  });
});
