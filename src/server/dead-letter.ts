import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DeadLetterInfo, DeadLetterQueue } from '../buffer/buffer.ts';
import type { TaggedEntry } from '../core/entry.ts';
import { jsonSafe } from './json.ts';

export type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

/** A dead-letter chunk as the API, `estuary dlq` and people with `jq` read it. */
export type DescribedDeadLetter = Omit<DeadLetterInfo, 'time'> & { time: string };
export type DescribedWithEntries = DescribedDeadLetter & {
  entries: { time: string; tag: string; record: unknown; metadata?: unknown }[];
};

/**
 * One output's dead-letter queue in plain JSON: what the admin routes serve and `estuary dlq`
 * prints, whether the queue is in this process or in a worker process.
 */
export interface DeadLetterApi {
  readonly outputId: string;
  list(): Promise<DescribedDeadLetter[]>;
  show(chunk: string): Promise<DescribedWithEntries | undefined>;
  replay(chunk: string): Promise<boolean>;
  /** One chunk, or every chunk without an id; the number removed. */
  purge(chunk?: string): Promise<number>;
}

export function deadLetterApi(outputId: string, queue: DeadLetterQueue): DeadLetterApi {
  return {
    outputId,
    list: async () => (await queue.list()).map(describeDeadLetter),
    show: async (chunk) => {
      const found = await queue.show(chunk);
      return found && describeWithEntries(found);
    },
    replay: (chunk) => queue.replay(chunk),
    purge: (chunk) => queue.purge(chunk),
  };
}

interface OutputParams {
  id: string;
}
interface ChunkParams extends OutputParams {
  chunk: string;
}

/** The dead-letter API of every output: list, show, replay, delete one, purge. */
export function deadLetterRoutes(
  app: FastifyInstance,
  deadLetterOf: (outputId: string) => DeadLetterApi | undefined,
  requireToken: Guard,
): void {
  const base = '/api/v1/outputs/:id/dead-letter';
  const unknownOutput = (reply: FastifyReply, p: OutputParams) =>
    reply.code(404).send({ error: `unknown output "${p.id}"` });
  const noChunk = (reply: FastifyReply, p: ChunkParams) =>
    reply.code(404).send({ error: `no dead-letter chunk "${p.chunk}" in output "${p.id}"` });

  app.get<{ Params: OutputParams }>(base, async (request, reply) => {
    const dlq = deadLetterOf(request.params.id);
    if (!dlq) return unknownOutput(reply, request.params);
    return { output: dlq.outputId, chunks: await dlq.list() };
  });

  // Shows record contents, which may hold personal data: token required, unlike the other reads.
  app.get<{ Params: ChunkParams }>(`${base}/:chunk`, { onRequest: requireToken }, async (request, reply) => {
    const dlq = deadLetterOf(request.params.id);
    if (!dlq) return unknownOutput(reply, request.params);
    return (await dlq.show(request.params.chunk)) ?? noChunk(reply, request.params);
  });

  app.post<{ Params: ChunkParams }>(
    `${base}/:chunk/replay`,
    { onRequest: requireToken },
    async (request, reply) => {
      const dlq = deadLetterOf(request.params.id);
      if (!dlq) return unknownOutput(reply, request.params);
      if (!(await dlq.replay(request.params.chunk))) return noChunk(reply, request.params);
      return { replayed: request.params.chunk };
    },
  );

  app.delete<{ Params: ChunkParams }>(
    `${base}/:chunk`,
    { onRequest: requireToken },
    async (request, reply) => {
      const dlq = deadLetterOf(request.params.id);
      if (!dlq) return unknownOutput(reply, request.params);
      const removed = await dlq.purge(request.params.chunk);
      if (removed === 0) return noChunk(reply, request.params);
      return { removed };
    },
  );

  app.delete<{ Params: OutputParams }>(base, { onRequest: requireToken }, async (request, reply) => {
    const dlq = deadLetterOf(request.params.id);
    if (!dlq) return unknownOutput(reply, request.params);
    return { removed: await dlq.purge() };
  });
}

function describeDeadLetter(info: DeadLetterInfo): DescribedDeadLetter {
  return { ...info, time: new Date(info.time).toISOString() };
}

function describeWithEntries(found: {
  info: DeadLetterInfo;
  entries: readonly TaggedEntry[];
}): DescribedWithEntries {
  return {
    ...describeDeadLetter(found.info),
    entries: found.entries.map((e) => ({
      time: e.time.toIso(),
      tag: e.tag,
      record: jsonSafe(e.record),
      ...(e.metadata === undefined ? {} : { metadata: jsonSafe(e.metadata) }),
    })),
  };
}
