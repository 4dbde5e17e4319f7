import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertUnparsed, BEFORE, iso, parseLine } from './helpers.ts';

describe('parser formats: web server logs', () => {
  it('nginx combined lines, with and without referer/agent, with a user, a bare method', () => {
    const e = parseLine(
      'nginx',
      '93.184.216.34 - alice [10/Oct/2023:13:55:36 +0200] "GET /api/v1/users?id=5&sort=desc HTTP/1.1" 200 1534 "https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/118.0"',
    );
    assert.deepEqual(e.record, {
      remote: '93.184.216.34',
      host: '-',
      user: 'alice',
      method: 'GET',
      path: '/api/v1/users?id=5&sort=desc',
      code: '200',
      size: '1534',
      referer: 'https://example.com/start',
      agent: 'Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/118.0',
    });
    assert.equal(iso(e.time), '2023-10-10T11:55:36.000000000Z', '%z applied');

    // Fluent Bit's docs line: no referer and agent.
    const short = parseLine(
      'nginx',
      '192.168.1.20 - - [28/Jul/2006:10:27:10 -0300] "GET /cgi-bin/try/ HTTP/1.0" 200 3395',
    );
    assert.deepEqual(short.record, {
      remote: '192.168.1.20',
      host: '-',
      user: '-',
      method: 'GET',
      path: '/cgi-bin/try/',
      code: '200',
      size: '3395',
    });
    // What nginx logs for a TLS handshake sent to a plain port: the request is one word.
    const garbage = parseLine(
      'nginx',
      '10.0.0.7 - - [22/Nov/2023:10:01:45 +0000] "\\x16\\x03\\x01" 400 157 "-" "-"',
    );
    assert.equal(garbage.record.method, '\\x16\\x03\\x01');
    assert.equal(garbage.record.path, undefined);
    // A path with a space (as nginx writes a malformed request) keeps it; the protocol is not the path.
    const spaced = parseLine(
      'nginx',
      '10.0.0.7 - - [22/Nov/2023:10:01:45 +0000] "GET /a b HTTP/1.1" 400 0 "-" "-"',
    );
    assert.equal(spaced.record.path, '/a b');
    // Docker's `log` field ends with a newline.
    const nl = parseLine(
      'nginx',
      '10.0.0.7 - - [22/Nov/2023:10:01:45 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.4.0"\n',
    );
    assert.equal(nl.record.agent, 'curl/8.4.0');
  });

  it('apache2 combined lines (Apache docs), and what apache2 refuses that nginx takes', () => {
    const e = parseLine(
      'apache2',
      '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
    );
    assert.deepEqual(e.record, {
      host: '127.0.0.1',
      user: 'frank',
      method: 'GET',
      path: '/apache_pb.gif',
      code: '200',
      size: '2326',
      referer: 'http://www.example.com/start.html',
      agent: 'Mozilla/4.08 [en] (Win98; I ;Nav)',
    });
    assert.equal(iso(e.time), '2000-10-10T20:55:36.000000000Z');
    // apache2's agent runs to the last quote, quotes inside included.
    const quoted = parseLine(
      'apache2',
      '::1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5 "-" "bot "v2""',
    );
    assert.equal(quoted.record.agent, 'bot "v2"');
    // Its request is method path protocol, or a method alone.
    assertUnparsed('apache2', '::1 - - [10/Oct/2000:13:55:36 -0700] "GET /only-path" 200 5 "-" "-"');
    assert.equal(
      parseLine('nginx', '::1 - - [10/Oct/2000:13:55:36 -0700] "GET /only-path" 200 5 "-" "-"').record.path,
      '/only-path',
    );
  });

  it('apache_error lines of 2.4 (module:level, pid:tid, µs) and 2.2', () => {
    const e = parseLine(
      'apache_error',
      '[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico',
    );
    assert.deepEqual(e.record, {
      level: 'core:error',
      pid: '35708:tid 4328636416',
      client: '72.15.99.187',
      message: 'File does not exist: /usr/local/apache2/htdocs/favicon.ico',
    });
    assert.equal(iso(e.time), '2000-10-11T14:32:52.123456000Z');
    const old = parseLine(
      'apache_error',
      '[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration: /export/home/live/ap/htdocs/test',
    );
    assert.deepEqual(old.record, {
      level: 'error',
      client: '127.0.0.1',
      message: 'client denied by server configuration: /export/home/live/ap/htdocs/test',
    });
    assert.equal(iso(old.time), '2000-10-11T14:32:52.000000000Z');
    const zoned = parseLine(
      'apache_error',
      '[Wed Oct 11 14:32:52 2000] [error] boom',
      '    time_offset: "+02:00"\n',
    );
    assert.equal(
      iso(zoned.time),
      '2000-10-11T12:32:52.000000000Z',
      'time_offset: the zone the log does not write',
    );
  });

  it('access-log lines that are not: JSON, a missing bracket, a request opening with a space', () => {
    for (const format of ['nginx', 'apache2']) {
      assertUnparsed(format, '{"remote":"1.2.3.4"}');
      assertUnparsed(format, '1.2.3.4 - - 10/Oct/2000:13:55:36 -0700 "GET / HTTP/1.1" 200 5');
      assertUnparsed(format, '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] " GET /" 400 0 "-" "-"');
      // What nginx logs for a connection that sent nothing: a line without method and path.
      const empty = parseLine(format, '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "" 400 0 "-" "-"');
      assert.equal(empty.record.method, undefined);
      assert.equal(empty.record.code, '400');
      assert.equal(empty.record.agent, '-');
    }
    assertUnparsed('apache_error', 'File does not exist');
  });
});

describe('parser formats: container runtimes', () => {
  it('cri: P and F pieces, stdout and stderr, nanoseconds, a time without a fraction', () => {
    const p = parseLine('cri', '2016-02-17T00:04:05.931087621Z stdout P {"level":"info","msg":"first half');
    assert.deepEqual(p.record, {
      stream: 'stdout',
      logtag: 'P',
      message: '{"level":"info","msg":"first half',
    });
    assert.equal(iso(p.time), '2016-02-17T00:04:05.931087621Z');
    const f = parseLine('cri', '2016-02-17T00:04:05+02:00 stderr F panic: runtime error: index out of range');
    assert.deepEqual(f.record, {
      stream: 'stderr',
      logtag: 'F',
      message: 'panic: runtime error: index out of range',
    });
    assert.equal(iso(f.time), '2016-02-16T22:04:05.000000000Z');
    const empty = parseLine('cri', '2016-02-17T00:04:05.5Z stdout F ');
    assert.equal(empty.record.message, '');
    const keep = parseLine('cri', '2016-02-17T00:04:05.5Z stdout F x', '    time_keep: true\n');
    assert.equal(keep.record.time, '2016-02-17T00:04:05.5Z');
  });

  it('cri: not a CRI line', () => {
    assertUnparsed('cri', '2016-02-17T00:04:05Z stdin F x');
    assertUnparsed('cri', 'just a line');
    assertUnparsed('cri', '{"log":"x"}');
  });

  it('docker: json-file lines keep time (as Fluent Bit) and make it the record time', () => {
    const e = parseLine(
      'docker',
      '{"log":"Hello from Docker!\\n","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z"}',
    );
    assert.deepEqual(e.record, {
      log: 'Hello from Docker!\n',
      stream: 'stdout',
      time: '2019-01-01T11:11:11.111111111Z',
    });
    assert.equal(iso(e.time), '2019-01-01T11:11:11.111111111Z');
    assertUnparsed('docker', '{"log":"cut');
  });
});

describe('parser formats: syslog', () => {
  it('RFC 5424 (the RFC examples): structured data, no structured data, no message, a NIL time', () => {
    const sd = parseLine(
      'syslog',
      '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry...',
      '    message_format: rfc5424\n',
    );
    assert.deepEqual(sd.record, {
      pri: '165',
      time: '2003-10-11T22:14:15.003Z',
      host: 'mymachine.example.com',
      ident: 'evntslog',
      pid: '-',
      msgid: 'ID47',
      extradata:
        '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
      message: 'An application event log entry...',
    });
    assert.equal(iso(sd.time), '2003-10-11T22:14:15.003000000Z');
    const offset = parseLine(
      'syslog',
      "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
      '    message_format: rfc5424\n',
    );
    assert.equal(offset.record.pid, '8710');
    assert.equal(offset.record.extradata, '-');
    assert.equal(offset.record.message, "%% It's time to make the do-nuts.");
    assert.equal(iso(offset.time), '2003-08-24T12:14:15.000003000Z');
    // A quoted `]` stays in its element; the message after it is the message.
    const escaped = parseLine(
      'syslog',
      '<14>1 2024-01-15T10:30:00Z web nginx 12 - [meta path="/a\\]b" n="1"] done [ok]',
      '    message_format: rfc5424\n',
    );
    assert.equal(escaped.record.extradata, '[meta path="/a\\]b" n="1"]');
    assert.equal(escaped.record.message, 'done [ok]');
    const bare = parseLine('syslog', '<14>1 - host app - - -', '    message_format: rfc5424\n');
    assert.equal(bare.record.message, undefined);
    assert.equal(bare.record.time, undefined);
    assert.equal(bare.time, BEFORE, 'NILVALUE time: the entry keeps its own');
  });

  it('RFC 3164: with and without pid, a space-padded day, no <pri>, rsyslog RFC 3339 time', () => {
    const su = parseLine(
      'syslog',
      "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    );
    assert.deepEqual(su.record, {
      pri: '34',
      time: 'Oct 11 22:14:15',
      host: 'mymachine',
      ident: 'su',
      message: "'su root' failed for lonvick on /dev/pts/8",
    });
    // No year in the line: this year's, or last year's for a date ahead of now.
    const t = su.time.toDate();
    assert.equal(t.getUTCMonth(), 9);
    assert.equal(t.getUTCDate(), 11);
    assert.ok(t.getTime() <= Date.now() + 86_400_000);
    const sshd = parseLine(
      'syslog',
      '<38>Feb  5 17:32:18 10.0.0.99 sshd[4312]: Accepted publickey for root from 10.0.0.1',
    );
    assert.deepEqual(sshd.record, {
      pri: '38',
      time: 'Feb  5 17:32:18',
      host: '10.0.0.99',
      ident: 'sshd',
      pid: '4312',
      message: 'Accepted publickey for root from 10.0.0.1',
    });
    assert.equal(sshd.time.toDate().getUTCDate(), 5);
    // A colon later in the message is not the end of the tag (Fluent Bit's regex would cut there).
    const kernel = parseLine('syslog', 'Feb  5 17:32:18 node1 kernel: eth0: link up at 10:00');
    assert.equal(kernel.record.ident, 'kernel');
    assert.equal(kernel.record.message, 'eth0: link up at 10:00');
    const precise = parseLine(
      'syslog',
      '<30>2024-01-15T10:30:00.123456+01:00 node1 systemd[1]: Started cron.',
    );
    assert.equal(iso(precise.time), '2024-01-15T09:30:00.123456000Z');
    assert.equal(precise.record.ident, 'systemd');
  });

  it('message_format auto tells the RFCs apart; a line of neither fails', () => {
    const a = parseLine(
      'syslog',
      '<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - hi',
      '    message_format: auto\n',
    );
    assert.equal(a.record.msgid, 'ID47');
    const b = parseLine('syslog', '<34>Oct 11 22:14:15 mymachine su: hi', '    message_format: auto\n');
    assert.equal(b.record.ident, 'su');
    assertUnparsed('syslog', 'not syslog at all', '    message_format: auto\n');
    assertUnparsed('syslog', '<34>Oct 11 22:14:15 mymachine su: hi', '    message_format: rfc5424\n');
  });
});

describe('parser formats: structured text', () => {
  it('json: an object; other JSON values and broken text are not records', () => {
    const e = parseLine(
      'json',
      '{"time":"2024-01-15T10:30:00.5Z","level":"warn","n":3,"nested":{"a":[1,2]}}',
    );
    assert.deepEqual(e.record, { level: 'warn', n: 3, nested: { a: [1, 2] } });
    assert.equal(iso(e.time), '2024-01-15T10:30:00.500000000Z');
    assertUnparsed('json', '[1,2]');
    assertUnparsed('json', '"text"');
    assertUnparsed('json', '{"a":');
    // An escaped key is read as sent (parseJson works around V8's mix-up of such keys).
    assert.deepEqual(parseLine('json', '{"k\\\\":1,"k\\t":2}').record, { 'k\\': 1, 'k\t': 2 });
  });

  it('logfmt: quoted values with escapes, bare keys, empty values; an open quote fails', () => {
    const e = parseLine(
      'logfmt',
      'time=1700000000.25 level=info msg="GET \\"/\\" done" took=12ms cached empty=',
    );
    assert.deepEqual(e.record, { level: 'info', msg: 'GET "/" done', took: '12ms', cached: true, empty: '' });
    assert.equal(iso(e.time), '2023-11-14T22:13:20.250000000Z');
    // A field named __proto__ is a field, not the record's prototype.
    const proto = parseLine('logfmt', '__proto__=x a=1', '    reserve_data: true\n');
    assert.equal(Object.getOwnPropertyDescriptor(proto.record, '__proto__')?.value, 'x');
    assert.equal(Object.getPrototypeOf(proto.record), Object.prototype);
    assertUnparsed('logfmt', 'msg="never closed');
    assertUnparsed('logfmt', '=value');
    assertUnparsed('logfmt', '   ');
  });

  it('ltsv: the default tab and colon, other delimiters; no label at all fails', () => {
    const e = parseLine(
      'ltsv',
      'time:2013-02-28T12:00:00+09:00\thost:192.168.0.1\treq:GET /list HTTP/1.1\tstatus:200\turl:http://x/y',
    );
    assert.deepEqual(e.record, {
      host: '192.168.0.1',
      req: 'GET /list HTTP/1.1',
      status: '200',
      url: 'http://x/y',
    });
    assert.equal(iso(e.time), '2013-02-28T03:00:00.000000000Z');
    const other = parseLine('ltsv', 'a=1|b=2', '    delimiter: "|"\n    label_delimiter: "="\n');
    assert.deepEqual(other.record, { a: '1', b: '2' });
    assertUnparsed('ltsv', 'no labels here');
  });

  it('csv with RFC 4180 quoting, tsv; bad quoting fails', () => {
    const e = parseLine(
      'csv',
      '2024-01-15,"Smith, John","said ""hi""",,42',
      '    keys: [date, name, quote, empty, n]\n',
    );
    assert.deepEqual(e.record, {
      date: '2024-01-15',
      name: 'Smith, John',
      quote: 'said "hi"',
      empty: null,
      n: '42',
    });
    const semi = parseLine('csv', 'a;b;c', '    keys: "x,y"\n    delimiter: ";"\n');
    assert.deepEqual(semi.record, { x: 'a', y: 'b' }, 'fields past the keys are dropped');
    const t = parseLine('tsv', 'GET\t/x\t200', '    keys: [method, path, code]\n');
    assert.deepEqual(t.record, { method: 'GET', path: '/x', code: '200' });
    assertUnparsed('csv', '"open,b', '    keys: [a, b]\n');
    assertUnparsed('csv', 'a"b,c', '    keys: [a, b]\n');
    assertUnparsed('csv', '"a"x,c', '    keys: [a, b]\n');
  });

  it('multi_format: the first pattern that reads the line wins, each with its own time', () => {
    const extra = `    patterns:
      - { format: json }
      - { format: regexp, expression: '/^(?<at>\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d) (?<level>[A-Z]+) (?<msg>.*)$/', time_key: at, time_format: "%Y-%m-%d %H:%M:%S" }
      - { format: nginx }
`;
    const j = parseLine('multi_format', '{"level":"info"}', extra);
    assert.deepEqual(j.record, { level: 'info' });
    assert.equal(j.time, BEFORE);
    const r = parseLine('multi_format', '2024-01-15 10:30:00 ERROR disk full', extra);
    assert.deepEqual(r.record, { level: 'ERROR', msg: 'disk full' });
    assert.equal(iso(r.time), '2024-01-15T10:30:00.000000000Z');
    const n = parseLine('multi_format', '::1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5', extra);
    assert.equal(n.record.code, '200');
    assertUnparsed('multi_format', 'none of them', extra);
  });
});

describe('built-in formats stay bounded on hostile lines', () => {
  it('reads (or refuses) a 1 MiB line made to backtrack in well under a second each', () => {
    const mib = 1024 * 1024;
    const lines = [
      `1.2.3.4 - - [x] "GET ${' '.repeat(mib - 40)}`,
      `1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /${' a'.repeat(mib / 2 - 40)} HTTP/1.1" 200 5 "-" "`,
      `1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "G" 1 2 "${'"'.repeat(mib - 60)}`,
      `<14>1 2024-01-15T10:30:00Z h a 1 - ${'[x a="1"]'.repeat(mib / 10)}`,
      `<14>1 2024-01-15T10:30:00Z h a 1 - [x a="${'\\"'.repeat(mib / 2 - 30)}`,
      `<13>Feb  5 17:32:18 h ${'['.repeat(mib - 30)}`,
      `[Wed Oct 11 14:32:52 2000] [${'] ['.repeat(mib / 3 - 20)}`,
      `a=${'"'.repeat(mib - 2)}`,
      `${'"",'.repeat(mib / 3)}"`,
    ];
    for (const format of ['nginx', 'apache2', 'apache_error', 'syslog', 'logfmt', 'cri', 'csv']) {
      for (const line of lines) {
        const started = performance.now();
        parseLine(
          format,
          line,
          `${format === 'syslog' ? '    message_format: auto\n' : ''}${format === 'csv' ? '    keys: [a]\n' : ''}`,
        );
        const ms = performance.now() - started;
        assert.ok(ms < 500, `${format} took ${ms.toFixed(0)} ms on a hostile line`);
      }
    }
  });
});
