/**
 * The HTTPS sinks' certificates: self-signed, made with openssl for one run, valid for the
 * sink's loopback address (Node checks it; Fluent Bit checks the chain).
 */
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';

/** A certificate and its key for `ip` (and localhost), as PEM files in `dir`. */
export function loopbackCert(dir: string, ip: string): { cert: string; key: string } {
  const cert = join(dir, 'sink-cert.pem');
  const key = join(dir, 'sink-key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'].concat([
      '-addext',
      `subjectAltName=IP:${ip},DNS:localhost`,
      '-keyout',
      key,
      '-out',
      cert,
    ]),
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/** An address of 127.0.0.0/8 other than 127.0.0.1 (Linux answers on all of them). */
export function randomLoopback(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
}
