/**
 * Several shardgram hosts behind real UDP balancers, in network namespaces this test
 * makes (packages/test-kit/src/netns.js): nftables DNAT and nginx's stream proxy in `lb`,
 * three `shardgram serve` hosts, a client sending bursts from many source ports;
 * Prometheus in `lb` scraping the hosts' --stats-address (with native histograms: the
 * protobuf format). Root only (CI runs as root).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatsReport } from '@shardgram/udp-core';
import type { LoadReport } from '@shardgram/udp-core/load';
import { BIN } from '@shardgram/test-kit/cli';
import { LB_INNER, Topology, VIP, hostAddress, netnsUnavailable } from '@shardgram/test-kit/netns';
import { nftDnat, writeNginxConfig, writePrometheusConfig } from '@shardgram/test-kit/balancers';
import { waitFor } from '@shardgram/test-kit/wait';

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skipAll = netnsUnavailable();
if (skipAll) console.log(`skipping the multi-host test: ${skipAll}`);
const skipNginx = skipAll ?? (has('nginx') ? undefined : 'needs nginx with the stream module (Debian: nginx, libnginx-mod-stream)');
if (!skipAll && skipNginx) console.log(`skipping the nginx part of the multi-host test: ${skipNginx}`);
const skipProm = skipAll ?? (has('prometheus') ? undefined : 'needs prometheus (Debian: prometheus)');
if (!skipAll && skipProm) console.log(`skipping the Prometheus part of the multi-host test: ${skipProm}`);

const HOSTS = 3;
const ECHO_PORT = 9000;
const STATS_PORT = 9100;
const STATSD_PORT = 8125;
const STATSD_STATS_PORT = 9101;
const PROM = `${LB_INNER}:9090`;
const PORTS = { jhash: 9001, random: 9002, nginx: 9003 } as const;
const BURST = { sources: 64, count: 3000, rate: 3000 };
/** Native histogram bucket factor of the StatsD hosts' timers (statsd_exporter's default; schema 3). */
const BUCKET_FACTOR = 1.1;
/** histogram_quantile on a native histogram answers within its bucket: a relative 2^(2^-schema) - 1 of the exact value. */
const NATIVE_ERROR = 2 ** (2 ** -3) - 1;
/** The StatsD hosts' mapping file, in statsd_exporter's format: every timer a native histogram. */
const MAPPING = ['defaults:', '  observer_type: histogram', '  histogram_options:', `    native_histogram_bucket_factor: ${BUCKET_FACTOR}`, ''].join('\n');
const FIXTURE_BURST = fileURLToPath(new URL('./fixtures/udp-burst.js', import.meta.url));

interface Host {
  child: ChildProcess;
  out(): string;
}

/** Starts `shardgram serve` in `ns`; resolves when it says it is ready. */
async function serveIn(topo: Topology, ns: string, args: string[]): Promise<Host> {
  // Each host's control socket in this test's own directory, removed with it.
  const control = join(tmp!, `control-${ns}-${args[0]}.sock`);
  const child = topo.spawn(ns, [process.execPath, BIN, 'serve', ...args, '--control', control]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const ready = await waitFor(() => /^shardgram: |"ready":true/m.test(out) || child.exitCode !== null, 30_000, 50);
  if (!ready || child.exitCode !== null) throw new Error(`serve in ${ns} did not get ready:\n${out}`);
  return { child, out: () => out };
}

let topo: Topology | undefined;
let tmp: string | undefined;
/** Safety net should the runner die without afterAll: remove the namespaces synchronously. */
const onExit = (): void => {
  for (const ns of topo?.made ?? []) spawnSync('ip', ['netns', 'del', ns]);
};

describe.skipIf(skipAll)('several hosts behind a real UDP balancer (network namespaces)', () => {
  const hosts: Host[] = [];
  beforeAll(async () => {
    process.once('exit', onExit);
    tmp = await mkdtemp(join(tmpdir(), 'shardgram-multihost-'));
    topo = await Topology.create(HOSTS);
    const t = topo;
    await t.nft(
      t.lb,
      nftDnat({
        table: 'shardgram',
        vip: VIP,
        targets: t.hosts.map((_, i) => hostAddress(i)),
        toPort: ECHO_PORT,
        rules: [
          { port: PORTS.jhash, kind: 'jhash' },
          { port: PORTS.random, kind: 'random' },
        ],
      }),
    );
    await t.nft(
      t.lb,
      nftDnat({
        table: 'shardgram_statsd',
        vip: VIP,
        targets: t.hosts.map((_, i) => hostAddress(i)),
        toPort: STATSD_PORT,
        rules: [{ port: STATSD_PORT, kind: 'jhash' }],
      }),
    );
    const echo = t.hosts.map((ns, i) =>
      serveIn(t, ns, [
        'echo',
        '--port',
        String(ECHO_PORT),
        '--address',
        hostAddress(i),
        '--workers',
        '2',
        '--stats-port',
        String(STATS_PORT),
        '--stats-address',
        hostAddress(i),
        '--stats-host',
        `h${i + 1}.shardgram.test`,
      ]),
    );
    const mapping = join(tmp!, 'mapping.yml');
    await writeFile(mapping, MAPPING);
    const statsd = t.hosts.map((ns, i) =>
      serveIn(t, ns, [
        'statsd',
        '--port',
        String(STATSD_PORT),
        '--address',
        hostAddress(i),
        '--workers',
        '2',
        '--flush-interval',
        '200',
        '--mapping-config',
        mapping,
        '--stats-port',
        String(STATSD_STATS_PORT),
        '--stats-address',
        hostAddress(i),
      ]),
    );
    hosts.push(...(await Promise.all([...echo, ...statsd])));
  }, 90_000);
  afterAll(async () => {
    await topo?.destroy();
    process.removeListener('exit', onExit);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }, 30_000);

  /** Every host's /stats, fetched from `lb` by the host's address. */
  async function hostStats(): Promise<StatsReport[]> {
    const answers = await topo!.getAll(
      topo!.lb,
      Array.from({ length: HOSTS }, (_, i) => ({ url: `http://${hostAddress(i)}:${STATS_PORT}/stats` })),
    );
    return answers.map((r, i) => {
      if (r.status !== 200) throw new Error(`host ${i + 1} /stats: ${r.status} ${r.body}`);
      return JSON.parse(r.body) as StatsReport;
    });
  }

  /** Runs `shardgram load` in the client namespace against VIP:port. */
  async function burst(port: number): Promise<LoadReport> {
    const r = await topo!.exec(
      topo!.client,
      [
        process.execPath,
        BIN,
        'load',
        '--address',
        VIP,
        '--port',
        String(port),
        '--sources',
        String(BURST.sources),
        '--count',
        String(BURST.count),
        '--rate',
        String(BURST.rate),
        '--reply-timeout',
        '1000',
        '--max-duration',
        '30000',
        '--json',
      ],
      { timeoutMs: 40_000 },
    );
    const json = r.stdout.slice(r.stdout.indexOf('{'));
    if (!json) throw new Error(`load failed (${r.code}): ${r.stderr}`);
    return JSON.parse(json) as LoadReport;
  }

  /** A burst through the balancer: every reply back, every datagram counted by a host. */
  async function balancedBurst(port: number): Promise<{ report: LoadReport; split: number[] }> {
    const before = await hostStats();
    const report = await burst(port);
    let after = before;
    const got = (): number =>
      after.reduce((a, s, i) => a + s.total.datagrams + s.total.kernelDrops - before[i]!.total.datagrams - before[i]!.total.kernelDrops, 0);
    await waitFor(
      async () => {
        after = await hostStats();
        return got() >= report.sent;
      },
      10_000,
      100,
    );
    const split = after.map((s, i) => s.total.datagrams - before[i]!.total.datagrams);
    const drops = after.reduce((a, s, i) => a + s.total.kernelDrops - before[i]!.total.kernelDrops, 0);
    console.log(
      `port ${port}: sent ${report.sent}, replies ${report.received}, per host ${split.join('/')}, kernel drops ${drops}, ${Math.round(report.sendRate)}/s`,
    );
    expect(report.sent).toBe(BURST.count);
    // received + kernel drops on the hosts = sent
    expect(got()).toBe(report.sent);
    // and every echo reply came back through the balancer
    expect(report.received).toBe(report.sent);
    expect(report.duplicates).toBe(0);
    expect(report.strayReplies).toBe(0);
    for (const n of split) expect(n).toBeGreaterThan(0);
    return { report, split };
  }

  it('each host answers its stats by its own address and --stats-host name, not by loopback or other names', async () => {
    const t = topo!;
    const url = `http://${hostAddress(0)}:${STATS_PORT}/stats`;
    const good = ['', `${hostAddress(0)}:${STATS_PORT}`, hostAddress(0), `h1.shardgram.test:${STATS_PORT}`, 'H1.shardgram.test'];
    const bad = ['localhost', `127.0.0.1:${STATS_PORT}`, '[::1]', 'h2.shardgram.test', hostAddress(1), 'evil.example'];
    const answers = await t.getAll(
      t.lb,
      [...good, ...bad].map((host): { url: string; headers: Record<string, string> } => ({ url, headers: host ? { host } : {} })),
    );
    expect(answers.map((a) => a.status)).toEqual([...good.map(() => 200), ...bad.map(() => 403)]);
    // Writes are not on this port whoever asks.
    const post = await t.exec(t.lb, [
      process.execPath,
      '-e',
      `fetch(${JSON.stringify(`http://${hostAddress(0)}:${STATS_PORT}/workers?count=1`)},{method:'POST'}).then(r=>process.stdout.write(String(r.status)))`,
    ]);
    expect(post.stdout).toBe('405');
    // Bound to the host's address: not on its loopback.
    expect((await t.get(t.hosts[0]!, `http://127.0.0.1:${STATS_PORT}/stats`)).status).toBe(0);
  });

  it('nftables DNAT, jhash of source address and port: replies reach the client, received + drops = sent', async () => {
    await balancedBurst(PORTS.jhash);
  });

  it('nftables DNAT, numgen random per flow: the same', async () => {
    await balancedBurst(PORTS.random);
  });

  it.skipIf(skipNginx)('nginx stream proxy (udp reuseport, proxy_responses 1): replies reach the client, received + drops = sent', async () => {
    const t = topo!;
    const dir = await mkdtemp(join(tmp!, 'nginx-'));
    const conf = await writeNginxConfig({
      dir,
      listen: `${VIP}:${PORTS.nginx}`,
      targets: Array.from({ length: HOSTS }, (_, i) => `${hostAddress(i)}:${ECHO_PORT}`),
    });
    const nginx = t.spawn(t.lb, ['nginx', '-p', dir, '-c', conf, '-e', join(dir, 'error.log'), '-g', 'daemon off;']);
    try {
      const listening = await waitFor(
        async () => nginx.exitCode === null && (await t.exec(t.lb, ['ss', '-Hlun', 'src', `${VIP}:${PORTS.nginx}`])).stdout.trim() !== '',
        10_000,
        50,
      );
      expect(listening, `nginx did not start: ${existsSync(join(dir, 'error.log')) ? await readFile(join(dir, 'error.log'), 'utf8') : ''}`).toBe(true);
      await balancedBurst(PORTS.nginx);
    } finally {
      await t.stop(nginx);
    }
  });

  it.skipIf(skipProm)(
    'Prometheus (native histograms) in lb scrapes every host: counter sums exact, the cross-host p99 of the summed native histograms within the bucket error',
    async () => {
      const t = topo!;
      const dir = await mkdtemp(join(tmp!, 'prometheus-'));
      const targets = (port: number): string[] => t.hosts.map((_, i) => `${hostAddress(i)}:${port}`);
      const config = await writePrometheusConfig({
        dir,
        jobs: [
          { name: 'echo', targets: targets(STATS_PORT) },
          { name: 'statsd', targets: targets(STATSD_STATS_PORT) },
        ],
      });
      const prom = t.spawn(t.lb, [
        'prometheus',
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=${PROM}`,
        '--log.level=warn',
        '--enable-feature=native-histograms',
      ]);
      let promLog = '';
      prom.stderr!.on('data', (d: Buffer) => (promLog = (promLog + d.toString()).slice(-4000)));
      const query = async (q: string): Promise<number | undefined> => {
        const r = await t.get(t.lb, `http://${PROM}/api/v1/query?query=${encodeURIComponent(q)}`);
        if (r.status !== 200) return undefined;
        const v = (JSON.parse(r.body) as { data: { result: { value: [number, string] }[] } }).data.result[0]?.value[1];
        return v === undefined ? undefined : Number(v);
      };
      try {
        expect(await waitFor(async () => (await t.get(t.lb, `http://${PROM}/-/ready`)).status === 200, 30_000, 200), `prometheus not ready: ${promLog}`).toBe(
          true,
        );
        expect(await waitFor(async () => (await query('count(up{job=~"echo|statsd"} == 1)')) === 2 * HOSTS, 20_000, 250), 'every target up').toBe(true);

        // 1. The echo hosts: Prometheus's sum equals the hosts' own totals (after traffic of this test's own, so that it
        // does not depend on the tests before it).
        await balancedBurst(PORTS.jhash);
        const hostSum = (await hostStats()).reduce((a, s) => a + s.total.datagrams, 0);
        expect(hostSum).toBeGreaterThan(0);
        let promSum: number | undefined;
        await waitFor(async () => (promSum = await query('sum(shardgram_datagrams_total{job="echo"})')) === hostSum, 20_000, 250);
        expect(promSum).toBe(hostSum);

        // 2. A StatsD burst through the DNAT, spread over the three hosts.
        const n = 3000;
        let seed = 12345;
        const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
        // Latencies spread over 1..1000 ms (log-uniform), whole milliseconds.
        const latencies = Array.from({ length: n }, () => Math.max(1, Math.round(Math.exp(rnd() * Math.log(1000)))));
        const datagrams = latencies.map((ms) => `mh.requests:1|c\nmh.latency:${ms}|ms`);
        const sent = await t.exec(t.client, [process.execPath, FIXTURE_BURST], {
          input: JSON.stringify({ address: VIP, port: STATSD_PORT, sources: 64, rate: 3000, datagrams }),
          timeoutMs: 30_000,
        });
        expect(JSON.parse(sent.stdout)).toMatchObject({ sent: n, errors: 0 });
        // statsd_exporter's names: mh.requests is the counter mh_requests, mh.latency the histogram mh_latency (seconds).
        let total: number | undefined;
        await waitFor(async () => (total = await query('sum(mh_requests)')) === n, 20_000, 250);
        expect(total, 'cross-host counter sum').toBe(n);
        expect(await query('count(mh_requests > 0)'), 'hosts that got a share').toBe(HOSTS);
        let count: number | undefined;
        await waitFor(async () => (count = await query('histogram_count(sum(mh_latency))')) === n, 20_000, 250);
        expect(count, 'observations in the summed native histograms').toBe(n);

        // 3. Cross-host percentiles from the summed native histograms, against the exact ones of every value sent.
        const sorted = [...latencies].sort((a, b) => a - b);
        for (const q of [0.5, 0.9, 0.99]) {
          const exact = sorted[Math.ceil(q * n) - 1]!;
          const est = (await query(`histogram_quantile(${q}, sum(mh_latency))`))! * 1000;
          console.log(
            `p${q * 100}: exact ${exact} ms, from Prometheus's summed native histograms ${est.toFixed(2)} ms (bound ±${(NATIVE_ERROR * 100).toFixed(2)} %)`,
          );
          expect(Math.abs(est - exact) / exact, `p${q * 100}`).toBeLessThanOrEqual(NATIVE_ERROR);
        }
      } finally {
        await t.stop(prom);
      }
    },
  );
});
