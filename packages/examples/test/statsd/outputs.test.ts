/**
 * `shardgram serve statsd` against a Graphite that fails: one that accepts and never
 * reads (a 4 KiB receive buffer), one that is down then comes up, and a backlog too
 * small on purpose. The JSON flushes keep their cadence whatever Graphite does, and
 * every Graphite line is either delivered or counted as dropped, exactly. And jsonOut
 * on a full disk (a 1 MiB tmpfs, as root): the flushes wait, then are written whole.
 *
 * The Graphite stand-in is a small python3 TCP server (python3 is in .ci/run's list):
 * Node's net server cannot set SO_RCVBUF. It prints every whole line it reads; it
 * reads nothing until SIGUSR1 when started with `hold`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { formatGraphite } from '../../src/statsd/flush.js';
import type { FlushResult } from '../../src/statsd/merge.js';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';
import { jsonLines } from '../fixtures/json-lines.js';

const FLUSH_MS = 200;

const GRAPHITE_PY = `
import select, signal, socket, sys
port, reading = int(sys.argv[1]), sys.argv[2] == 'read'
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
srv.bind(('127.0.0.1', port))
srv.listen(16)
print('port', srv.getsockname()[1], flush=True)
def go(*_):
    global reading
    reading = True
signal.signal(signal.SIGUSR1, go)
conns = {}
while True:
    r, _, _ = select.select([srv] + (list(conns) if reading else []), [], [], 0.05)
    for s in r:
        if s is srv:
            c, _ = srv.accept()
            conns[c] = b''
            continue
        try:
            d = s.recv(65536)
        except OSError:
            d = b''  # reset: a partial last line is not a line
        if d:
            *whole, conns[s] = (conns[s] + d).split(b'\\n')
            if whole:
                sys.stdout.write(''.join(l.decode() + '\\n' for l in whole))
                sys.stdout.flush()
        else:
            del conns[s]
            s.close()
`;

interface Graphite {
  port: number;
  lines: string[];
  child: ChildProcess;
  startReading(): void;
}

const children: ChildProcess[] = [];
let serving: Serving | undefined;
const dir = mkdtempSync(join(tmpdir(), 'shardgram-statsd-out-'));
let seq = 0;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await once(c, 'exit');
    }
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function startGraphite(port: number, mode: 'read' | 'hold'): Promise<Graphite> {
  const child = spawn('python3', ['-c', GRAPHITE_PY, String(port), mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const lines: string[] = [];
  let buf = '';
  let ready: (p: number) => void = () => undefined;
  const got = new Promise<number>((r) => (ready = r));
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const l of parts) {
      const m = /^port (\d+)$/.exec(l);
      if (m) ready(Number(m[1]));
      else lines.push(l);
    }
  });
  const timer = setTimeout(() => ready(0), 10_000);
  const p = await got;
  clearTimeout(timer);
  if (!p) throw new Error('the python3 Graphite stand-in did not start');
  return { port: p, lines, child, startReading: () => void child.kill('SIGUSR1') };
}

/** A loopback port nothing listens on (taken, then given back). */
async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function serveStatsd(
  graphitePort: number | null,
  extra: Record<string, string> = {},
  json = join(dir, `${++seq}-flushes.jsonl`),
): Promise<{ s: Serving; json: string }> {
  const args = ['statsd', '--port', '0', '--workers', '1', '--stats-port', '0', '-o', `flushInterval=${FLUSH_MS}`, '-o', `jsonOut=${json}`];
  if (graphitePort !== null) args.push('-o', `graphite=127.0.0.1:${graphitePort}`);
  for (const [k, v] of Object.entries(extra)) args.push('-o', `${k}=${v}`);
  serving = await startServe(args, 1);
  return { s: serving, json };
}

function flushes(path: string): FlushResult[] {
  return jsonLines<FlushResult>(path);
}

/** Every Graphite line the flushes in the JSON file make (the same formatting as the service's). */
function expectedLines(path: string): string[] {
  return flushes(path).flatMap((r) => formatGraphite(r, 'stats', FLUSH_MS).split('\n').filter(Boolean));
}

/**
 * Sends `n` datagrams one flush apart, each with a name of its own (`u.<tag><k>`) and
 * `bulk` more names: waits for each to show up in a JSON flush before the next.
 */
async function sendPaced(s: Serving, json: string, tag: string, n: number, bulk = 0): Promise<void> {
  const sock = dgram.createSocket('udp4');
  try {
    for (let k = 0; k < n; k++) {
      const names = [`u.${tag}${k}:1|c`, ...Array.from({ length: bulk }, (_, j) => `b.${tag}${k}.${j}:${j}|c`)];
      await new Promise<void>((r) => sock.send(names.join('\n'), s.port, '127.0.0.1', () => r()));
      const marker = `"u.${tag}${k}":1`;
      if (!(await waitFor(() => readFileSync(json, 'utf8').includes(marker), 5000))) throw new Error(`u.${tag}${k} was not flushed`);
    }
  } finally {
    sock.close();
  }
}

async function metric(s: Serving, re: RegExp): Promise<number> {
  const text = await (await fetch(`${s.stats!}/metrics`)).text();
  const m = re.exec(text);
  return m ? Number(m[1]) : NaN;
}

interface StopLine {
  delivered: number;
  accepted: number;
  dropped: number;
  droppedAtStop: number;
  failed: number;
}

function graphiteStopLine(output: string): StopLine {
  const m = /graphite 127\.0\.0\.1:\d+: (\d+) of (\d+) lines delivered, (\d+) dropped \(backlog full\), (\d+) dropped at stop, (\d+) failed attempts/.exec(
    output,
  );
  if (!m) throw new Error(`no Graphite stop line in:\n${output}`);
  const [delivered, accepted, dropped, droppedAtStop, failed] = m.slice(1).map(Number) as [number, number, number, number, number];
  return { delivered, accepted, dropped, droppedAtStop, failed };
}

describe('statsd outputs: a Graphite that fails', () => {
  it('accepts and never reads: the JSON flushes stay on time; once it reads, every line is delivered', async () => {
    const g = await startGraphite(0, 'hold');
    const { s, json } = await serveStatsd(g.port);
    // ~12 KiB of lines a flush against a 4 KiB receive buffer: the connection fills and stalls.
    await sendPaced(s, json, 'hold', 12, 200);
    expect(await waitFor(() => flushes(json).length >= 14, 10_000)).toBe(true);
    // The first flush is aligned to the start (shorter); every later one comes on time, Graphite
    // stalled or not. The bound leaves a second for a flush timer held up on a loaded machine
    // (2 × FLUSH_MS failed on one 200 ms delay); a flush that waited for the stalled Graphite
    // would be held for a whole attempt, which gives up after 5 s without progress
    // (sendGraphite's idleMs), far above it.
    const intervals = flushes(json)
      .slice(1)
      .map((r) => r.interval_ms);
    expect(Math.max(...intervals), JSON.stringify(intervals)).toBeLessThan(FLUSH_MS + 1000);
    expect(await metric(s, /^shardgram_statsd_output_backlog\{output="graphite"\} (\d+)$/m)).toBeGreaterThan(0);

    g.startReading();
    expect(await waitFor(async () => (await metric(s, /^shardgram_statsd_output_backlog\{output="graphite"\} (\d+)$/m)) === 0, 20_000, 50)).toBe(true);
    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    const stop = graphiteStopLine(r.stdout);
    const expected = expectedLines(json);
    expect(stop).toMatchObject({ accepted: expected.length, delivered: expected.length, dropped: 0, droppedAtStop: 0 });
    // A stalled attempt that timed out may still be read later, then sent again: count distinct lines.
    expect(await waitFor(() => new Set(g.lines).size >= new Set(expected).size, 10_000)).toBe(true);
    const got = new Set(g.lines);
    expect(expected.filter((l) => !got.has(l))).toEqual([]);
  });

  it('down, then up: the lines of every flush made meanwhile are delivered once it is back', async () => {
    const port = await freePort();
    const { s, json } = await serveStatsd(port);
    await sendPaced(s, json, 'down', 6);
    expect(await waitFor(async () => (await metric(s, /^shardgram_statsd_output_failed_attempts_total\{output="graphite"\} (\d+)$/m)) >= 2, 10_000, 50)).toBe(
      true,
    );
    expect(s.stderr()).toMatch(/graphite 127\.0\.0\.1:\d+: .*ECONNREFUSED.*; keeping up to 1000000 lines and retrying/);
    const g = await startGraphite(port, 'read');
    await sendPaced(s, json, 'up', 4);
    expect(await waitFor(() => /graphite 127\.0\.0\.1:\d+: delivering again after/.test(s.stderr()), 10_000)).toBe(true);
    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    const stop = graphiteStopLine(r.stdout);
    const expected = expectedLines(json);
    expect(stop).toMatchObject({ accepted: expected.length, delivered: expected.length, dropped: 0, droppedAtStop: 0 });
    expect(stop.failed).toBeGreaterThanOrEqual(2);
    expect(await waitFor(() => g.lines.length >= expected.length, 10_000)).toBe(true);
    // Refused connections deliver nothing: each line arrives exactly once.
    expect([...g.lines].sort()).toEqual([...expected].sort());
    expect(s.stderr().match(/ECONNREFUSED/g)).toHaveLength(1); // said once, then counted
  });

  it('a backlog too small on purpose: what it drops is counted exactly', async () => {
    const port = await freePort();
    // A flush is 5 lines here (a counter's count and rate, 3 statsd figures): 12 lines hold two.
    const { s, json } = await serveStatsd(port, { outputRetryMax: '200', graphiteBacklog: '12' });
    await sendPaced(s, json, 'small', 8);
    expect(
      await waitFor(async () => (await metric(s, /^shardgram_statsd_output_dropped_total\{output="graphite",reason="backlog_full"\} (\d+)$/m)) > 0, 10_000, 50),
    ).toBe(true);
    const g = await startGraphite(port, 'read');
    await sendPaced(s, json, 'later', 3);
    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    const stop = graphiteStopLine(r.stdout);
    const expected = expectedLines(json);
    expect(await waitFor(() => g.lines.length >= stop.delivered, 10_000)).toBe(true);
    expect(g.lines).toHaveLength(stop.delivered);
    expect(stop.accepted).toBe(expected.length);
    expect(stop.dropped).toBeGreaterThan(0);
    // Every line made is delivered (once) or counted as dropped.
    expect(stop.delivered + stop.dropped + stop.droppedAtStop).toBe(expected.length);
    const left = [...expected];
    for (const l of g.lines) {
      const i = left.indexOf(l);
      expect(i, l).toBeGreaterThanOrEqual(0);
      left.splice(i, 1);
    }
    expect(left).toHaveLength(stop.dropped + stop.droppedAtStop);
    // The newest were kept: the last flushes' names arrived.
    expect(g.lines.some((l) => l.startsWith('stats.counters.u.later2.count 1 '))).toBe(true);
  });
});

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('statsd outputs: the jsonOut full-disk test needs root to mount a 1 MiB tmpfs; skipped');

describe('statsd outputs: jsonOut on a full disk', () => {
  it.skipIf(!isRoot)('flushes that cannot be written wait in the backlog, then are written in order, whole, when space returns', async () => {
    const mnt = mkdtempSync(join(tmpdir(), 'shardgram-statsd-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    try {
      const json = join(mnt, 'flushes.jsonl');
      writeFileSync(json, '');
      // Fill the disk.
      const filler = join(mnt, 'filler');
      const fd = openSync(filler, 'w');
      try {
        for (let i = 0; i < 1000; i++) writeSync(fd, Buffer.alloc(4096));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      } finally {
        closeSync(fd);
      }
      const { s } = await serveStatsd(null, {}, json);
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((r) => sock.send('full.a:1|c\nfull.b:2|c', s.port, '127.0.0.1', () => r()));
      sock.close();
      const failed = /^shardgram_statsd_output_failed_attempts_total\{output="json"\} (\d+)$/m;
      expect(await waitFor(async () => (await metric(s, failed)) >= 3, 10_000, 50)).toBe(true);
      expect(readFileSync(json, 'utf8')).toBe('');
      unlinkSync(filler);
      expect(await waitFor(async () => (await metric(s, /^shardgram_statsd_output_backlog\{output="json"\} (\d+)$/m)) === 0, 20_000, 50)).toBe(true);
      const r = await s.stop('SIGTERM');
      serving = undefined;
      expect(r.code).toBe(0);
      const all = flushes(json); // every line parses
      expect(all.map((f) => f.flush)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
      expect(all.at(-1)!.final).toBe(true);
      expect(all.reduce((n, f) => n + (f.counters['full.b'] ?? 0), 0)).toBe(2);
      const m = /jsonOut \S+: (\d+) of (\d+) flushes delivered, 0 dropped \(backlog full\), 0 dropped at stop, (\d+) failed attempts/.exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      expect([Number(m![1]), Number(m![2])]).toEqual([all.length, all.length]);
      expect(r.stdout.match(/ENOSPC|disk full/g)).toHaveLength(1); // said once, then counted
    } finally {
      execFileSync('umount', [mnt]);
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});
