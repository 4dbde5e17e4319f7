import type { TaggedEntry } from '../../core/entry.ts';
import { EventTime } from '../../core/event-time.ts';
import { getPath, parseRecordPath } from '../../core/record-path.ts';

/**
 * Where a stream's labels come from, and the guard that keeps their number of values in
 * check. Everything here but CardinalityGuard is pure.
 *
 *   labels (fixed, or `$record.path`) ─┐
 *   auto_kubernetes_labels ────────────┤  later sources replace earlier ones of the same name
 *   label_map_path ────────────────────┤ ─► Map<name, value> ─► CardinalityGuard ─► stream labels
 *   label_keys ────────────────────────┤                              └─ past max_label_values:
 *   include_tag ───────────────────────┘                                 structured metadata
 */

/** One label from the configuration: a fixed value, or a value read from each record. */
export type LabelSpec = { name: string; value: string } | { name: string; path: readonly string[] };

/**
 * A name Loki accepts: every character outside `[a-zA-Z0-9_]` becomes `_`, and a leading
 * digit gets a `_` in front (`app.kubernetes.io/name` → `app_kubernetes_io_name`). Undefined
 * for an empty name.
 */
export function sanitizeLabelName(name: string): string | undefined {
  if (name === '') return undefined;
  const out = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(out) ? `_${out}` : out;
}

/**
 * A record value as a label value: strings (binary as UTF-8), numbers and booleans as text.
 * Maps, arrays, null and empty strings are no label value (Loki drops empty labels anyway).
 */
export function labelValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value instanceof Uint8Array) return labelValue(Buffer.from(value).toString('utf8'));
  if (value instanceof EventTime) return value.toIso();
  return undefined;
}

function spec(name: string, value: string): LabelSpec {
  const label = sanitizeLabelName(name);
  if (label === undefined) throw new Error(`empty label name in ${JSON.stringify(`${name}=${value}`)}`);
  if (!value.startsWith('$')) return { name: label, value };
  return { name: label, path: parseRecordPath(value) };
}

/** `$sub['stream']` alone: the label is named after the path's last key. */
function accessor(text: string): LabelSpec {
  const path = parseRecordPath(text);
  const name = sanitizeLabelName(path[path.length - 1]!);
  if (name === undefined) throw new Error(`cannot name a label after ${JSON.stringify(text)}`);
  return { name, path };
}

/**
 * The `labels` option in the three spellings users bring:
 * - a map: `{ job: fluent-bit, stream: "$sub['stream']" }` (a value starting with `$` is a record path);
 * - the Grafana plugin's string: `{job="fluent-bit", tag="my_cpu"}`;
 * - Fluent Bit's string: `job=fluent-bit, $sub['stream'], mystream=$sub['stream']`.
 * Throws with what is wrong.
 */
export function parseLabels(
  value: string | Readonly<Record<string, string | number | boolean>>,
): LabelSpec[] {
  if (typeof value !== 'string') return Object.entries(value).map(([name, v]) => spec(name, String(v)));
  const text = value.trim();
  if (text === '') return [];
  return text.startsWith('{') ? parseBraced(text) : splitTopLevel(text).map(parseItem);
}

function parseItem(item: string): LabelSpec {
  if (item.startsWith('$')) return accessor(item);
  const eq = item.indexOf('=');
  if (eq <= 0) throw new Error(`expected name=value or $record['key'], got ${JSON.stringify(item)}`);
  let v = item.slice(eq + 1).trim();
  if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0])) v = v.slice(1, -1);
  return spec(item.slice(0, eq).trim(), v);
}

/** Splits at commas that are not inside `[...]` or quotes (a record path may hold either). */
function splitTopLevel(text: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '[') depth += 1;
    else if (c === ']') depth -= 1;
    else if (c === ',' && depth === 0) {
      items.push(text.slice(start, i));
      start = i + 1;
    }
  }
  items.push(text.slice(start));
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

const BRACED_PAIR = /\s*([^\s=,{}"]+)\s*=\s*("(?:[^"\\]|\\.)*")\s*(,|\})/y;

/** `{name="value", …}`: Prometheus label-set text, as the Grafana plugin's `Labels` takes it. */
function parseBraced(text: string): LabelSpec[] {
  if (!text.endsWith('}')) throw new Error(`expected {name="value", …}, got ${JSON.stringify(text)}`);
  const out: LabelSpec[] = [];
  BRACED_PAIR.lastIndex = 1;
  if (/^\{\s*\}$/.test(text)) return out;
  for (;;) {
    const at = BRACED_PAIR.lastIndex;
    const m = BRACED_PAIR.exec(text);
    if (!m) throw new Error(`expected name="value" at character ${at + 1} of ${JSON.stringify(text)}`);
    let value: string;
    try {
      value = JSON.parse(m[2]!) as string;
    } catch {
      throw new Error(`bad quoted value ${m[2]} in ${JSON.stringify(text)}`);
    }
    const name = sanitizeLabelName(m[1]!)!;
    out.push({ name, value });
    if (m[3] === '}') {
      if (BRACED_PAIR.lastIndex !== text.length) throw new Error(`text after } in ${JSON.stringify(text)}`);
      return out;
    }
  }
}

/**
 * A `label_map_path` file, as the Grafana plugin reads it: a JSON object shaped like the
 * records, whose string leaves name the label that the record value at that place becomes:
 * `{"kubernetes": {"namespace_name": "namespace", "labels": {"app": "app"}}}`.
 */
export function parseLabelMap(json: unknown): { name: string; path: readonly string[] }[] {
  const out: { name: string; path: readonly string[] }[] = [];
  const walk = (node: unknown, path: string[]) => {
    if (typeof node === 'string') {
      const name = sanitizeLabelName(node);
      if (name === undefined) throw new Error(`empty label name at ${path.join('.')}`);
      out.push({ name, path });
      return;
    }
    if (node === null || typeof node !== 'object' || Array.isArray(node)) {
      throw new Error(`expected a label name (string) or an object at ${path.join('.') || 'the top'}`);
    }
    for (const [key, child] of Object.entries(node)) walk(child, [...path, key]);
  };
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error('expected a JSON object mapping record keys to label names');
  }
  walk(json, []);
  return out;
}

/** Fluent Bit's kubernetes filter keys that become the fixed Kubernetes labels. */
const KUBERNETES_KEYS = [
  ['namespace_name', 'namespace'],
  ['pod_name', 'pod'],
  ['container_name', 'container'],
  ['host', 'host'],
] as const;

/**
 * `auto_kubernetes_labels`: from the `kubernetes` map Fluent Bit's kubernetes filter adds, the
 * pod's own labels (names sanitized), then `namespace`, `pod`, `container` and `host` (which
 * win over a pod label of the same name). Pod ids, container ids, images and annotations are
 * left out: they change with every rollout and would make a new stream each time.
 */
export function kubernetesLabels(kubernetes: unknown, into: Map<string, string>): void {
  if (kubernetes === null || typeof kubernetes !== 'object' || Array.isArray(kubernetes)) return;
  const k8s = kubernetes as Record<string, unknown>;
  const podLabels = k8s.labels;
  if (podLabels !== null && typeof podLabels === 'object' && !Array.isArray(podLabels)) {
    for (const [key, raw] of Object.entries(podLabels as Record<string, unknown>)) {
      const name = sanitizeLabelName(key);
      const value = labelValue(raw);
      if (name !== undefined && value !== undefined) into.set(name, value);
    }
  }
  for (const [key, name] of KUBERNETES_KEYS) {
    const value = labelValue(k8s[key]);
    if (value !== undefined) into.set(name, value);
  }
}

/** Every label source of one output, resolved from its configuration. */
export interface LabelRules {
  /** `labels`: fixed values and record paths, in order. */
  labels: readonly LabelSpec[];
  autoKubernetes: boolean;
  /** `label_map_path`, flattened. */
  map: readonly { name: string; path: readonly string[] }[];
  /** `label_keys`, each named after its last key. */
  keys: readonly { name: string; path: readonly string[] }[];
  includeTag: boolean;
}

export interface ExtractedLabels {
  /** Name → value; fixed labels included. */
  labels: Map<string, string>;
  /** Names whose value came from the record or the tag (the guard watches these; fixed values cannot grow). */
  dynamic: Set<string>;
  /** Record paths whose values became labels: they leave the line. */
  consumed: (readonly string[])[];
}

/**
 * A record key as this output's options take it: `kubernetes.namespace_name` (dots go into
 * nested maps), `$kubernetes['namespace_name']` or `$.kubernetes.namespace_name`; a key that
 * itself holds dots is written `$['cpu0.p_cpu']`.
 */
export function recordKey(text: string): readonly string[] {
  const path = text.startsWith('$') ? parseRecordPath(text) : text.split('.');
  if (path.some((p) => p === '')) throw new Error(`invalid record key ${JSON.stringify(text)}`);
  return path;
}

/** A `label_keys` entry: the label is named after the key's last part. */
export function labelKey(text: string): { name: string; path: readonly string[] } {
  const path = recordKey(text);
  const name = sanitizeLabelName(path[path.length - 1]!);
  if (name === undefined) throw new Error(`cannot name a label after ${JSON.stringify(text)}`);
  return { name, path };
}

/** The record value at a path, or undefined: from the decoded record, or read from its bytes. */
export type ReadPath = (path: readonly string[]) => unknown;

/** The labels one entry asks for, before the cardinality guard. */
export function extractLabels(entry: TaggedEntry, rules: LabelRules): ExtractedLabels {
  return labelsFrom((path) => getPath(entry.record, path), entry.tag, rules);
}

/**
 * extractLabels for a record seen through `read`: one algorithm whether the record was decoded
 * or is read from its msgpack bytes, so the two give the same labels.
 */
export function labelsFrom(read: ReadPath, tag: string, rules: LabelRules): ExtractedLabels {
  const labels = new Map<string, string>();
  const dynamic = new Set<string>();
  const consumed: (readonly string[])[] = [];
  const fromRecord = (name: string, path: readonly string[]) => {
    const value = labelValue(read(path));
    if (value === undefined) return;
    labels.set(name, value);
    dynamic.add(name);
    consumed.push(path);
  };
  for (const label of rules.labels) {
    if ('path' in label) fromRecord(label.name, label.path);
    else {
      labels.set(label.name, label.value);
      dynamic.delete(label.name);
    }
  }
  if (rules.autoKubernetes) {
    const k8s = new Map<string, string>();
    kubernetesLabels(read(KUBERNETES_PATH), k8s);
    for (const [name, value] of k8s) {
      labels.set(name, value);
      dynamic.add(name);
    }
  }
  for (const { name, path } of rules.map) fromRecord(name, path);
  for (const { name, path } of rules.keys) fromRecord(name, path);
  if (rules.includeTag) {
    labels.set('tag', tag);
    dynamic.add('tag');
  }
  return { labels, dynamic, consumed };
}

/** Where auto_kubernetes_labels reads: the map Fluent Bit's kubernetes filter adds. */
export const KUBERNETES_PATH: readonly string[] = ['kubernetes'];

/** Every record path the label sources read (the kubernetes map for auto_kubernetes_labels). */
export function labelPaths(rules: LabelRules): (readonly string[])[] {
  const paths: (readonly string[])[] = [];
  for (const label of rules.labels) if ('path' in label) paths.push(label.path);
  if (rules.autoKubernetes) paths.push(KUBERNETES_PATH);
  for (const { path } of rules.map) paths.push(path);
  for (const { path } of rules.keys) paths.push(path);
  return paths;
}

const HOUR = 3_600_000;

/**
 * `max_label_values`: at most this many distinct values per label name, counted over a
 * sliding window (an hour by default). A value already seen in the window stays a label; a new
 * value past the limit does not get one — the caller sends it as structured metadata, so no new
 * stream is made for it. Values not seen for a window free their place.
 *
 * Per name, values are kept in a Map ordered by when they were last seen (to the minute),
 * oldest first, so expiring is a walk from the front that stops at the first value still fresh.
 */
export class CardinalityGuard {
  private readonly seen = new Map<string, Map<string, number>>();
  private readonly max: number;
  private readonly windowMs: number;
  private readonly refreshMs: number;
  private readonly now: () => number;

  /** `max` 0 turns the guard off. */
  constructor(max: number, windowMs = HOUR, now: () => number = Date.now) {
    this.max = max;
    this.windowMs = windowMs;
    this.refreshMs = windowMs / 60;
    this.now = now;
  }

  /** Whether `value` may be a value of label `name` now; remembers it when it may. */
  admit(name: string, value: string): boolean {
    if (this.max <= 0) return true;
    let values = this.seen.get(name);
    if (!values) {
      values = new Map();
      this.seen.set(name, values);
    }
    const t = this.now();
    const seenAt = values.get(value);
    if (seenAt !== undefined) {
      // Moving a value to the back costs a delete and a set: done once a minute per value at
      // most, so a value may leave up to a minute before its hour is over.
      if (t - seenAt >= this.refreshMs) {
        values.delete(value);
        values.set(value, t);
      }
      return true;
    }
    if (values.size >= this.max) {
      for (const [old, at] of values) {
        if (t - at < this.windowMs) break;
        values.delete(old);
      }
      if (values.size >= this.max) return false;
    }
    values.set(value, t);
    return true;
  }

  /** Distinct values of `name` in the window (for tests and status). */
  size(name: string): number {
    return this.seen.get(name)?.size ?? 0;
  }
}
