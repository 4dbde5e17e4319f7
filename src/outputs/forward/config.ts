import { z } from 'zod';
import { duration, port, tlsClient } from '../../config/values.ts';

const server = z.strictObject({
  host: z.string().min(1),
  port: port().default(24224),
  /** Share of the traffic among healthy primaries. */
  weight: z.number().int().min(0).default(60),
  /** Used only while every primary is down (Fluentd's `standby`). */
  standby: z.boolean().default(false),
  /** Shown in logs instead of host:port. */
  name: z.string().optional(),
});

export const forwardOutputSchema = z.strictObject({
  /** Receivers: Fluentd, Fluent Bit or another Estuary. */
  servers: z.array(server).min(1),
  /**
   * Wait for the receiver's `{"ack": chunk}` before a chunk counts as delivered. On by
   * default (Fluentd's default is off): without it a receiver crash loses what it was sent.
   */
  require_ack_response: z.boolean().default(true),
  /** No ack within this time: the connection is dropped and the chunk retried. */
  ack_response_timeout: duration().default(190_000),
  connect_timeout: duration().default(10_000),
  /** Keep connections open between chunks. */
  keepalive: z.boolean().default(true),
  /** Close a kept connection after this long, so load spreads again across receivers behind a Service. */
  keepalive_timeout: duration().optional(),
  /** A server that failed is skipped for this long before it is tried again. */
  recover_wait: duration().default(10_000),
  /** `gzip`: CompressedPackedForward. */
  compress: z.enum(['text', 'gzip']).default('text'),
  /** Send integer seconds instead of EventTime, for receivers older than Fluentd 0.14. */
  time_as_integer: z.boolean().default(false),
  /** TLS to the receivers (files read once, at start); the same block as the HTTP outputs', plus SNI. */
  tls: tlsClient()
    .safeExtend({
      /** SNI and verification name when it differs from `host`. */
      server_name: z.string().min(1).optional(),
    })
    .optional(),
  /** The forward handshake, as Fluentd's `<security>`. */
  security: z
    .strictObject({
      self_hostname: z.string().min(1),
      shared_key: z.string().min(1),
      username: z.string().optional(),
      password: z.string().optional(),
    })
    .optional(),
});
export type ForwardOutputConfig = z.output<typeof forwardOutputSchema>;
export type ForwardServer = ForwardOutputConfig['servers'][number];
