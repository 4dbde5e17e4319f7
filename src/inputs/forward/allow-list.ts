import { BlockList, isIP } from 'node:net';

/**
 * `security.allow`: the addresses and networks Fluentd's `<client>` sections name. A source
 * outside them is "anonymous", refused at PING when `allow_anonymous_source` is false.
 */
export class AllowList {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const parsed = parseEntry(entry);
      if (!parsed) throw new Error(`not an IP address or CIDR network: ${JSON.stringify(entry)}`);
      const [address, prefix, family] = parsed;
      if (prefix === undefined) this.list.addAddress(address, family);
      else this.list.addSubnet(address, prefix, family);
    }
    this.size = entries.length;
  }

  /** IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, from a `::` listener) count as IPv4. */
  allows(address: string): boolean {
    const plain = unmapIPv4(address);
    const family = isIP(plain);
    if (family === 0) return false;
    return this.list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  }
}

export function unmapIPv4(address: string): string {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(address) ? address.slice(7) : address;
}

/** `10.0.0.0/8`, `192.168.1.5`, `fd00::/8`, `::1` → address, prefix (none for a host) and family. */
export function parseEntry(entry: string): [string, number | undefined, 'ipv4' | 'ipv6'] | undefined {
  const [address = '', bits, extra] = entry.trim().split('/');
  if (extra !== undefined) return undefined;
  const family = isIP(address);
  if (family === 0) return undefined;
  if (bits === undefined) return [address, undefined, family === 4 ? 'ipv4' : 'ipv6'];
  if (!/^\d{1,3}$/.test(bits)) return undefined;
  const prefix = Number(bits);
  if (prefix > (family === 4 ? 32 : 128)) return undefined;
  return [address, prefix, family === 4 ? 'ipv4' : 'ipv6'];
}
