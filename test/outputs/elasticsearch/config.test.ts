import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinRegistry } from '../../../src/builtins.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { elasticsearchSchema } from '../../../src/outputs/elasticsearch/config.ts';
import { configErrors } from '../../support/config.ts';

function errorsOf(options: string): string[] {
  return configErrors(() =>
    loadConfig(`outputs:\n  - type: elasticsearch\n${options}`, 'es.yaml', builtinRegistry(), {}),
  );
}

describe('elasticsearch output config', () => {
  it('has fluent-plugin-elasticsearch defaults, idempotent ids on', () => {
    const c = elasticsearchSchema.parse({});
    assert.equal(c.flavor, 'elasticsearch');
    assert.equal(c.hosts, undefined, 'http://localhost:9200 is applied by the client');
    assert.equal(c.index, 'fluentd');
    assert.equal(c.logstash_format, false);
    assert.equal(c.logstash_prefix, 'logstash');
    assert.equal(c.logstash_dateformat, '%Y.%m.%d');
    assert.equal(c.time_key, '@timestamp');
    assert.equal(c.write_operation, 'create');
    assert.equal(c.generate_id, true);
    assert.equal(c.bulk_max_bytes, 10 * 1024 * 1024);
    assert.equal(c.bulk_max_actions, 5000);
    assert.equal(c.request_timeout, 60_000);
    assert.equal(c.sniffing, false);
    assert.equal(c.suppress_type_name, true);
  });

  it('reads hosts as Fluentd does: a list or a comma-separated string, host:port without a scheme', () => {
    const hosts = (value: unknown) => elasticsearchSchema.parse({ hosts: value }).hosts;
    assert.deepEqual(hosts('es-0:9201, es-1,https://es-2.example.com'), [
      'http://es-0:9201',
      'http://es-1:9200',
      'https://es-2.example.com',
    ]);
    assert.deepEqual(hosts(['http://[::1]:9200']), ['http://[::1]:9200']);
  });

  it('reports each conflicting or malformed option at its own line', () => {
    const lines = errorsOf(`    cloud_id: "x:eHh4"
    hosts: ["ftp://es:21"]
    api_key: k
    username: u
    write_operation: update
    data_stream: true
    logstash_format: true
    index: "logs-\${tag[x]}"
    template_name: t
`);
    assert.deepEqual(lines, [
      'es.yaml:4: outputs[0].hosts: expected an http:// or https:// URL, got "ftp://es:21"',
      "es.yaml:10: outputs[0].index: unknown placeholder ${tag[x]} (known: ${tag}, ${tag[N]}, ${record['key']['sub']}, ${$.key.sub})",
    ]);
    const more = errorsOf(`    cloud_id: "x:eHh4"
    hosts: ["http://es:9200"]
    api_key: k
    username: u
    write_operation: update
    data_stream: true
    logstash_format: true
    template_name: t
    compatibility_version: 8
    flavor: opensearch
`);
    assert.deepEqual(more, [
      'es.yaml:3: outputs[0].cloud_id: set cloud_id or hosts, not both',
      'es.yaml:3: outputs[0].cloud_id: cloud_id is Elastic Cloud only',
      'es.yaml:5: outputs[0].api_key: set api_key or username, not both',
      'es.yaml:6: outputs[0].username: username needs a password',
      'es.yaml:11: outputs[0].compatibility_version: OpenSearch does not take Elasticsearch compatibility media types',
      'es.yaml:2: outputs[0].id_key: write_operation update needs id_key: an update names the document it changes',
      'es.yaml:9: outputs[0].logstash_format: data streams roll over by themselves: no logstash_format',
      'es.yaml:7: outputs[0].write_operation: data streams only take write_operation create',
      'es.yaml:10: outputs[0].template_name: template_name and template_file go together',
    ]);
  });
});
