import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/** Where the admin server serves the queue page. */
export const QUEUE_UI_PATH = '/ui';

/**
 * The page's one response: HTML with its style and script inline, each allowed by its hash
 * in the CSP, so nothing else can run or load (no other origin, no inline handler, no
 * injected <script>). Trusted Types forbid HTML sinks such as innerHTML outright: values are
 * shown as text (see queue-page.js). img-src data: is for the inline icon only; without
 * one the browser asks for /favicon.ico and logs a 404.
 */
export interface QueuePage {
  html: string;
  headers: Record<string, string>;
}

let page: QueuePage | undefined;

/** Built once from the files beside this one (the Docker image copies src/). */
export function queuePage(): QueuePage {
  page ??= buildPage(
    readFileSync(new URL('./queue-page.css', import.meta.url), 'utf8'),
    readFileSync(new URL('./queue-page.js', import.meta.url), 'utf8'),
  );
  return page;
}

export function buildPage(css: string, js: string): QueuePage {
  // Either would end its element early and turn the rest into markup.
  if (/<\/style/i.test(css) || /<\/script|<!--/i.test(js))
    throw new Error('queue page: a closing tag in inline code');
  const hash = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
  const csp = [
    "default-src 'none'",
    `script-src ${hash(js)}`,
    `style-src ${hash(css)}`,
    'img-src data:',
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join('; ');
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Estuary buffers</title>
<link rel="icon" href="${ICON}">
<style>${css}</style>
</head>
<body>
<header>
<h1>Estuary buffers</h1>
<div id="token-box">
<label for="token">Admin token</label>
<input id="token" type="password" autocomplete="off" spellcheck="false">
<button id="token-save" type="button">Use token</button>
<button id="token-forget" type="button">Forget</button>
<span id="token-state"></span>
</div>
</header>
<p id="summary" class="muted"></p>
<p><button id="refresh" type="button">Refresh</button> <span class="muted">every 2 s while this tab is visible</span></p>
<p id="message" role="status" aria-live="polite"></p>
<main id="outputs"></main>
<script>${js}</script>
</body>
</html>
`;
  return {
    html,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': csp,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-resource-policy': 'same-origin',
    },
  };
}

/** A small tide-blue square, so the browser does not ask for /favicon.ico. */
const ICON =
  "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%232a6f97'/%3E%3C/svg%3E";

/**
 * GET /ui. Open like /api/v1/status: the page holds no data, and what it reads (status, the
 * dead-letter list) is open too. Replay and purge call the token-protected API from the page.
 */
export function queueUiRoutes(app: FastifyInstance): void {
  app.get(QUEUE_UI_PATH, async (_request, reply) => {
    const { html, headers } = queuePage();
    return reply.headers(headers).send(html);
  });
}
