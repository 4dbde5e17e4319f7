import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BUFFER_DEFAULTS } from '../../src/config/schema.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { strftime } from '../../src/core/strftime.ts';
import { parseDuration, parseSize } from '../../src/core/units.ts';
import { retryDelay } from '../../src/delivery/retry.ts';

describe('sizes and durations', () => {
  it('parses sizes', () => {
    assert.equal(parseSize('8MiB'), 8 * 1024 * 1024);
    assert.equal(parseSize('512KiB'), 512 * 1024);
    assert.equal(parseSize('10MB'), 10_000_000);
    assert.equal(parseSize('8m'), 8 * 1024 * 1024);
    assert.equal(parseSize(1024), 1024);
    assert.equal(parseSize('eight'), undefined);
    assert.equal(parseSize('5 parsecs'), undefined);
  });

  it('parses durations to milliseconds', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('5s'), 5000);
    assert.equal(parseDuration('72h'), 72 * 3_600_000);
    assert.equal(parseDuration('1.5'), 1500);
    assert.equal(parseDuration(2), 2000);
    assert.equal(parseDuration('soon'), undefined);
  });

  it('formats strftime from the event time in UTC', () => {
    const t = new EventTime(Date.UTC(2024, 1, 29, 23, 5, 9) / 1000, 7_000_000);
    assert.equal(strftime('%Y.%m.%d-%H:%M:%S.%L %j %%', t), '2024.02.29-23:05:09.007 060 %');
  });
});

describe('retry delay', () => {
  it('grows exponentially, caps at max_interval, and stays a number after thousands of retries', () => {
    const policy = { ...BUFFER_DEFAULTS.retry, waitMs: 1000, randomize: false, maxIntervalMs: 60_000 };
    assert.deepEqual(
      [0, 1, 2, 10].map((n) => retryDelay(policy, n)),
      [1000, 2000, 4000, 60_000],
    );
    assert.equal(retryDelay({ ...policy, waitMs: 0 }, 2000), 60_000);
    assert.equal(retryDelay(policy, 5000), 60_000);
  });
});
