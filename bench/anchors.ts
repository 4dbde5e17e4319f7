/**
 * The anchors of a side-by-side run: Fluent Bit and Fluentd, the reference builds in
 * ../shared/interop (or $FLUENT_BIT_BIN / $FLUENTD_BIN), run in Estuary's place with the
 * same load generator, the same parameters, and a config equivalent to the scenario's:
 *
 *   shape `forward`:  in_forward (acks when the client asks) → out_forward with acks → the bench's forward sink
 *   shape `file`:     in_forward → out_file, each record as one JSON line, appended to one file
 *   shape `otlp_file` (Fluent Bit only): in_opentelemetry (HTTP, the tag set, not taken from
 *                     the URI) → out_file as `file`
 *   shape `firehose`, `cloudwatch_logs` (Fluent Bit only): in_forward → kinesis_firehose /
 *                     cloudwatch_logs → the bench's fake, over TLS with the run's certificate
 *   a scenario's parser filter: on `log`, JSON, the other fields kept and `log` dropped
 *
 * Both match the load generator's tag (`bench.app`) only, so no record of their own is counted.
 * Both buffer in memory and flush every second, as Estuary does in the scenarios. Redis
 * scenarios have no equivalent: the anchors run them on their default memory buffer.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AnchorShape, AWS_REGION, type Ports, type Scenario } from './scenarios.ts';

export const ANCHOR_NAMES = ['fluent-bit', 'fluentd'] as const;
export type AnchorName = (typeof ANCHOR_NAMES)[number];

export type AnchorShapeName = Exclude<AnchorShape, { none: string }>;

/** Where a run's anchor sends and keeps things. */
export interface AnchorContext {
  ports: Ports;
  /** The run's directory: the config files go here. */
  dir: string;
  outputDir: string;
  /** The sink's certificate (PEM), when the sink speaks HTTPS. */
  caFile: string | undefined;
}

export interface Anchor {
  name: AnchorName;
  /** What `--version` said. */
  version: string;
  /** The command to run with this config file. */
  command(configPath: string): string[];
  configName: string;
  /** Why it has no config for a shape, for those it lacks. */
  lacks: Partial<Record<AnchorShapeName, string>>;
  /** Its config files for the scenario (of this shape) by name, `configName` among them. */
  config(shape: AnchorShapeName, scenario: Scenario, context: AnchorContext): Record<string, string>;
}

const INTEROP = fileURLToPath(new URL('../../shared/interop/', import.meta.url));

/**
 * Fluent Bit has no cap on memory-buffered data by default (its inputs keep reading while
 * outputs lag); `Mem_Buf_Limit` is its cap, set to the 512 MiB that Estuary's and Fluentd's
 * memory buffers have by default, so a closed-loop run meets backpressure on all three.
 */
function fluentBitConfig(
  shape: AnchorShapeName,
  scenario: Scenario,
  { ports, dir, outputDir, caFile }: AnchorContext,
): Record<string, string> {
  const aws = `    region           ${AWS_REGION}
    tls.ca_file      ${caFile}
`;
  const file = `    Name    file
    Path    ${outputDir}
    File    fluent-bit.log
    Format  plain
    Mkdir   true
`;
  const outputs: Record<AnchorShapeName, string> = {
    file,
    otlp_file: file,
    forward: `    Name                  forward
    Host                  ${ports.sinkHost}
    Port                  ${ports.sink}
    Require_ack_response  true
`,
    // kinesis_firehose's endpoint is a host: it always connects to 443 (the sink is there).
    firehose: `    Name             kinesis_firehose
    delivery_stream  bench
    endpoint         ${ports.sinkHost}
${aws}${scenario.aggregation ? '    simple_aggregation  On\n' : ''}`,
    cloudwatch_logs: `    Name             cloudwatch_logs
    log_group_name   bench
    log_stream_name  bench
    endpoint         ${ports.sinkHost}
    port             ${ports.sink}
${aws}`,
  };
  const forwardInput = `    Name           forward
    Listen         127.0.0.1
    Port           ${ports.forward}
`;
  // Its tag would otherwise be made from the URI (`v1_logs`), which `bench.*` does not match.
  const otlpInput = `    Name           opentelemetry
    Listen         127.0.0.1
    Port           ${ports.http}
    Tag            bench.app
    Tag_From_Uri   false
`;
  // Its parsers live in a parsers file only: the classic config refuses [PARSER] sections.
  const parsers = join(dir, 'parsers.conf');
  const filter = scenario.parser
    ? `[FILTER]
    Name          parser
    Match         bench.*
    Key_Name      log
    Parser        bench_json
    Reserve_Data  On
`
    : '';
  return {
    'fluent-bit.conf': `[SERVICE]
    Flush      1
    Log_Level  warn
${scenario.parser ? `    Parsers_File  ${parsers}\n` : ''}[INPUT]
${shape === 'otlp_file' ? otlpInput : forwardInput}    Mem_Buf_Limit  512MB
${filter}[OUTPUT]
    Match   bench.*
${outputs[shape]}`,
    ...(scenario.parser ? { 'parsers.conf': '[PARSER]\n    Name    bench_json\n    Format  json\n' } : {}),
  };
}

/**
 * out_file: `append true` writes every chunk to one file (`<path>.log`) instead of one file
 * per chunk; the json formatter writes the record alone. Its default buffer is a file buffer
 * with daily time keys, replaced here by memory and a 1 s flush.
 */
function fluentdConfig(
  shape: AnchorShapeName,
  scenario: Scenario,
  { ports, outputDir }: AnchorContext,
): Record<string, string> {
  const buffer = `  <buffer>
    @type memory
    flush_mode interval
    flush_interval 1s
  </buffer>`;
  // reserve_data keeps `log` too unless told not to.
  const filter = scenario.parser
    ? `<filter bench.**>
  @type parser
  key_name log
  reserve_data true
  remove_key_name_field true
  <parse>
    @type json
  </parse>
</filter>
`
    : '';
  const match =
    shape === 'file'
      ? `<match bench.**>
  @type file
  path ${outputDir}/fluentd
  append true
  <format>
    @type json
  </format>
${buffer}
</match>`
      : `<match bench.**>
  @type forward
  require_ack_response true
  <server>
    host ${ports.sinkHost}
    port ${ports.sink}
  </server>
${buffer}
</match>`;
  // Its own log events go nowhere: under <match **> they would be counted as records.
  const config = `<system>
  log_level warn
</system>
<label @FLUENT_LOG>
  <match **>
    @type null
  </match>
</label>
<source>
  @type forward
  bind 127.0.0.1
  port ${ports.forward}
</source>
${filter}${match}
`;
  return { 'fluentd.conf': config };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The anchor, or why it cannot run here (never a stand-in). */
export function findAnchor(name: AnchorName): Anchor | { missing: string } {
  const envName = name === 'fluent-bit' ? 'FLUENT_BIT_BIN' : 'FLUENTD_BIN';
  const bin = process.env[envName] || `${INTEROP}${name === 'fluent-bit' ? 'fluent-bit' : 'fluentd.sh'}`;
  if (!executable(bin)) return { missing: `${bin} is not there (set $${envName})` };
  // Missing shared libraries (Fluent Bit) or gems (Fluentd: its --version loads none, a dry
  // run of an empty config loads the engine) show here rather than as a server that never listens.
  const run = (args: string[]) => spawnSync(bin, args, { encoding: 'utf8', timeout: 30_000 });
  const probe = run(['--version']);
  const loads = probe.status !== 0 || name === 'fluent-bit' ? probe : run(['--dry-run', '-c', '/dev/null']);
  if (loads.status !== 0) {
    const why = (loads.stderr || loads.error?.message || `exit ${loads.status}`).trim().split('\n').pop();
    const hint = name === 'fluentd' ? ' (run ../shared/interop/install-fluentd-deps.sh once)' : '';
    return {
      missing: `${bin} ${loads === probe ? '--version' : '--dry-run'} failed: ${why}${hint}`,
    };
  }
  const version = probe.stdout.trim().split('\n')[0] ?? name;
  if (name === 'fluent-bit')
    return {
      name,
      version,
      configName: 'fluent-bit.conf',
      command: (config) => [bin, '-c', config],
      lacks: {},
      config: fluentBitConfig,
    };
  return {
    name,
    version,
    configName: 'fluentd.conf',
    // One process: its CPU and RSS are the whole server's (the supervisor would fork a worker).
    command: (config) => [bin, '-c', config, '--no-supervisor'],
    lacks: {
      otlp_file: 'Fluentd 1.15.3 has no OpenTelemetry input (fluent-plugin-opentelemetry is not installed)',
      firehose: 'Fluentd 1.15.3 has no Firehose output (fluent-plugin-kinesis is not installed)',
      cloudwatch_logs:
        'Fluentd 1.15.3 has no CloudWatch Logs output (fluent-plugin-cloudwatch-logs is not installed)',
    },
    config: fluentdConfig,
  };
}
