import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { Estuary } from './app.ts';
import { builtinRegistry } from './builtins.ts';
import { ConfigError } from './config/errors.ts';
import { type EstuaryConfig, loadConfigFile, maskSecrets } from './config/load.ts';
import { createLogger } from './logger.ts';
import { AdminServer } from './server/admin.ts';

const DEFAULT_CONFIG = 'config/estuary.yaml';

const HELP: Record<string, string> = {
  main: `Usage: estuary <command> [options]

Commands:
  run      Run the aggregator
  check    Validate a config file and print it resolved, secrets masked
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
  version: `Usage: estuary version

Prints the Estuary version and the Node.js version it runs on.`,
};

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

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
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
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
  const file = values.config ?? process.env.ESTUARY_CONFIG ?? DEFAULT_CONFIG;
  let config: EstuaryConfig;
  const registry = builtinRegistry();
  try {
    config = loadConfigFile(file, registry);
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
  return run(config, registry);
}

async function run(config: EstuaryConfig, registry: ReturnType<typeof builtinRegistry>): Promise<number> {
  const logger = createLogger(config.service.log_level);
  const app = new Estuary(config, { registry, logger });
  const http = config.service.http;
  const admin = http.enabled
    ? new AdminServer(
        app,
        { listen: http.listen, port: http.port, authTokens: http.auth_tokens },
        logger.child({ plugin_id: 'admin' }),
      )
    : undefined;
  try {
    await app.start();
    await admin?.start();
  } catch (err) {
    logger.fatal({ err }, 'startup failed');
    await app.stop();
    await admin?.stop();
    return 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting without waiting for the flush');
        resolve(1);
        return;
      }
      stopping = true;
      logger.info({ signal, timeout_ms: config.service.shutdown_timeout }, 'stopping: flushing buffers');
      // Admin last, so /metrics and /readyz answer while draining.
      void app
        .stop()
        .then(() => admin?.stop())
        .then(
          () => resolve(0),
          (err: unknown) => {
            logger.error({ err }, 'error while stopping');
            resolve(1);
          },
        );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void app.reopen());
  });
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
