import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Estuary } from '../../src/app.ts';
import { builtinRegistry } from '../../src/builtins.ts';
import { loadConfigWithPlugins } from '../../src/config/load.ts';
import { silentLogger } from '../../src/logger.ts';
import { AdminServer, adminTarget } from '../../src/server/admin.ts';

/**
 * A recorder output as an outside author writes it, with nothing of Estuary imported at run
 * time: it appends each chunk's records as JSON lines to `file`, counts them in its own metric,
 * and fails as told — `fail_times` retryable failures first, RejectError for chunks holding a
 * record with `poison`, HaltError while `<file>.halt` exists, and a throwing start on
 * `fail_start`. `typed` writes it as TypeScript (type-only import, stripped by Node).
 */
export function recorderPlugin(type: string, typed: boolean): string {
  const t = (ts: string) => (typed ? ts : '');
  return `${t("import type { Chunk, PluginApi, PluginDefinitions } from 'estuary/plugin';\n")}import { appendFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';

export default (api${t(': PluginApi')})${t(': PluginDefinitions')} => {
  const { z } = api;
  return {
    outputs: [
      api.defineOutput({
        type: '${type}',
        schema: z.strictObject({
          file: z.string(),
          label: z.string(),
          fail_times: z.number().int().min(0).default(0),
          fail_start: z.boolean().default(false),
        }),
        bufferDefaults: { flush_interval: '20ms', retry: { wait: '10ms', randomize: false } },
        create(config, ctx) {
          const path = resolve(ctx.configDir, config.file);
          const records = ctx.metrics.counter('recorder_records_total', 'Records the recorder wrote.', ['label']);
          const writes = ctx.metrics.counter('estuary_plugin_recorder_writes_total', 'Writes, by outcome.', ['outcome']);
          let failures = config.fail_times;
          return {
            async start() {
              if (config.fail_start) throw new Error('cannot open the recorder');
              ctx.logger.info({ path }, 'recorder started');
            },
            async write(chunk${t(': Chunk')}) {
              if (existsSync(path + '.halt')) {
                writes.inc({ outcome: 'halt' });
                throw new api.HaltError('401 unauthorized');
              }
              if (failures > 0) {
                failures -= 1;
                writes.inc({ outcome: 'retry' });
                throw new api.RetryableError('503 unavailable', { retryAfterMs: 10 });
              }
              if (chunk.entries().some((e) => e.record.poison)) {
                writes.inc({ outcome: 'reject' });
                throw new api.RejectError('400 poison');
              }
              const { bytes, count } = api.toJsonLines(chunk, { format: 'record' });
              appendFileSync(path, bytes);
              records.inc({ label: config.label }, count);
              writes.inc({ outcome: 'ok' });
            },
          };
        },
      }),
    ],
  };
};
`;
}

/** A directory outside the checkout for plugins and configs; `remove` when done. */
export function scratchDir(prefix = 'estuary-plugin-'): {
  dir: string;
  write(name: string, text: string): string;
  remove(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    write(name, text) {
      const path = join(dir, name);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, text);
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Estuary from a config file's text, plugins loaded as `estuary run` loads them, admin on a free port. */
export async function startWithPlugins(file: string, yaml: string) {
  const { config, registry } = await loadConfigWithPlugins(yaml, file, builtinRegistry(), {});
  const app = await Estuary.create(config, { registry, logger: silentLogger() });
  const admin = new AdminServer(
    adminTarget(app),
    { listen: '127.0.0.1', port: 0, authTokens: [] },
    silentLogger(),
  );
  await admin.start();
  try {
    await app.start();
  } catch (err) {
    await app.stop();
    await admin.stop();
    throw err;
  }
  return {
    app,
    metrics: async () => (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text(),
    stop: async () => {
      await app.stop();
      await admin.stop();
    },
  };
}
