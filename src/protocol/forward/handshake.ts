import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { pack } from '../../core/msgpack.ts';
import { ARRAY, BIN, isWholeValue, MAP, newHeader, readHeader, STR, skipValue } from './msgpack-scan.ts';

/**
 * The Forward Protocol v1 handshake, both sides, as Fluentd does it. No sockets here.
 *
 *   server                                   client
 *   ['HELO', {nonce, auth, keepalive}]  ──►
 *                                       ◄──  ['PING', client_hostname, shared_key_salt,
 *                                              sha512_hex(shared_key_salt + client_hostname + nonce + shared_key),
 *                                              username | '', sha512_hex(auth + username + password) | '']
 *   ['PONG', true, '', self_hostname,   ──►
 *    sha512_hex(shared_key_salt + self_hostname + nonce + shared_key)]
 *   or ['PONG', false, reason, '', ''] and close
 *
 * `nonce` and `auth` are 16 random bytes sent as msgpack bin (as Ruby's Fluentd does);
 * salts and names are hashed as the exact bytes received.
 */

export function randomSalt(): Buffer {
  return randomBytes(16);
}

export function sharedKeyDigest(
  salt: Uint8Array,
  hostname: Uint8Array | string,
  nonce: Uint8Array,
  sharedKey: Uint8Array | string,
): string {
  return createHash('sha512').update(salt).update(hostname).update(nonce).update(sharedKey).digest('hex');
}

export function passwordDigest(
  authSalt: Uint8Array,
  username: Uint8Array | string,
  password: Uint8Array | string,
): string {
  return createHash('sha512').update(authSalt).update(username).update(password).digest('hex');
}

/** Digests compared in constant time (and only as bytes of equal length). */
function sameDigest(expected: string, given: Uint8Array): boolean {
  const a = Buffer.from(expected, 'latin1');
  return a.length === given.length && timingSafeEqual(a, given);
}

// ───────────────────────────── server side ─────────────────────────────

export interface Helo {
  nonce: Buffer;
  /** Salt for the user password digest; empty when the server does not ask for users. */
  auth: Buffer;
  keepalive: boolean;
}

export function encodeHelo(helo: Helo): Buffer {
  return pack(['HELO', { nonce: helo.nonce, auth: helo.auth, keepalive: helo.keepalive }]);
}

export interface Ping {
  hostname: Buffer;
  salt: Buffer;
  digest: Buffer;
  username: Buffer;
  passwordDigest: Buffer;
}

/** A PING from a msgpack frame, or undefined when the frame is not one. */
export function parsePing(frame: Uint8Array): Ping | undefined {
  const fields = stringArray(frame, 6);
  if (!fields || fields[0]!.toString('latin1') !== 'PING') return undefined;
  const [, hostname, salt, digest, username, password] = fields as [
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
  ];
  return { hostname, salt, digest, username, passwordDigest: password };
}

/** A PING from a JSON-mode connection (every field a string). */
export function pingFromJson(value: unknown): Ping | undefined {
  if (!Array.isArray(value) || value.length !== 6 || value[0] !== 'PING') return undefined;
  if (!value.every((v) => typeof v === 'string')) return undefined;
  const [, hostname, salt, digest, username, password] = (value as string[]).map((v) =>
    Buffer.from(v, 'utf8'),
  );
  return {
    hostname: hostname!,
    salt: salt!,
    digest: digest!,
    username: username!,
    passwordDigest: password!,
  };
}

export interface ServerSecurity {
  selfHostname: string;
  sharedKey: string;
  userAuth: boolean;
  users: readonly { username: string; password: string }[];
}

export type PingResult = { ok: true } | { ok: false; reason: string };

/**
 * Fluentd's check_ping, in its order: the source (already decided by the caller from
 * `allow`), the shared key digest, then the user's password digest when user_auth is on.
 */
export function checkPing(
  ping: Ping | undefined,
  helo: Helo,
  security: ServerSecurity,
  source: { allowed: boolean; address: string },
): PingResult {
  if (!ping) return { ok: false, reason: 'invalid ping message' };
  if (!source.allowed) return { ok: false, reason: `anonymous source host '${source.address}' denied` };
  const expected = sharedKeyDigest(ping.salt, ping.hostname, helo.nonce, security.sharedKey);
  if (!sameDigest(expected, ping.digest)) return { ok: false, reason: 'shared_key mismatch' };
  if (security.userAuth) {
    let matched = false;
    for (const user of security.users) {
      // Every user is tried, so the time taken does not tell which names exist.
      const ok =
        Buffer.from(user.username, 'utf8').equals(ping.username) &&
        sameDigest(passwordDigest(helo.auth, user.username, user.password), ping.passwordDigest);
      matched = ok || matched;
    }
    if (!matched) return { ok: false, reason: 'username/password mismatch' };
  }
  return { ok: true };
}

/** PONG as an array: msgpack it, or JSON it for a JSON-mode connection. */
export function pong(
  result: PingResult,
  ping: Ping | undefined,
  helo: Helo,
  security: ServerSecurity,
): unknown[] {
  if (!result.ok || !ping) return ['PONG', false, result.ok ? 'invalid ping message' : result.reason, '', ''];
  const digest = sharedKeyDigest(ping.salt, security.selfHostname, helo.nonce, security.sharedKey);
  return ['PONG', true, '', security.selfHostname, digest];
}

// ───────────────────────────── client side ─────────────────────────────

/** A HELO from a msgpack frame (nonce and auth as str or bin), or undefined. */
export function parseHelo(frame: Uint8Array): Helo | undefined {
  const h = newHeader();
  const end = frame.length;
  if (!isWholeValue(frame, 8)) return undefined;
  let p = readHeader(frame, 0, end, h);
  if (h.type !== ARRAY || h.length !== 2) return undefined;
  p = readHeader(frame, p, end, h);
  if (h.type !== STR || Buffer.from(frame.subarray(p, p + h.length)).toString('latin1') !== 'HELO')
    return undefined;
  p = readHeader(frame, p + h.length, end, h);
  if (h.type !== MAP) return undefined;
  const helo: Helo = { nonce: Buffer.alloc(0), auth: Buffer.alloc(0), keepalive: true };
  const pairs = h.length;
  for (let i = 0; i < pairs; i++) {
    const keyEnd = skipValue(frame, p, end, 8);
    const key = bytesAt(frame, p, keyEnd)?.toString('latin1');
    const valueEnd = skipValue(frame, keyEnd, end, 8);
    const v = frame.subarray(keyEnd, valueEnd);
    if (key === 'nonce') helo.nonce = bytesAt(v, 0, v.length) ?? helo.nonce;
    else if (key === 'auth') helo.auth = bytesAt(v, 0, v.length) ?? helo.auth;
    else if (key === 'keepalive') helo.keepalive = v[0] !== 0xc2;
    p = valueEnd;
  }
  return helo.nonce.length > 0 ? helo : undefined;
}

export interface ClientCredentials {
  hostname: string;
  sharedKey: string;
  username?: string;
  password?: string;
}

/** The PING answering `helo`, and the salt to check the PONG with. */
export function encodePing(helo: Helo, client: ClientCredentials): { bytes: Buffer; salt: Buffer } {
  // The salt goes as a string of hex digits, as Fluentd's out_forward sends it: Fluent Bit's
  // forward input refuses a binary one ("Invalid shared_key_salt type"). The digests are over
  // the same bytes the peer reads.
  const text = randomSalt().toString('hex');
  const salt = Buffer.from(text, 'latin1');
  const digest = sharedKeyDigest(salt, client.hostname, helo.nonce, client.sharedKey);
  const withUser = helo.auth.length > 0 && client.username !== undefined;
  const username = withUser ? client.username! : '';
  const password = withUser ? passwordDigest(helo.auth, username, client.password ?? '') : '';
  return { bytes: pack(['PING', client.hostname, text, digest, username, password]), salt };
}

/** Checks a PONG: the server's verdict, then its digest of our shared key. */
export function checkPong(
  frame: Uint8Array,
  helo: Helo,
  salt: Uint8Array,
  client: ClientCredentials,
): PingResult {
  const h = newHeader();
  const end = frame.length;
  let fields: (Buffer | boolean)[];
  try {
    if (skipValue(frame, 0, end, 8) !== end) return { ok: false, reason: 'invalid PONG message' };
    let p = readHeader(frame, 0, end, h);
    if (h.type !== ARRAY || h.length !== 5) return { ok: false, reason: 'invalid PONG message' };
    fields = [];
    for (let i = 0; i < 5; i++) {
      const next = skipValue(frame, p, end, 8);
      const b = frame[p];
      fields.push(b === 0xc3 ? true : b === 0xc2 ? false : (bytesAt(frame, p, next) ?? Buffer.alloc(0)));
      p = next;
    }
  } catch {
    return { ok: false, reason: 'invalid PONG message' };
  }
  const [name, ok, reason, hostname, digest] = fields as [Buffer, boolean, Buffer, Buffer, Buffer];
  if (!(name instanceof Buffer) || name.toString('latin1') !== 'PONG')
    return { ok: false, reason: 'invalid PONG message' };
  if (ok !== true)
    return { ok: false, reason: `authentication failed: ${Buffer.from(reason).toString('utf8')}` };
  if (hostname.toString('utf8') === client.hostname)
    return { ok: false, reason: 'same hostname on both ends: set a different self_hostname' };
  if (!sameDigest(sharedKeyDigest(salt, hostname, helo.nonce, client.sharedKey), digest))
    return { ok: false, reason: 'shared_key mismatch' };
  return { ok: true };
}

// ───────────────────────────── helpers ─────────────────────────────

function bytesAt(buf: Uint8Array, pos: number, end: number): Buffer | undefined {
  const h = newHeader();
  const body = readHeader(buf, pos, end, h);
  if (body < 0 || (h.type !== STR && h.type !== BIN) || body + h.length > end) return undefined;
  return Buffer.from(buf.subarray(body, body + h.length));
}

/** An array of exactly `n` str/bin values, as byte buffers; undefined otherwise. */
function stringArray(frame: Uint8Array, n: number): Buffer[] | undefined {
  const h = newHeader();
  const end = frame.length;
  let p = readHeader(frame, 0, end, h);
  if (p < 0 || h.type !== ARRAY || h.length !== n) return undefined;
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    let next: number;
    try {
      next = skipValue(frame, p, end, 4);
    } catch {
      return undefined;
    }
    const bytes = bytesAt(frame, p, next);
    if (!bytes) return undefined;
    out.push(bytes);
    p = next;
  }
  return out;
}
