import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findAnchor } from '../../bench/anchors.ts';
import { RedisServer } from '../support/redis.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { ROOT, runOk } from './tools.ts';

/**
 * The compose stack's own files run as it runs them, without Docker: the log generator, the
 * Fluent Bit 5.1.1 agent with deploy/compose/fluent-bit/fluent-bit.yaml, two Estuary replicas
 * started by deploy/compose/estuary/start.sh on one Redis. Only the container paths, host
 * names and ports are rewritten to this machine's. Every generated line reaches the archive
 * once, parsed.
 */
const LINES = 25;
const KEY = 'pipeline-test-shared-key';
const children: ChildProcess[] = [];

function start(command: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (code && !signal) console.error(`${command} exited ${code}:\n${stderr}`);
  });
  children.push(child);
  return child;
}

/** Every record the replicas archived under `dir`, by tag (the file's name before the date). */
function archived(dir: string): Map<string, Record<string, unknown>[]> {
  const byTag = new Map<string, Record<string, unknown>[]>();
  for (const replica of existsSync(dir) ? readdirSync(dir) : [])
    for (const file of readdirSync(join(dir, replica))) {
      const tag = file.replace(/-\d{8}\.ndjson$/, '');
      const lines = readFileSync(join(dir, replica, file), 'utf8')
        .split('\n')
        .filter(Boolean);
      // The file output's `json` format: {tag, time, record, metadata}.
      const records = lines.map((l) => (JSON.parse(l) as { record: Record<string, unknown> }).record);
      byTag.set(tag, [...(byTag.get(tag) ?? []), ...records]);
    }
  return byTag;
}

describe('the compose pipeline, run without Docker', () => {
  let redis: RedisServer | undefined;
  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await redis?.stop();
  });

  it('loggen → Fluent Bit (shared_key, acks) → two Estuary replicas on one Redis → the archive', async (t) => {
    const fluentBit = findAnchor('fluent-bit');
    if ('missing' in fluentBit) {
      t.skip(`no Fluent Bit to run the agent with: ${fluentBit.missing}`);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'estuary-compose-pipeline-'));
    runOk('sh', ['deploy/compose/loggen/loggen.sh'], 'a POSIX sh', {
      PATH: process.env.PATH ?? '',
      LOGGEN_DIR: join(dir, 'loggen'),
      LOGGEN_COUNT: String(LINES),
      LOGGEN_INTERVAL: '0',
    });

    // docker-compose.yml's Redis flags.
    redis = await RedisServer.start(['--maxmemory-policy', 'noeviction']);
    const forwardPort = await freePort();
    const estuaryDir = join(dir, 'estuary');
    cpSync(`${ROOT}deploy/compose/estuary`, estuaryDir, { recursive: true });
    const estuaryConfig = join(estuaryDir, 'estuary.yaml');
    const config = readFileSync(estuaryConfig, 'utf8');
    for (const [replica, ports] of [
      ['estuary-1', [forwardPort, await freePort(), await freePort()]],
      ['estuary-2', [await freePort(), await freePort(), await freePort()]],
    ] as const) {
      const replicaDir = join(dir, replica);
      mkdirSync(replicaDir);
      cpSync(estuaryDir, replicaDir, { recursive: true });
      const local = config
        .replace('redis://redis:6379', redis.url)
        .replace('port: 24224', `port: ${ports[0]}`)
        .replace('port: 9880', `port: ${ports[1]}`)
        .replace('port: 24231', `port: ${ports[2]}`)
        .replaceAll('/var/log/estuary/', `${dir}/archive/`);
      assert.doesNotMatch(
        local,
        /redis:\/\/redis|port: (24224|9880|24231)\b|\/var\/log/,
        'every container address rewritten',
      );
      writeFileSync(join(replicaDir, 'estuary.yaml'), local);
      start('sh', [join(replicaDir, 'start.sh')], {
        PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
        HOSTNAME: replica,
        FORWARD_SHARED_KEY: KEY,
        ESTUARY_HTTP_TOKEN: 'http-token',
        ESTUARY_ADMIN_TOKEN: 'admin-token',
        ESTUARY_BIN: `${ROOT}bin/estuary.js`,
        ESTUARY_GENERATED_CONFIG: join(replicaDir, 'generated.yaml'),
      });
      await waitFor(async () => (await fetch(`http://127.0.0.1:${ports[2]}/readyz`)).ok, {
        timeoutMs: 20_000,
        what: `${replica} /readyz`,
      });
    }

    const agentConfig = join(dir, 'fluent-bit.yaml');
    const agent = readFileSync(`${ROOT}deploy/compose/fluent-bit/fluent-bit.yaml`, 'utf8')
      .replaceAll('/var/log/loggen/', `${dir}/loggen/`)
      .replaceAll('/fluent-bit/buffer/', `${dir}/fluent-bit-buffer/`)
      .replace('host: estuary', 'host: 127.0.0.1')
      .replace('port: 24224', `port: ${forwardPort}`)
      .replace('http_port: 2020', `http_port: ${await freePort()}`);
    assert.doesNotMatch(
      agent,
      /\/var\/log|\/fluent-bit\/|host: estuary|port: (24224|2020)\b/,
      'every container address rewritten',
    );
    writeFileSync(agentConfig, agent);
    const [bin, ...args] = fluentBit.command(agentConfig);
    start(bin!, args, { PATH: process.env.PATH ?? '', FORWARD_SHARED_KEY: KEY });

    const archive = join(dir, 'archive');
    await waitFor(
      () => {
        const byTag = archived(archive);
        return byTag.get('app.golang')?.length === LINES && byTag.get('nginx.access')?.length === LINES;
      },
      { timeoutMs: 30_000, what: `${LINES} lines of each file in ${archive}` },
    );
    const byTag = archived(archive);
    // Parsed by the agent's parsers, numbers typed: the Go app's JSON and NGINX's `combined`.
    const app = byTag.get('app.golang')!;
    assert.deepEqual(
      app.map((r) => typeof r.status),
      app.map(() => 'number'),
    );
    assert.deepEqual(new Set(app.map((r) => r.level)), new Set(['info', 'warn']));
    const nginx = byTag.get('nginx.access')!;
    assert.ok(
      nginx.every(
        (r) => typeof r.code === 'number' && typeof r.size === 'number' && r.agent === 'curl/8.5.0',
      ),
    );
    assert.deepEqual(new Set(nginx.map((r) => r.method)), new Set(['GET', 'POST', 'PUT', 'DELETE']));
    // Once each: at-least-once could duplicate, but nothing failed here.
    assert.equal(new Set(nginx.map((r) => `${r.remote} ${r.path} ${r.size}`)).size, LINES);
  });
});
