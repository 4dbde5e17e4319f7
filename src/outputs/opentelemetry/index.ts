import { readClientTls } from '../../config/values.ts';
import type { ClientTls } from '../../delivery/http-options.ts';
import { sendInRequests } from '../../delivery/request.ts';
import { recordKeys } from '../../inputs/opentelemetry/config.ts';
import type { RecordKeys } from '../../inputs/opentelemetry/records.ts';
import type { Logger } from '../../logger.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import type { Chunk, Output, WriteOptions, WriteResult } from '../output.ts';
import type { OtlpClient } from './client.ts';
import { type OtlpOutputConfig, otlpOutputSchema } from './config.ts';
import { encodeJson, encodeProtobuf, type OtlpItem, requestLimits, toItems } from './encode.ts';

/** OTLP/HTTP logs to a collector or a vendor's endpoint. */
export const opentelemetryOutput = defineComponent({
  kind: 'output',
  type: 'opentelemetry',
  schema: otlpOutputSchema,
  create: (config, deps) => new OtlpOutput(config, deps),
});

export class OtlpOutput implements Output {
  readonly id: string;
  readonly type = 'opentelemetry';
  private readonly config: OtlpOutputConfig;
  private readonly configDir: string;
  private readonly logger: Logger;
  private readonly keys: RecordKeys;
  /** Read once, at start (or the first write without one), and kept across stop and start. */
  private tls: ClientTls | undefined;
  private client: OtlpClient | undefined;

  constructor(config: OtlpOutputConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.configDir = deps.configDir;
    this.logger = deps.logger;
    this.keys = recordKeys(config);
  }

  /** Reads the TLS files and builds the client; contacts nothing, so Estuary starts while the collector is down. */
  async start(): Promise<void> {
    await this.open();
  }

  async write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    const client = await this.open();
    const { items, rejected } = toItems(chunk.entries(), this.keys, this.config.resource_keys);
    const encode = this.config.encoding === 'json' ? encodeJson : encodeProtobuf;
    return sendInRequests(
      items,
      {
        ...requestLimits(this.config.batch_size),
        entry: (item) => item.entry,
        noun: 'log record',
        send: async (request, signal) => {
          const partial = await client.export(encode(request), signal);
          if (partial.rejected > 0) return refused(request, partial.rejected, partial.message);
          if (partial.message !== '')
            this.logger.warn({ message: partial.message }, 'the collector took every record, with a warning');
          return undefined;
        },
        onSplit: (request) =>
          this.logger.debug({ records: request.length }, '413 from the collector: splitting the request'),
      },
      options.signal,
      rejected,
    );
  }

  async stop(): Promise<void> {
    this.client?.close();
    this.client = undefined;
  }

  private async open(): Promise<OtlpClient> {
    if (this.client) return this.client;
    // node:http's client side is loaded only by configs that use an HTTP output.
    const { OtlpClient } = await import('./client.ts');
    this.tls ??= this.config.tls && readClientTls(this.config.tls, this.configDir);
    this.client ??= new OtlpClient(this.config, this.tls);
    return this.client;
  }
}

/**
 * partial_success counts the records refused, never which ones: every record of the request
 * is dead-lettered with the collector's words, so none that was refused is lost; a replay may
 * send the others again.
 */
function refused(request: readonly OtlpItem[], count: number, message: string) {
  const reason =
    count >= request.length
      ? `the collector refused the ${request.length} log records of the request: ${message}`
      : `the collector refused ${count} of the ${request.length} log records of the request without saying which (all are dead-lettered; a replay may repeat the others): ${message}`;
  return request.map(() => ({ kind: 'reject' as const, reason }));
}
