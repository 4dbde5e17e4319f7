import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startEstuary } from '../support/estuary.ts';
import { freePort, waitFor } from '../support/wait.ts';

/**
 * Issue 12, item 3, end to end: a record nested deeper than JSON.stringify can go (here
 * 3,000 levels, allowed by a raised max_nesting_depth) reaches the file output among others.
 * It goes to the dead-letter queue with the reason at the first write; the others are written;
 * nothing is retried.
 */
describe('a record the file output cannot encode, from HTTP to the dead-letter queue', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'estuary-deep-'));
  const port = await freePort();
  const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms, retry: { wait: 10ms, randomize: false } }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1, max_nesting_depth: 5000 }
outputs:
  - { type: file, id: out, match: "**", path: "${join(dir, '${tag}.log')}", format: record }
`);
  after(async () => {
    await e.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('dead-letters the deep record with the reason and writes the others', async () => {
    const depth = 3000;
    const deep = `{"a":${'['.repeat(depth - 1)}1${']'.repeat(depth - 1)}}`;
    const res = await fetch(`http://127.0.0.1:${port}/deep`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: `{"ok":0}\n${deep}\n{"ok":2}\n`,
    });
    assert.equal(res.status, 200, await res.text());
    const buffer = e.app.buffer('out')!;
    await waitFor(async () => (await buffer.deadLetter.list()).length === 1, { what: 'a dead-letter chunk' });
    const [dead] = await buffer.deadLetter.list();
    assert.equal(dead!.count, 1);
    assert.match(dead!.reason, /^cannot encode the record: EncodeError: nested too deep to write as JSON$/);
    const shown = await buffer.deadLetter.show(dead!.id);
    assert.equal(shown!.entries.length, 1);
    let levels = 0;
    for (let v: unknown = shown!.entries[0]!.record.a; Array.isArray(v); v = v[0]) levels++;
    assert.equal(levels, depth - 1, 'the record itself, whole');
    await waitFor(async () => (await readFile(join(dir, 'deep.log'), 'utf8').catch(() => '')).length > 0);
    assert.equal(await readFile(join(dir, 'deep.log'), 'utf8'), '{"ok":0}\n{"ok":2}\n');
    const metrics = await e.metrics();
    assert.match(metrics, /fluentd_output_status_retry_count\{[^}]*plugin_id="out"[^}]*\} 0/);
  });
});
