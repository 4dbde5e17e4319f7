import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freePort, waitFor } from './support/wait.ts';

function startProcess(configFile: string) {
  const child = spawn(process.execPath, ['src/cli.ts', 'run', '-c', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => {
    stdout += d;
  });
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

async function ready(adminPort: number, proc: { child: ChildProcess; err: () => string }) {
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`exited: ${proc.err()}`);
      return (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok;
    },
    { timeoutMs: 10_000, what: 'estuary /readyz' },
  );
}

describe('estuary run (a real process)', () => {
  it('SIGTERM flushes what is buffered, then exits 0; SIGHUP reopens files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-cli-'));
    const [httpPort, adminPort] = [await freePort(), await freePort()];
    const config = join(dir, 'estuary.yaml');
    writeFileSync(
      config,
      `service:
  log_level: info
  http: { listen: 127.0.0.1, port: ${adminPort} }
  buffer: { flush_interval: 1h }
inputs:
  - { type: http, listen: 127.0.0.1, port: ${httpPort} }
outputs:
  - { type: file, id: archive, path: ${dir}/out.ndjson, format: record }
  - { type: stdout, id: console, match: "echo.**", format: json }
`,
    );
    const proc = startProcess(config);
    await ready(adminPort, proc);
    const post = (tag: string, body: string) =>
      fetch(`http://127.0.0.1:${httpPort}/${tag}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body,
      });

    // flush_interval 1h: nothing reaches the file before SIGTERM, so the file proves the shutdown flush.
    assert.equal((await post('echo.hi', '{"msg":"hello"}\n')).status, 200);
    assert.equal(
      (await post('app.a', Array.from({ length: 100 }, (_, i) => JSON.stringify({ i })).join('\n'))).status,
      200,
    );
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.err());
    const lines = readFileSync(join(dir, 'out.ndjson'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 101, 'everything buffered at SIGTERM was flushed to the file');
    assert.deepEqual(JSON.parse(lines[100]!), { i: 99 });
    assert.match(proc.out(), /"tag":"echo.hi".*"record":\{"msg":"hello"\}/, 'stdout output wrote the record');
    const logLines = proc
      .err()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; plugin_id?: string });
    assert.ok(
      logLines.some((l) => l.msg === 'estuary stopped'),
      'logs are JSON lines on stderr',
    );
    assert.ok(
      logLines.some((l) => l.plugin_id),
      'plugin lines carry plugin_id',
    );

    // SIGHUP: after logrotate moves the file away, new writes go to a fresh file at the path.
    writeFileSync(config, readFileSync(config, 'utf8').replace('flush_interval: 1h', 'flush_interval: 20ms'));
    const again = startProcess(config);
    await ready(adminPort, again);
    assert.equal((await post('app.b', '{"n":1}')).status, 200);
    await waitFor(() => readFileSync(join(dir, 'out.ndjson'), 'utf8').includes('{"n":1}'), {
      what: 'first write',
    });
    renameSync(join(dir, 'out.ndjson'), join(dir, 'out.ndjson.1'));
    again.child.kill('SIGHUP');
    await waitFor(() => again.err().includes('files reopened'), { what: 'reopen log line' });
    assert.equal((await post('app.b', '{"n":2}')).status, 200);
    await waitFor(
      () => {
        try {
          return readFileSync(join(dir, 'out.ndjson'), 'utf8') === '{"n":2}\n';
        } catch {
          return false;
        }
      },
      { what: 'second write in a new file' },
    );
    again.child.kill('SIGTERM');
    assert.equal(await again.exited, 0);
  });

  it('refuses to start on an invalid config, naming file and line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-cli-'));
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'inputs:\n  - { type: http, port: 99999999 }\n');
    const proc = startProcess(config);
    assert.equal(await proc.exited, 1);
    assert.match(proc.err(), new RegExp(`${config}:2: inputs\\[0\\]\\.port: `));
  });
});

describe('bin/estuary.js (the installed entry point)', () => {
  it('keeps stripped and compiled modules in the compile cache, which later starts read', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'estuary-cc-'));
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
    delete env.NODE_COMPILE_CACHE;
    const run = () => spawnSync(process.execPath, ['bin/estuary.js', 'version'], { env, encoding: 'utf8' });
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /^estuary \d+\.\d+\.\d+ \(node v24\./);
    // No NODE_COMPILE_CACHE: the entry point turned it on, in the OS temp dir.
    const cached = readdirSync(join(tmp, 'node-compile-cache'), { recursive: true });
    assert.ok(cached.length > 1, `cache entries: ${cached.join(', ')}`);
    assert.equal(run().status, 0);
  });

  it('scripts/warm-compile-cache.mjs fills the cache with every module of src/ (the image runs it)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-cc-'));
    const warm = spawnSync(process.execPath, ['scripts/warm-compile-cache.mjs'], {
      env: { ...process.env, NODE_COMPILE_CACHE: dir },
      encoding: 'utf8',
    });
    assert.equal(warm.status, 0, warm.stderr);
    const modules = readdirSync('src', { recursive: true, encoding: 'utf8' }).filter((f) =>
      f.endsWith('.ts'),
    );
    assert.match(warm.stdout, new RegExp(`^compile cache: ${modules.length} modules in `));
  });
});
