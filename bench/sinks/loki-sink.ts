/**
 * The Loki push fake of the tests, run as a sink: entries are validated and answered but
 * not kept; each entry's timestamp (the EventTime the load generator stamped) gives the
 * end-to-end latency.
 *
 *   node bench/sinks/loki-sink.ts --port 3100
 */
import { parseArgs } from 'node:util';
import { EventTime } from '../../src/core/event-time.ts';
import { LokiFake } from '../../test/support/loki-fake.ts';
import { SinkCounter } from './stats.ts';

const { values } = parseArgs({ options: { port: { type: 'string', default: '3100' } } });
const counter = new SinkCounter();
const fake = await LokiFake.start({ port: Number(values.port) });
fake.retain = false;
fake.onEntry = (entry) => {
  counter.observe(new EventTime(Number(entry.ts / 1_000_000_000n), Number(entry.ts % 1_000_000_000n)), 1);
};
counter.report();
