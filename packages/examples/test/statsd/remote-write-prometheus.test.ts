/**
 * `shardgram serve statsd --remote-write` into a real Prometheus 2.42 (Debian), started
 * by the test in the foreground as a remote write receiver with native histograms
 * (prometheus-server.ts), stopped by pid:
 *
 * - every counter total sent is what the query API answers, exactly; a timer's native
 *   histogram counts every value (histogram_count);
 * - Prometheus stopped for 30 s mid-run: once it is back, every flush is there (the
 *   flush counter's samples are exactly 1…N, N the flushes made) and the totals exact;
 * - a backlog too small on purpose: the drops counted are exactly the samples made
 *   (flushes in the JSON file × series a flush) that Prometheus does not hold;
 * - Prometheus stopped with SIGSTOP (a receiver that accepts and does not answer) for
 *   several flushes: the flush clock keeps its interval meanwhile, and once it runs
 *   again every flush and total is there, nothing dropped;
 * - https with a CA given the system's way (SSL_CERT_FILE) and basic auth; a wrong
 *   password is refused (401), counted, not retried.
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcryptjs from 'bcryptjs';
import { afterEach, describe, expect, it } from 'vitest';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { sleep, waitFor } from '@shardgram/test-kit/wait';
import { havePrometheus, PrometheusServer } from './prometheus-server.js';
import { completeLines } from '../fixtures/json-lines.js';

if (!havePrometheus) console.log('statsd remote write test: prometheus not found (Debian package prometheus); skipped');

let serving: Serving | undefined;
const proms: PrometheusServer[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await serving?.stop('SIGKILL');
  serving = undefined;
  for (const p of proms.splice(0)) await p.stop();
  for (const c of cleanups.splice(0)) c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'shardgram-rw-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function prometheus(web?: Parameters<typeof PrometheusServer.start>[0]): Promise<PrometheusServer> {
  const p = await PrometheusServer.start(web);
  proms.push(p);
  return p;
}

/**
 * `serve statsd` with `workers` workers
 * flushing every `flushMs`, pushing to `prom` with the remote write labels `labels`;
 * `extra` flags after those.
 */
async function serveInto(
  prom: PrometheusServer,
  labels: string,
  workers: number,
  flushMs: number,
  extra: string[],
  opts?: Parameters<typeof startServe>[2],
): Promise<Serving> {
  const args = [
    'statsd',
    '--port',
    '0',
    '--workers',
    String(workers),
    '--flush-interval',
    String(flushMs),
    '--remote-write',
    prom.writeUrl,
    '--remote-write-labels',
    labels,
    ...extra,
  ];
  return startServe(args, workers, opts);
}

function udpSender(port: number): (lines: string[]) => Promise<void> {
  const sock = dgram.createSocket('udp4');
  cleanups.push(() => sock.close());
  return async (lines) => {
    for (const l of lines) await new Promise<void>((r) => sock.send(l, port, '127.0.0.1', () => r()));
  };
}

interface StopLine {
  delivered: number;
  accepted: number;
  dropped: number;
  refused: number;
  droppedAtStop: number;
}

/** The remote write output's stop line. */
function stopLine(out: string): StopLine {
  const m =
    /remote write [^:]+:\/\/[^:]+:\d+\/api\/v1\/write: (\d+) of (\d+) samples delivered, (\d+) dropped \(backlog full\), (?:(\d+) refused by the receiver, )?(\d+) dropped at stop/.exec(
      out,
    );
  if (!m) throw new Error(`no remote write stop line in:\n${out}`);
  return { delivered: Number(m[1]), accepted: Number(m[2]), dropped: Number(m[3]), refused: Number(m[4] ?? 0), droppedAtStop: Number(m[5]) };
}

const MAPPING = ['defaults:', '  observer_type: histogram', '  histogram_options:', '    native_histogram_bucket_factor: 1.1', ''].join('\n');

describe.skipIf(!havePrometheus)('statsd → Prometheus remote write (a real Prometheus 2.42)', () => {
  it('every counter total exact, and a timer native histogram with every value', async () => {
    const prom = await prometheus();
    const dir = tempDir();
    writeFileSync(join(dir, 'mapping.yml'), MAPPING);
    serving = await serveInto(prom, 'job=rw_exact,instance=t1', 2, 250, ['--mapping-config', join(dir, 'mapping.yml'), '-o', 'outputRetryMax=500']);
    const send = udpSender(serving.port);
    const want = new Map<string, number>();
    const timerValues: number[] = [];
    for (let round = 0; round < 20; round++) {
      const lines: string[] = [];
      for (let k = 0; k < 5; k++) {
        const v = (round + 1) * (k + 1);
        lines.push(`rw.counter${k}:${v}|c${k === 4 ? '|#env:prod' : ''}`);
        want.set(k === 4 ? 'rw_counter4{env="prod"}' : `rw_counter${k}`, (want.get(k === 4 ? 'rw_counter4{env="prod"}' : `rw_counter${k}`) ?? 0) + v);
      }
      for (let t = 0; t < 15; t++) {
        const ms = 1 + ((round * 15 + t) % 97);
        timerValues.push(ms);
        lines.push(`rw.latency:${ms}|ms`);
      }
      await send(lines);
      if (round % 5 === 4) await sleep(300); // across several flushes
    }
    const r = await serving.stop('SIGTERM');
    serving = undefined;
    expect(r.code, r.stdout).toBe(0);
    const s = stopLine(r.stdout);
    expect(s.delivered).toBe(s.accepted);
    expect(s.accepted).toBeGreaterThan(0);
    for (const [series, total] of want) {
      const sel = series.includes('{') ? series.replace('{', '{job="rw_exact",') : `${series}{job="rw_exact"}`;
      expect(await prom.value(sel), sel).toBe(total);
    }
    expect(await prom.value('histogram_count(rw_latency{job="rw_exact",instance="t1"})')).toBe(timerValues.length);
    expect(await prom.value('histogram_sum(rw_latency{job="rw_exact"})')).toBeCloseTo(timerValues.reduce((a, b) => a + b, 0) / 1000, 9);
    // The classic series of the same histogram, as /metrics serves them.
    expect(await prom.value('rw_latency_count{job="rw_exact"}')).toBe(timerValues.length);
    expect(await prom.value('rw_latency_bucket{job="rw_exact",le="+Inf"}')).toBe(timerValues.length);
  }, 60_000);

  it('Prometheus stopped for 30 s mid-run: once back, every flush and every count is there', async () => {
    const prom = await prometheus();
    const dir = tempDir();
    const json = join(dir, 'flushes.jsonl');
    serving = await serveInto(prom, 'job=rw_outage', 1, 500, ['--json-out', json, '-o', 'outputRetryMax=1000']);
    const s0 = serving;
    const send = udpSender(s0.port);
    let total = 0;
    const hit = async (): Promise<void> => {
      total++;
      await send(['rw.outage:1|c']);
    };
    for (let i = 0; i < 3; i++) await hit();
    expect(await waitFor(async () => (await prom.value('rw_outage{job="rw_outage"}')) === 3, 10_000, 100)).toBe(true);

    await prom.pause();
    // 30 s without Prometheus, with traffic (one value every 500 ms: 60 at most).
    const downUntil = Date.now() + 30_000;
    for (let i = 0; i < 60 && Date.now() < downUntil; i++) {
      await hit();
      await sleep(500);
    }
    expect(s0.stderr()).toMatch(/remote write http:\/\/127\.0\.0\.1:\d+\/api\/v1\/write: .*ECONNREFUSED/);
    await prom.resume();
    for (let i = 0; i < 3; i++) await hit();
    expect(await waitFor(() => s0.stderr().includes('delivering again'), 10_000, 100)).toBe(true);

    const r = await s0.stop('SIGTERM');
    serving = undefined;
    expect(r.code, r.stdout).toBe(0);
    const s = stopLine(r.stdout);
    expect(s).toMatchObject({ dropped: 0, refused: 0, droppedAtStop: 0 });
    expect(s.delivered).toBe(s.accepted);
    const flushes = completeLines(readFileSync(json, 'utf8')).length;
    // Every flush's sample of the flush counter: exactly 1, 2, …, N.
    const raw = await prom.query('shardgram_statsd_flushes_total{job="rw_outage"}[1h]');
    expect(raw).toHaveLength(1);
    expect(raw[0]!.values!.map(([, v]) => Number(v))).toEqual(Array.from({ length: flushes }, (_, i) => i + 1));
    expect(await prom.value('rw_outage{job="rw_outage"}')).toBe(total);
  }, 60_000);

  it('a backlog too small on purpose: the drops counted are exactly the samples made (flushes × series) that Prometheus does not hold', async () => {
    const prom = await prometheus();
    const json = join(tempDir(), 'flushes.jsonl');
    serving = await serveInto(prom, 'job=rw_small', 1, 200, [
      '--json-out',
      json,
      '-o',
      'remoteWriteBacklog=200',
      '-o',
      'outputRetryMax=500',
      '--stats-port',
      '0',
    ]);
    const s0 = serving;
    const send = udpSender(s0.port);
    await send(['rw.small:1|c', 'rw.level:5|g']);
    expect(await waitFor(async () => (await prom.value('rw_small{job="rw_small"}')) === 1, 10_000, 100)).toBe(true);
    await prom.pause();
    await send(['rw.small:1|c']);
    expect(await waitFor(() => /remote write .*: backlog full \(200 samples\)/.test(s0.stderr()), 20_000, 100)).toBe(true);
    await prom.resume();
    await send(['rw.small:1|c']);
    expect(await waitFor(() => s0.stderr().includes('delivering again'), 10_000, 100)).toBe(true);
    // Nothing is dropped once Prometheus is back (a flush's few dozen samples fit in 200 again): /metrics already has the final count.
    const metrics = await (await fetch(`${s0.stats}/metrics`)).text();
    const onMetrics = /^shardgram_statsd_output_dropped_total\{output="remote_write",reason="backlog_full"\} (\d+)$/m.exec(metrics);
    expect(onMetrics, metrics).not.toBeNull();
    const r = await s0.stop('SIGTERM');
    serving = undefined;
    expect(r.code, r.stdout).toBe(0);
    const s = stopLine(r.stdout);
    expect(s.dropped).toBeGreaterThan(0);
    expect(Number(onMetrics![1])).toBe(s.dropped);
    expect(s.droppedAtStop + s.refused).toBe(0);

    // What was made, independently of the service's own counts: N flushes (the JSON file),
    // each of S series from the first flush with rw_small on (flush k0, at t0: Prometheus
    // has it, before the outage), the flush counter's value being the flush number.
    const n = completeLines(readFileSync(json, 'utf8')).length;
    const all = await prom.query('{job="rw_small"}[1h]');
    const t0 = Math.min(...all.find((x) => x.metric.__name__ === 'rw_small')!.values!.map(([t]) => t));
    const flushCounter = all.find((x) => x.metric.__name__ === 'shardgram_statsd_flushes_total')!.values!;
    const k0 = Number(flushCounter.find(([t]) => t === t0)![1]);
    const perStamp = new Map<number, number>();
    for (const series of all) for (const [t] of series.values!) perStamp.set(t, (perStamp.get(t) ?? 0) + 1);
    const series = perStamp.get(t0)!;
    // The set is the same at every flush from k0 on (each stored flush has all of it).
    expect([...perStamp].filter(([t, c]) => t >= t0 && c !== series)).toEqual([]);
    // Flushes 1…k0 were delivered whole before the outage.
    expect(flushCounter.filter(([t]) => t <= t0).map(([, v]) => Number(v))).toEqual(Array.from({ length: k0 }, (_, i) => i + 1));
    const storedAfter = [...perStamp].filter(([t]) => t > t0).reduce((a, [, c]) => a + c, 0);
    expect(s.dropped).toBe((n - k0) * series - storedAfter);
    const stored = [...perStamp.values()].reduce((a, c) => a + c, 0);
    expect(stored).toBe(s.delivered);
  }, 60_000);

  it('Prometheus stopped (SIGSTOP) for several flushes: the flush clock keeps time, nothing is dropped, every total is exact once it runs again', async () => {
    const prom = await prometheus();
    const json = join(tempDir(), 'flushes.jsonl');
    serving = await serveInto(prom, 'job=rw_sigstop', 1, 250, ['--json-out', json, '-o', 'outputRetryMax=500', '--stats-port', '0']);
    const s0 = serving;
    const send = udpSender(s0.port);
    const flushCount = (): number => completeLines(readFileSync(json, 'utf8')).length;
    await send(['rw.stopped:1|c']);
    expect(await waitFor(async () => (await prom.value('rw_stopped{job="rw_sigstop"}')) === 1, 10_000, 100)).toBe(true);
    const backlog = async (): Promise<number> =>
      Number(/^shardgram_statsd_output_backlog\{output="remote_write"\} (\d+)$/m.exec(await (await fetch(`${s0.stats}/metrics`)).text())![1]);

    process.kill(prom.child!.pid!, 'SIGSTOP');
    let total = 1;
    try {
      const before = flushCount();
      // Eight flushes made while it is stopped, a value in each (bounded: 10 s).
      for (let i = 0; i < 8; i++) {
        total++;
        await send(['rw.stopped:1|c']);
        const want = flushCount() + 1;
        expect(await waitFor(() => flushCount() >= want, 5000, 20)).toBe(true);
      }
      expect(await backlog()).toBeGreaterThan(0); // waiting, not sent
      const made = readFileSync(json, 'utf8')
        .split('\n')
        .filter(Boolean)
        .slice(before)
        .map((l) => (JSON.parse(l) as { interval_ms: number }).interval_ms);
      expect(made.length).toBeGreaterThanOrEqual(8);
      // Each on time: the bound leaves a second for a flush timer held up on a loaded machine
      // (2 × 250 failed on one 250 ms delay); a flush that waited for the stopped Prometheus
      // would be held for a whole request, which gives up after remoteWriteTimeout (30 s here,
      // the default), far above it.
      expect(Math.max(...made), JSON.stringify(made)).toBeLessThan(250 + 1000);
    } finally {
      process.kill(prom.child!.pid!, 'SIGCONT');
    }
    expect(await waitFor(async () => (await backlog()) === 0, 20_000, 100)).toBe(true);
    const r = await s0.stop('SIGTERM');
    serving = undefined;
    expect(r.code, r.stdout).toBe(0);
    const s = stopLine(r.stdout);
    expect(s).toMatchObject({ dropped: 0, refused: 0, droppedAtStop: 0 });
    expect(s.delivered).toBe(s.accepted);
    expect(await prom.value('rw_stopped{job="rw_sigstop"}')).toBe(total);
    const raw = await prom.query('shardgram_statsd_flushes_total{job="rw_sigstop"}[1h]');
    expect(raw[0]!.values!.map(([, v]) => Number(v))).toEqual(Array.from({ length: flushCount() }, (_, i) => i + 1));
  }, 60_000);

  it('https with the CA given the system way (SSL_CERT_FILE) and basic auth; a wrong password is refused, counted, not retried', async () => {
    const dir = tempDir();
    const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=shardgram test CA');
    ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
    // The bcrypt hash Prometheus's web config wants (bcryptjs: pure JS; Python's crypt module is gone from 3.13).
    const bcrypt = bcryptjs.hashSync('s3cret', 4);
    const prom = await prometheus({ tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') }, basicAuth: { user: 'statsd', bcrypt } });
    writeFileSync(join(dir, 'password'), 's3cret\n');
    writeFileSync(join(dir, 'wrong'), 'guess\n');
    const env = { ...process.env, SSL_CERT_FILE: join(dir, 'ca.pem') };
    /** An instant query over https, with the CA and the password. */
    const secureValue = async (expr: string): Promise<string | undefined> => {
      const body = await new Promise<string>((resolve, reject) => {
        https
          .get(
            `https://127.0.0.1:${prom.port}/api/v1/query?query=${encodeURIComponent(expr)}`,
            { ca: readFileSync(join(dir, 'ca.pem')), auth: 'statsd:s3cret' },
            (res) => {
              let t = '';
              res.on('data', (d: Buffer) => (t += d.toString()));
              res.on('end', () => resolve(t));
            },
          )
          .on('error', reject);
      });
      return (JSON.parse(body) as { data: { result: { value: [number, string] }[] } }).data.result[0]?.value[1];
    };
    const run = async (passwordFile: string, until: (s: Serving) => Promise<boolean>): Promise<StopLine> => {
      serving = await serveInto(prom, 'job=rw_tls', 1, 200, ['-o', 'remoteWriteUsername=statsd', '-o', `remoteWritePasswordFile=${passwordFile}`], { env });
      const s0 = serving;
      await udpSender(s0.port)(['rw.secure:7|c']);
      expect(await waitFor(() => until(s0), 10_000, 100)).toBe(true);
      const r = await s0.stop('SIGTERM');
      serving = undefined;
      expect(r.code, r.stdout).toBe(0);
      return stopLine(r.stdout);
    };
    const good = await run(join(dir, 'password'), async () => (await secureValue('rw_secure{job="rw_tls"}')) === '7');
    expect(good.delivered).toBe(good.accepted);
    expect(good.refused).toBe(0);
    const bad = await run(join(dir, 'wrong'), async (s0) => /remote write .*: \d+ samples refused, not retried \(HTTP 401/.test(s0.stderr()));
    expect(bad.delivered).toBe(0);
    expect(bad.refused).toBe(bad.accepted);
    expect(bad.accepted).toBeGreaterThan(0);
  }, 60_000);
});
