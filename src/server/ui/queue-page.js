// The queue page's script, run in the browser: inline in the page under a CSP hash
// (queue-page.ts builds the page). Plain JavaScript with no imports, so nothing is built.
//
// Safety rules this file keeps:
// - Every value from the server (reasons come from sinks and from records) reaches the page
//   as text: Node.append(string) and textContent make text nodes, never markup. The page's
//   CSP also requires Trusted Types, so assigning an HTML string to any sink would throw.
// - The admin token lives in sessionStorage (this tab only), goes out only in an
//   Authorization header of the mutating calls, and never in a URL.
// - Reads follow the admin API's rules: status and the dead-letter list are open, so they
//   are fetched without the token.
(() => {
  const TOKEN_KEY = 'estuary.adminToken';
  const REFRESH_MS = 2000;
  // Relative to the page (/ui), so a path prefix added by a proxy is kept.
  const API = 'api/v1';

  const byId = (id) => document.getElementById(id);
  const tokenInput = byId('token');
  const tokenState = byId('token-state');
  const message = byId('message');
  const summary = byId('summary');
  const outputsBox = byId('outputs');

  /** An element with a class and children; strings become text nodes. */
  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) if (child !== undefined && child !== null) node.append(String(child));
    return node;
  }

  /** Like el, but element children are kept as elements (only ones built here). */
  function box(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function button(label, className, onClick) {
    const b = el('button', className, label);
    b.type = 'button';
    b.addEventListener('click', onClick);
    return b;
  }

  /** A table row for one chunk: its id first, then `cells`; data-chunk finds it. */
  function chunkRow(className, chunk, ...cells) {
    const row = box('tr', className, el('td', '', chunk), ...cells);
    row.dataset.chunk = chunk;
    return row;
  }

  function table(headers, rows) {
    const head = box('tr', '', ...headers.map((h) => el('th', '', h)));
    return box('table', '', box('thead', '', head), box('tbody', '', ...rows));
  }

  function say(text, isError = false) {
    message.textContent = text;
    message.className = isError ? 'error' : '';
  }

  function bytes(n) {
    if (typeof n !== 'number' || !Number.isFinite(n)) return '?';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
  }

  function when(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return String(iso);
    const s = Math.round((t - Date.now()) / 1000);
    const rel = s === 0 ? 'now' : s > 0 ? `in ${s} s` : `${-s} s ago`;
    return `${new Date(t).toISOString()} (${rel})`;
  }

  // --- token -------------------------------------------------------------------------------

  const token = () => sessionStorage.getItem(TOKEN_KEY) ?? '';

  function showToken() {
    tokenState.textContent = token()
      ? 'token set for this tab'
      : 'no token: replay and purge need the admin token';
  }

  byId('token-save').addEventListener('click', () => {
    const value = tokenInput.value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    tokenInput.value = '';
    showToken();
  });
  tokenInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') byId('token-save').click();
  });
  byId('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
  });

  // --- API -----------------------------------------------------------------------------------

  async function errorText(res) {
    try {
      const body = await res.json();
      return typeof body?.error === 'string' ? body.error : '';
    } catch {
      return '';
    }
  }

  async function getJson(path) {
    const res = await fetch(path, { cache: 'no-store', credentials: 'omit' });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await errorText(res)}`);
    return res.json();
  }

  const deadLetterPath = (output, chunk) =>
    `${API}/outputs/${encodeURIComponent(output)}/dead-letter${chunk === undefined ? '' : `/${encodeURIComponent(chunk)}`}`;

  let busy = false;

  /** A mutating call with the token in its Authorization header, then a refresh. */
  async function act(method, path, label) {
    const t = token();
    if (!t) {
      say(`${label}: enter the admin token first.`, true);
      tokenInput.focus();
      return;
    }
    busy = true;
    try {
      const res = await fetch(path, {
        method,
        cache: 'no-store',
        credentials: 'omit',
        headers: { authorization: `Bearer ${t}` },
      });
      if (res.status === 401) say(`${label}: the admin token was refused.`, true);
      else if (!res.ok) say(`${label}: HTTP ${res.status} ${await errorText(res)}`, true);
      else say(`${label}: done.`);
    } catch (err) {
      say(`${label}: ${err instanceof Error ? err.message : String(err)}`, true);
    } finally {
      busy = false;
    }
    await refresh();
  }

  // --- rendering -----------------------------------------------------------------------------

  /** Outputs by id with their buffer per worker (one entry without service.workers). */
  function outputsOf(status) {
    const outputs = new Map();
    const add = (worker, list) => {
      for (const o of Array.isArray(list) ? list : []) {
        if (!outputs.has(o.id)) outputs.set(o.id, { id: o.id, type: o.type, buffers: [] });
        outputs.get(o.id).buffers.push({ worker, buffer: o.buffer ?? {} });
      }
    };
    if (Array.isArray(status.workers)) for (const w of status.workers) add(w.worker, w.outputs);
    else add(undefined, status.outputs);
    return outputs;
  }

  function statsRow(worker, b) {
    const limit =
      b.totalLimitBytes > 0
        ? `${(((b.stageBytes + b.queueBytes) / b.totalLimitBytes) * 100).toFixed(1)} %`
        : '';
    return box(
      'tr',
      '',
      ...(worker === undefined ? [] : [el('td', 'num', worker)]),
      el('td', 'num', `${b.stageLength} · ${bytes(b.stageBytes)}`),
      el('td', 'num queue-length', `${b.queueLength} · ${bytes(b.queueBytes)}`),
      el('td', 'num', limit),
      el('td', 'num', b.retryCount),
      el('td', 'num', b.retryWait > 0 ? `in ${b.retryWait.toFixed(1)} s` : ''),
      el('td', 'num', `${b.deadLetterChunks} · ${b.deadLetterRecords} records`),
    );
  }

  function renderOutput(output, dead) {
    const halted = output.buffers.filter((x) => x.buffer.halted > 0);
    const section = box('section', halted.length > 0 ? 'output halted' : 'output');
    section.dataset.output = output.id;
    const title = box('h2', '', output.id, ' ', el('span', 'type', output.type));
    if (halted.length > 0) title.append(el('span', 'badge bad', 'HALTED'));
    section.append(title);

    for (const h of halted) {
      const who = h.worker === undefined ? '' : `worker ${h.worker}: `;
      section.append(
        box(
          'p',
          'halt-reason',
          `${who}halted, keeping its data and probing the sink: `,
          el('span', 'halt-text', h.buffer.haltReason ?? ''),
        ),
      );
    }

    const workers = output.buffers.some((x) => x.worker !== undefined);
    const statHeaders = [
      'staged (chunks · bytes)',
      'queued (chunks · bytes)',
      'of total_limit_size',
      'retries',
      'next retry',
      'dead letters',
    ];
    section.append(
      table(
        workers ? ['worker', ...statHeaders] : statHeaders,
        output.buffers.map((x) => statsRow(x.worker, x.buffer)),
      ),
    );

    const retrying = output.buffers.flatMap((x) =>
      (x.buffer.retrying ?? []).map((r) => ({ ...r, worker: x.worker })),
    );
    if (retrying.length > 0) {
      section.append(el('h3', '', 'Retrying chunks'));
      const rows = retrying.map((r) =>
        chunkRow(
          'retrying',
          r.chunk,
          el('td', 'num', r.attempt),
          el('td', 'num', when(r.nextAttempt)),
          el('td', 'reason', r.lastError),
        ),
      );
      section.append(table(['chunk', 'failed tries', 'next attempt', 'last error'], rows));
    }

    section.append(renderDeadLetters(output.id, dead));
    return section;
  }

  function renderDeadLetters(outputId, dead) {
    const part = box('div', 'dead-letters');
    const heading = box('h3', '', 'Dead-letter queue');
    part.append(heading);
    if (dead.error) {
      part.append(el('p', 'error', dead.error));
      return part;
    }
    const chunks = dead.chunks;
    if (chunks.length === 0) {
      part.append(el('p', 'muted', 'empty'));
      return part;
    }
    heading.append(
      ' ',
      button(`Purge all ${chunks.length}`, 'danger purge-all', () => {
        if (
          confirm(
            `Delete all ${chunks.length} dead-letter chunks of output ${outputId}? Their records are lost.`,
          )
        )
          void act('DELETE', deadLetterPath(outputId), `purge all of ${outputId}`);
      }),
    );
    const rows = chunks.map((c) =>
      chunkRow(
        'dead',
        c.id,
        el('td', 'reason', c.reason),
        el('td', 'num', c.attempts),
        el('td', 'num', c.count),
        el('td', 'num', bytes(c.bytes)),
        el('td', 'num', when(c.time)),
        box(
          'td',
          'actions',
          button(
            'Replay',
            'replay',
            () => void act('POST', `${deadLetterPath(outputId, c.id)}/replay`, `replay ${c.id}`),
          ),
          ' ',
          button('Purge', 'danger purge', () => {
            if (confirm(`Delete dead-letter chunk ${c.id} (${c.count} records)? Its records are lost.`))
              void act('DELETE', deadLetterPath(outputId, c.id), `purge ${c.id}`);
          }),
        ),
      ),
    );
    part.append(table(['chunk', 'reason', 'tries', 'records', 'bytes', 'dead-lettered', ''], rows));
    return part;
  }

  function renderSummary(status) {
    const parts = [`ready: ${status.ready ? 'yes' : 'no'}`];
    if (status.buffer)
      parts.push(`buffer: ${status.buffer.type}${status.buffer.reachable ? '' : ' (unreachable)'}`);
    if (Array.isArray(status.workers)) {
      for (const w of status.workers) if (w.error) parts.push(`worker ${w.worker}: ${w.error}`);
    }
    parts.push(`updated ${new Date().toLocaleTimeString()}`);
    summary.textContent = parts.join(' · ');
  }

  // Refreshes overlap (the timer, a button, after an action): only the latest one renders.
  let generation = 0;

  async function refresh() {
    const mine = ++generation;
    let status;
    try {
      status = await getJson(`${API}/status`);
    } catch (err) {
      if (mine === generation)
        say(`cannot read the status: ${err instanceof Error ? err.message : String(err)}`, true);
      return;
    }
    const outputs = [...outputsOf(status).values()];
    const dead = await Promise.all(
      outputs.map((o) =>
        getJson(deadLetterPath(o.id)).then(
          (body) => ({ chunks: Array.isArray(body.chunks) ? body.chunks : [] }),
          (err) => ({
            error: `cannot read the dead-letter queue: ${err instanceof Error ? err.message : String(err)}`,
          }),
        ),
      ),
    );
    if (mine !== generation) return;
    renderSummary(status);
    outputsBox.replaceChildren(...outputs.map((o, i) => renderOutput(o, dead[i])));
    if (outputs.length === 0) outputsBox.append(el('p', 'muted', 'no outputs'));
    document.body.dataset.loaded = 'true';
  }

  showToken();
  void refresh();
  setInterval(() => {
    if (!busy && document.visibilityState === 'visible') void refresh();
  }, REFRESH_MS);
  byId('refresh').addEventListener('click', () => void refresh());
})();
