/**
 * The Elasticsearch `_bulk` fake of the tests, run as a sink: documents are answered as
 * stored but not kept; each one's `@timestamp` (the EventTime the load generator stamped)
 * gives the end-to-end latency.
 *
 *   node bench/sinks/elasticsearch-sink.ts --port 9200
 */
import { parseArgs } from 'node:util';
import { EventTime } from '../../src/core/event-time.ts';
import { ElasticsearchFake } from '../../test/support/elasticsearch-fake.ts';
import { SinkCounter } from './stats.ts';

const { values } = parseArgs({ options: { port: { type: 'string', default: '9200' } } });
const counter = new SinkCounter();
const fake = await ElasticsearchFake.start({ port: Number(values.port) });
fake.retain = false;
fake.onIndexed = (source) => {
  const ts = source['@timestamp'];
  counter.observe(typeof ts === 'string' ? EventTime.parseIso(ts) : undefined, 1);
};
counter.report();
