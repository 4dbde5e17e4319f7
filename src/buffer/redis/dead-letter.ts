import { randomUUID } from 'node:crypto';
import type { TaggedEntry } from '../../core/entry.ts';
import type { DeadLetterInfo, DeadLetterQueue } from '../buffer.ts';
import { makeChunk } from '../chunk.ts';
import { decodeFrames } from './frames.ts';
import type { OutputKeys } from './keys.ts';
import { DEAD_PURGE, DEAD_REPLAY, type RedisClient } from './scripts.ts';

const FIELDS = ['reason', 'attempts', 'time', 'count', 'bytes'] as const;

/**
 * One output's dead-letter chunks in Redis (keys.ts: `dead`, `d:ID`, `dm:ID`), shared by
 * every replica and by `estuary dlq`. Replay moves the frames back as a new sealed chunk,
 * ready for any replica; nothing is copied through this process.
 */
export class RedisDeadLetterQueue implements DeadLetterQueue {
  private readonly client: RedisClient;
  private readonly keys: OutputKeys;
  private readonly outputId: string;
  /** Tells this process's driver that a replayed chunk is ready (other processes find it by polling). */
  private readonly onReplay: () => void;

  constructor(client: RedisClient, keys: OutputKeys, outputId: string, onReplay: () => void = () => {}) {
    this.client = client;
    this.keys = keys;
    this.outputId = outputId;
    this.onReplay = onReplay;
  }

  async list(): Promise<DeadLetterInfo[]> {
    const ids = await this.client.zrange(this.keys.dead, 0, '-1');
    const metas = await Promise.all(ids.map((id) => this.client.hmget(this.keys.deadMeta(id), ...FIELDS)));
    return ids.flatMap((id, i) => this.info(id, metas[i]!) ?? []);
  }

  async show(id: string): Promise<{ info: DeadLetterInfo; entries: TaggedEntry[] } | undefined> {
    const [meta, data] = await Promise.all([
      this.client.hmget(this.keys.deadMeta(id), ...FIELDS),
      this.client.lrangeBuffer(this.keys.deadData(id), 0, -1),
    ]);
    const info = this.info(id, meta);
    if (!info || data.length === 0) return undefined;
    return { info, entries: [...makeChunk(id, decodeFrames(data), 0).entries()] };
  }

  async replay(id: string): Promise<boolean> {
    const chunkId = randomUUID();
    const moved = await DEAD_REPLAY.run(this.client, this.keys.script, [id, chunkId]);
    if (moved !== 1) return false;
    this.onReplay();
    return true;
  }

  async purge(id?: string): Promise<number> {
    if (id === '') return 0;
    return Number(await DEAD_PURGE.run(this.client, this.keys.script, [id ?? '']));
  }

  private info(id: string, meta: (string | null)[]): DeadLetterInfo | undefined {
    const [reason, attempts, time, count, bytes] = meta;
    if (reason === null || reason === undefined) return undefined;
    return {
      id,
      outputId: this.outputId,
      reason,
      attempts: Number(attempts),
      time: Number(time),
      count: Number(count),
      bytes: Number(bytes),
    };
  }
}
