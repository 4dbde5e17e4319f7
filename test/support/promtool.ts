import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

/**
 * fluent-plugin-prometheus names these gauges `*_count`, which promtool's lint flags. The
 * names are kept on purpose (DESIGN.md §5: existing Fluentd dashboards and alerts must work),
 * so exactly this finding on exactly these names is accepted; anything else fails.
 */
const FLUENTD_COUNT_NAMES = [
  'fluentd_output_status_emit_count',
  'fluentd_output_status_flush_time_count',
  'fluentd_output_status_retry_count',
  'fluentd_output_status_rollback_count',
  'fluentd_output_status_slow_flush_count',
  'fluentd_output_status_write_count',
];
const COUNT_SUFFIX_LINT = 'non-histogram and non-summary metrics should not have "_count" suffix';

/** promtool's exit code and everything it printed. */
function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new Error(
              'promtool is not on PATH: install the Debian `prometheus` package (apt-get install prometheus)',
            )
          : err,
      ),
    );
    child.on('close', (code) => resolve({ code, output }));
    // A promtool that exits early closes its stdin; its exit code and output tell why.
    child.stdin.on('error', () => {});
    child.stdin.end(text);
  });
}

/** `promtool check metrics` finds nothing in `text` but the known Fluentd-name lint. */
export async function assertPromtoolAccepts(text: string): Promise<void> {
  const { code, output } = await promtoolCheck(text);
  const problems = output
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => !FLUENTD_COUNT_NAMES.some((name) => line === `${name} ${COUNT_SUFFIX_LINT}`));
  assert.deepEqual(problems, [], `promtool found problems:\n${output}`);
  // 3 = lint findings only (the known ones above); 1 would be a parse error.
  assert.ok(code === 0 || code === 3, `promtool exited ${code}:\n${output}`);
}
