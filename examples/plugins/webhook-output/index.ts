/**
 * webhook: each chunk the buffer hands over is one JSON POST (an array of records) to `url`.
 * Batching is the buffer's: chunk_limit_records / chunk_limit_size / flush_interval size the
 * POSTs. The receiver's answer decides what happens to the chunk:
 *   2xx delivered · 408, 429, 5xx, network errors: retried (after Retry-After when given) ·
 *   401, 403, 404: halted (a credential or URL to fix; the data is kept, the output probes and
 *   resumes) · any other 4xx (400, 413, 422): dead-lettered with the receiver's words.
 *
 * Written against the public plugin API only: nothing of Estuary is imported at run time.
 */
import { gzipSync } from 'node:zlib';
import type { PluginApi, PluginDefinitions } from 'estuary/plugin';

export default (api: PluginApi): PluginDefinitions => {
  const { z } = api;
  const schema = z.strictObject({
    url: z.url({ protocol: /^https?$/ }),
    /** Sent with every POST (e.g. a shared secret header). */
    headers: z.record(z.string(), z.string()).default({}),
    /** `Authorization: Bearer <token>`. */
    bearer_token: z.string().min(1).optional(),
    /** `record`: the records alone; `json`: {tag, time, record} each. */
    format: z.enum(['record', 'json']).default('record'),
    gzip: z.boolean().default(false),
    /** Give up on one POST after this long (the write deadline may cut it shorter). */
    timeout: api.schemas.duration().default(10_000),
  });
  return {
    outputs: [
      api.defineOutput({
        type: 'webhook',
        schema,
        bufferDefaults: { chunk_limit_records: 500, chunk_limit_size: '1MiB', flush_interval: '1s' },
        create(config, ctx) {
          const posts = ctx.metrics.counter('webhook_posts_total', 'POSTs by HTTP status (0: no answer).', [
            'status',
          ]);
          const seconds = ctx.metrics.histogram(
            'webhook_post_seconds',
            'Time of one POST.',
            [],
            [0.01, 0.05, 0.1, 0.5, 1, 5, 10],
          );
          const headers: Record<string, string> = {
            ...config.headers,
            'content-type': 'application/json',
            ...(config.gzip && { 'content-encoding': 'gzip' }),
            ...(config.bearer_token && { authorization: `Bearer ${config.bearer_token}` }),
          };
          // What errors (and so dead-letter reasons and the admin status) may show: no query,
          // where a token often rides.
          const shown = `${new URL(config.url).origin}${new URL(config.url).pathname}`;
          return {
            async write(chunk, { signal }) {
              const { bytes, count, rejected } = api.toJsonArray(chunk, { format: config.format });
              // Records no JSON can carry are the records' fault: dead-letter them alone.
              if (count === 0) return { reject: rejected };
              const done = seconds.startTimer();
              let response: Response;
              let text: string;
              try {
                response = await fetch(config.url, {
                  method: 'POST',
                  headers,
                  body: config.gzip ? gzipSync(bytes) : bytes,
                  signal: AbortSignal.any([signal, AbortSignal.timeout(config.timeout)]),
                });
                text = await response.text();
              } catch (err) {
                posts.inc({ status: 0 });
                const why = signal.aborted ? 'aborted at the write deadline' : (err as Error).message;
                throw new api.RetryableError(`POST ${shown}: ${why}`, { cause: err });
              } finally {
                done();
              }
              posts.inc({ status: response.status });
              if (response.ok) return rejected.length ? { reject: rejected } : undefined;
              const why = `POST ${shown}: ${response.status} ${text.slice(0, 300)}`.trim();
              const status = response.status;
              if (status === 408 || status === 429 || status >= 500) {
                const retryAfterMs = api.parseRetryAfter(response.headers.get('retry-after') ?? undefined);
                throw new api.RetryableError(why, { retryAfterMs });
              }
              if (status === 401 || status === 403 || status === 404) throw new api.HaltError(why);
              throw new api.RejectError(why);
            },
          };
        },
      }),
    ],
  };
};
