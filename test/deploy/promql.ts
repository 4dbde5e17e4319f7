/**
 * Just enough PromQL reading for the deploy tests: which metrics an expression reads, and
 * which aggregation takes each of them across replicas. (promtool parses the expressions for
 * real; see monitoring.test.ts.)
 */

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring']);
const AGGREGATIONS = new Set([
  'sum',
  'avg',
  'max',
  'min',
  'count',
  'group',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
]);

/** The expression with strings, label matchers, ranges and grouping label lists blanked out (same length). */
function skeleton(expr: string): string {
  const blank = (m: string) => ' '.repeat(m.length);
  return expr
    .replace(/"(?:[^"\\]|\\.)*"/g, blank)
    .replace(/\{[^}]*\}/g, blank)
    .replace(/\[[^\]]*\]/g, blank)
    .replace(
      /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g,
      (m, word: string) => word + blank(m.slice(word.length)),
    );
}

/** The metric names an expression reads (functions, keywords and label names left out). */
export function metricNames(expr: string): string[] {
  const text = skeleton(expr);
  const names = new Set<string>();
  for (const m of text.matchAll(/(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = text.slice(m.index + m[0].length).trimStart();
    if (after.startsWith('(') || KEYWORDS.has(m[0]) || AGGREGATIONS.has(m[0])) continue;
    names.add(m[0]);
  }
  return [...names];
}

/**
 * For each place `metric` is read: the innermost aggregation around it (`max`, `sum`, …),
 * or undefined when nothing aggregates it.
 */
export function aggregationsOf(expr: string, metric: string): (string | undefined)[] {
  const text = skeleton(expr);
  const found: (string | undefined)[] = [];
  for (const m of text.matchAll(new RegExp(`(?<![\\w:])${metric}(?![\\w:])`, 'g'))) {
    // The parentheses still open at the metric, innermost first.
    const open: number[] = [];
    for (let i = 0; i < m.index; i++) {
      if (text[i] === '(') open.push(i);
      else if (text[i] === ')') open.pop();
    }
    const operator = open
      .reverse()
      .map((at) => /([a-z_]+)(?:\s+(?:by|without))?\s*$/.exec(text.slice(0, at))?.[1])
      .find((word) => word !== undefined && AGGREGATIONS.has(word));
    found.push(operator);
  }
  return found;
}
