/**
 * Bench record shapes, ~250 bytes each like the seeds' data: a Go service's JSON log line
 * and an nginx access log parsed by Fluent Bit.
 */
export function goAppRecord(i: number): Record<string, unknown> {
  return {
    level: 'info',
    ts: '2026-11-21T10:00:00.000Z',
    caller: 'server/handler.go:142',
    msg: 'request completed',
    method: 'GET',
    path: `/api/v1/items/${i % 10_000}`,
    status: 200,
    duration_ms: 12.5,
    bytes: 5120,
    request_id: `b1946ac9-2492-4d1c-${String(i % 1e12).padStart(12, '0')}`,
  };
}

export function nginxRecord(i: number): Record<string, unknown> {
  return {
    remote: `10.0.${(i >> 8) & 255}.${i & 255}`,
    host: '-',
    user: '-',
    method: 'GET',
    path: `/static/app.${i % 100}.js`,
    code: '200',
    size: '18342',
    referer: 'https://shop.example.com/',
    agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0',
  };
}

export function recordAt(i: number): Record<string, unknown> {
  return i % 2 === 0 ? goAppRecord(i) : nginxRecord(i);
}

/**
 * The same payload as one JSON string under `log`, as a container runtime's line reaches an
 * aggregator before a parser filter reads it (~290 bytes: the quotes escaped).
 */
export function logLineAt(i: number): Record<string, unknown> {
  return { log: JSON.stringify(recordAt(i)) };
}
