import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MetricLabels, PluginCounter, PluginGauge, PluginHistogram, PluginMetrics } from './api.ts';

/** Every plugin metric name starts so: no plugin can shadow (or be mistaken for) a built-in metric. */
export const PLUGIN_METRIC_PREFIX = 'estuary_plugin_';

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

type Kind = 'counter' | 'gauge' | 'histogram';
type AnyMetric = Counter<string> | Gauge<string> | Histogram<string>;

interface Registered {
  /** Kind, help, labels and buckets: what must agree for two instances to share the metric. */
  shape: string;
  metric: AnyMetric;
}

/**
 * Per registry (one per Estuary, so one per process outside tests): a metric is created once
 * and every instance asking for it again gets the same one, bound to its own plugin_id.
 */
const registered = new WeakMap<Registry, Map<string, Registered>>();

export function pluginMetricName(name: string): string {
  return name.startsWith(PLUGIN_METRIC_PREFIX) ? name : `${PLUGIN_METRIC_PREFIX}${name}`;
}

/** The metrics API of the instance `pluginId`, registering on `registry`. */
export function pluginMetrics(registry: Registry, pluginId: string): PluginMetrics {
  const get = (
    kind: Kind,
    rawName: string,
    help: string,
    labelNames: readonly string[],
    make: Make,
    buckets?: readonly number[],
  ): [string, AnyMetric] => {
    const name = pluginMetricName(rawName);
    if (!NAME.test(name)) throw new Error(`metric name "${rawName}" is not a Prometheus name`);
    for (const label of labelNames) {
      if (!LABEL.test(label) || label.startsWith('__'))
        throw new Error(`metric ${name}: label "${label}" is not a Prometheus label name`);
      if (label === 'plugin_id') throw new Error(`metric ${name}: plugin_id is the label Estuary adds`);
    }
    const byName = registered.get(registry) ?? new Map<string, Registered>();
    registered.set(registry, byName);
    const shape = `${kind} [${[...labelNames].sort().join(', ')}]${buckets ? ` buckets [${buckets.join(', ')}]` : ''} "${help}"`;
    const existing = byName.get(name);
    if (existing) {
      if (existing.shape !== shape)
        throw new Error(`metric ${name} is already registered as ${existing.shape}, not ${shape}`);
      return [name, existing.metric];
    }
    if (registry.getSingleMetric(name)) throw new Error(`metric ${name} is already registered by Estuary`);
    // A histogram exposes <name>_bucket, _sum and _count: no other metric may take those names,
    // and a histogram may not be named over another's series (Prometheus would read two HELPs).
    const clash = seriesNames(kind, name).find((series) =>
      [...byName].some(([other, r]) => seriesNames(r.shape.split(' ')[0] as Kind, other).includes(series)),
    );
    if (clash !== undefined)
      throw new Error(`metric ${name}: its series ${clash} is already another metric's`);
    const metric = make({ name, help, labelNames: ['plugin_id', ...labelNames], registers: [registry] });
    byName.set(name, { shape, metric });
    return [name, metric];
  };
  /** `(value?)` or `(labels, value?)`, as prom-client takes them, with this instance's plugin_id. */
  const args = (a: MetricLabels<string> | number | undefined, b: number | undefined) =>
    typeof a === 'object' ? ([labelled(a), b] as const) : ([{ plugin_id: pluginId }, a] as const);
  // plugin_id first, as it is listed first; and last, so no label value passed in replaces it.
  const labelled = (labels: MetricLabels<string> = {}) =>
    Object.assign({ plugin_id: pluginId }, labels, { plugin_id: pluginId });
  return {
    counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []): PluginCounter<L> {
      const [full, metric] = get('counter', name, help, labelNames, (o) => new Counter(o));
      const c = metric as Counter<string>;
      return {
        name: full,
        inc: (a?: MetricLabels<L> | number, b?: number) => c.inc(...args(a, b)),
      };
    },
    gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): PluginGauge<L> {
      const [full, metric] = get('gauge', name, help, labelNames, (o) => new Gauge(o));
      const g = metric as Gauge<string>;
      return {
        name: full,
        set: (a: MetricLabels<L> | number, b?: number) => {
          const [labels, value] = args(a, b);
          g.set(labels, value ?? 0);
        },
        inc: (a?: MetricLabels<L> | number, b?: number) => g.inc(...args(a, b)),
        dec: (a?: MetricLabels<L> | number, b?: number) => g.dec(...args(a, b)),
      };
    },
    histogram<L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[] = [],
      buckets?: readonly number[],
    ): PluginHistogram<L> {
      const [full, metric] = get(
        'histogram',
        name,
        help,
        labelNames,
        (o) => new Histogram({ ...o, ...(buckets ? { buckets: [...buckets] } : {}) }),
        buckets,
      );
      const h = metric as Histogram<string>;
      return {
        name: full,
        observe: (a: MetricLabels<L> | number, b?: number) => {
          const [labels, value] = args(a, b);
          h.observe(labels, value ?? 0);
        },
        startTimer: (labels?: MetricLabels<L>) => h.startTimer(labelled(labels)),
      };
    },
  };
}

/** The series names a metric exposes. */
function seriesNames(kind: Kind, name: string): string[] {
  return kind === 'histogram' ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
}

type Make = (options: {
  name: string;
  help: string;
  labelNames: string[];
  registers: Registry[];
}) => AnyMetric;
