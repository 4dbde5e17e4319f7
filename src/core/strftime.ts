import type { EventTime } from './event-time.ts';

/**
 * The strftime subset Fluentd paths and index names use (`%Y%m%d`, `%H`, …), in UTC unless
 * `local` is set. Unknown directives are left as written so a typo is visible in the output.
 */
export function strftime(format: string, time: EventTime | Date, local = false): string {
  const date = time instanceof Date ? time : time.toDate();
  const nsec = time instanceof Date ? (time.getTime() % 1000) * 1e6 : time.nsec;
  const get = local
    ? {
        Y: date.getFullYear(),
        m: date.getMonth() + 1,
        d: date.getDate(),
        H: date.getHours(),
        M: date.getMinutes(),
        S: date.getSeconds(),
      }
    : {
        Y: date.getUTCFullYear(),
        m: date.getUTCMonth() + 1,
        d: date.getUTCDate(),
        H: date.getUTCHours(),
        M: date.getUTCMinutes(),
        S: date.getUTCSeconds(),
      };
  const p2 = (n: number) => String(n).padStart(2, '0');
  return format.replace(/%([YmdHMSLNjsz%])/g, (whole, d: string) => {
    switch (d) {
      case 'Y':
        return String(get.Y);
      case 'm':
        return p2(get.m);
      case 'd':
        return p2(get.d);
      case 'H':
        return p2(get.H);
      case 'M':
        return p2(get.M);
      case 'S':
        return p2(get.S);
      case 'L':
        return String(Math.floor(nsec / 1e6)).padStart(3, '0');
      case 'N':
        return String(nsec).padStart(9, '0');
      case 's':
        return String(Math.floor(date.getTime() / 1000));
      case 'j': {
        const start = local ? new Date(get.Y, 0, 1).getTime() : Date.UTC(get.Y, 0, 1);
        return String(Math.floor((date.getTime() - start) / 86_400_000) + 1).padStart(3, '0');
      }
      case 'z': {
        const off = local ? -date.getTimezoneOffset() : 0;
        const sign = off < 0 ? '-' : '+';
        return `${sign}${p2(Math.floor(Math.abs(off) / 60))}${p2(Math.abs(off) % 60)}`;
      }
      case '%':
        return '%';
      default:
        return whole;
    }
  });
}
