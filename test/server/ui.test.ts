/**
 * The queue page (/ui): over HTTP (headers, CSP, auth rules), then in a real headless
 * Chromium driven by puppeteer-core against an in-process Estuary whose outputs retry, halt
 * and dead-letter.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { buildPage } from '../../src/server/ui/queue-page.ts';
import { startEstuary } from '../support/estuary.ts';
import { postJson } from '../support/http.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { freePort, waitFor } from '../support/wait.ts';

const TOKEN = 'admin-token';
/** A sink's reason that would run script if the page ever parsed it as HTML. */
const XSS = 'mapper_parsing_exception <img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';
const SECOND = 'document too large: 2 MiB over the limit';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser']
  .filter((p): p is string => Boolean(p))
  .find((p) => existsSync(p));

/** What the page callbacks touch of the DOM (the project's TypeScript lib has no DOM). */
interface Dom {
  querySelector(selector: string): { textContent: string | null } | null;
  querySelectorAll(selector: string): { length: number };
}

interface DeadChunk {
  id: string;
  reason: string;
  count: number;
}

describe('queue page /ui', async () => {
  const port = await freePort();
  const e = await startEstuary(`
service:
  log_level: silent
  shutdown_timeout: 1s
  buffer: { flush_interval: 30ms, retry: { wait: 10ms, randomize: false } }
inputs:
  - { type: http, listen: 127.0.0.1, port: ${port} }
outputs:
  - { type: scripted, id: sink, match: sink }
  - { type: scripted, id: flaky, match: flaky, fail_times: 1000,
      buffer: { retry: { wait: 60s, randomize: false } } }
  - { type: scripted, id: locked, match: locked, buffer: { retry: { wait: 60s, randomize: false } } }
`);
  after(() => e.stop());
  const base = `http://127.0.0.1:${e.admin.port}`;
  const sink = scriptedInstances.get('sink')!;
  const deadLetters = async (output = 'sink') => {
    const res = await fetch(`${base}/api/v1/outputs/${output}/dead-letter`);
    return ((await res.json()) as { chunks: DeadChunk[] }).chunks;
  };

  // Two dead-lettered chunks in `sink` (one to replay, one to purge), a chunk retrying in
  // `flaky`, and `locked` halted.
  sink.script = [
    { reject: () => true, reason: XSS },
    { reject: () => true, reason: SECOND },
  ];
  scriptedInstances.get('locked')!.script = Array(100).fill('halt');
  assert.equal((await postJson(port, 'sink', [{ n: 1 }, { n: 2 }])).status, 200);
  await waitFor(async () => (await deadLetters()).length === 1, { what: 'the first dead letter' });
  assert.equal((await postJson(port, 'sink', [{ n: 3 }])).status, 200);
  assert.equal((await postJson(port, 'flaky', [{ n: 4 }])).status, 200);
  assert.equal((await postJson(port, 'locked', [{ n: 5 }])).status, 200);
  const dead = await waitFor(async () => {
    const list = await deadLetters();
    return list.length === 2 ? list : undefined;
  });
  const xssChunk = dead.find((c) => c.reason === XSS)!;
  const secondChunk = dead.find((c) => c.reason === SECOND)!;
  assert.ok(xssChunk && secondChunk);
  await waitFor(() => e.app.status().outputs.find((o) => o.id === 'flaky')!.buffer.retrying?.length, {
    what: 'flaky retrying',
  });
  await waitFor(async () => (await e.haltReason('locked')) !== '', { what: 'locked halted' });

  describe('over HTTP', () => {
    it('is served without a token, with a CSP that allows only its own inline script and style', async () => {
      const res = await fetch(`${base}/ui`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/html; charset=utf-8/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const html = await res.text();
      const csp = res.headers.get('content-security-policy')!;
      const directives = new Map(
        csp.split(';').map((d) => {
          const [name, ...values] = d.trim().split(/\s+/);
          return [name!, values.join(' ')];
        }),
      );
      const sha = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
      const script = /<script>([\s\S]*)<\/script>/.exec(html)![1]!;
      const style = /<style>([\s\S]*)<\/style>/.exec(html)![1]!;
      assert.equal(directives.get('default-src'), "'none'");
      assert.equal(directives.get('script-src'), sha(script));
      assert.equal(directives.get('style-src'), sha(style));
      assert.equal(directives.get('connect-src'), "'self'");
      assert.equal(directives.get('frame-ancestors'), "'none'");
      assert.equal(directives.get('require-trusted-types-for'), "'script'");
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
      // One self-contained page: nothing fetched from anywhere else, no inline handlers.
      assert.doesNotMatch(html, /\s(src|href)=["']?(https?:)?\/\//i);
      assert.doesNotMatch(html, /\son[a-z]+=/i);
    });

    it('shows data as text only: the script never touches an HTML sink', async () => {
      const script = /<script>([\s\S]*)<\/script>/.exec(await (await fetch(`${base}/ui`)).text())![1]!;
      assert.doesNotMatch(
        script,
        /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/,
      );
      // The token goes out in a header, never in a URL or a query string.
      assert.match(script, /authorization: `Bearer \$\{t\}`/);
      assert.doesNotMatch(script, /[?&]token=/);
    });

    it('refuses inline code that would close its element early', () => {
      assert.throws(() => buildPage('', 'x = "</script><b>"'), /closing tag/);
      assert.throws(() => buildPage('a{}</style>', ''), /closing tag/);
    });

    it('keeps the admin API rules: status and the dead-letter list open, replay and purge need the token', async () => {
      assert.equal((await fetch(`${base}/api/v1/status`)).status, 200);
      assert.equal((await fetch(`${base}/api/v1/outputs/sink/dead-letter`)).status, 200);
      const replay = `${base}/api/v1/outputs/sink/dead-letter/${xssChunk.id}/replay`;
      assert.equal((await fetch(replay, { method: 'POST' })).status, 401);
      assert.equal(
        (await fetch(replay, { method: 'POST', headers: { authorization: 'Bearer wrong' } })).status,
        401,
      );
      assert.equal(
        (await fetch(`${base}/api/v1/outputs/sink/dead-letter`, { method: 'DELETE' })).status,
        401,
      );
      assert.equal((await deadLetters()).length, 2);
    });

    it('the status lists retrying chunks with their next attempt and last error', async () => {
      const status = (await (await fetch(`${base}/api/v1/status`)).json()) as {
        outputs: {
          id: string;
          buffer: { retrying?: { attempt: number; nextAttempt: string; lastError: string }[] };
        }[];
      };
      const retrying = status.outputs.find((o) => o.id === 'flaky')!.buffer.retrying!;
      assert.equal(retrying.length, 1);
      assert.equal(retrying[0]!.lastError, 'sink unavailable (503)');
      assert.ok(Date.parse(retrying[0]!.nextAttempt) > Date.now() + 30_000);
      assert.equal(status.outputs.find((o) => o.id === 'sink')!.buffer.retrying, undefined);
    });
  });

  describe('in headless Chromium', {
    skip: CHROMIUM ? false : 'no chromium binary (apt-get install chromium, or set CHROMIUM_PATH)',
  }, () => {
    let browser: Browser;
    let page: Page;
    const dir = mkdtempSync(join(tmpdir(), 'estuary-ui-'));
    /** Console errors, uncaught exceptions and failed requests: CSP violations land here too. */
    const problems: string[] = [];
    const requests: { url: string; method: string; authorization?: string }[] = [];

    before(async () => {
      browser = await puppeteer.launch({
        executablePath: CHROMIUM!,
        headless: true,
        userDataDir: join(dir, 'profile'),
        // Chromium refuses to run as root with its sandbox (CI containers run as root).
        args: [
          ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
          '--disable-gpu',
          '--disable-dev-shm-usage',
        ],
      });
      page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (err) => problems.push(`page error: ${String(err)}`));
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
      page.on('request', (r) => {
        const authorization = r.headers().authorization;
        requests.push({ url: r.url(), method: r.method(), ...(authorization && { authorization }) });
      });
      page.on('dialog', (d) => void d.accept());
      await page.goto(`${base}/ui`, { waitUntil: 'load' });
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 5000 });
    });

    after(async () => {
      await browser?.close();
      // The screenshots stay for a person to look at; the browser profile goes.
      rmSync(join(dir, 'profile'), { recursive: true, force: true });
    });

    const section = (id: string) => `section[data-output="${id}"]`;
    const deadRows = () =>
      page.$$eval(`${section('sink')} tr.dead`, (rows) =>
        rows.map((r) => ({
          chunk: r.getAttribute('data-chunk'),
          reason: r.querySelector('td.reason')!.textContent,
        })),
      );
    /** Waits until the page shows `chunks` queued in `sink` (it re-reads every 2 s). */
    const queueShows = (chunks: number) =>
      page.waitForFunction(
        (s, n) =>
          (globalThis as unknown as { document: Dom }).document
            .querySelector(`${s} td.queue-length`)
            ?.textContent?.startsWith(`${n} `),
        { timeout: 5000 },
        section('sink'),
        chunks,
      );
    const message = () => page.$eval('#message', (m) => m.textContent);
    /** Clicks in the page in one step: the page re-renders every 2 s, a held handle may be gone. */
    const click = (selector: string) =>
      page.$eval(selector, (b) => (b as unknown as { click(): void }).click());

    it('loads without console errors and shows every buffer', async () => {
      assert.deepEqual(problems, []);
      const sections = await page.$$eval('section.output', (s) =>
        s.map((x) => x.getAttribute('data-output')),
      );
      assert.deepEqual(sections, ['sink', 'flaky', 'locked']);
      // flaky: the retrying chunk, its next attempt and last error.
      const retrying = await page.$eval(`${section('flaky')} tr.retrying`, (r) =>
        [...r.querySelectorAll('td')].map((td) => td.textContent),
      );
      assert.equal(retrying[1], '1');
      assert.match(retrying[2]!, /^\d{4}-\d\d-\d\dT.*Z \(in \d+ s\)$/);
      assert.equal(retrying[3], 'sink unavailable (503)');
      // locked: halted, with its reason.
      assert.equal(await page.$eval(section('locked'), (s) => s.className), 'output halted');
      assert.equal(
        await page.$eval(`${section('locked')} .halt-text`, (s) => s.textContent),
        'sink refused: 401 unauthorized',
      );
    });

    it("shows a dead letter's reason as text: markup in it makes no element and runs nothing", async () => {
      const rows = await deadRows();
      assert.deepEqual(
        rows.map((r) => r.reason),
        [XSS, SECOND],
      );
      assert.equal(await page.$$eval('img', (n) => n.length), 0);
      assert.equal(await page.$$eval('script', (n) => n.length), 1);
      assert.equal(await page.evaluate(() => (globalThis as { __xss?: number }).__xss), undefined);
      await page.screenshot({ path: join(dir, 'before.png'), fullPage: true });
    });

    it('escapes even with the CSP switched off (the page, not only the policy, is safe)', async () => {
      const bare = await browser.newPage();
      try {
        await bare.setBypassCSP(true);
        await bare.goto(`${base}/ui`, { waitUntil: 'load' });
        await bare.waitForSelector(`${section('sink')} tr.dead`, { timeout: 5000 });
        // An <img src=x> that had become an element would have failed to load by now.
        await bare.waitForNetworkIdle({ idleTime: 200, timeout: 3000 });
        assert.equal(await bare.evaluate(() => (globalThis as { __xss?: number }).__xss), undefined);
        assert.equal(await bare.$$eval('td.reason img, td.reason script', (n) => n.length), 0);
      } finally {
        await bare.close();
      }
    });

    it('replay without a token asks for one and changes nothing', async () => {
      await click(`${section('sink')} tr[data-chunk="${xssChunk.id}"] button.replay`);
      await waitFor(async () => /enter the admin token/.test((await message()) ?? ''));
      assert.equal((await deadLetters()).length, 2);
    });

    it('replay with the token moves the chunk back: the queue shows it, then it is delivered', async () => {
      let release!: () => void;
      sink.script = [{ hold: new Promise<void>((r) => (release = r)) }];
      const delivered = sink.delivered.length;
      await page.type('#token', TOKEN);
      await click('#token-save');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('estuary.adminToken')), TOKEN);
      assert.equal(await page.$eval('#token', (i) => (i as unknown as { value: string }).value), '');

      await click(`${section('sink')} tr[data-chunk="${xssChunk.id}"] button.replay`);
      await queueShows(1);
      assert.match((await message()) ?? '', /^replay .*: done\.$/);
      assert.deepEqual(
        (await deadRows()).map((r) => r.chunk),
        [secondChunk.id],
      );
      await page.screenshot({ path: join(dir, 'replayed.png'), fullPage: true });
      release();
      await waitFor(() => sink.delivered.length === delivered + 2, {
        what: 'the replayed records delivered',
      });
      await queueShows(0);
    });

    it('purge removes one chunk', async (t) => {
      await click(`${section('sink')} tr[data-chunk="${secondChunk.id}"] button.purge`);
      await page.waitForFunction(
        (s) =>
          (globalThis as unknown as { document: Dom }).document.querySelectorAll(`${s} tr.dead`).length === 0,
        { timeout: 5000 },
        section('sink'),
      );
      assert.deepEqual(await deadLetters(), []);
      const screenshot = join(dir, 'queue-ui.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      assert.ok(statSync(screenshot).size > 10_000);
      t.diagnostic(`screenshots in ${dir}`);
      assert.deepEqual(problems, []);
    });

    it('sends the token only as a bearer header of replay and purge, never in a URL or to the reads', () => {
      assert.ok(requests.length > 0);
      for (const r of requests) assert.ok(!r.url.includes(TOKEN), r.url);
      const mutating = requests.filter((r) => r.method === 'POST' || r.method === 'DELETE');
      assert.deepEqual(
        mutating.map((r) => r.authorization),
        [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`],
      );
      for (const r of requests.filter((x) => x.method === 'GET'))
        assert.equal(r.authorization, undefined, r.url);
    });

    it('a wrong token is reported as refused', async () => {
      sink.script = [{ reject: () => true, reason: 'third' }];
      assert.equal((await postJson(port, 'sink', [{ n: 6 }])).status, 200);
      const [third] = await waitFor(async () => {
        const list = await deadLetters();
        return list.length === 1 ? list : undefined;
      });
      await page.evaluate(() => sessionStorage.setItem('estuary.adminToken', 'wrong-token'));
      await page.waitForSelector(`${section('sink')} tr[data-chunk="${third!.id}"]`, { timeout: 5000 });
      await click(`${section('sink')} tr[data-chunk="${third!.id}"] button.replay`);
      await waitFor(async () => /the admin token was refused/.test((await message()) ?? ''));
      assert.equal((await deadLetters()).length, 1);
    });
  });
});
