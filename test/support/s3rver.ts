import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { gunzipSync } from 'node:zlib';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
} from '@aws-sdk/client-s3';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** Credentials for stores that do not check them: set in the environment, as the default chain reads them. */
export function useTestCredentials(): void {
  process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
  process.env.AWS_REGION ??= 'us-east-1';
  // Never wait on the EC2 metadata service of whatever machine runs the tests.
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
}

/** Started in a child process: s3rver's logger takes over uncaught exceptions of the process it runs in. */
const RUN = `
const S3rver = require('s3rver');
const [directory, buckets] = [process.argv[1], JSON.parse(process.argv[2])];
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory,
  configureBuckets: buckets.map((name) => ({ name })) });
server.run().then((a) => console.log(JSON.stringify({ port: a.port })), (e) => { console.error(e); process.exit(1); });
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

/**
 * A real S3-compatible server (s3rver) of our own: port 0 on 127.0.0.1, its own temp dir.
 * It supports PutObject and multipart uploads and answers NoSuchBucket; it does not check
 * signatures (see s3-fake.ts for what it lacks).
 */
export class S3rverServer {
  readonly url: string;
  readonly dir: string;
  readonly client: S3Client;
  private readonly proc: ChildProcess;

  private constructor(url: string, dir: string, proc: ChildProcess) {
    this.url = url;
    this.dir = dir;
    this.proc = proc;
    this.client = new S3Client({
      endpoint: url,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
  }

  static async start(buckets: readonly string[] = []): Promise<S3rverServer> {
    const dir = await mkdtemp(join(tmpdir(), 'estuary-s3rver-'));
    const proc = spawn(process.execPath, ['-e', RUN, dir, JSON.stringify(buckets)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(proc);
    proc.on('exit', () => running.delete(proc));
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within 10s: ${stderr}`)), 10_000);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited with ${code}: ${stderr}`));
      });
      createInterface({ input: proc.stdout! }).once('line', (line) => {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      });
    });
    return new S3rverServer(`http://127.0.0.1:${port}`, dir, proc);
  }

  async createBucket(name: string): Promise<void> {
    await this.client.send(new CreateBucketCommand({ Bucket: name }));
  }

  async keys(bucket: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.client.send(
        new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) keys.push(o.Key!);
      token = page.NextContinuationToken;
    } while (token);
    return keys.sort();
  }

  /** The object's bytes and headers, as stored (not decompressed). */
  async get(
    bucket: string,
    key: string,
  ): Promise<{ body: Buffer; contentType?: string; contentEncoding?: string; lastModified?: Date }> {
    const answer = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const body = Buffer.from(await answer.Body!.transformToByteArray());
    return {
      body,
      contentType: answer.ContentType,
      contentEncoding: answer.ContentEncoding,
      lastModified: answer.LastModified,
    };
  }

  /** The records of a JSON-lines object (gunzipped when it is gzip). */
  async records(bucket: string, key: string): Promise<Record<string, unknown>[]> {
    const { body } = await this.get(bucket, key);
    const text = (body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body) : body).toString('utf8');
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  async stop(): Promise<void> {
    this.client.destroy();
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
