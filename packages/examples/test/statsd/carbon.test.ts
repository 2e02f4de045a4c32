/**
 * `shardgram serve statsd` against a real carbon-cache (Debian graphite-carbon), run in
 * the foreground from a config this test writes:
 *
 * - restarted in the middle of the run: every flush's counter is in the whisper file at
 *   its timestamp, those flushed while carbon was down included (they waited in the
 *   Graphite backlog);
 * - stopped (SIGSTOP: it accepts nothing, reads nothing) for several flushes: the flush
 *   clock keeps its interval meanwhile, and once it runs again every flush is there;
 * - SIGTERMed right after a flush was delivered (the service's Graphite backlog empty
 *   on /metrics once that flush was made), twice, under steady traffic: carbon may have
 *   read that flush and lost it in its own stop (plaintext has no acknowledgement), and
 *   the replay window sends it again after the restart: every flush is in whisper, and
 *   what was sent again is counted.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FlushResult } from '../../src/statsd/merge.js';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';
import { haveCommand } from '../syslog/helpers.js';
import { jsonLines } from '../fixtures/json-lines.js';

const haveCarbon = haveCommand('carbon-cache') && haveCommand('whisper-fetch');
if (!haveCarbon) console.log('statsd carbon test: carbon-cache or whisper-fetch not found (Debian package graphite-carbon); skipped');

let serving: Serving | undefined;
const children: ChildProcess[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
  for (const c of children.splice(0)) await stopProcess(c, 'SIGKILL');
  for (const c of cleanups.splice(0)) c();
});

async function stopProcess(c: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  c.kill(signal);
  await once(c, 'exit');
}

async function freePort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Carbon {
  dir: string;
  line: number;
  conf: string;
}

async function carbonConfig(): Promise<Carbon> {
  const dir = mkdtempSync(join(tmpdir(), 'shardgram-carbon-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  for (const d of ['storage/whisper', 'storage/lists', 'log']) mkdirSync(join(dir, d), { recursive: true });
  const [line, pickle, query] = [await freePort(), await freePort(), await freePort()];
  const conf = join(dir, 'carbon.conf');
  writeFileSync(
    conf,
    [
      '[cache]',
      `STORAGE_DIR = ${dir}/storage/`,
      `LOCAL_DATA_DIR = ${dir}/storage/whisper/`,
      `WHITELISTS_DIR = ${dir}/storage/lists/`,
      `CONF_DIR = ${dir}/`,
      `LOG_DIR = ${dir}/log/`,
      `PID_DIR = ${dir}/`,
      'ENABLE_LOGROTATION = False',
      'USER =',
      'MAX_CACHE_SIZE = inf',
      'MAX_UPDATES_PER_SECOND = 1000',
      'MAX_CREATES_PER_MINUTE = inf',
      'LINE_RECEIVER_INTERFACE = 127.0.0.1',
      `LINE_RECEIVER_PORT = ${line}`,
      'ENABLE_UDP_LISTENER = False',
      'PICKLE_RECEIVER_INTERFACE = 127.0.0.1',
      `PICKLE_RECEIVER_PORT = ${pickle}`,
      'CACHE_QUERY_INTERFACE = 127.0.0.1',
      `CACHE_QUERY_PORT = ${query}`,
      'LOG_LISTENER_CONN_SUCCESS = False',
      'LOG_UPDATES = False',
      'ENABLE_TAGS = False',
      'WHISPER_AUTOFLUSH = False',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'storage-schemas.conf'), '[all]\npattern = .*\nretentions = 1s:1h\n');
  return { dir, line, conf };
}

/** Starts carbon-cache in the foreground; resolves once its line receiver listens. */
async function startCarbon(c: Carbon): Promise<ChildProcess> {
  const child = spawn('carbon-cache', [`--config=${c.conf}`, `--pidfile=${join(c.dir, 'carbon.pid')}`, '--nodaemon', 'start'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const listening = `CarbonReceiverFactory starting on ${c.line}`;
  if (!(await waitFor(() => out.includes(listening) || child.exitCode !== null, 30_000, 50)) || !out.includes(listening)) {
    throw new Error(`carbon-cache did not start:\n${out}`);
  }
  return child;
}

/** The points of a whisper file: timestamp → value. */
function whisperPoints(c: Carbon, metric: string): Map<number, number> {
  const file = join(c.dir, 'storage/whisper', `${metric.split('.').join('/')}.wsp`);
  const out = new Map<number, number>();
  let text: string;
  try {
    const now = Math.floor(Date.now() / 1000);
    text = execFileSync('whisper-fetch', [`--from=${now - 600}`, `--until=${now + 5}`, file], { encoding: 'utf8' });
  } catch {
    return out; // not created yet
  }
  for (const line of text.split('\n')) {
    const [ts, v] = line.split('\t');
    if (v !== undefined && v !== 'None') out.set(Number(ts), Number(v));
  }
  return out;
}

function flushes(path: string): FlushResult[] {
  return jsonLines<FlushResult>(path);
}

/** `serve statsd` with one worker, flushing every `flushMs` into `json` and into carbon `c`'s line port; `more` flags after. */
function serveIntoCarbon(c: Carbon, json: string, flushMs: number, more: string[] = []): Promise<Serving> {
  return startServe(
    ['statsd', '--port', '0', '--workers', '1', '-o', `flushInterval=${flushMs}`, '-o', `jsonOut=${json}`, '-o', `graphite=127.0.0.1:${c.line}`, ...more],
    1,
  );
}

/** Sends the next value of `carbon.hits` and waits until a flush has it (so each value is one flush's total); returns it. */
function counterSender(s: Serving, json: string): () => Promise<number> {
  const sock = dgram.createSocket('udp4');
  cleanups.push(() => sock.close());
  let value = 0;
  return async () => {
    value++;
    const v = value;
    await new Promise<void>((r) => sock.send(`carbon.hits:${v}|c`, s.port, '127.0.0.1', () => r()));
    const seen = (): boolean => flushes(json).some((f) => f.counters['carbon.hits'] === v);
    if (!(await waitFor(seen, 5000))) throw new Error(`value ${v} was not flushed`);
    return v;
  };
}

/** Every flush's counter value is in whisper at its timestamp (two flushes in one second would share a point: not compared); at least `atLeast` of them. */
async function expectEveryFlushInWhisper(c: Carbon, json: string, metric: string, atLeast: number): Promise<void> {
  const all = flushes(json);
  const perSecond = new Map<number, number>();
  for (const f of all) perSecond.set(f.timestamp, (perSecond.get(f.timestamp) ?? 0) + 1);
  const want = new Map(
    all.filter((f) => f.counters['carbon.hits'] !== undefined && perSecond.get(f.timestamp) === 1).map((f) => [f.timestamp, f.counters['carbon.hits']!]),
  );
  expect(want.size).toBeGreaterThanOrEqual(atLeast);
  let got = new Map<number, number>();
  const complete = (): boolean => {
    got = whisperPoints(c, metric);
    return [...want].every(([ts, v]) => got.get(ts) === v);
  };
  await waitFor(complete, 20_000, 250); // the comparison below says which are missing
  expect(Object.fromEntries([...want].map(([ts]) => [ts, got.get(ts)]))).toEqual(Object.fromEntries(want));
}

/** The service's Graphite stop line: every line made delivered, none dropped. */
function expectAllDelivered(stdout: string): void {
  const stop = /graphite 127\.0\.0\.1:\d+: (\d+) of (\d+) lines delivered, (\d+) dropped \(backlog full\), (\d+) dropped at stop/.exec(stdout);
  expect(stop, stdout).not.toBeNull();
  expect(Number(stop![1])).toBe(Number(stop![2]));
  expect([Number(stop![3]), Number(stop![4])]).toEqual([0, 0]);
}

/** A sample of the service's /metrics, e.g. `shardgram_statsd_output_backlog{output="graphite"}`. */
async function metric(s: Serving, sample: string): Promise<number> {
  const text = await (await fetch(`${s.stats!}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  if (line === undefined) throw new Error(`${sample} not in /metrics`);
  return Number(line.slice(sample.length + 1));
}

describe('statsd → a real carbon-cache, restarted mid-run', () => {
  it.skipIf(!haveCarbon)('every flush of the counter is in whisper at its timestamp, those made while carbon was down included', async () => {
    const c = await carbonConfig();
    let carbon = await startCarbon(c);
    const json = join(c.dir, 'flushes.jsonl');
    serving = await serveIntoCarbon(c, json, 1000);
    const s = serving;
    const metric = 'stats.counters.carbon.hits.count';
    const next = counterSender(s, json);
    for (let i = 0; i < 3; i++) await next();
    // On disk before the restart, so that what carbon's own stop does with its cache is not in question.
    expect(await waitFor(() => [...whisperPoints(c, metric).values()].includes(3), 15_000, 200)).toBe(true);

    await stopProcess(carbon, 'SIGTERM');
    for (let i = 0; i < 3; i++) await next(); // flushed while carbon is down
    expect(s.stderr()).toMatch(/graphite 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    carbon = await startCarbon(c);
    await next();
    const last = await next();

    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);

    await expectEveryFlushInWhisper(c, json, metric, last - 1);
    // And the service says every line it made was delivered.
    expectAllDelivered(r.stdout);
    await stopProcess(carbon, 'SIGTERM');
  });

  it.skipIf(!haveCarbon)(
    'carbon stopped (SIGSTOP) for several flushes: the flush clock keeps time; once it runs again, every flush is in whisper',
    async () => {
      const c = await carbonConfig();
      const carbon = await startCarbon(c);
      const json = join(c.dir, 'flushes.jsonl');
      const flushMs = 1000; // whisper keeps one point a second
      serving = await serveIntoCarbon(c, json, flushMs, ['-o', 'outputRetryMax=500']);
      const s = serving;
      const metric = 'stats.counters.carbon.hits.count';
      const next = counterSender(s, json);
      await next();
      expect(await waitFor(() => [...whisperPoints(c, metric).values()].includes(1), 15_000, 200)).toBe(true);

      process.kill(carbon.pid!, 'SIGSTOP');
      try {
        const before = flushes(json).length;
        for (let i = 0; i < 5; i++) await next(); // five flushes (5 s) with carbon stopped
        const intervals = flushes(json)
          .slice(before)
          .map((f) => f.interval_ms);
        expect(intervals.length).toBeGreaterThanOrEqual(5);
        expect(Math.max(...intervals), JSON.stringify(intervals)).toBeLessThan(2 * flushMs);
      } finally {
        process.kill(carbon.pid!, 'SIGCONT');
      }
      const last = await next();

      const r = await s.stop('SIGTERM');
      serving = undefined;
      expect(r.code).toBe(0);
      await expectEveryFlushInWhisper(c, json, metric, last - 1);
      expectAllDelivered(r.stdout);
      await stopProcess(carbon, 'SIGTERM');
    },
  );

  it.skipIf(!haveCarbon)(
    'carbon SIGTERMed right after a flush was delivered, twice, under steady traffic: every flush is in whisper (the replay window), the replay counted',
    async () => {
      const c = await carbonConfig();
      let carbon = await startCarbon(c);
      const json = join(c.dir, 'flushes.jsonl');
      serving = await serveIntoCarbon(c, json, 1000, ['--stats-port', '0', '-o', 'outputRetryMax=500']);
      const s = serving;
      const metric_ = 'stats.counters.carbon.hits.count';
      const next = counterSender(s, json);
      // Steady traffic besides the counter: 500 more counters a flush (1000 more lines), as a real service has.
      const bulk = dgram.createSocket('udp4');
      cleanups.push(() => bulk.close());
      const packets: string[] = [];
      for (let p = 0; p < 10; p++) packets.push(Array.from({ length: 50 }, (_, i) => `carbon.bulk.c${p * 50 + i}:1|c`).join('\n'));
      let traffic = true;
      const steady = (async () => {
        for (let round = 0; traffic && round < 600; round++) {
          for (const p of packets) await new Promise<void>((r) => bulk.send(p, s.port, '127.0.0.1', () => r()));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const backlog = 'shardgram_statsd_output_backlog{output="graphite"}';
      for (let i = 0; i < 2; i++) await next();
      expect(await waitFor(() => [...whisperPoints(c, metric_).values()].includes(2), 15_000, 200)).toBe(true);

      for (let restart = 0; restart < 2; restart++) {
        await next(); // made into a flush: in the Graphite backlog
        // The real condition: that flush delivered (carbon read it all and closed), nothing waiting.
        let empty = false;
        for (let t = 0; t < 2000 && !(empty = (await metric(s, backlog)) === 0); t++) await new Promise((r) => setTimeout(r, 2));
        expect(empty).toBe(true);
        await stopProcess(carbon, 'SIGTERM');
        for (let i = 0; i < 2; i++) await next(); // flushed while carbon is down
        carbon = await startCarbon(c);
        await next();
      }
      const last = await next();
      traffic = false;
      await steady;
      expect(s.stderr()).toMatch(/graphite 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
      const replayed = await metric(s, 'shardgram_statsd_output_replayed_total{output="graphite"}');
      expect(replayed).toBeGreaterThan(0);

      const r = await s.stop('SIGTERM');
      serving = undefined;
      expect(r.code).toBe(0);
      await expectEveryFlushInWhisper(c, json, metric_, last - 2);
      expectAllDelivered(r.stdout);
      expect(r.stdout).toMatch(new RegExp(`failed attempts, ${replayed} lines replayed`));
      await stopProcess(carbon, 'SIGTERM');
    },
    120_000,
  );
});
