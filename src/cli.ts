import cluster from 'node:cluster';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { Estuary, openRedisBackend } from './app.ts';
import { builtinRegistry } from './builtins.ts';
import {
  answerSupervisor,
  keepRunningOnDisconnect,
  onSupervisorStop,
  reportStarted,
} from './cluster/worker.ts';
import { ConfigError } from './config/errors.ts';
import {
  type EstuaryConfig,
  loadConfigFileWithPlugins,
  loadPluginsOfFile,
  maskSecrets,
} from './config/load.ts';
import { beforeDeadline } from './core/deadline.ts';
import { createLogger } from './logger.ts';
import { describeRegistry } from './plugin/describe.ts';
import type { ComponentRegistry } from './registry.ts';
import { AdminServer, adminTarget } from './server/admin.ts';
import { deadLetterApi } from './server/dead-letter.ts';
import { jsonSafe } from './server/json.ts';
import { version } from './version.ts';

const DEFAULT_CONFIG = 'config/estuary.yaml';

const HELP: Record<string, string> = {
  main: `Usage: estuary <command> [options]

Commands:
  run      Run the aggregator
  check    Validate a config file and print it resolved, secrets masked
  plugins  List the input, filter and output types (built-in and a config's plugins) and their options
  dlq      List, show, replay or purge an output's dead-letter chunks (redis buffer)
  version  Print the version

Run 'estuary <command> --help' for a command's options.`,
  run: `Usage: estuary run [-c FILE]

Runs the aggregator until SIGTERM or SIGINT, then stops accepting, flushes what is
buffered (bounded by service.shutdown_timeout) and exits 0. SIGHUP reopens output files.

Options:
  -c, --config FILE  config file (default ${DEFAULT_CONFIG})
  -h, --help         this help`,
  check: `Usage: estuary check [-c FILE]

Validates the config file, prints it with environment variables substituted and secrets
masked, and exits 0; prints every problem as file:line: key: message and exits 1.

Options:
  -c, --config FILE  config file (default ${DEFAULT_CONFIG})
  -h, --help         this help`,
  plugins: `Usage: estuary plugins [-c FILE]

Lists every input, filter and output type with where it comes from (built-in, or the
plugins: entry that loaded it) and its options: key, type, and default or "required".
With a config file (-c, $ESTUARY_CONFIG, or ${DEFAULT_CONFIG} when it exists) its plugins
are loaded first; its components are not checked (that is estuary check).

Options:
  -c, --config FILE  config file whose plugins to load
  -h, --help         this help`,
  dlq: `Usage: estuary dlq list   --output ID [-c FILE]
       estuary dlq show   --output ID [-c FILE] CHUNK
       estuary dlq replay --output ID [-c FILE] CHUNK
       estuary dlq purge  --output ID [-c FILE] (CHUNK | --all)

Works on the dead-letter queue of an output in the Redis the config file names
(service.buffer.type redis), while aggregators run or not. Prints JSON, as the admin API
does: list gives id, reason, attempts, time, records and bytes of every chunk; show adds
the decoded records; replay puts a chunk back into the output's queue; purge deletes.
Exits 1 when the output, the chunk or Redis cannot be found.

Options:
  -c, --config FILE  config file (default ${DEFAULT_CONFIG})
  -o, --output ID    the output's id
      --all          purge: every chunk of the output
  -h, --help         this help`,
  version: `Usage: estuary version

Prints the Estuary version and the Node.js version it runs on.`,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${HELP.main}\n`);
    return command ? 0 : 2;
  }
  if (!(command in HELP) || command === 'main') {
    process.stderr.write(`estuary: unknown command "${command}"\n\n${HELP.main}\n`);
    return 2;
  }
  let values: { config?: string; help?: boolean; output?: string; all?: boolean };
  let positionals: string[] = [];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        output: { type: 'string', short: 'o' },
        all: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: command === 'dlq',
    }));
    if (command !== 'dlq' && (values.output !== undefined || values.all !== undefined))
      throw new Error(`Unknown option '${values.output !== undefined ? '--output' : '--all'}'`);
  } catch (err) {
    process.stderr.write(`estuary ${command}: ${(err as Error).message}\n\n${HELP[command]}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${HELP[command]}\n`);
    return 0;
  }
  if (command === 'version') {
    process.stdout.write(`estuary ${version()} (node ${process.version})\n`);
    return 0;
  }
  let dlqArgs: DlqArgs | undefined;
  if (command === 'dlq') {
    const usage = (message: string) => {
      process.stderr.write(`estuary dlq: ${message}\n\n${HELP.dlq}\n`);
      return 2;
    };
    const [action, chunk, ...extra] = positionals;
    if (!isDlqAction(action))
      return usage(`expected list, show, replay or purge, got ${action ?? 'nothing'}`);
    if (!values.output) return usage('--output ID is required');
    if (extra.length > 0) return usage(`unexpected ${extra.join(' ')}`);
    if ((action === 'show' || action === 'replay') && !chunk) return usage(`${action} needs a CHUNK id`);
    if (action === 'list' && chunk) return usage('list takes no CHUNK');
    if (action === 'purge' && !chunk === !values.all) return usage('purge needs a CHUNK id or --all');
    dlqArgs = { action, outputId: values.output, chunk };
  }
  const file = values.config ?? process.env.ESTUARY_CONFIG ?? DEFAULT_CONFIG;
  if (command === 'plugins') return plugins(values.config ?? process.env.ESTUARY_CONFIG);
  let config: EstuaryConfig;
  let registry: ComponentRegistry;
  try {
    ({ config, registry } = await loadConfigFileWithPlugins(file, builtinRegistry()));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
  if (command === 'check') {
    process.stdout.write(stringify(maskSecrets(config.resolved)));
    process.stderr.write(
      `${file}: ok (${config.inputs.length} inputs, ${config.filters.length} filters, ${config.outputs.length} outputs)\n`,
    );
    return 0;
  }
  if (dlqArgs) return dlq(config, dlqArgs);
  return run(config, registry, file);
}

/** `estuary plugins`: the types a config can use. The default config is read only when it exists. */
async function plugins(file: string | undefined): Promise<number> {
  let registry = builtinRegistry();
  const from = file ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
  if (from) {
    try {
      registry = await loadPluginsOfFile(from, registry);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
  }
  process.stdout.write(describeRegistry(registry));
  return 0;
}

const DLQ_ACTIONS = ['list', 'show', 'replay', 'purge'] as const;
interface DlqArgs {
  action: (typeof DLQ_ACTIONS)[number];
  outputId: string;
  chunk: string | undefined;
}
function isDlqAction(value: string | undefined): value is DlqArgs['action'] {
  return (DLQ_ACTIONS as readonly (string | undefined)[]).includes(value);
}

/** `estuary dlq …`: the same operations as the admin API, straight against Redis. */
async function dlq(config: EstuaryConfig, { action, outputId, chunk }: DlqArgs): Promise<number> {
  const fail = (message: string) => {
    process.stderr.write(`estuary dlq: ${message}\n`);
    return 1;
  };
  if (!config.outputs.some((o) => o.id === outputId)) {
    return fail(`unknown output "${outputId}" (outputs: ${config.outputs.map((o) => o.id).join(', ')})`);
  }
  if (config.service.buffer.type !== 'redis') {
    return fail(
      `buffer type ${config.service.buffer.type}: the dead-letter queue lives in the running process; ` +
        `use its admin API (GET /api/v1/outputs/${outputId}/dead-letter)`,
    );
  }
  const backend = await openRedisBackend(config, createLogger('error'));
  const print = (value: unknown) => process.stdout.write(`${JSON.stringify(jsonSafe(value), null, 2)}\n`);
  try {
    if (!(await backend.connect(5000))) return fail('cannot reach Redis (service.buffer)');
    const api = deadLetterApi(outputId, backend.deadLetterQueue(outputId));
    const missing = () => fail(`no dead-letter chunk "${chunk}" in output "${outputId}"`);
    if (action === 'list') {
      print({ output: outputId, chunks: await api.list() });
    } else if (action === 'show') {
      const found = await api.show(chunk!);
      if (!found) return missing();
      print(found);
    } else if (action === 'replay') {
      if (!(await api.replay(chunk!))) return missing();
      print({ replayed: chunk });
    } else {
      const removed = await api.purge(chunk);
      if (chunk && removed === 0) return missing();
      print({ removed });
    }
    return 0;
  } finally {
    await backend.close();
  }
}

async function run(config: EstuaryConfig, registry: ComponentRegistry, file: string): Promise<number> {
  const logger = createLogger(config.service.log_level);
  // Forked by a supervisor (service.workers): it serves the admin API and handles signals.
  const inWorker = cluster.isWorker && process.env.ESTUARY_WORKER_ID !== undefined;
  if (config.service.workers > 1 && !inWorker) {
    const { supervise } = await import('./cluster/supervisor.ts');
    return supervise(
      config,
      {
        exec: fileURLToPath(new URL('../bin/estuary.js', import.meta.url)),
        args: ['run', '-c', resolve(file)],
      },
      logger,
    );
  }
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  let stopReason: string | undefined;
  let shutdown: ((reason: string) => void) | undefined;
  /** `repeat`: a second stop exits without the flush (a second Ctrl-C); else it changes nothing. */
  const stop = (reason: string, repeat: boolean) => {
    if (stopReason !== undefined) {
      if (!repeat) return;
      logger.warn({ signal: reason }, 'second signal: exiting without waiting for the flush');
      resolveExit(1);
      return;
    }
    stopReason = reason;
    // During startup the stop waits for start() to settle: what was acked by then is flushed.
    shutdown?.(reason);
  };
  // Handlers go in before anything starts, so no signal finds the default (instant death).
  if (inWorker) {
    // The supervisor stops its workers by message. A signal to the whole process group
    // (systemd, kill -- -PGID) also reaches them; it is a first stop, never a second.
    process.on('SIGTERM', () => stop('SIGTERM', false));
    process.on('SIGINT', () => undefined);
    onSupervisorStop((now) => stop(now ? 'supervisor: stop now' : 'supervisor: stop', now));
    // The supervisor is gone (killed): flush and leave rather than run on unsupervised.
    keepRunningOnDisconnect();
    process.on('disconnect', () => stop('supervisor gone', false));
  } else {
    process.on('SIGTERM', () => stop('SIGTERM', true));
    process.on('SIGINT', () => stop('SIGINT', true));
  }

  const app = await Estuary.create(config, { registry, logger });
  const http = config.service.http;
  const admin =
    http.enabled && !inWorker
      ? new AdminServer(
          adminTarget(app),
          { listen: http.listen, port: http.port, authTokens: http.auth_tokens },
          logger.child({ plugin_id: 'admin' }),
        )
      : undefined;
  process.on('SIGHUP', () => {
    if (phase === 'running') void app.reopen();
  });
  if (inWorker) answerSupervisor(app);
  try {
    // Admin first: /healthz answers from the first moment (a liveness probe must not kill a
    // pod that waits for Redis), and /readyz says 503 with the reason until the buffer is
    // reachable and every input listens.
    await admin?.start();
    // A second signal during startup exits at once, even while a start still runs.
    const early = await Promise.race([app.start().then(() => undefined), exited]);
    if (early !== undefined) return early;
  } catch (err) {
    logger.fatal({ err }, 'startup failed');
    // Bounded like a shutdown: a component whose stop hangs must not keep the process alive.
    const bound = config.service.shutdown_timeout + 5000;
    await beforeDeadline(app.stop(), Date.now() + bound).catch(() =>
      logger.error('stopping after the failed startup did not finish; exiting'),
    );
    await admin?.stop();
    return 1;
  }
  phase = 'running';
  if (inWorker) reportStarted();
  shutdown = (reason: string) => {
    phase = 'stopping';
    logger.info(
      { signal: reason, timeout_ms: config.service.shutdown_timeout },
      'stopping: flushing buffers',
    );
    // Whatever hangs (a Redis that stopped answering), the process leaves soon after the deadline.
    setTimeout(() => {
      logger.error('shutdown did not finish in service.shutdown_timeout + 5s; exiting');
      resolveExit(1);
    }, config.service.shutdown_timeout + 5000).unref();
    // Admin last, so /metrics and /readyz answer while draining.
    void app
      .stop()
      .then(() => admin?.stop())
      .then(
        () => resolveExit(0),
        (err: unknown) => {
          logger.error({ err }, 'error while stopping');
          resolveExit(1);
        },
      );
  };
  if (stopReason !== undefined) shutdown(stopReason);
  return exited;
}

/** Runs `main` on this process's arguments and exits with its code. */
export function runCli(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Open sockets or timers of a stopped app must not keep the process alive.
      setTimeout(() => process.exit(code), 100).unref();
    },
    (err: unknown) => {
      process.stderr.write(`estuary: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}

if (import.meta.main) runCli();
