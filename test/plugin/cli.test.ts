import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { freePort } from '../support/wait.ts';
import { recorderPlugin, scratchDir } from './fixtures.ts';

const scratch = scratchDir('estuary-plugin-cli-');
after(() => scratch.remove());
scratch.write('recorder.ts', recorderPlugin('recorder', true));

const estuary = (...args: string[]) =>
  spawnSync(process.execPath, ['bin/estuary.js', ...args], { encoding: 'utf8', timeout: 20_000 });

describe('the CLI with plugins', () => {
  it('estuary plugins -c FILE lists built-in and plugin types with their options', () => {
    const file = scratch.write(
      'list.yaml',
      'plugins: [./recorder.ts]\noutputs: [{ type: recorder, nonsense: 1 }]\n',
    );
    const run = estuary('plugins', '-c', file);
    assert.equal(run.status, 0, run.stderr);
    const out = run.stdout;
    assert.match(out, /^inputs:\n {2}forward \(built-in\)\n/);
    assert.match(out, /\n {2}grep \(built-in\)\n/);
    assert.match(
      out,
      /\n {2}recorder \(plugin \.\/recorder\.ts\)\n {4}file {8}string, required\n {4}label {7}string, required\n {4}fail_times {2}number, default 0\n {4}fail_start {2}boolean, default false\n {2}s3 /,
    );
    assert.match(
      out,
      /\n {2}stdout \(built-in\)\n {4}format {2}"json"\|"record"\|"fluentd", default "json"\n/,
    );
    assert.ok(out.indexOf('outputs:') < out.indexOf('recorder ('), 'under outputs');
    // A default behind a transform (sizes, durations) is shown as the config gets it.
    assert.match(out, /\n {4}max_body_size +number\|string, default 33554432\n/);
  });

  it('estuary plugins without a config lists the built-ins; a plugin that fails to load exits 1', () => {
    const builtins = spawnSync(process.execPath, ['bin/estuary.js', 'plugins'], {
      encoding: 'utf8',
      cwd: '.',
      env: { ...process.env, ESTUARY_CONFIG: '' },
    });
    assert.equal(builtins.status, 0, builtins.stderr);
    assert.doesNotMatch(builtins.stdout, /\(plugin /);
    const bad = scratch.write('bad.yaml', 'plugins: [./nope.js]\n');
    const run = estuary('plugins', '-c', bad);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /bad\.yaml:1: plugins\[0\]: cannot import .*nope\.js/);
  });

  it('estuary check validates plugin options with file:line; estuary run stops when a plugin start throws', async () => {
    const check = estuary(
      'check',
      '-c',
      scratch.write('check.yaml', 'plugins: [./recorder.ts]\noutputs:\n  - { type: recorder, file: x }\n'),
    );
    assert.equal(check.status, 1);
    assert.match(check.stderr, /check\.yaml:3: outputs\[0\]\.label: required, expected string/);

    const admin = await freePort();
    const run = estuary(
      'run',
      '-c',
      scratch.write(
        'run.yaml',
        `plugins: [./recorder.ts]
service: { http: { listen: 127.0.0.1, port: ${admin} } }
outputs:
  - { type: recorder, id: audit-sink, file: a.ndjson, label: a, fail_start: true }
`,
      ),
    );
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /"msg":"startup failed"/);
    assert.match(
      run.stderr,
      /output \\"audit-sink\\" \(plugin type recorder\) failed to start: cannot open the recorder/,
    );
  });
});
