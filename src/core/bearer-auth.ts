import { createHash, timingSafeEqual } from 'node:crypto';

/** `Authorization: Bearer <token>` against a list of accepted tokens (HTTP input, admin API). */
export class BearerAuth {
  private readonly digests: readonly Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.map(digest);
  }

  /** No tokens configured: the guarded routes are refused outright rather than left open. */
  get enabled(): boolean {
    return this.digests.length > 0;
  }

  check(header: string | undefined): boolean {
    const match = /^Bearer +(\S+) *$/i.exec(header ?? '');
    if (!match) return false;
    const given = digest(match[1]!);
    let ok = false;
    // Every token is compared, so timing does not tell which one (or how many) exist.
    for (const d of this.digests) ok = timingSafeEqual(d, given) || ok;
    return ok;
  }
}

/** timingSafeEqual needs equal lengths; comparing digests keeps a token's length from leaking too. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
