import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { TlsOptions } from 'node:tls';
import { z } from 'zod';
import { errorMessage, HaltError } from '../core/errors.ts';
import { TagPattern } from '../core/tag-pattern.ts';
import { parseDuration, parseSize } from '../core/units.ts';

/** Bytes, from `8MiB`, `512KiB`, `10MB` or a plain number. */
export const size = () =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a size like 8MiB or 512KiB, got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return bytes;
  });

/** Milliseconds, from `500ms`, `5s`, `10m`, `72h` or a number of seconds. */
export const duration = () =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration like 500ms, 5s or 72h, got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return ms;
  });

export const tagPattern = () =>
  z.string().transform((value, ctx) => {
    try {
      return new TagPattern(value);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a tag pattern like app.** — ${(err as Error).message}`,
      });
      return z.NEVER;
    }
  });

/** A TCP port; a numeric string is accepted too, since `"${PORT}"` must be quoted inside `{ }`. */
export const port = () =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a port number 0-65535, got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return n;
  });

/** TLS for a listener; file paths are read at start (readServerTls). */
export const tlsServer = () =>
  z.strictObject({
    cert_file: z.string(),
    key_file: z.string(),
    ca_file: z.string().optional(),
    /** Require and verify client certificates against ca_file. */
    client_auth: z.boolean().default(false),
  });

/** TLS to a server (HTTP outputs); files relative to the config's directory, read by readClientTls. */
export const tlsClient = () =>
  z
    .strictObject({
      /** PEM CA bundle to verify the server's certificate. */
      ca_file: z.string().min(1).optional(),
      /** Client certificate and key, for servers (or gateways) that require one. */
      cert_file: z.string().min(1).optional(),
      key_file: z.string().min(1).optional(),
      /** Verify the certificate and host name. */
      verify: z.boolean().default(true),
    })
    .superRefine((tls, ctx) => {
      if ((tls.cert_file === undefined) !== (tls.key_file === undefined))
        ctx.addIssue({ code: 'custom', message: 'cert_file and key_file go together' });
    });

/**
 * The TLS options of a `tls:` block of tlsClient (none: verify with the system CAs). Read once,
 * when the output starts; an unreadable file is an error naming its key (`tls.ca_file: …`).
 */
export function readClientTls(
  tls: z.output<ReturnType<typeof tlsClient>> | undefined,
  configDir: string,
): Pick<TlsOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> {
  const read = (key: 'ca_file' | 'cert_file' | 'key_file') => {
    const path = tls?.[key];
    if (path === undefined) return undefined;
    try {
      return readFileSync(resolve(configDir, path));
    } catch (err) {
      // Called at start, where any error is a startup error; should a caller read later,
      // HaltError keeps the data: no retry brings a certificate back, and it is not the data's fault.
      throw new HaltError(`tls.${key}: cannot read ${path}: ${errorMessage(err)}`);
    }
  };
  return {
    ca: read('ca_file'),
    cert: read('cert_file'),
    key: read('key_file'),
    rejectUnauthorized: tls?.verify ?? true,
  };
}

/** Keys whose values `estuary check` and logs never show. */
export const SECRET_KEY =
  /(password|passwd|secret|token|shared_key|api[-_]?key|access_key|private_key|credentials|authorization|cookie|^auth$|^dsn$)/i;

/** A listener's TLS options from its `tls:` block, files relative to the config's directory. */
export async function readServerTls(
  tls: z.output<ReturnType<typeof tlsServer>>,
  configDir: string,
): Promise<TlsOptions> {
  const read = (file: string) => readFile(resolve(configDir, file));
  return {
    cert: await read(tls.cert_file),
    key: await read(tls.key_file),
    ...(tls.ca_file ? { ca: await read(tls.ca_file) } : {}),
    requestCert: tls.client_auth,
    rejectUnauthorized: tls.client_auth,
  };
}

/** An http:// or https:// URL; `example` shows the expected shape in the error. */
export function httpUrl(text: string, example: string, ctx: z.RefinementCtx): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected a URL like ${example}, got ${JSON.stringify(text)}` });
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({
      code: 'custom',
      message: `expected an http:// or https:// URL, got ${JSON.stringify(text)}`,
    });
    return undefined;
  }
  return url;
}
