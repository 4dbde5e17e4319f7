import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** A self-signed certificate for `ip` (127.0.0.1 unless told) and localhost, made with openssl in `dir`. */
export function selfSignedCert(dir: string, ip = '127.0.0.1'): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      `subjectAltName=IP:${ip},DNS:localhost`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}
