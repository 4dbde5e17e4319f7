import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DeadLetterInfo, OutputBuffer } from '../buffer/buffer.ts';
import type { TaggedEntry } from '../core/entry.ts';
import { jsonSafe } from './json.ts';

export type Guard = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

interface OutputParams {
  id: string;
}
interface ChunkParams extends OutputParams {
  chunk: string;
}

/** The dead-letter API of every output: list, show, replay, delete one, purge. */
export function deadLetterRoutes(
  app: FastifyInstance,
  bufferOf: (outputId: string) => OutputBuffer | undefined,
  requireToken: Guard,
): void {
  const base = '/api/v1/outputs/:id/dead-letter';
  const unknownOutput = (reply: FastifyReply, p: OutputParams) =>
    reply.code(404).send({ error: `unknown output "${p.id}"` });
  const noChunk = (reply: FastifyReply, p: ChunkParams) =>
    reply.code(404).send({ error: `no dead-letter chunk "${p.chunk}" in output "${p.id}"` });

  app.get<{ Params: OutputParams }>(base, async (request, reply) => {
    const buffer = bufferOf(request.params.id);
    if (!buffer) return unknownOutput(reply, request.params);
    const chunks = await buffer.deadLetter.list();
    return { output: buffer.id, chunks: chunks.map(describeDeadLetter) };
  });

  // Shows record contents, which may hold personal data: token required, unlike the other reads.
  app.get<{ Params: ChunkParams }>(`${base}/:chunk`, { onRequest: requireToken }, async (request, reply) => {
    const buffer = bufferOf(request.params.id);
    if (!buffer) return unknownOutput(reply, request.params);
    const found = await buffer.deadLetter.show(request.params.chunk);
    if (!found) return noChunk(reply, request.params);
    return describeWithEntries(found);
  });

  app.post<{ Params: ChunkParams }>(
    `${base}/:chunk/replay`,
    { onRequest: requireToken },
    async (request, reply) => {
      const buffer = bufferOf(request.params.id);
      if (!buffer) return unknownOutput(reply, request.params);
      if (!(await buffer.deadLetter.replay(request.params.chunk))) return noChunk(reply, request.params);
      return { replayed: request.params.chunk };
    },
  );

  app.delete<{ Params: ChunkParams }>(
    `${base}/:chunk`,
    { onRequest: requireToken },
    async (request, reply) => {
      const buffer = bufferOf(request.params.id);
      if (!buffer) return unknownOutput(reply, request.params);
      const removed = await buffer.deadLetter.purge(request.params.chunk);
      if (removed === 0) return noChunk(reply, request.params);
      return { removed };
    },
  );

  app.delete<{ Params: OutputParams }>(base, { onRequest: requireToken }, async (request, reply) => {
    const buffer = bufferOf(request.params.id);
    if (!buffer) return unknownOutput(reply, request.params);
    return { removed: await buffer.deadLetter.purge() };
  });
}

/** Epoch milliseconds are for machines; the API (and `estuary dlq`) is read by people and `jq` too. */
export function describeDeadLetter(info: DeadLetterInfo) {
  return { ...info, time: new Date(info.time).toISOString() };
}

/** One dead-letter chunk with its decoded records, as the API and `estuary dlq show` print it. */
export function describeWithEntries(found: { info: DeadLetterInfo; entries: readonly TaggedEntry[] }) {
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
