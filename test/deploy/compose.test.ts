import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fluentBitDryRun, PROMTOOL_HINT, ROOT, readYaml, runOk } from './tools.ts';

/** docker-compose.yml: the whole pipeline on one machine (README → Quick start). */
interface Service {
  image?: string;
  build?: unknown;
  profiles?: string[];
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: unknown;
}
const compose = readYaml<{ services: Record<string, Service> }>('docker-compose.yml');
const services = compose.services;
const PROFILES = ['elastic', 'loki', 's3'];

/** `${VAR:-default}` as compose interpolates it with VAR unset (the demo defaults). */
function interpolate(value: string, env: Record<string, string> = {}): string {
  return value.replace(
    /\$\{([A-Z_]+)(?::-([^}]*))?\}/g,
    (_, name: string, fallback?: string) => env[name] ?? fallback ?? '',
  );
}

/** The bind mounts of a service: [host path (from the repo root), container path]. */
function binds(name: string): [string, string][] {
  return (services[name]?.volumes ?? [])
    .filter((v) => v.startsWith('./'))
    .map((v) => v.split(':').slice(0, 2) as [string, string]);
}

describe('docker-compose.yml', () => {
  it("Debian's docker-compose accepts it, with every profile", () => {
    const hint = 'apt-get install docker-compose (.ci/run does)';
    const env = { ...process.env, COMPOSE_PROFILES: PROFILES.join(',') };
    const listed = runOk('docker-compose', ['config', '--services'], hint, env);
    assert.deepEqual(listed.trim().split('\n').sort(), Object.keys(services).sort());
    runOk('docker-compose', ['config', '--quiet'], hint);
  });

  it('has the pipeline, and each profile its sinks', () => {
    for (const name of ['redis', 'estuary-1', 'estuary-2', 'loggen', 'fluent-bit', 'prometheus', 'grafana'])
      assert.ok(services[name], `service ${name}`);
    assert.deepEqual(services['fluent-bit']?.image, 'fluent/fluent-bit:5.1.1');
    const byProfile = (p: string) =>
      Object.keys(services).filter((name) => services[name]!.profiles?.includes(p));
    assert.deepEqual(byProfile('elastic'), ['elasticsearch', 'kibana']);
    assert.deepEqual(byProfile('loki'), ['loki']);
    assert.deepEqual(byProfile('s3'), ['minio', 'minio-bucket']);
    for (const p of PROFILES)
      assert.ok(existsSync(`${ROOT}deploy/compose/estuary/outputs/${p}.yaml`), `the outputs of profile ${p}`);
  });

  it('Redis keeps what it is given: appendonly, noeviction', () => {
    const command = services.redis!.command!.join(' ');
    assert.match(command, /--appendonly yes/);
    assert.match(command, /--maxmemory-policy noeviction/);
  });

  it('both replicas are built from the Dockerfile and share the one Redis', () => {
    for (const name of ['estuary-1', 'estuary-2']) {
      assert.equal(services[name]!.build, '.');
      assert.deepEqual(services[name]!.depends_on, { redis: { condition: 'service_healthy' } });
    }
    const config = readFileSync(`${ROOT}deploy/compose/estuary/estuary.yaml`, 'utf8');
    assert.match(config, /type: redis\n\s+redis_url: redis:\/\/redis:6379/);
  });

  it('every file it mounts is in the repository', () => {
    for (const name of Object.keys(services))
      for (const [host] of binds(name)) assert.ok(existsSync(`${ROOT}${host}`), `${name} mounts ${host}`);
  });

  it("start.sh starts Estuary with the Dockerfile's node flags", () => {
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(`${ROOT}Dockerfile`, 'utf8'))?.[1];
    const [node, ...flags] = JSON.parse(entrypoint ?? '[]') as string[];
    const script = readFileSync(`${ROOT}deploy/compose/estuary/start.sh`, 'utf8');
    assert.match(
      script,
      new RegExp(
        `^exec ${node} ${flags.slice(0, -1).join(' ')} "\\$\\{ESTUARY_BIN:-${flags.at(-1)}\\}"`,
        'm',
      ),
    );
  });

  // Each profile alone, none, and all of them: the config start.sh writes passes `estuary check`
  // with the environment compose gives the replicas.
  for (const profiles of ['', ...PROFILES, PROFILES.join(',')]) {
    it(`the Estuary config passes estuary check (COMPOSE_PROFILES=${profiles})`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'estuary-compose-'));
      const service = services['estuary-1']!;
      const env = Object.fromEntries(
        Object.entries(service.environment ?? {}).map(([k, v]) => [
          k,
          interpolate(v, { COMPOSE_PROFILES: profiles }),
        ]),
      );
      const [mounted] = binds('estuary-1').find(([, inside]) => inside === '/etc/estuary') ?? [];
      assert.ok(mounted, 'estuary-1 mounts its config at /etc/estuary');
      assert.deepEqual(service.entrypoint, ['/bin/sh', '/etc/estuary/start.sh']);
      const output = runOk('sh', [`${mounted}/start.sh`, 'check'], 'a POSIX sh', {
        ...env,
        PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
        HOSTNAME: 'estuary-1',
        ESTUARY_BIN: 'bin/estuary.js',
        ESTUARY_GENERATED_CONFIG: join(dir, 'estuary.yaml'),
      });
      const outputs = 1 + profiles.split(',').filter(Boolean).length + (profiles.includes('elastic') ? 1 : 0);
      assert.match(output, new RegExp(`: ok \\(2 inputs, 0 filters, ${outputs} outputs\\)`));
    });
  }

  it('the Fluent Bit agent config passes fluent-bit --dry-run', (t) => {
    const [config] = binds('fluent-bit').find(([, inside]) => inside === '/fluent-bit/etc/estuary') ?? [];
    assert.ok(config);
    const env = { FORWARD_SHARED_KEY: interpolate(services['fluent-bit']!.environment!.FORWARD_SHARED_KEY!) };
    assert.equal(
      env.FORWARD_SHARED_KEY,
      interpolate(services['estuary-1']!.environment!.FORWARD_SHARED_KEY!),
    );
    fluentBitDryRun(t, `${config}/fluent-bit.yaml`, env);
  });

  it('the Prometheus config passes promtool check config, its rules included', () => {
    // Lay the mounts out as the container sees them, so relative rule_files resolve the same.
    const root = mkdtempSync(join(tmpdir(), 'estuary-prometheus-'));
    for (const [host, inside] of binds('prometheus')) {
      mkdirSync(dirname(`${root}${inside}`), { recursive: true });
      writeFileSync(`${root}${inside}`, readFileSync(`${ROOT}${host}`));
    }
    const output = runOk(
      'promtool',
      ['check', 'config', `${root}/etc/prometheus/prometheus.yml`],
      PROMTOOL_HINT,
    );
    assert.match(output, /SUCCESS: 1 rule files found/);
    assert.match(output, /SUCCESS: 8 rules found/);
  });

  it('Prometheus scrapes every Estuary replica', () => {
    const prometheus = readYaml<{
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    }>('deploy/compose/prometheus/prometheus.yml');
    const job = prometheus.scrape_configs.find((c) => c.job_name === 'estuary');
    const replicas = Object.keys(services).filter(
      (name) => services[name]!.entrypoint?.[1] === '/etc/estuary/start.sh',
    );
    assert.deepEqual(
      job?.static_configs.flatMap((c) => c.targets),
      replicas.map((name) => `${name}:24231`),
    );
  });
});
