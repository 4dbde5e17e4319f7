import { concatFilter } from './filters/concat.ts';
import { grepFilter } from './filters/grep.ts';
import { parserFilter } from './filters/parser/index.ts';
import { recordModifierFilter } from './filters/record-modifier.ts';
import { recordTransformerFilter } from './filters/record-transformer.ts';
import { rewriteTagFilter } from './filters/rewrite-tag.ts';
import { throttleFilter } from './filters/throttle.ts';
import { forwardInput } from './inputs/forward/index.ts';
import { httpInput } from './inputs/http.ts';
import { opentelemetryInput } from './inputs/opentelemetry/index.ts';
import { cloudwatchLogsOutput } from './outputs/cloudwatch-logs/index.ts';
import { elasticsearchOutput } from './outputs/elasticsearch/index.ts';
import { fileOutput } from './outputs/file/index.ts';
import { firehoseOutput } from './outputs/firehose/index.ts';
import { forwardOutput } from './outputs/forward/index.ts';
import { kinesisStreamsOutput } from './outputs/kinesis-streams/index.ts';
import { lokiOutput } from './outputs/loki/index.ts';
import { nullOutput } from './outputs/null/index.ts';
import { opentelemetryOutput } from './outputs/opentelemetry/index.ts';
import { s3Output } from './outputs/s3/index.ts';
import { stdoutOutput } from './outputs/stdout/index.ts';
import { ComponentRegistry } from './registry.ts';

/** Every component type Estuary ships, by kind and type name. */
export function builtinRegistry(): ComponentRegistry {
  return new ComponentRegistry().register(
    httpInput,
    forwardInput,
    opentelemetryInput,
    grepFilter,
    parserFilter,
    recordModifierFilter,
    recordTransformerFilter,
    rewriteTagFilter,
    concatFilter,
    throttleFilter,
    stdoutOutput,
    fileOutput,
    nullOutput,
    forwardOutput,
    elasticsearchOutput,
    lokiOutput,
    s3Output,
    firehoseOutput,
    kinesisStreamsOutput,
    cloudwatchLogsOutput,
    opentelemetryOutput,
  );
}
