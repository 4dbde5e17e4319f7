import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeChunk } from '../../src/buffer/chunk.ts';
import { makeBatch } from '../../src/core/batch.ts';
import { InputError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import type { Filter } from '../../src/filters/filter.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import type { Plugin, PluginApi, PluginEmit } from '../../src/plugin/api.ts';
import { pluginApi, pluginFactories } from '../../src/plugin/host.ts';
import { buildInput, buildOutput } from '../../src/plugin/testkit.ts';
import { postJson } from '../support/http.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { recorderPlugin, scratchDir, startWithPlugins } from './fixtures.ts';

const time = new EventTime(1_700_000_000, 5);

describe('api encoders', () => {
  // [1.7e18 as uint64, {"bad":1}]: a time no RFC 3339 can print; `record` format takes it.
  const bad = Buffer.from('92cf17a2b3c4d5e6f70081a362616401', 'hex');
  const good = makeBatch('t', [{ time, record: { a: 1, s: 'x"\ny' } }]);
  const payload = Buffer.concat([good.payload, bad, good.payload]);
  const chunk = makeChunk('c', [{ tag: 't', payload, count: 3, bytes: payload.length }], 0);

  it('toJsonArray: one JSON array of what can be written, the rest rejected with why', () => {
    const out = pluginApi.toJsonArray(chunk);
    const parsed = JSON.parse(out.bytes.toString()) as { tag: string; time: string; record: unknown }[];
    assert.equal(out.count, 2);
    assert.deepEqual(
      parsed.map((e) => e.record),
      [
        { a: 1, s: 'x"\ny' },
        { a: 1, s: 'x"\ny' },
      ],
    );
    assert.equal(parsed[0]!.time, '2023-11-14T22:13:20.000000005Z');
    assert.equal(out.rejected.length, 1);
    assert.match(out.rejected[0]!.reason, /out of range/);
    const records = pluginApi.toJsonArray(chunk, { format: 'record' });
    assert.equal(records.count, 3);
    assert.equal(JSON.parse(records.bytes.toString()).length, 3);
    const empty = makeChunk('e', [], 0);
    assert.equal(pluginApi.toJsonArray(empty).bytes.toString(), '[]');
    assert.throws(() => pluginApi.toJsonArray(chunk, { format: 'fluentd' }), /not JSON/);
  });

  it('toJsonLines: a line per entry, as the file output writes them', () => {
    const out = pluginApi.toJsonLines(chunk, { format: 'record' });
    assert.equal(out.bytes.toString(), '{"a":1,"s":"x\\"\\ny"}\n{"bad":1}\n{"a":1,"s":"x\\"\\ny"}\n');
    assert.equal(out.count, 3);
    assert.equal(pluginApi.toJsonLines(chunk).rejected.length, 1);
  });
});

describe('definitions Estuary cannot use', () => {
  const output = {
    type: 'ok_type',
    schema: pluginApi.z.strictObject({}),
    create: () => ({ write: async () => {} }),
  };
  const cases: [string, unknown, RegExp][] = [
    [
      'not an object',
      42,
      /^Error: p\.js: the default export returned number 42, expected \{ inputs, filters, outputs \}$/,
    ],
    [
      'an unknown key',
      { sinks: [] },
      /^Error: p\.js: unknown key sinks \(expected inputs, filters, outputs\)$/,
    ],
    ['a list that is not', { outputs: output }, /^Error: p\.js: outputs is an object, expected a list$/],
    ['nothing defined', { outputs: [] }, /^Error: p\.js: defines no input, filter or output$/],
    [
      'a type not snake_case',
      { outputs: [{ ...output, type: 'My-Type' }] },
      /^Error: p\.js: outputs\[0\]\.type: expected a snake_case name, got string "My-Type"$/,
    ],
    [
      'a schema of another zod',
      { outputs: [{ ...output, schema: { parse() {} } }] },
      /^Error: p\.js: outputs\[0\]\.schema \(ok_type\): expected an object schema made with api\.z/,
    ],
    [
      'no create',
      { inputs: [{ ...output, create: 1 }] },
      /^Error: p\.js: inputs\[0\]\.create \(ok_type\): expected a function$/,
    ],
    [
      'bad bufferDefaults',
      { outputs: [{ ...output, bufferDefaults: { flush_interval: 'soon' } }] },
      /^Error: p\.js: outputs\[0\]\.bufferDefaults \(ok_type\): .*flush_interval/,
    ],
  ];
  for (const [name, definitions, message] of cases)
    it(name, () => assert.throws(() => pluginFactories(definitions, 'p.js'), message));

  it('a create that throws or returns no write fails with the instance id', async () => {
    const plugin =
      (create: () => unknown): Plugin =>
      (api: PluginApi) => ({
        outputs: [{ type: 'broken', schema: api.z.strictObject({}), create: create as never }],
      });
    await assert.rejects(
      buildOutput(
        plugin(() => {
          throw new Error('no credentials');
        }),
        'broken',
        {},
        { id: 'b1' },
      ),
      /^Error: output "b1" \(plugin type broken\): create failed: no credentials$/,
    );
    await assert.rejects(
      buildOutput(
        plugin(() => ({})),
        'broken',
        {},
        { id: 'b2' },
      ),
      /output "b2" \(plugin type broken\): create returned no write\(\) method/,
    );
  });
});

describe('a plugin is held to what built-ins are', () => {
  it('options from a plain api.z.object are strict: a misspelt key is refused, not dropped', () => {
    const [factory] = pluginFactories(
      {
        outputs: [
          {
            type: 'loose_type',
            schema: pluginApi.z.object({ url: pluginApi.z.string().default('http://x') }),
            create: () => ({ write: async () => {} }),
          },
        ],
      },
      'p.js',
    );
    assert.equal(factory!.schema.safeParse({ url: 'http://y' }).success, true);
    assert.equal(factory!.schema.safeParse({ ulr: 'http://typo' }).success, false);
  });

  it('a filter returning something that is no entry throws, naming the instance (the pipeline then passes that record on, counted)', () => {
    const [factory] = pluginFactories(
      {
        filters: [
          {
            type: 'sloppy',
            schema: pluginApi.z.strictObject({}),
            create: () => ({
              apply: (e: { record: Record<string, unknown> }) => {
                e.record.seen = true; // forgot to return it
              },
            }),
          },
        ],
      },
      'p.js',
    );
    const filter = factory!.create(
      {},
      {
        id: 'sloppy.0',
        logger: silentLogger(),
        metrics: new Metrics(),
        configDir: '.',
      },
    ) as Filter;
    assert.throws(
      () => filter.apply({ time, record: {} }, 't'),
      /^TypeError: sloppy\.0: apply returned nothing; expected the entry/,
    );
  });
});

describe('a plugin input emits as built-ins do', () => {
  it('records must be maps; an empty list emits nothing; entries keep their own time', async () => {
    let emit!: PluginEmit;
    const plugin: Plugin = (api) => ({
      inputs: [
        api.defineInput({
          type: 'manual',
          schema: api.z.strictObject({}),
          create: () => ({
            async start(e) {
              emit = e;
            },
          }),
        }),
      ],
    });
    const input = await buildInput(plugin, 'manual', {});
    await assert.rejects(emit('t', ['text' as never]), InputError);
    await emit('t', []);
    assert.equal(input.emitted.length, 0);
    await emit.entries('t', [{ time, record: { n: 1 } }]);
    await emit('t', [{ n: 2 }], { wait: false });
    assert.deepEqual(
      input.emitted.map((e) => [e.entries[0]!.time.equals(time), e.records, e.options.wait]),
      [
        [true, [{ n: 1 }], true],
        [false, [{ n: 2 }], false],
      ],
    );
    assert.match(await input.metrics(), /^$/, 'no plugin metric registered');
    await input.stop();
  });
});

describe('a plugin filter in a running Estuary', () => {
  const scratch = scratchDir();
  after(() => scratch.remove());

  it('runs on the tags its match fits, per instance: changes, drops, re-tags', async () => {
    scratch.write('recorder.js', recorderPlugin('recorder', false));
    scratch.write(
      'stamp.js',
      `export default (api) => ({
  filters: [{
    type: 'stamp',
    schema: api.z.strictObject({ field: api.z.string(), retag: api.z.string().optional() }),
    create(config, ctx) {
      const dropped = ctx.metrics.counter('stamp_dropped_total', 'Records dropped.');
      return {
        apply(entry, tag) {
          if (entry.record.drop) { dropped.inc(); return null; }
          const out = { ...entry, record: { ...entry.record, [config.field]: ctx.id } };
          return config.retag && tag !== config.retag ? [{ entry: out, tag: config.retag }] : out;
        },
      };
    },
  }],
});
`,
    );
    const port = await freePort();
    const e = await startWithPlugins(
      join(scratch.dir, 'estuary.yaml'),
      `plugins: [./stamp.js, ./recorder.js]
inputs: [{ type: http, listen: 127.0.0.1, port: ${port} }]
filters:
  - { type: stamp, id: first, match: "app.**", field: by }
  - { type: stamp, id: second, match: "app.moved", field: second }
  - { type: stamp, id: mover, match: "app.move", field: moved_by, retag: app.moved }
outputs:
  - { type: recorder, match: "app.**", file: out.ndjson, label: x }
`,
    );
    try {
      assert.equal((await postJson(port, 'app.x', [{ n: 1 }, { n: 2, drop: true }])).status, 200);
      assert.equal((await postJson(port, 'app.move', [{ n: 3 }])).status, 200);
      const file = join(scratch.dir, 'out.ndjson');
      const lines = () =>
        existsSync(file)
          ? readFileSync(file, 'utf8')
              .split('\n')
              .filter(Boolean)
              .map((l) => JSON.parse(l))
          : [];
      await waitFor(() => lines().length === 2, { what: 'two records written' });
      assert.deepEqual(
        lines().sort((a, b) => a.n - b.n),
        [
          { n: 1, by: 'first' },
          // Re-tagged: from the first filter again, under the new tag.
          { n: 3, by: 'first', moved_by: 'mover', second: 'second' },
        ],
      );
      assert.match(await e.metrics(), /estuary_plugin_stamp_dropped_total\{plugin_id="first"\} 1/);
    } finally {
      await e.stop();
    }
  });
});
