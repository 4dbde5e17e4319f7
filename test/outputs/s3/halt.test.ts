import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEstuary } from '../../support/estuary.ts';
import { postJson } from '../../support/http.ts';
import { S3rverServer, useTestCredentials } from '../../support/s3rver.ts';
import { freePort, waitFor } from '../../support/wait.ts';

/**
 * The bucket does not exist yet when records arrive: the output halts (every record kept,
 * nothing dead-lettered, inputs still acking), probes, and once the bucket is created delivers
 * everything by itself — each record once.
 */

useTestCredentials();

let server: S3rverServer;

before(async () => {
  server = await S3rverServer.start();
});

after(async () => {
  await server.stop();
});

describe('s3 output through the sink driver', () => {
  it('a missing bucket halts the output; it resumes by itself once the bucket exists', async () => {
    const port = await freePort();
    const e = await startEstuary(`
service:
  shutdown_timeout: 2s
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - type: s3
    id: archive
    match: "app.**"
    bucket: late-bucket
    endpoint: "${server.url}"
    force_path_style: true
    buffer: { flush_interval: 100ms, retry: { wait: 100ms, max_interval: 300ms, randomize: false, max_times: 1 } }
`);
    try {
      for (let seq = 0; seq < 20; seq++) {
        const res = await postJson(port, 'app.web', { seq, msg: 'GET /cart 200' });
        await res.arrayBuffer();
        assert.equal(res.status, 200);
      }
      await waitFor(async () => (await e.halted('archive')) === 1, { what: 'estuary_output_halted 1' });
      assert.match(await e.haltReason('archive'), /NoSuchBucket.*create the bucket/);
      assert.deepEqual(await e.app.buffer('archive')!.deadLetter.list(), []);

      await server.createBucket('late-bucket');
      await waitFor(async () => (await e.halted('archive')) === 0, {
        timeoutMs: 5000,
        what: 'the output to resume',
      });
      const seqs = await waitFor(
        async () => {
          const keys = await server.keys('late-bucket');
          const got = (await Promise.all(keys.map((k) => server.records('late-bucket', k)))).flat();
          return got.length >= 20 ? got.map((r) => r.seq as number) : undefined;
        },
        { what: 'all 20 records in the bucket' },
      );
      assert.deepEqual(
        seqs.sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i),
      );
      for (const key of await server.keys('late-bucket'))
        assert.match(key, /^estuary\/app\.web\/dt=\d{4}-\d\d-\d\d\/\d\d\/[0-9a-f-]{36}-0\.json\.gz$/);
      assert.deepEqual(await e.app.buffer('archive')!.deadLetter.list(), []);
    } finally {
      await e.stop();
    }
  });
});
