import { randomInt } from 'node:crypto';

/** An address of 127.0.0.0/8 other than 127.0.0.1 (Linux answers on all of them). */
export function randomLoopback(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
}
