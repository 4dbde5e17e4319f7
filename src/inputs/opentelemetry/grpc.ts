import type { TlsOptions } from 'node:tls';
import {
  type handleUnaryCall,
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import type { BearerAuth } from '../../core/bearer-auth.ts';
import { BackpressureError, errorMessage, InputError } from '../../core/errors.ts';
import { type InflightBudget, inflightFull } from '../../core/inflight.ts';
import { BodyError } from '../http-body.ts';
import type { OtlpInputConfig } from './config.ts';
import { LOGS_ONLY } from './index.ts';
import type { Ingest } from './ingest.ts';
import { decodeRequest, encodeResponse, encodeRetryStatus, OtlpFormatError } from './otlp.ts';

type Result = 'bad_request' | 'unauthorized' | 'too_large' | 'backpressure' | 'error';

export interface GrpcHooks {
  ingest: Ingest;
  inflight: InflightBudget;
  auth: BearerAuth;
  ok(): void;
  refused(result: Result, reason: string): void;
  bytes(n: number): void;
}

/**
 * One unary method whose messages stay bytes: they are decoded by our own bounded decoder
 * (otlp.ts), not by generated code.
 */
function unary(service: string): ServiceDefinition {
  const identity = (b: Buffer) => b;
  return {
    Export: {
      path: `/opentelemetry.proto.collector.${service}/Export`,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  };
}

/**
 * OTLP/gRPC: `LogsService/Export`, and the trace and metrics services answering UNIMPLEMENTED
 * with a reason. grpc-js undoes `grpc-encoding: gzip` and refuses a message past max_body_size
 * (once decompressed) with RESOURCE_EXHAUSTED before we see it.
 */
export class GrpcListener {
  private readonly server: Server;
  private readonly config: OtlpInputConfig;
  private readonly tls: TlsOptions | undefined;
  private readonly hooks: GrpcHooks;
  private boundPort: number | undefined;

  constructor(config: OtlpInputConfig, tls: TlsOptions | undefined, hooks: GrpcHooks) {
    this.config = config;
    this.tls = tls;
    this.hooks = hooks;
    this.server = new Server({
      'grpc.max_receive_message_length': config.max_body_size,
      'grpc.max_send_message_length': 1024 * 1024,
    });
    this.server.addService(unary('logs.v1.LogsService'), {
      Export: ((call, callback) => void this.export(call, callback)) as handleUnaryCall<Buffer, Buffer>,
    });
    for (const [service, what] of [
      ['trace.v1.TraceService', 'traces'],
      ['metrics.v1.MetricsService', 'metrics'],
    ] as const) {
      this.server.addService(unary(service), {
        Export: ((_call, callback) =>
          callback({
            code: status.UNIMPLEMENTED,
            details: `${what} are not served: ${LOGS_ONLY}`,
          })) as handleUnaryCall<Buffer, Buffer>,
      });
    }
  }

  get port(): number | undefined {
    return this.boundPort;
  }

  start(): Promise<void> {
    const credentials = this.tls
      ? ServerCredentials.createSsl(
          (this.tls.ca as Buffer | undefined) ?? null,
          [{ cert_chain: this.tls.cert as Buffer, private_key: this.tls.key as Buffer }],
          this.tls.requestCert === true,
        )
      : ServerCredentials.createInsecure();
    const host = this.config.listen.includes(':') ? `[${this.config.listen}]` : this.config.listen;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host}:${this.config.grpc_port}`, credentials, (err, port) => {
        if (err) reject(err);
        else {
          this.boundPort = port;
          resolve();
        }
      });
    });
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      // Calls in flight finish (their records are acked or refused); new ones are refused.
      const force = setTimeout(() => this.server.forceShutdown(), 10_000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }

  private async export(
    call: ServerUnaryCall<Buffer, Buffer>,
    callback: sendUnaryData<Buffer>,
  ): Promise<void> {
    const at = performance.now();
    const { hooks } = this;
    const refuse = (code: status, result: Result, reason: string, retryAfterSeconds?: number) => {
      hooks.refused(result, reason);
      const metadata = new Metadata();
      // RetryInfo: OTLP clients wait as long as asked before they retry (HTTP's Retry-After).
      if (retryAfterSeconds !== undefined)
        metadata.set('grpc-status-details-bin', encodeRetryStatus(code, reason, retryAfterSeconds));
      callback({ code, details: reason, metadata });
    };
    if (hooks.auth.enabled && !hooks.auth.check(String(call.metadata.get('authorization')[0] ?? ''))) {
      refuse(status.UNAUTHENTICATED, 'unauthorized', 'missing or wrong bearer token');
      return;
    }
    const body = call.request;
    hooks.bytes(body.length);
    const lease = hooks.inflight.lease();
    try {
      if (!lease.tryTake(body.length)) throw inflightFull(lease.limit);
      const resourceLogs = decodeRequest(body, hooks.ingest.limits(lease));
      const partial = await hooks.ingest.ingest(resourceLogs, lease, at);
      hooks.ok();
      callback(null, encodeResponse(partial, false));
    } catch (err) {
      // UNAVAILABLE is what OTLP clients retry; INVALID_ARGUMENT they drop.
      if (err instanceof OtlpFormatError) refuse(status.INVALID_ARGUMENT, 'bad_request', err.message);
      else if (err instanceof BodyError && err.status === 413)
        refuse(status.INVALID_ARGUMENT, 'too_large', err.message);
      else if (err instanceof InputError) refuse(status.INVALID_ARGUMENT, 'bad_request', err.message);
      else if (err instanceof BackpressureError)
        refuse(
          status.UNAVAILABLE,
          'backpressure',
          err.message,
          Math.max(0, Math.ceil(err.retryAfterSeconds)),
        );
      else refuse(status.UNAVAILABLE, 'error', errorMessage(err), 1);
    } finally {
      lease.releaseAll();
    }
  }
}
