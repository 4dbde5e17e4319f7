import { dirname, resolve, sep } from 'node:path';
import { RejectError } from '../../core/errors.ts';
import { EventTime } from '../../core/event-time.ts';
import { strftime } from '../../core/strftime.ts';

const PLACEHOLDER = /\$\{([^}]*)\}/g;
const TAG_REF = /^tag(?:\[(-?\d+)\])?$/;

/** Why `template` is not a usable path, or undefined when it is. */
export function checkPathTemplate(template: string): string | undefined {
  for (const [, inner] of template.matchAll(PLACEHOLDER)) {
    if (!TAG_REF.test(inner!)) return `unknown placeholder \${${inner}} (known: \${tag}, \${tag[N]})`;
  }
  if (template.endsWith('/')) return 'path names a directory; it must name a file';
  return undefined;
}

/**
 * A Fluentd-style file path: strftime directives from the record's time, `${tag}` parts from
 * its tag. Tags come from the network, so their values are made inert before they enter a path.
 */
export class PathTemplate {
  /** The path holds parts of the record's tag, so which file a record goes to is the record's doing. */
  readonly fromRecord: boolean;
  private readonly template: string;
  private readonly local: boolean;
  /** Everything resolved must stay under the directory of the template's fixed prefix. */
  private readonly root: string;
  private readonly tagParts = new Map<string, string[]>();
  /** Directives below the second (%L, %N): only then can two records of one second differ. */
  private readonly subSecond: boolean;
  private readonly timed: boolean;
  // The last path resolved: a chunk's records mostly share a tag and a second.
  private lastTag: string | undefined;
  private lastSec = -1;
  private lastPath = '';

  constructor(template: string, configDir: string, local: boolean) {
    // Joined, not resolved: resolving now would let `..` in the template eat a placeholder.
    this.template = template.startsWith('/') ? template : `${configDir}/${template}`;
    this.local = local;
    this.fromRecord = /\$\{/.test(template);
    const cut = this.template.search(/\$\{|%/);
    const fixed = cut < 0 ? this.template : this.template.slice(0, cut);
    const base = fixed.endsWith('/') ? resolve(fixed) : resolve(dirname(fixed));
    this.root = base.endsWith(sep) ? base : base + sep;
    this.subSecond = /%[LN]/.test(template);
    this.timed = template.includes('%');
  }

  /** `resolve` for a record's tag and time, computed once per tag and second. */
  resolveAt(tag: string, sec: number, nsec: number): string {
    if (!this.subSecond && tag === this.lastTag && (sec === this.lastSec || !this.timed))
      return this.lastPath;
    const path = this.resolve(tag, new EventTime(sec, nsec));
    this.lastTag = tag;
    this.lastSec = sec;
    this.lastPath = path;
    return path;
  }

  resolve(tag: string, time: EventTime): string {
    const dated = strftime(this.template, time, this.local);
    const path = resolve(dated.replace(PLACEHOLDER, (_whole, inner: string) => this.tagValue(tag, inner)));
    // Unreachable with sanitized values; kept so a template edge case cannot write elsewhere.
    if (!path.startsWith(this.root)) throw new RejectError(`path ${path} escapes ${this.root}`);
    return path;
  }

  private tagValue(tag: string, inner: string): string {
    let parts = this.tagParts.get(tag);
    if (!parts) {
      parts = [sanitize(tag), ...tag.split('.').map(sanitize)];
      if (this.tagParts.size > 10_000) this.tagParts.clear();
      this.tagParts.set(tag, parts);
    }
    const index = TAG_REF.exec(inner)?.[1];
    if (index === undefined) return parts[0]!;
    const count = parts.length - 1;
    const n = Number(index);
    const i = n < 0 ? count + n : n;
    return i >= 0 && i < count ? parts[1 + i]! : '_';
  }
}

/**
 * No separators, no control characters, no `..`, not `.` and not empty: such a value can never
 * form a path segment that climbs out of the directory, whatever surrounds it in the template.
 */
export function sanitize(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const clean = value.replace(/[/\\\x00-\x1f\x7f]/g, '_').replace(/\.\./g, '__');
  return clean === '' || clean === '.' ? '_' : clean;
}
