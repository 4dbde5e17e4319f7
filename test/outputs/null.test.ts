import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeChunk } from '../../src/buffer/chunk.ts';
import { makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { nullOutput } from '../../src/outputs/null/index.ts';
import { NO_DEADLINE } from '../support/outputs.ts';

const deps = { id: 'null.0', logger: silentLogger(), metrics: new Metrics(), configDir: '/' };

describe('null output', () => {
  it('takes no options', () => {
    assert.deepEqual(nullOutput.schema.parse({}), {});
    assert.equal(nullOutput.schema.safeParse({ path: '/tmp/x' }).success, false);
  });

  it('accepts every chunk and reports it all written', async () => {
    const output = nullOutput.create(nullOutput.schema.parse({}), deps);
    assert.equal(output.type, 'null');
    assert.equal(output.id, 'null.0');
    const chunk = makeChunk('c1', [makeBatch('a', [{ time: new EventTime(1, 0), record: { x: 1 } }])], 0);
    assert.equal(await output.write(chunk, NO_DEADLINE), undefined);
    assert.equal(await output.write(makeChunk('c2', [], 0), NO_DEADLINE), undefined);
  });
});
