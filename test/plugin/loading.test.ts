import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { builtinRegistry } from '../../src/builtins.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { loadConfigWithPlugins } from '../../src/config/load.ts';
import { postJson } from '../support/http.ts';
import { sample } from '../support/prom-text.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { recorderPlugin, scratchDir, startWithPlugins } from './fixtures.ts';

const scratch = scratchDir();
after(() => scratch.remove());

/** The lines of the ConfigError loading `yaml` (as `<dir>/estuary.yaml`) ends in. */
async function loadErrors(yaml: string): Promise<string[]> {
  try {
    await loadConfigWithPlugins(yaml, join(scratch.dir, 'estuary.yaml'), builtinRegistry(), {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n');
  }
  return assert.fail('expected a ConfigError');
}

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

for (const typed of [false, true]) {
  const ext = typed ? 'ts' : 'js';
  describe(`a .${ext} plugin outside the checkout, configured twice`, () => {
    it('both instances get their routed records, with their own settings and metrics', async () => {
      scratch.write(`plugins/recorder.${ext}`, recorderPlugin('recorder', typed));
      const port = await freePort();
      const e = await startWithPlugins(
        join(scratch.dir, `two-${ext}.yaml`),
        `plugins: [./plugins/recorder.${ext}]
inputs:
  - { type: http, listen: 127.0.0.1, port: ${port} }
outputs:
  - { type: recorder, id: first, match: "a.**", file: first-${ext}.ndjson, label: one }
  - { type: recorder, id: second, match: "b.**", file: second-${ext}.ndjson, label: two, fail_times: 1 }
`,
      );
      try {
        assert.equal((await postJson(port, 'a.x', [{ n: 1 }, { n: 2 }, { n: 3 }])).status, 200);
        assert.equal((await postJson(port, 'b.y', [{ n: 4 }])).status, 200);
        const first = join(scratch.dir, `first-${ext}.ndjson`);
        const second = join(scratch.dir, `second-${ext}.ndjson`);
        await waitFor(() => lines(first).length === 3 && lines(second).length === 1, {
          what: 'both instances to write',
        });
        assert.deepEqual(
          lines(first).map((r) => r.n),
          [1, 2, 3],
        );
        assert.deepEqual(
          lines(second).map((r) => r.n),
          [4],
        );
        const text = await e.metrics();
        const records = 'estuary_plugin_recorder_records_total';
        assert.equal(sample(text, records, { plugin_id: 'first', label: 'one' }).value, 3);
        assert.equal(sample(text, records, { plugin_id: 'second', label: 'two' }).value, 1);
        const writes = 'estuary_plugin_recorder_writes_total';
        // Only `second` has fail_times: its own state, not the other instance's.
        assert.equal(sample(text, writes, { plugin_id: 'second', outcome: 'retry' }).value, 1);
        assert.throws(() => sample(text, writes, { plugin_id: 'first', outcome: 'retry' }), /0 samples/);
        // Built-in metrics label plugin outputs as they label built-ins.
        assert.equal(
          sample(text, 'estuary_output_records_delivered_total', { plugin_id: 'first', type: 'recorder' })
            .value,
          3,
        );
      } finally {
        await e.stop();
      }
    });
  });
}

describe('plugin errors at startup', () => {
  scratch.write('plugins/recorder.js', recorderPlugin('recorder', false));
  scratch.write('plugins/other.js', recorderPlugin('recorder', false));
  scratch.write('plugins/stdout.js', recorderPlugin('stdout', false));

  it("a schema error in a plugin entry's options is reported with file, line and key", async () => {
    assert.deepEqual(
      await loadErrors(`plugins:
  - ./plugins/recorder.js
outputs:
  - type: recorder
    file: x.ndjson
    label: 7
    colour: red
`),
      [
        `${join(scratch.dir, 'estuary.yaml')}:6: outputs[0].label: expected string, got number 7`,
        `${join(scratch.dir, 'estuary.yaml')}:7: outputs[0].colour: unknown key`,
      ],
    );
  });

  it('a type clashing with a built-in or with another plugin is an error naming both', async () => {
    const errors = await loadErrors(`plugins:
  - ./plugins/recorder.js
  - ./plugins/other.js
  - ./plugins/stdout.js
`);
    assert.deepEqual(errors, [
      `${join(scratch.dir, 'estuary.yaml')}:3: plugins[1]: output type "recorder" of ./plugins/other.js clashes with output type "recorder" of ./plugins/recorder.js (plugins[0])`,
      `${join(scratch.dir, 'estuary.yaml')}:4: plugins[2]: output type "stdout" of ./plugins/stdout.js clashes with the built-in output type "stdout"`,
    ]);
  });

  it('a module that cannot be imported, or whose default export is no function, is an error with its path', async () => {
    scratch.write('plugins/broken.js', 'export default (api) => { return {\n');
    scratch.write('plugins/no-default.js', 'export const outputs = [];\n');
    scratch.write('plugins/empty.js', 'export default () => ({});\n');
    const errors = await loadErrors(`plugins:
  - ./plugins/missing.js
  - ./plugins/broken.js
  - ./plugins/no-default.js
  - ./plugins/empty.js
  - no-such-package
outputs: [{ type: missing_type }]
`);
    const at = (line: number, index: number) =>
      `${join(scratch.dir, 'estuary.yaml')}:${line}: plugins[${index}]: `;
    assert.equal(errors.length, 6, errors.join('\n'));
    assert.ok(
      errors[0]!.startsWith(`${at(2, 0)}cannot import ${join(scratch.dir, 'plugins/missing.js')}: `),
      errors[0],
    );
    assert.ok(
      errors[1]!.startsWith(`${at(3, 1)}cannot import ${join(scratch.dir, 'plugins/broken.js')}: `),
      errors[1],
    );
    assert.equal(
      errors[2],
      `${at(4, 2)}${join(scratch.dir, 'plugins/no-default.js')}: the default export must be a function (api) => definitions, got undefined`,
    );
    assert.equal(errors[3], `${at(5, 3)}./plugins/empty.js: defines no input, filter or output`);
    assert.match(
      errors[4]!,
      /plugins\[4\]: package no-such-package is not installed in a node_modules above /,
    );
  });

  it('a package name is found in node_modules above the config file (exports with an import condition)', async () => {
    scratch.write(
      'node_modules/estuary-recorder/package.json',
      JSON.stringify({
        name: 'estuary-recorder',
        type: 'module',
        exports: { '.': { import: './lib/index.js' } },
      }),
    );
    scratch.write('node_modules/estuary-recorder/lib/index.js', recorderPlugin('packaged_recorder', false));
    const { registry, config } = await loadConfigWithPlugins(
      'plugins: [estuary-recorder]\noutputs: [{ type: packaged_recorder, file: p.ndjson, label: p }]\n',
      join(scratch.dir, 'estuary.yaml'),
      builtinRegistry(),
      {},
    );
    assert.equal(registry.get('output', 'packaged_recorder')?.origin, 'estuary-recorder');
    assert.equal(config.outputs[0]?.buffer.flushIntervalMs, 20, "the plugin's bufferDefaults apply");
    assert.equal(
      builtinRegistry().get('output', 'packaged_recorder'),
      undefined,
      'the built-ins stay as they were',
    );
  });

  it('a plugin whose start throws stops startup, and the error names its id', async () => {
    await assert.rejects(
      startWithPlugins(
        join(scratch.dir, 'start.yaml'),
        `plugins: [./plugins/recorder.js]
outputs:
  - { type: recorder, id: fine, file: fine.ndjson, label: ok }
  - { type: recorder, id: audit-sink, file: audit.ndjson, label: audit, fail_start: true }
`,
      ),
      /output "audit-sink" \(plugin type recorder\) failed to start: cannot open the recorder/,
    );
  });
});
