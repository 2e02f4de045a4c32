/**
 * `shardgram serve statsd` as a real process, against real peers:
 *
 * 1. the npm `hot-shots` client (several instances) sends a known workload; the flushed
 *    aggregates equal the expected values exactly, under the `random` policy (the app's
 *    default) and under `hash`;
 * 2. Etsy statsd 0.9.0, run as its own process with a dump backend, gets the same
 *    workload: both flush the same counters, gauges, sets, timer figures and
 *    bad_lines_seen (the documented differences aside);
 * 3. the outputs: /metrics while running, Graphite plaintext to a local TCP server.
 *
 * Both servers get a long flush interval and are stopped with SIGTERM after the
 * workload, so each sees it in one interval: its final flush.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FlushResult } from '../../src/statsd/merge.js';
import { relativeError } from '../../src/statsd/native-histogram.js';
import { BIG_RCVBUF, ROOT, startServe, type Serving } from '@shardgram/test-kit/cli';
import { bigRcvbufOptions, rcvbufShortfall, skipNote } from '@shardgram/test-kit/rcvbuf';
import { udpPortQueues, waitQueuesEmpty } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';
import { CLIENTS, PERCENTILES, STEPS, expectedTimer, sendWorkload, type Expected } from './workload.js';

const ETSY = join(ROOT, 'node_modules/statsd/stats.js');
const BACKEND = fileURLToPath(new URL('../fixtures/etsy-dump-backend.cjs', import.meta.url));
const RCVBUF_PRELOAD = fileURLToPath(new URL('../fixtures/etsy-rcvbuf.cjs', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'shardgram-statsd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileSeq = 0;
const tmpFile = (name: string): string => join(dir, `${++fileSeq}-${name}`);

let serving: Serving | undefined;
let etsy: ChildProcess | undefined;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
  if (etsy && etsy.exitCode === null && etsy.signalCode === null) {
    etsy.kill('SIGKILL');
    await once(etsy, 'exit');
  }
  etsy = undefined;
});

function readLines<T>(path: string): T[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}

interface Totals {
  counters: Record<string, number>;
  gauges: Record<string, number>;
  sets: Record<string, number>;
  timers: Record<string, Record<string, number>>;
  badLines: number;
  metrics: number;
}

/** shardgram's flushes: counters summed; timers and sets must sit in one flush; gauges as last flushed. */
function shardgramTotals(flushes: FlushResult[]): Totals {
  const t: Totals = { counters: {}, gauges: {}, sets: {}, timers: {}, badLines: 0, metrics: 0 };
  const withTimers = flushes.filter((f) => Object.keys(f.timers).length > 0);
  expect(withTimers.length).toBe(1);
  for (const f of flushes) {
    for (const [k, v] of Object.entries(f.counters)) t.counters[k] = (t.counters[k] ?? 0) + v;
    t.badLines += f.bad_lines_seen;
    t.metrics += f.metrics_received;
  }
  t.gauges = flushes.at(-1)!.gauges;
  t.sets = withTimers[0]!.sets;
  t.timers = withTimers[0]!.timers as unknown as Record<string, Record<string, number>>;
  return t;
}

/** Histogram timers (the default mode): exact count, min, max; sum to the last bits; median and percentiles within relativeError(5). */
function expectTimerNear(mine: Record<string, number> | undefined, exact: Record<string, number>, k: string): void {
  expect(Object.keys(mine ?? {}).sort(), k).toEqual(Object.keys(exact).sort());
  for (const [stat, v] of Object.entries(exact)) {
    const m = mine![stat]!;
    if (stat === 'count' || stat === 'min' || stat === 'max') expect(m, `${k} ${stat}`).toBe(v);
    else if (stat === 'sum' || stat === 'mean') expect(Math.abs(m - v), `${k} ${stat}`).toBeLessThanOrEqual(Math.abs(v) * 1e-12);
    else expect(Math.abs(m - v), `${k} ${stat}: ${m} vs exact ${v}`).toBeLessThanOrEqual(Math.abs(v) * relativeError(5) * (1 + 1e-9));
  }
}

function expectMatches(t: Totals, e: Expected, mode: 'exact' | 'histogram' = 'exact'): void {
  expect(t.badLines).toBe(e.badLines);
  expect(t.metrics).toBe(e.metrics);
  expect(t.counters).toEqual(Object.fromEntries(e.counters));
  expect(t.gauges).toEqual(Object.fromEntries(e.gauges));
  expect(t.sets).toEqual(Object.fromEntries([...e.sets].map(([k, s]) => [k, s.size])));
  expect(Object.keys(t.timers).sort()).toEqual([...e.timers.keys()].sort());
  for (const [k, tm] of e.timers) {
    if (mode === 'exact') expect(t.timers[k], k).toEqual(expectedTimer(tm.values, tm.count, PERCENTILES));
    else expectTimerNear(t.timers[k], expectedTimer(tm.values, tm.count, PERCENTILES), k);
  }
}

/** Exact timers (every raw value: Etsy's percentiles bit for bit) unless `mode` says histogram. */
function serveArgs(out: string, extra: string[] = [], mode: 'exact' | 'histogram' = 'exact'): string[] {
  return [
    'statsd',
    '--port',
    '0',
    '--workers',
    '2',
    ...BIG_RCVBUF('4m'),
    '--stats-port',
    '0',
    '-o',
    `jsonOut=${out}`,
    '-o',
    'flushInterval=600000',
    '-o',
    `percentiles=${PERCENTILES.join(',')}`,
    '-o',
    `timerMode=${mode}`,
    ...extra,
  ];
}

async function workerShares(s: Serving): Promise<number[]> {
  const url = s.stats!;
  const stats = (await (await fetch(`${url}/stats`)).json()) as { workers: { datagrams: number }[] };
  return stats.workers.map((w) => w.datagrams);
}

describe('hot-shots → shardgram serve statsd', () => {
  it.each([
    { name: 'random (the app default)', args: [] as string[] },
    { name: 'key', args: ['--policy', 'key'] },
    // The kernel hash puts each source port on either worker: the 16 clients' ports and 16
    // more make 32 distinct ports (open together), all on one worker with odds 2^-31.
    { name: 'hash', args: ['--policy', 'hash'], sources: 16 },
    { name: 'random, histogram timers (the default mode)', args: [] as string[], mode: 'histogram' as const },
  ])('policy $name: the flushed aggregates equal the expected values exactly', async ({ args, mode, sources }) => {
    const out = tmpFile('flushes.jsonl');
    serving = await startServe(serveArgs(out, args, mode), 2);
    const s = serving;
    const expected = await sendWorkload(s.port, { sources });
    // Both workers had a share (the statistics follow the workers' counters within a snapshot interval).
    let shares: number[] = [];
    expect(await waitFor(async () => (shares = await workerShares(s)).every((n) => n > 0), 5_000, 50), `shares ${shares.join(' / ')}`).toBe(true);
    const r = await serving.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ 0 dropped by the kernel/);
    const flushes = readLines<FlushResult>(out);
    expect(flushes.at(-1)!.final).toBe(true);
    expectMatches(shardgramTotals(flushes), expected, mode);
  });
});

describe('exact across a rolling reload', () => {
  // While a slot's old process drains, its new one already reads the same socket: two
  // readers of one queue. Gauge operations split between them are ordered by the
  // kernel's receive timestamps, as across workers (docs/statsd.md).
  it.skipIf(skipNote(rcvbufShortfall('4m'), 'the statsd reload test'))(
    'SIGHUP in the middle of the workload: old processes send their last partials, nothing is lost or counted twice',
    async () => {
      const out = tmpFile('reload.jsonl');
      serving = await startServe(serveArgs(out, ['-o', 'flushInterval=300', '-o', 'flushTimeout=250']), 2);
      const s = serving;
      let hupAt = 0;
      const expected = await sendWorkload(s.port, {
        onStep: (done) => {
          // A third of the way through the workload.
          if (done === Math.floor((CLIENTS * STEPS) / 3)) {
            hupAt = done;
            s.child.kill('SIGHUP');
          }
        },
      });
      expect(hupAt).toBeGreaterThan(0);
      expect(await waitFor(() => /reloaded: 2 workers/.test(s.output()), 20_000)).toBe(true);
      // A flush after the reload: the new processes answer a round (the SIGTERM flush follows).
      const flushesAtReload = readLines<FlushResult>(out).length;
      expect(await waitFor(() => readLines<FlushResult>(out).length > flushesAtReload, 5_000)).toBe(true);
      const r = await s.stop('SIGTERM');
      serving = undefined;
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/ 0 dropped by the kernel/);
      const flushes = readLines<FlushResult>(out);
      expect(flushes.length).toBeGreaterThan(2);
      // Counters, sets' members, timers' values and gauges over all flushes.
      const counters: Record<string, number> = {};
      let bad = 0;
      let metrics = 0;
      for (const f of flushes) {
        for (const [k, v] of Object.entries(f.counters)) counters[k] = (counters[k] ?? 0) + v;
        bad += f.bad_lines_seen;
        metrics += f.metrics_received;
      }
      expect(counters).toEqual(Object.fromEntries(expected.counters));
      expect(flushes.at(-1)!.gauges['wl.inflight']).toBe(expected.gauges.get('wl.inflight'));
      expect(bad).toBe(expected.badLines);
      expect(metrics).toBe(expected.metrics);
      for (const [k, t] of expected.timers) {
        const sum = flushes.reduce((n, f) => n + (f.timers[k]?.sum ?? 0), 0);
        expect(
          flushes.reduce((n, f) => n + (f.timers[k]?.count ?? 0), 0),
          k,
        ).toBe(t.count);
        expect(sum, k).toBe(t.values.reduce((a, b) => a + b, 0));
      }
    },
  );
});

// ---------------------------------------------------------------- Etsy statsd

interface EtsyFlush {
  counters: Record<string, number>;
  gauges: Record<string, number>;
  sets: Record<string, string[]>;
  timer_data: Record<string, Record<string, number>>;
}

function freePort(type: 'udp' | 'tcp'): Promise<number> {
  return new Promise((resolve) => {
    if (type === 'tcp') {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    } else {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    }
  });
}

/** Starts Etsy statsd 0.9.0 with a config of our own; resolves when it listens. */
async function startEtsy(dump: string): Promise<{ port: number; child: ChildProcess; log: () => string }> {
  const port = await freePort('udp');
  const config = join(dir, `etsy-${++fileSeq}.js`);
  writeFileSync(
    config,
    JSON.stringify({
      port,
      address: '127.0.0.1',
      mgmt_port: await freePort('tcp'),
      mgmt_address: '127.0.0.1',
      flushInterval: 600_000,
      percentThreshold: PERCENTILES,
      backends: [BACKEND],
      dumpFile: dump,
    }),
  );
  const child = spawn(process.execPath, ['-r', RCVBUF_PRELOAD, ETSY, config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ETSY_RCVBUF: String(bigRcvbufOptions('4m').rcvbuf) },
  });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  if (!(await waitFor(() => /server is up/.test(log), 10_000))) throw new Error(`Etsy statsd did not start:\n${log}`);
  return { port, child, log: () => log };
}

/** Etsy's key for tagged metrics keeps the sender's tag order; ours sorts them (docs/statsd.md). */
function sortTags(key: string): string {
  const [name, ...tags] = key.split(';');
  return [name, ...tags.sort()].join(';');
}

describe('Etsy statsd 0.9.0 and shardgram flush the same figures', () => {
  it('same hot-shots workload to both: counters, gauges, sets, timers and bad lines agree', async () => {
    const dump = tmpFile('etsy.jsonl');
    const e = await startEtsy(dump);
    etsy = e.child;
    const out = tmpFile('shardgram.jsonl');
    serving = await startServe(serveArgs(out), 2);
    const sentEtsy = await sendWorkload(e.port);
    const sentShardgram = await sendWorkload(serving.port);
    expect(sentShardgram).toEqual(sentEtsy); // the workload is deterministic
    // Etsy handles each datagram as it reads it: once its socket's queue is empty, it has
    // seen the whole workload, and it flushes once more on exit.
    expect(await waitQueuesEmpty(e.port)).toBe(true);
    const etsyDrops = udpPortQueues(e.port).drops;
    etsy.kill('SIGTERM');
    await once(etsy, 'exit');
    const r = await serving.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);

    const ef = readLines<EtsyFlush>(dump);
    expect(ef.length).toBeGreaterThanOrEqual(1);
    // Etsy's sums over its flushes (with a 10-minute interval there is one: the exit flush).
    const counters: Record<string, number> = {};
    const members = new Map<string, Set<string>>();
    let timerData: Record<string, Record<string, number>> = {};
    for (const f of ef) {
      for (const [k, v] of Object.entries(f.counters)) counters[k] = (counters[k] ?? 0) + v;
      for (const [k, m] of Object.entries(f.sets)) for (const x of m) (members.get(k) ?? members.set(k, new Set()).get(k)!).add(x);
      if (Object.keys(f.timer_data).length) timerData = f.timer_data;
    }
    const gauges = ef.at(-1)!.gauges;
    const sg = shardgramTotals(readLines<FlushResult>(out));

    // Etsy lost nothing (paced sends): it counted every line the model sent.
    expect(counters['statsd.metrics_received'], `Etsy's socket: ${etsyDrops} datagrams dropped by the kernel`).toBe(sentEtsy.metrics);
    expect(sg.metrics).toBe(sentShardgram.metrics);
    expect(sg.badLines).toBe(counters['statsd.bad_lines_seen']);

    // Documented difference: Etsy 0.9.0 treats |h as a counter (the sum of the values); here it is a timer.
    const hist = sentEtsy.histogram;
    const histSum = sentEtsy.timers.get(hist)!.values.reduce((a, b) => a + b, 0);
    expect(counters[hist]).toBe(histSum);
    expect(sg.counters[hist]).toBeUndefined();
    expect(sg.timers[hist]!.sum).toBe(histSum);

    const etsyCounters = Object.fromEntries(
      Object.entries(counters)
        .filter(([k]) => !k.startsWith('statsd.') && k !== hist)
        .map(([k, v]) => [sortTags(k), v]),
    );
    expect(sg.counters).toEqual(etsyCounters);
    expect(sg.gauges).toEqual(Object.fromEntries(Object.entries(gauges).filter(([k]) => !k.startsWith('statsd.'))));
    expect(sg.sets).toEqual(Object.fromEntries([...members].map(([k, s]) => [k, s.size])));
    const etsyTimers = Object.keys(timerData).sort();
    expect(
      Object.keys(sg.timers)
        .filter((k) => k !== hist)
        .sort(),
    ).toEqual(etsyTimers);
    for (const k of etsyTimers) {
      const et = timerData[k]!;
      const mine = sg.timers[k]!;
      const theirs: Record<string, number> = { count: et.count!, sum: et.sum!, mean: et.mean!, min: et.lower!, max: et.upper!, median: et.median! };
      for (const p of PERCENTILES) theirs[`p${p}`] = et[`upper_${p}`]!;
      expect(mine, k).toEqual(theirs);
    }
  });
});

// ---------------------------------------------------------------- outputs

describe('outputs of a running service', () => {
  it("/metrics: statsd_exporter names and types (the default layout), the core's figures beside them", async () => {
    serving = await startServe(['statsd', '--port', '0', '--workers', '2', '--stats-port', '0', '-o', 'flushInterval=200'], 2);
    const url = serving.stats!;
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) =>
      s.send('m.req:5|c|#env:prod\nm.lat:12|ms\nm.lat:30|ms\nm.temp:21.5|g\nm.users:ann|s', serving!.port, '127.0.0.1', () => r()),
    );
    s.close();
    let text = '';
    expect(await waitFor(async () => /^m_lat_count 2$/m.test((text = await (await fetch(`${url}/metrics`)).text())), 5000, 50)).toBe(true);
    expect(text).toMatch(/^# TYPE m_req counter\nm_req\{env="prod"\} 5$/m);
    expect(text).toMatch(/^# TYPE m_temp gauge\nm_temp 21.5$/m);
    expect(text).toMatch(/^# TYPE m_lat summary$/m);
    expect(Number(/^m_lat_sum (\S+)$/m.exec(text)?.[1])).toBeCloseTo(0.042, 12);
    expect(text).toMatch(/^shardgram_statsd_prometheus_dropped_total\{reason="set"\} 1$/m);
    expect(text).toMatch(/^shardgram_statsd_flushes_total [1-9]\d*$/m);
    expect(text).toContain('shardgram_datagrams_total');
  });

  it('/metrics with promLayout=labels shows the last flush as before', async () => {
    serving = await startServe(['statsd', '--port', '0', '--workers', '2', '--stats-port', '0', '-o', 'flushInterval=200', '-o', 'promLayout=labels'], 2);
    const url = serving.stats!;
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) =>
      s.send('m.req:5|c|#env:prod\nm.lat:12|ms\nm.lat:30|ms\nm.temp:21.5|g\nm.users:ann|s', serving!.port, '127.0.0.1', () => r()),
    );
    s.close();
    let text = '';
    expect(
      await waitFor(async () => /shardgram_statsd_timer\{metric="m.lat",stat="max"\} 30/.test((text = await (await fetch(`${url}/metrics`)).text())), 5000, 50),
    ).toBe(true);
    expect(text).toContain('shardgram_statsd_counter_total{metric="m.req",env="prod"} 5');
    expect(text).toContain('shardgram_statsd_gauge{metric="m.temp"} 21.5');
    expect(text).toContain('shardgram_statsd_set_unique{metric="m.users"} 1');
    expect(text).toContain('shardgram_statsd_timer{metric="m.lat",stat="p90"} 30');
    expect(text).toMatch(/^shardgram_statsd_flushes_total [1-9]\d*$/m);
    // The core's own figures are still there.
    expect(text).toContain('shardgram_datagrams_total');
  });

  it('Graphite plaintext over TCP, including the final flush on SIGTERM', async () => {
    const received: string[] = [];
    const server = createServer((sock) => {
      let buf = '';
      sock.on('data', (d) => (buf += d.toString()));
      sock.on('end', () => received.push(buf));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const gport = (server.address() as AddressInfo).port;
      serving = await startServe(['statsd', '--port', '0', '--workers', '2', '-o', 'flushInterval=600000', '-o', `graphite=127.0.0.1:${gport}`], 2);
      const s = dgram.createSocket('udp4');
      for (const m of ['g.hits:1|c', 'g.hits:2|c|#dc:x', 'g.t:4|ms', 'g.t:8|ms', 'g.level:7|g']) {
        await new Promise<void>((r) => s.send(m, serving!.port, '127.0.0.1', () => r()));
      }
      s.close();
      // No wait: SIGTERM drains what the socket holds, and the final flush includes it.
      const r = await serving.stop('SIGTERM');
      serving = undefined;
      expect(r.code).toBe(0);
      expect(await waitFor(() => received.length > 0, 3000)).toBe(true);
      const text = received.join('');
      const ts = '\\d{10}';
      expect(text).toMatch(new RegExp(`^stats\\.counters\\.g\\.hits\\.count 1 ${ts}$`, 'm'));
      expect(text).toMatch(new RegExp(`^stats\\.counters\\.g\\.hits\\.count;dc=x 2 ${ts}$`, 'm'));
      expect(text).toMatch(new RegExp(`^stats\\.timers\\.g\\.t\\.mean 6 ${ts}$`, 'm'));
      expect(text).toMatch(new RegExp(`^stats\\.gauges\\.g\\.level 7 ${ts}$`, 'm'));
    } finally {
      server.close();
    }
  });

  it('a bad option stops the service at start with its name', async () => {
    await expect(startServe(['statsd', '--port', '0', '--workers', '1', '-o', 'flushInterval=soon'], 1)).rejects.toThrow(/flushInterval/);
  });
});
