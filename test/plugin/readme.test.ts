/**
 * README's "Writing a plugin" code, run as written: the complete output loaded by a config
 * outside the checkout, and its test file run by node --test in a project that links Estuary
 * (as an author's plugin repository does).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { ScriptedHttpSink } from '../../src/plugin/testing.ts';
import { postJson } from '../support/http.ts';
import { sample } from '../support/prom-text.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { scratchDir, startWithPlugins } from './fixtures.ts';

/** The first ```ts block after `heading` in README.md's "Writing a plugin" section. */
function codeAfter(heading: string): string {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Writing a plugin'));
  const from = section.indexOf(`### ${heading}\n`);
  assert.ok(from >= 0, `README has "### ${heading}"`);
  const block = /```ts\n([\s\S]*?)```\n/.exec(section.slice(from));
  assert.ok(block, `a ts block under ${heading}`);
  return block[1]!;
}

describe("README's plugin examples", () => {
  const scratch = scratchDir('estuary-readme-plugin-');
  after(() => scratch.remove());
  const output = codeAfter('A complete output');
  scratch.write('audit-store.ts', output);

  it('the complete output is under 40 lines and works, configured twice', async () => {
    assert.ok(output.split('\n').length - 1 < 40, `${output.split('\n').length - 1} lines`);
    const sink = await ScriptedHttpSink.start(() => ({ status: 204 }));
    const port = await freePort();
    const e = await startWithPlugins(
      join(scratch.dir, 'estuary.yaml'),
      `plugins: [./audit-store.ts]
inputs: [{ type: http, listen: 127.0.0.1, port: ${port} }]
outputs:
  - { type: audit_store, id: audit-eu, match: "audit.**", url: "${sink.url}/eu", token: eu, buffer: { flush_interval: 20ms } }
  - { type: audit_store, id: audit-us, match: "audit.us.**", url: "${sink.url}/us", token: us, buffer: { flush_interval: 20ms } }
`,
    );
    try {
      assert.equal((await postJson(port, 'audit.us.login', [{ user: 'a' }])).status, 200);
      assert.equal((await postJson(port, 'audit.eu.login', [{ user: 'b' }])).status, 200);
      // Each instance posts what it got; the two records may share a chunk of audit-eu.
      const lines = (url: string) =>
        sink.requests
          .filter((r) => r.url === url)
          .flatMap((r) =>
            r.text
              .split('\n')
              .filter(Boolean)
              .map((line) => `${r.headers.authorization} ${line}`),
          )
          .sort();
      await waitFor(() => lines('/eu').length + lines('/us').length === 3, { what: 'three records posted' });
      assert.deepEqual(lines('/us'), ['Bearer us {"user":"a"}']);
      assert.deepEqual(lines('/eu'), ['Bearer eu {"user":"a"}', 'Bearer eu {"user":"b"}']);
      assert.ok(sink.requests.every((r) => r.headers['content-type'] === 'application/x-ndjson'));
      const text = await e.metrics();
      assert.equal(sample(text, 'estuary_plugin_audit_records_total', { plugin_id: 'audit-eu' }).value, 2);
      assert.equal(sample(text, 'estuary_plugin_audit_records_total', { plugin_id: 'audit-us' }).value, 1);
    } finally {
      await e.stop();
      await sink.close();
    }
  });

  it('the test file passes in a plugin project that links Estuary', () => {
    scratch.write('package.json', JSON.stringify({ name: 'audit-store', type: 'module', private: true }));
    scratch.write('test/audit-store.test.ts', codeAfter('Testing it'));
    // What `npm install --save-dev ../estuary` makes: a link to the checkout.
    mkdirSync(join(scratch.dir, 'node_modules'));
    symlinkSync(resolve('.'), join(scratch.dir, 'node_modules', 'estuary'), 'dir');
    const run = spawnSync(process.execPath, ['--test', '--test-reporter=tap', 'test/audit-store.test.ts'], {
      cwd: scratch.dir,
      encoding: 'utf8',
      // Not a subtest of this run: its own report on stdout.
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')),
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^# pass 13$/m);
    assert.match(run.stdout, /^# skipped 2$/m);
    assert.match(run.stdout, /^ok \d+ - a 401 halts$/m);
  });
});
