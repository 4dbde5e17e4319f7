import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { waitFor } from './wait.ts';

/**
 * kinesalite (an in-memory Kinesis Data Streams from npm, speaking the real JSON/CBOR API) on a
 * free port, with a client to create streams and read every record back through
 * GetShardIterator/GetRecords. Streams become ACTIVE at once; nothing touches the disk.
 */

type KinesaliteFactory = (options: {
  createStreamMs?: number;
  deleteStreamMs?: number;
  updateStreamMs?: number;
  shardLimit?: number;
}) => Server;

const kinesalite = createRequire(import.meta.url)('kinesalite') as KinesaliteFactory;

/** A record as GetRecords returns it. */
export interface StreamRecord {
  shardId: string;
  partitionKey: string;
  sequenceNumber: string;
  data: Buffer;
}

/** One PutRecords as it reached the server: kinesalite checks 500 records and 1 MiB of data, not the rest. */
export interface PutRecordsCall {
  records: number;
  /** Data and partition keys, as Kinesis counts a call against its 5 MiB. */
  bytes: number;
  /** The largest record's data and partition key. */
  largest: number;
}

export class Kinesalite {
  readonly client: KinesisClient;
  readonly calls: PutRecordsCall[] = [];
  private readonly server: Server;

  private constructor(server: Server) {
    this.server = server;
    // Read beside kinesalite's own handler: both listeners see the body.
    server.prependListener('request', (req: IncomingMessage) => {
      if (req.headers['x-amz-target'] !== 'Kinesis_20131202.PutRecords') return;
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(parts).toString()) as {
          Records: { Data: string; PartitionKey: string }[];
        };
        const sizes = body.Records.map(
          (r) => Buffer.from(r.Data, 'base64').length + Buffer.byteLength(r.PartitionKey),
        );
        this.calls.push({
          records: sizes.length,
          bytes: sizes.reduce((a, b) => a + b, 0),
          largest: Math.max(0, ...sizes),
        });
      });
    });
    this.client = new KinesisClient({
      region: 'us-east-1',
      endpoint: this.url,
      credentials: { accessKeyId: 'FAKEKEY', secretAccessKey: 'fake-secret' },
      // kinesalite speaks HTTP/1.1; the client's default handler is HTTP/2.
      requestHandler: new NodeHttpHandler(),
    });
  }

  static async start(): Promise<Kinesalite> {
    const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new Kinesalite(server);
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async createStream(name: string, shards = 1): Promise<void> {
    await this.client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
    await waitFor(
      async () =>
        (await this.client.send(new DescribeStreamCommand({ StreamName: name }))).StreamDescription
          ?.StreamStatus === 'ACTIVE',
      { what: `stream ${name} active` },
    );
  }

  /** Every record of the stream, shard by shard, each shard in order. */
  async records(name: string): Promise<StreamRecord[]> {
    const described = await this.client.send(new DescribeStreamCommand({ StreamName: name }));
    const out: StreamRecord[] = [];
    for (const shard of described.StreamDescription?.Shards ?? []) {
      const shardId = shard.ShardId!;
      let iterator = (
        await this.client.send(
          new GetShardIteratorCommand({
            StreamName: name,
            ShardId: shardId,
            ShardIteratorType: 'TRIM_HORIZON',
          }),
        )
      ).ShardIterator;
      while (iterator) {
        const page = await this.client.send(
          new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }),
        );
        for (const r of page.Records ?? [])
          out.push({
            shardId,
            partitionKey: r.PartitionKey!,
            sequenceNumber: r.SequenceNumber!,
            data: Buffer.from(r.Data!),
          });
        // An open shard always has a next iterator: stop once a page comes back empty.
        if ((page.Records ?? []).length === 0) break;
        iterator = page.NextShardIterator;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** What a PutRecords record is answered with when the proxy fails it. */
export interface RecordFault {
  ErrorCode: 'ProvisionedThroughputExceededException' | 'InternalFailure';
  ErrorMessage: string;
}

/**
 * In front of kinesalite, which never throttles: fails the PutRecords records `fault` picks as
 * Kinesis does under load — those records are taken out of the call before kinesalite sees it
 * (so they are not stored) and answered with their ErrorCode in place, FailedRecordCount
 * counting them. Everything else passes through unchanged (kinesalite checks a SigV4 header is
 * there, not the signature, so the shortened body is taken).
 */
export class ThrottlingProxy {
  /** Records failed so far, by error code. */
  readonly failed = new Map<string, number>();
  fault: (data: Buffer, index: number) => RecordFault | undefined = () => undefined;
  private readonly server: Server;
  private readonly target: string;

  private constructor(target: string) {
    this.target = target;
    this.server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        this.forward(req, Buffer.concat(parts)).then(
          ({ status, headers, body }) => res.writeHead(status, headers).end(body),
          (err: unknown) => res.writeHead(502).end(String(err)),
        );
      });
    });
  }

  static async start(target: string): Promise<ThrottlingProxy> {
    const proxy = new ThrottlingProxy(target);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async forward(
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
    const isPut = req.headers['x-amz-target'] === 'Kinesis_20131202.PutRecords';
    const request = isPut ? (JSON.parse(body.toString()) as { Records: { Data: string }[] }) : undefined;
    const faults = request?.Records.map((r, i) => this.fault(Buffer.from(r.Data, 'base64'), i)) ?? [];
    const kept = request?.Records.filter((_, i) => faults[i] === undefined);
    let answer: { status: number; headers: Record<string, string>; body: Buffer };
    if (kept?.length === 0) {
      answer = {
        status: 200,
        headers: { 'content-type': 'application/x-amz-json-1.1' },
        body: Buffer.from(JSON.stringify({ FailedRecordCount: 0, Records: [] })),
      };
    } else {
      const sent = request ? Buffer.from(JSON.stringify({ ...request, Records: kept })) : body;
      const response = await fetch(`${this.target}${req.url ?? '/'}`, {
        method: req.method,
        headers,
        body: sent,
      });
      answer = {
        status: response.status,
        headers: { 'content-type': response.headers.get('content-type') ?? 'application/x-amz-json-1.1' },
        body: Buffer.from(await response.arrayBuffer()),
      };
    }
    if (!request || answer.status !== 200) return answer;
    const stored = JSON.parse(answer.body.toString()) as { FailedRecordCount: number; Records: unknown[] };
    let next = 0;
    let failed = stored.FailedRecordCount;
    const records = faults.map((fault) => {
      if (fault === undefined) return stored.Records[next++];
      failed += 1;
      this.failed.set(fault.ErrorCode, (this.failed.get(fault.ErrorCode) ?? 0) + 1);
      return fault;
    });
    return {
      ...answer,
      body: Buffer.from(JSON.stringify({ ...stored, FailedRecordCount: failed, Records: records })),
    };
  }
}
