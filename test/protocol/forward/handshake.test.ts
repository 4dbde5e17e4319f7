import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
// An independent implementation of both sides of the handshake, used as the reference.
import * as reference from '@fluent-org/logger/build/src/protocol.js';
import { pack, unpack } from '../../../src/core/msgpack.ts';
import {
  checkPing,
  checkPong,
  encodeHelo,
  encodePing,
  type Helo,
  parseHelo,
  parsePing,
  passwordDigest,
  pingFromJson,
  pong,
  randomSalt,
  type ServerSecurity,
  sharedKeyDigest,
} from '../../../src/protocol/forward/handshake.ts';

const security: ServerSecurity = {
  selfHostname: 'estuary-0',
  sharedKey: 'secret',
  userAuth: false,
  users: [],
};
const anyone = { allowed: true, address: '10.0.0.7' };

function newHelo(): Helo {
  return { nonce: randomSalt(), auth: randomSalt(), keepalive: true };
}

/** The reference client's PING for our HELO. */
function referencePing(helo: Helo, key: string, user?: { username: string; password: string }) {
  const decoded = reference.decode(encodeHelo(helo)) as unknown[];
  assert.ok(reference.isHelo(decoded), 'our HELO is a HELO to the reference client');
  const options = reference.parseHelo(decoded as Parameters<typeof reference.parseHelo>[0]);
  const keyInfo = {
    salt: createHash('md5').update(String(Math.random())).digest('hex'),
    nonce: options.nonce,
    key,
  };
  const auth = user ? { ...user, salt: options.auth as Uint8Array } : undefined;
  const ping = reference.generatePing('fluent-bit-node-1', keyInfo, auth);
  return { bytes: Buffer.from(reference.encodeMessage(ping)), keyInfo };
}

describe('forward handshake — server side against a reference client', () => {
  it('sends HELO as Fluentd does: nonce and auth salt as 16 raw bytes, keepalive', () => {
    const helo = newHelo();
    const decoded = unpack(encodeHelo(helo)) as [string, Record<string, unknown>];
    assert.equal(decoded[0], 'HELO');
    assert.ok(Buffer.isBuffer(decoded[1].nonce) || decoded[1].nonce instanceof Uint8Array);
    assert.equal((decoded[1].nonce as Uint8Array).length, 16);
    assert.equal((decoded[1].auth as Uint8Array).length, 16);
    assert.equal(decoded[1].keepalive, true);
  });

  it('right key: PONG [true, "", self_hostname, sha512(salt + self_hostname + nonce + key)] the client accepts', () => {
    const helo = newHelo();
    const { bytes, keyInfo } = referencePing(helo, 'secret');
    const ping = parsePing(bytes);
    const result = checkPing(ping, helo, security, anyone);
    assert.deepEqual(result, { ok: true });
    const answer = pong(result, ping, helo, security);
    assert.deepEqual(answer.slice(0, 4), ['PONG', true, '', 'estuary-0']);
    const expected = createHash('sha512')
      .update(keyInfo.salt)
      .update('estuary-0')
      .update(helo.nonce)
      .update('secret')
      .digest('hex');
    assert.equal(answer[4], expected);
    const decoded = reference.decode(pack(answer));
    assert.ok(reference.isPong(decoded));
    reference.checkPong(decoded as Parameters<typeof reference.checkPong>[0], 'fluent-bit-node-1', keyInfo);
  });

  it('wrong key: PONG [false, "shared_key mismatch", "", ""]', () => {
    const helo = newHelo();
    const ping = parsePing(referencePing(helo, 'not-the-secret').bytes);
    const result = checkPing(ping, helo, security, anyone);
    assert.deepEqual(result, { ok: false, reason: 'shared_key mismatch' });
    assert.deepEqual(pong(result, ping, helo, security), ['PONG', false, 'shared_key mismatch', '', '']);
  });

  it('user auth: the right password passes; a wrong one or an unknown user does not', () => {
    const withUsers: ServerSecurity = {
      ...security,
      userAuth: true,
      users: [
        { username: 'alice', password: 'a-pass' },
        { username: 'bob', password: 'b-pass' },
      ],
    };
    const helo = newHelo();
    const ok = parsePing(referencePing(helo, 'secret', { username: 'bob', password: 'b-pass' }).bytes);
    assert.deepEqual(checkPing(ok, helo, withUsers, anyone), { ok: true });
    assert.equal(
      ok!.passwordDigest.toString(),
      createHash('sha512').update(helo.auth).update('bob').update('b-pass').digest('hex'),
    );
    const wrong = parsePing(referencePing(helo, 'secret', { username: 'bob', password: 'a-pass' }).bytes);
    assert.deepEqual(checkPing(wrong, helo, withUsers, anyone), {
      ok: false,
      reason: 'username/password mismatch',
    });
    const nobody = parsePing(referencePing(helo, 'secret', { username: 'eve', password: 'x' }).bytes);
    assert.deepEqual(checkPing(nobody, helo, withUsers, anyone), {
      ok: false,
      reason: 'username/password mismatch',
    });
    const none = parsePing(referencePing(helo, 'secret').bytes);
    assert.deepEqual(checkPing(none, helo, withUsers, anyone), {
      ok: false,
      reason: 'username/password mismatch',
    });
  });

  it('an anonymous source when not allowed, and a non-PING, are refused like Fluentd', () => {
    const helo = newHelo();
    const ping = parsePing(referencePing(helo, 'secret').bytes);
    assert.deepEqual(checkPing(ping, helo, security, { allowed: false, address: '192.0.2.9' }), {
      ok: false,
      reason: "anonymous source host '192.0.2.9' denied",
    });
    assert.equal(parsePing(pack(['PING', 'h', 's'])), undefined);
    assert.equal(parsePing(pack(['app', 1, { a: 1 }])), undefined);
    assert.deepEqual(checkPing(undefined, helo, security, anyone), {
      ok: false,
      reason: 'invalid ping message',
    });
  });

  it('takes a PING in JSON (a JSON-mode connection)', () => {
    const helo = newHelo();
    const salt = 'abcdef';
    const digest = sharedKeyDigest(Buffer.from(salt), 'host', helo.nonce, 'secret');
    const ping = pingFromJson(['PING', 'host', salt, digest, '', '']);
    assert.deepEqual(checkPing(ping, helo, security, anyone), { ok: true });
    assert.equal(pingFromJson(['PING', 'host', 1, digest, '', '']), undefined);
  });
});

describe('forward handshake — client side against a reference server', () => {
  it('answers a HELO with a PING the server accepts, and checks its PONG', () => {
    const nonce = randomSalt();
    const auth = randomSalt();
    const heloBytes = Buffer.from(reference.encodeMessage(reference.generateHelo(nonce, auth, true)));
    const helo = parseHelo(heloBytes)!;
    assert.ok(helo.nonce.equals(nonce));
    assert.ok(helo.auth.equals(auth));
    const client = { hostname: 'estuary-a', sharedKey: 'k', username: 'u', password: 'p' };
    const { bytes, salt } = encodePing(helo, client);
    const ping = reference.decode(bytes) as Parameters<typeof reference.checkPing>[0];
    assert.ok(reference.isPing(ping));
    const serverKey = { nonce, key: 'k' };
    const { sharedKeyInfo } = reference.checkPing(ping, 'estuary-b', serverKey, {
      salt: auth,
      userDict: { u: 'p' },
    });
    const answer = Buffer.from(
      reference.encodeMessage(reference.generatePong('estuary-b', true, '', sharedKeyInfo)),
    );
    assert.deepEqual(checkPong(answer, helo, salt, client), { ok: true });
    // A server that does not know the key cannot produce the digest.
    const forged = Buffer.from(
      reference.encodeMessage(
        reference.generatePong('estuary-b', true, '', { ...sharedKeyInfo, key: 'other' }),
      ),
    );
    assert.deepEqual(checkPong(forged, helo, salt, client), { ok: false, reason: 'shared_key mismatch' });
    const refused = pack(['PONG', false, 'shared_key mismatch', '', '']);
    assert.deepEqual(checkPong(refused, helo, salt, client), {
      ok: false,
      reason: 'authentication failed: shared_key mismatch',
    });
  });

  it('digests hash salt, hostname, nonce and key in that order', () => {
    const salt = Buffer.from('s');
    const nonce = Buffer.from('n');
    assert.equal(sharedKeyDigest(salt, 'h', nonce, 'k'), createHash('sha512').update('shnk').digest('hex'));
    assert.equal(
      passwordDigest(Buffer.from('a'), 'u', 'p'),
      createHash('sha512').update('aup').digest('hex'),
    );
  });
});
