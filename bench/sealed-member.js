// The "sealed member" section of `npm run bench`: what it costs every later datagram
// that a reuseport group once had a connected member. A shrink (and a stop) seals each
// leaving socket by connecting it to itself before its drain (docs/steering.md): the
// kernel then marks the group as having connections for the rest of its life, and from
// then on scores every member of the group per datagram instead of returning the first
// reuseport pick. This measures that scan, side by side in one run: groups of N
// sockets on loopback, fresh or marked (one extra member connected and closed), and
// the C sendmmsg sender's time per datagram into them. Nobody reads the sockets, so all
// but the first few hundred datagrams are dropped at a full queue: the cost measured is
// the send, the lookup and the drop, which makes the lookup's share as large as it gets.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { join } from 'node:path';
import { BENCH, fmtInt, median, mdTable, textTable } from './lib.js';
import { compileC } from './receivers.js';

const { openReusePortSocket, closeFd } = await import('@shardgram/udp-core/sockets');

export const QUICK = { sizes: [2, 16], count: 200_000, rounds: 1 };
const FULL = { sizes: [2, 4, 16, 64, 256], count: 1_000_000, rounds: 3 };

/** A group of `n` sockets on 127.0.0.1; `marked`: one more member was connected and closed first. */
async function group(n, marked) {
  const first = openReusePortSocket({ address: '127.0.0.1', port: 0 });
  const fds = [first.fd];
  for (let i = 1; i < n; i++) fds.push(openReusePortSocket({ address: '127.0.0.1', port: first.port }).fd);
  if (marked) {
    const extra = openReusePortSocket({ address: '127.0.0.1', port: first.port });
    const s = dgram.createSocket('udp4');
    await new Promise((resolve, reject) => {
      s.once('error', reject);
      s.bind({ fd: extra.fd }, resolve);
    });
    await new Promise((resolve, reject) => s.connect(first.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    await new Promise((resolve) => s.close(resolve));
  }
  return {
    port: first.port,
    close: () => {
      for (const fd of fds) closeFd(fd);
    },
  };
}

/** The C sender, flat out, `count` datagrams of 100 bytes from 64 ports; its own report. */
function send(bin, port, count) {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, ['--port', String(port), '--count', String(count), '--sources', '64', '--size', '100', '--max-ms', '60000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench/c/sender.c exited ${code}: ${err.trim()}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1)));
    });
  });
}

export async function runSealedBench({ log = () => {}, quick = false } = {}) {
  const o = quick ? QUICK : FULL;
  const notes = [];
  const bins = compileC(join(BENCH, 'out'), notes);
  if (!bins?.sender) throw new Error(`needs a C compiler for bench/c/sender.c${notes.length ? ` (${notes.join('; ')})` : ''}`);
  const ns = {};
  for (const n of o.sizes) ns[n] = { fresh: [], marked: [] };
  for (let r = 0; r < o.rounds; r++) {
    for (const n of o.sizes) {
      for (const marked of r % 2 === 0 ? [false, true] : [true, false]) {
        const g = await group(n, marked);
        try {
          const rep = await send(bins.sender, g.port, o.count);
          ns[n][marked ? 'marked' : 'fresh'].push((rep.ms * 1000) / rep.sent);
        } finally {
          g.close();
        }
      }
      log(`  sealed member: ${n} sockets, round ${r + 1}: fresh ${ns[n].fresh.at(-1).toFixed(3)} µs, marked ${ns[n].marked.at(-1).toFixed(3)} µs per datagram`);
    }
  }
  const rows = o.sizes.map((n) => {
    const f = median(ns[n].fresh);
    const m = median(ns[n].marked);
    return { n, fresh: f, marked: m, extra: m - f, ratio: m / f };
  });
  const header = ['sockets in the group', 'fresh group: µs/datagram', 'after a sealed member: µs/datagram', 'difference', 'ratio'];
  const cells = rows.map((x) => [
    String(x.n),
    x.fresh.toFixed(3),
    x.marked.toFixed(3),
    `${x.extra >= 0 ? '+' : ''}${x.extra.toFixed(3)} µs`,
    `${x.ratio.toFixed(2)}×`,
  ]);
  log(textTable(header, cells));
  const md = [
    '## A group that once had a sealed member',
    '',
    `A shrink seals each leaving socket (connects it to itself) before its drain, so that the kernel cannot queue a datagram on it while it closes (docs/steering.md). The kernel then marks the group as having connections for as long as it lives, and scores every member per datagram. Here: groups of N sockets on 127.0.0.1, fresh or marked (one extra member connected and closed), the C sendmmsg sender (bench/c/sender.c) flat out into each, ${fmtInt(o.count)} datagrams of 100 bytes from 64 ports, ${o.rounds} round(s) interleaved, median of the sender's wall time per datagram (on loopback the receive path, lookup included, runs on the sender's CPU). Nobody reads, so nearly every datagram is dropped at a full queue: the lookup's share of the cost is as large as it gets.`,
    '',
    mdTable(header, cells, ['r', 'r', 'r', 'r', 'r']),
    '',
  ];
  return { rows, markdown: md.join('\n') };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const r = await runSealedBench({ log: (l) => process.stderr.write(`${l}\n`), quick });
  process.stdout.write(`${r.markdown}\n`);
}
