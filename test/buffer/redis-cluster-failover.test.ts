import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startEstuary } from '../support/estuary.ts';
import { scriptedInstances } from '../support/outputs.ts';
import {
  assertAllDelivered,
  clusterNodes,
  ForwardLoad,
  info,
  migrateSlot,
  type RedisServer,
  slotMaster,
  startCluster,
} from '../support/redis.ts';
import { freePort, waitFor } from '../support/wait.ts';

/**
 * The Cluster deployment the README documents (three masters with a replica each,
 * `cluster_nodes`, `wait_replicas: 1`), changed under acknowledged forward load: the master
 * of the output's slot dies, or the slot moves to another master.
 */

/** A cluster, an Estuary on it (forward in, `type: scripted` out) and the output's slot. */
async function setUp(output: string, options = '') {
  const cluster = await startCluster(3, { replicas: 1, nodeTimeoutMs: 1000 });
  const port = await freePort();
  const e = await startEstuary(`
service:
  buffer:
    type: redis
    cluster_nodes: [${cluster.nodes.map((n) => `"127.0.0.1:${n.port}"`).join(', ')}]
    wait_replicas: 1
    recovery_timeout: 3s
    flush_interval: 100ms
    chunk_limit_records: 1000
    retry: { wait: 50ms, max_interval: 500ms }
inputs:
  - { type: forward, id: fwd, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: scripted, id: ${output}${options} }
`);
  const load = new ForwardLoad(port, { tag: `app.${output}` });
  after(async () => {
    await load.stop();
    await e.stop();
    await cluster.stop();
  });
  const sink = scriptedInstances.get(output)!;
  // Every key of the output carries its hash tag: one slot, on one master.
  const slot = Number(await cluster.nodes[0]!.query('CLUSTER', 'KEYSLOT', `{estuary:out:${output}}`));
  const byId = async (id: string | undefined) => {
    const port = (await clusterNodes(cluster.nodes[0]!)).find((n) => n.id === id)?.port;
    return cluster.nodes.find((n) => n.port === port);
  };
  return { cluster, e, load, sink, slot, byId };
}

/** Once every node of `nodes` says `node` serves `slot` and the cluster is ok. */
async function serving(nodes: RedisServer[], slot: number, node: RedisServer, what: string): Promise<void> {
  await waitFor(
    async () => {
      for (const n of nodes) {
        if ((await slotMaster(n, slot))?.port !== node.port) return false;
        if (!(await n.command('CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
      }
      return true;
    },
    { timeoutMs: 20_000, intervalMs: 50, what },
  );
}

describe('redis buffer on a Cluster: the master of the output’s slot is SIGKILLed under load', () => {
  it('its replica takes the slot, Estuary follows it without a restart, every acked record is delivered', async (t) => {
    const { cluster, e, load, sink, slot, byId } = await setUp('failover_sink');
    const owner = await slotMaster(cluster.nodes[0]!, slot);
    const oldMaster = await byId(owner?.id);
    const replica = await byId(
      (await clusterNodes(cluster.nodes[0]!)).find((n) => n.masterId === owner?.id)?.id,
    );
    assert.ok(oldMaster && replica, `slot ${slot}: a master with a replica`);
    const others = cluster.nodes.filter((n) => n !== oldMaster);

    await waitFor(() => load.acked.size >= 20_000 && sink.delivered.length > 0, {
      timeoutMs: 15_000,
      what: '20000 records acked, some delivered, before the kill',
    });
    await oldMaster.kill();
    const killedAt = Date.now();
    await serving(others, slot, replica, `the replica serving slot ${slot}, cluster_state:ok`);
    const failoverMs = Date.now() - killedAt;

    // The promoted replica has no replica of its own until the old master rejoins: WAIT 1
    // cannot be met, so nothing may be acked meanwhile; Estuary must be refusing by then.
    const ackedAtPromotion = load.acked.size;
    const unackedAtPromotion = load.unacked;
    await waitFor(() => load.unacked >= unackedAtPromotion + 3, {
      timeoutMs: 10_000,
      what: 'senders refused by the new master while it has no replica',
    });
    assert.equal(load.acked.size, ackedAtPromotion, 'nothing acked while no replica has it');
    assert.match(
      await replica.command('CLIENT', 'LIST'),
      /name=estuary:/,
      'Estuary is connected to the promoted replica',
    );

    // Restarted as a pod would be, from its nodes.conf: the cluster makes it a replica of the
    // node that took its slots.
    await oldMaster.restart();
    await waitFor(
      async () =>
        (await info(oldMaster, 'replication', 'role')) === 'slave' &&
        (await info(oldMaster, 'replication', 'master_port')) === String(replica.port) &&
        (await info(oldMaster, 'replication', 'master_link_status')) === 'up' &&
        (await info(oldMaster, 'replication', 'master_sync_in_progress')) === '0',
      { timeoutMs: 15_000, what: 'the old master back as a replica of the new one, in sync' },
    );
    const ackedAtRejoin = load.acked.size;
    const deliveredAtRejoin = sink.delivered.length;
    await waitFor(() => load.acked.size >= ackedAtRejoin + 20_000, {
      timeoutMs: 15_000,
      what: '20000 more records acked once the old master is a replica again',
    });
    await assertAllDelivered(
      t,
      load,
      sink,
      `slot ${slot}: failover ${failoverMs} ms after the kill, ${ackedAtPromotion} acked before it, ` +
        `${load.acked.size - ackedAtRejoin} after the rejoin`,
    );
    assert.ok(sink.delivered.length > deliveredAtRejoin, 'the output kept receiving after the failover');
    assert.equal(await e.readyz(), 200);
  });
});

describe('redis buffer on a Cluster: the output’s slot migrates to another master under load', () => {
  it('no script runs on a half-moved slot: the move completes without BUSYKEY, every acked record is delivered, the totals stay true', async (t) => {
    const { cluster, e, load, sink, slot, byId } = await setUp('moving_sink', ', delay_ms: 20');
    const owner = await slotMaster(cluster.nodes[0]!, slot);
    const target = await byId(
      (await clusterNodes(cluster.nodes[0]!)).find((n) => n.flags.includes('master') && n.id !== owner?.id)
        ?.id,
    );
    assert.ok(owner && target);

    await waitFor(() => load.acked.size >= 20_000 && sink.delivered.length > 0, {
      timeoutMs: 15_000,
      what: '20000 records acked, some delivered, before the move',
    });
    const ackedAtMove = load.acked.size;
    // One key per MIGRATE (redis-cli --cluster-pipeline 1): the slot stays split the longest.
    const moved = await migrateSlot(cluster.nodes, slot, target, { batch: 1 });
    await serving(cluster.nodes, slot, target, `slot ${slot} served by port ${target.port} everywhere`);
    const deliveredAtMove = sink.delivered.length;
    await waitFor(() => load.acked.size >= ackedAtMove + 20_000, {
      timeoutMs: 15_000,
      what: '20000 more records acked after the move',
    });
    await assertAllDelivered(
      t,
      load,
      sink,
      `slot ${slot}: ${moved.keys} keys moved (${moved.busy} batches met BUSYKEY), ${ackedAtMove} acked before`,
    );
    assert.equal(moved.busy, 0, 'nothing was written to the target while the slot moved');
    assert.ok(sink.delivered.length > deliveredAtMove, 'the output kept receiving after the move');
    // Delivered and idle: what the scripts count must come back to nothing.
    const stats = `{estuary:out:moving_sink}:stats`;
    await waitFor(
      async () =>
        (await target.query('HGET', stats, 'bytes')) === '0' &&
        (await target.query('HGET', stats, 'queue_count')) === '0',
      { timeoutMs: 10_000, what: 'the output’s totals back to 0 on the new master' },
    );
    assert.equal(await e.readyz(), 200);
  });
});
