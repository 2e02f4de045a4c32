#!/usr/bin/env node
// The balanced setup of docs/multi-host.md, measured: three `shardgram serve echo`
// hosts behind nftables DNAT (jhash, numgen random) and nginx's stream proxy, in
// network namespaces made for the run (root only; not run by the tests).
//
//   sudo node bench/multi-host.js [--rates 2000,5000,10000,20000,40000] [--seconds 2]
//
// For each balancer: the highest paced rate (from --rates) at which every datagram
// came back as an echo reply and the hosts counted no kernel drop; the balancer's
// CPU per datagram at that rate; and the per-host split. nginx's CPU is its own
// processes' (/proc/PID/stat); the kernel's DNAT has no process, so its cost is the
// machine's system+irq+softirq time (/proc/stat) per datagram minus the same burst's
// through `lb` without DNAT (plain forwarding to one host): the DNAT's share (conntrack
// tracks both once a nat table is loaded). On a busy machine these figures are noisy.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs, intArg } from './lib.js';
import { Topology, VIP, hostAddress, netnsUnavailable } from '@shardgram/test-kit/netns';
import { nftDnat, writeNginxConfig } from '@shardgram/test-kit/balancers';
import { cpuMicros } from '@shardgram/test-kit/procfs';
import { waitFor } from '@shardgram/test-kit/wait';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const BIN = join(ROOT, 'packages', 'udp-core', 'bin', 'shardgram.js');
const USAGE = `Usage: node bench/multi-host.js [--rates R1,R2,…] [--seconds S] [--workers N]   (as root, after npm run build)

Three shardgram hosts behind nftables DNAT and behind nginx's stream module, in network
namespaces it makes and removes: the highest rate each balancer carries with no loss.
  --rates     datagrams/s to try, in order (default 2000,5000,10000,20000,40000)
  --seconds   length of each run (default 2)
  --workers   workers per host (default 2)
`;
const args = benchArgs(
  {
    rates: { type: 'string', default: '2000,5000,10000,20000,40000' },
    seconds: { type: 'string', default: '2' },
    workers: { type: 'string', default: '2' },
  },
  USAGE,
  'bench/multi-host.js',
);
const RATES = args.rates.split(',').map((r) => intArg('rates', r, 1, 10_000_000, 'bench/multi-host.js'));
const SECONDS = intArg('seconds', args.seconds, 1, 600, 'bench/multi-host.js');
const WORKERS = intArg('workers', args.workers, 1, 64, 'bench/multi-host.js');
const HOSTS = 3;
const ECHO = 9000;
const STATS = 9100;
const PORTS = { direct: ECHO, jhash: 9001, random: 9002, nginx: 9003 };
/** Clock ticks per second of /proc's CPU times (USER_HZ). */
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

const why = netnsUnavailable();
if (why) {
  console.error(`bench/multi-host.js: ${why}`);
  process.exit(2);
}

/** Machine-wide system + irq + softirq seconds so far (/proc/stat, first line). */
function kernelSeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[2] + f[5] + f[6]) / TICK;
}

/** user+sys seconds of `pids` (all their threads; 0 for one that is gone). */
function processSeconds(pids) {
  return pids.reduce((t, pid) => t + cpuMicros(pid), 0) / 1e6;
}

const topo = await Topology.create(HOSTS);
const tmp = await mkdtemp(join(tmpdir(), 'shardgram-bench-multihost-'));
try {
  await topo.nft(
    topo.lb,
    nftDnat({
      table: 'shardgram',
      vip: VIP,
      targets: topo.hosts.map((_, i) => hostAddress(i)),
      toPort: ECHO,
      rules: [
        { port: PORTS.jhash, kind: 'jhash' },
        { port: PORTS.random, kind: 'random' },
      ],
    }),
  );
  for (let i = 0; i < HOSTS; i++) {
    const child = topo.spawn(topo.hosts[i], [
      process.execPath,
      BIN,
      'serve',
      'echo',
      '--port',
      String(ECHO),
      '--address',
      hostAddress(i),
      '--workers',
      String(WORKERS),
      '--rcvbuf',
      '4m',
      '--rcvbuf-force',
      '--stats-port',
      String(STATS),
      '--stats-address',
      hostAddress(i),
    ]);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    if (!(await waitFor(() => /^shardgram: |"ready":true/m.test(out), 30_000))) throw new Error(`host ${i + 1} did not start`);
  }
  const dir = await mkdtemp(join(tmp, 'nginx-'));
  const conf = await writeNginxConfig({ dir, listen: `${VIP}:${PORTS.nginx}`, targets: topo.hosts.map((_, i) => `${hostAddress(i)}:${ECHO}`) });
  topo.spawn(topo.lb, ['nginx', '-p', dir, '-c', conf, '-e', join(dir, 'error.log'), '-g', 'daemon off;']);
  if (!(await waitFor(async () => (await topo.exec(topo.lb, ['ss', '-Hlun', 'src', `${VIP}:${PORTS.nginx}`])).stdout.trim() !== '', 10_000)))
    throw new Error('nginx did not start');
  const nginxPids = async () =>
    (await topo.exec(topo.lb, ['sh', '-c', 'ps -e -o pid=,comm= | awk \'$2=="nginx"{print $1}\''])).stdout.split(/\s+/).filter(Boolean).map(Number);

  const hostTotals = async () =>
    (
      await topo.getAll(
        topo.lb,
        topo.hosts.map((_, i) => ({ url: `http://${hostAddress(i)}:${STATS}/stats` })),
      )
    ).map((r) => JSON.parse(r.body).total);

  /** One paced burst; returns loss, drops, split and CPU figures. */
  async function burst(name, address, port, rate) {
    const count = Math.round(rate * SECONDS);
    const before = await hostTotals();
    const pids = name === 'nginx' ? await nginxPids() : [];
    const k0 = kernelSeconds();
    const p0 = processSeconds(pids);
    const r = await topo.exec(
      topo.client,
      [
        process.execPath,
        BIN,
        'load',
        '--address',
        address,
        '--port',
        String(port),
        '--sources',
        '64',
        '--count',
        String(count),
        '--rate',
        String(rate),
        '--reply-timeout',
        '1000',
        '--max-duration',
        String(SECONDS * 1000 + 30_000),
        '--json',
      ],
      { timeoutMs: SECONDS * 1000 + 60_000 },
    );
    const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
    const k1 = kernelSeconds();
    const p1 = processSeconds(pids);
    let after = before;
    await waitFor(async () => {
      after = await hostTotals();
      return after.reduce((a, t, i) => a + t.datagrams + t.kernelDrops - before[i].datagrams - before[i].kernelDrops, 0) >= report.sent - report.lost;
    }, 5_000);
    const split = after.map((t, i) => t.datagrams - before[i].datagrams);
    const drops = after.reduce((a, t, i) => a + t.kernelDrops - before[i].kernelDrops, 0);
    return {
      name,
      rate,
      sent: report.sent,
      lost: report.lost,
      drops,
      split,
      sendRate: report.sendRate,
      kernelUs: ((k1 - k0) * 1e6) / report.sent,
      procUs: ((p1 - p0) * 1e6) / report.sent,
    };
  }

  const rows = [];
  const plan = [
    ['direct', hostAddress(0), PORTS.direct],
    ['nft jhash', VIP, PORTS.jhash],
    ['nft random', VIP, PORTS.random],
    ['nginx', VIP, PORTS.nginx],
  ];
  for (const [name, address, port] of plan) {
    let best;
    for (const rate of RATES) {
      const b = await burst(name, address, port, rate);
      console.error(
        `${name.padEnd(10)} ${String(rate).padStart(6)}/s: lost ${b.lost}, host drops ${b.drops}, split ${b.split.join('/')}, kernel ${b.kernelUs.toFixed(1)} µs/dgram, nginx ${b.procUs.toFixed(1)} µs/dgram`,
      );
      if (b.lost > 0 || b.drops > 0) break;
      best = b;
    }
    rows.push(best ?? { name, rate: 0 });
  }
  const direct = rows[0];
  console.log('| balancer | highest rate with no loss (datagrams/s, replies included) | balancer CPU per datagram | per-host split at that rate |');
  console.log('|---|---|---|---|');
  for (const b of rows.slice(1)) {
    if (!b.sent) {
      console.log(`| ${b.name} | below ${RATES[0]} | – | – |`);
      continue;
    }
    const cpu =
      b.name === 'nginx'
        ? `${b.procUs.toFixed(1)} µs (nginx processes)`
        : `${(b.kernelUs - (direct.kernelUs ?? 0)).toFixed(1)} µs (machine kernel time ${b.kernelUs.toFixed(1)} µs vs ${direct.kernelUs?.toFixed(1) ?? '–'} µs plain forwarding)`;
    const total = b.split.reduce((a, n) => a + n, 0);
    const top = b.rate === RATES[RATES.length - 1] ? '≥ ' : '';
    console.log(`| ${b.name} | ${top}${b.rate} | ${cpu} | ${b.split.map((n) => `${((100 * n) / total).toFixed(0)}%`).join(' / ')} |`);
  }
  console.log(
    `\nplain forwarding through lb to one host (no DNAT): highest rate ${direct.rate || `below ${RATES[0]}`}/s, machine kernel time ${direct.kernelUs?.toFixed(1) ?? '–'} µs per datagram`,
  );
} finally {
  await topo.destroy();
  await rm(tmp, { recursive: true, force: true });
}
