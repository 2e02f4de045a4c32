/**
 * Text from the network reaches a log line or a terminal escaped, never as the bytes a
 * terminal obeys: a StatsD line's bad-line reason in `serve statsd`'s log, the strings
 * of a stats answer in `shardgram top` (a pipe and a real terminal), and the one
 * function both go through (`escapeText`, used by the sampled logs and the supervisor's log).
 */
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeText, sampledLog, Supervisor } from '@shardgram/udp-core';
import { BIN, ROOT, runCli, startServe } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';

/** Set the window title, ring the bell: what a hostile sender would like a terminal to do. */
const OSC_TITLE = '\x1b]0;PWNED\x07';
/** Every kind of character that must not reach a terminal as it is. */
const HOSTILE = `zz${OSC_TITLE}\x9b31m\u202eevil\r\nforged line\x00\ud800`;
const VISIBLE_TITLE = '\\x1b]0;PWNED\\x07';

/** No byte of `text` is one a terminal acts on, beyond `allowed` (a view's own sequences). */
function expectInert(text: string, allowed: RegExp = /$^/): void {
  const rest = text.replace(allowed, '');
  expect(rest).not.toContain('PWNED\x07');
  expect(rest).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]/);
}

describe('escapeText', () => {
  it('shows every control, C1, bidi and lone-surrogate character as an escape, and changes nothing a second time', () => {
    expect(escapeText(HOSTILE)).toBe('zz\\x1b]0;PWNED\\x07\\x9b31m\\u202eevil\\r\\nforged line\\x00\\ud800');
    expect(escapeText(escapeText(HOSTILE))).toBe(escapeText(HOSTILE));
    expect(escapeText('a\nb\r\n\x1bc', { lines: true })).toBe('a\nb\\r\n\\x1bc');
    for (const plain of ['statsd: bad line #1', 'naïve 名前 😀 \\x1b', '']) expect(escapeText(plain)).toBe(plain);
  });

  it("is what a sampled log applies to its detail: one line, or a stack's lines with keepLines", () => {
    const stack: string[] = [];
    sampledLog((l) => stack.push(l), 'threw', { keepLines: true }).note(() => `Error: ${HOSTILE}\n    at parse`);
    expect(stack).toEqual([`threw #1: Error: ${escapeText(HOSTILE, { lines: true })}\n    at parse`]);
    const lines: string[] = [];
    const bad = sampledLog((l) => lines.push(l), 'bad line', { first: 1, every: 2 });
    bad.note(() => `"x": unknown type "${HOSTILE}"\n    at parse`);
    bad.note(() => 'not logged');
    bad.note(() => `"y": ${HOSTILE}`);
    bad.note(() => `"y": ${HOSTILE}`);
    expect(lines).toEqual([
      `bad line #1: "x": unknown type "${escapeText(HOSTILE)}"\\n    at parse (further ones: one line per 2, with the count)`,
      `bad line #2 (0 not logged since #1): not logged`,
      // A sampled line is cut at its first line break, then escaped.
      `bad line #4 (1 not logged since #2): "y": ${escapeText(HOSTILE.split('\n')[0]!)}`,
    ]);
  });
});

describe('serve statsd: a bad line with escape sequences', () => {
  it("is logged with them escaped (printf 'x:1|zz\\x1b]0;PWNED\\x07')", async () => {
    const s = await startServe(['statsd', '--port', '0', '--workers', '1'], 1);
    const sock = dgram.createSocket('udp4');
    try {
      const payload = Buffer.from(`x:1|zz${OSC_TITLE}`, 'latin1');
      // One datagram is enough; more are sent only if the first is lost before the log line.
      expect(
        await waitFor(() => {
          if (!s.stderr().includes('bad line #1')) sock.send(payload, s.port, '127.0.0.1');
          return s.stderr().includes('bad line #1');
        }, 10_000),
      ).toBe(true);
    } finally {
      sock.close();
    }
    const r = await s.stop();
    const line = r.stderr.split('\n').find((l) => l.includes('bad line #1'));
    expect(line).toContain(`unknown type "zz${VISIBLE_TITLE}"`);
    expectInert(r.stderr);
  }, 40_000);

  it("is escaped whatever way an app logs it (ctx.log, its stdout, a handler's error): the supervisor's log is the one sink", async () => {
    const lines: string[] = [];
    const sup = new Supervisor({ app: join(ROOT, 'test', 'fixtures', 'log-verbatim.js'), port: 0, workers: 1, log: (l) => lines.push(l) });
    await sup.start();
    const sock = dgram.createSocket('udp4');
    try {
      const answered = new Promise<void>((r) => sock.once('message', () => r()));
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      sock.send(Buffer.from(HOSTILE), sup.port, '127.0.0.1');
      await answered;
      const seen = (): boolean => ['ctx.log: ', 'stdout: ', 'thrown: '].every((w) => lines.some((l) => l.includes(w)));
      expect(await waitFor(seen, 10_000), lines.join('\n')).toBe(true);
    } finally {
      sock.close();
      await sup.stop();
    }
    expect(lines.find((l) => l.includes('ctx.log: '))).toContain(`ctx.log: zz${VISIBLE_TITLE}`);
    for (const l of lines) expectInert(l.replace(/\n/g, ''));
  }, 40_000);
});

describe('shardgram top against an answer whose strings hold escape sequences', () => {
  let server: Server;
  let url = '';
  const hostileStats = {
    service: { app: `statsd${OSC_TITLE}`, engine: 'native', address: '127.0.0.1', port: 8125, family: 'udp4', workers: 1, uptimeSeconds: 5 },
    workers: [
      { index: 0, pid: `7${OSC_TITLE}`, state: `running${HOSTILE}`, engine: 'native', datagrams: 10, kernelDrops: 0, queueBytes: 0, restarts: 0, share: 1 },
    ],
    policy: { name: `hash${OSC_TITLE}` },
    imbalance: { detected: true, message: `advice${HOSTILE}` },
    total: { datagrams: 10, kernelDrops: 0, restarts: 0, queueBytes: 0 },
    fairness: { jain: 1, minShare: 1, maxShare: 1 },
    topSenders: { total: 10, errorBound: 0, senders: [{ sender: `10.0.0.1:1${OSC_TITLE}`, count: 10, error: 0 }] },
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/broken/stats') res.writeHead(500).end(`no${HOSTILE}\n`);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(hostileStats));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('prints them escaped on a pipe', async () => {
    const r = await runCli(['top', '--stats-url', url, '--count', '1'], { timeoutMs: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`0:7${VISIBLE_TITLE}:running`);
    expect(r.stdout).toContain(`top 10.0.0.1:1${VISIBLE_TITLE}`);
    expectInert(r.stdout.replace(/\n$/, ''));
  });

  it("says a bad answer's first line escaped", async () => {
    const r = await runCli(['top', '--stats-url', `${url}/broken`, '--count', '1'], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`HTTP 500 nozz${VISIBLE_TITLE}\\x9b31m\\u202eevil\\r\n`);
    expectInert(r.stderr.replace(/\n$/, ''));
  });

  const haveScript = spawnSync('sh', ['-c', 'command -v script']).status === 0;
  if (!haveScript) console.log('script(1) (util-linux) is not installed: the terminal test of top with hostile strings is skipped');

  it.skipIf(!haveScript)("draws them escaped in a real terminal (the view's own cursor sequences only)", async () => {
    // script(1) runs top on a pseudo-terminal and copies every byte top writes to it.
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} top --stats-url ${url} --count 1`;
    const child = spawn('script', ['-q', '-e', '-c', cmd, '/dev/null'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, COLUMNS: '160', LINES: '40' },
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    const out = Buffer.concat(chunks).toString('utf8');
    expect(code, out).toBe(0);
    expect(out).toContain('shardgram top · statsd\\x1b]0;PWNED\\x07 on 127.0.0.1:8125');
    expect(out).toContain(`10.0.0.1:1${VISIBLE_TITLE}`);
    // top's own sequences: alternate screen, cursor home/show/hide, erase line/screen.
    expectInert(out, /\x1b\[(\?1049[hl]|\?25[hl]|H|K|J)|\r|\n/g);
  });
});
