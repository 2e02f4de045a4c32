// Syslog receivers side by side: the same paced steps of RFC 5424 messages over UDP
// offered to rsyslog's imudp (2 threads, writing %jsonmesg% lines with omfile), to
// syslog-ng (one network() source with so-reuseport(1) per shardgram worker, writing
// format-json lines) and to `shardgram serve syslog --workers 2 --out F` with the
// app's defaults (docs/syslog.md), all on loopback. The sender is the paced C loop
// (bench/c/sender.c --rate R --syslog TAG, 32 source ports), so every receiver gets the
// same offered load at each step, whatever it costs it. Per step: messages written to
// the output file against messages sent, kernel drops, CPU per message written, and
// written per second.
//
//   node bench/syslog.js [options]   (after `npm run build`; --help lists them)
//
// Peers are not installed by the benchmark: a missing one is skipped with the reason
// (bench/setup.sh installs rsyslog, and syslog-ng into bench/out/ since Debian's
// syslog-ng-core and rsyslog packages exclude each other). Export:
// runSyslogBench({ log, quick, steps, seconds, receivers, abBin }) → { markdown, rows, targets };
// the peers are in bench/syslog-peers.js. Bounded:
// every step has a count and a deadline, and the run stops starting steps after
// TOTAL_BUDGET_MS.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH, ROOT, SETUP_HINT, benchArgs, freePort, mdTable, sleep, startServe, treeCpuMicros, udpQueues } from './lib.js';
import { compileC } from './receivers.js';
import { findRsyslog, findSyslogNg, RCVBUF, startRsyslog, startSyslogNg, WORKERS } from './syslog-peers.js';

const SOURCES = 32;
const TOTAL_BUDGET_MS = 240_000;
/** Offered rates, messages per second: the rates syslog receivers live at, up to and past the highest rsyslog held without loss on the 2-core machine (about 60 k/s). */
export const STEPS = [5_000, 20_000, 50_000, 80_000, 120_000];
const STEP_SECONDS = 4;
const QUICK = { steps: [20_000], seconds: 1 };

const USAGE = `Usage: node bench/syslog.js [options]   (after npm run build)

Offers the same paced steps of RFC 5424 messages (~240 bytes, ${SOURCES} source ports,
loopback; the C sender bench/c/sender.c --rate) to rsyslog imudp (2 threads) → omfile,
syslog-ng (${WORKERS} network() sources with so-reuseport(1)) → file, and shardgram serve
syslog --workers ${WORKERS} --out FILE with the app's defaults, ${RCVBUF / 1048576} MiB receive
buffers for the peers; per step: written / sent, kernel drops, CPU per message and
written per second, and shardgram's CPU per message over each peer's. A peer that is
not installed is skipped with the reason (bench/setup.sh installs them).

Options:
  --steps LIST     offered rates in messages/s (default ${STEPS.join(',')})
  --seconds S      seconds per step (default ${STEP_SECONDS})
  --receivers LIST comma-separated subset of: rsyslog,syslog-ng,shardgram (default: all)
  --ab PATH        also measure another checkout's shardgram (its packages/udp-core/bin/shardgram.js,
                   built), as one more row: an A/B of two builds in one run
  --quick          one short step (20000/s for 1 s) per receiver: checks that every row works
  -h, --help       show this help
`;

const kernelDrops = (port) => udpQueues(port).drops;

/** How much of an output file one read takes. */
const CHUNK_BYTES = 8 << 20;

/** Counts the lines of a growing file that contain `marker` and a sequence number, reading only what is new. */
class LineCounter {
  constructor(path, marker) {
    this.path = path;
    this.marker = marker;
    this.offset = 0;
    this.tail = '';
    this.count = 0;
    this.seqs = new Set();
    this.re = new RegExp(`${marker}(\\d+)`);
  }
  poll() {
    if (!existsSync(this.path)) return this.count;
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      // In chunks: a receiver's file over the steps grows past what one string may hold.
      const buf = Buffer.alloc(Math.min(CHUNK_BYTES, Math.max(0, size - this.offset)));
      while (this.offset < size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, size - this.offset), this.offset);
        if (n <= 0) break;
        this.offset += n;
        const lines = (this.tail + buf.toString('utf8', 0, n)).split('\n');
        this.tail = lines.pop();
        for (const line of lines) {
          const m = this.re.exec(line);
          if (!m) continue;
          this.count++;
          this.seqs.add(Number(m[1]));
        }
      }
    } finally {
      closeSync(fd);
    }
    return this.count;
  }
}

/** Runs the C sender: `count` messages tagged `marker` at `rate` per second. Resolves { sent, ms, rate }. */
function runSender(sender, port, marker, count, rate, maxMs) {
  return new Promise((resolve, reject) => {
    const argv = [
      '--port',
      String(port),
      '--count',
      String(count),
      '--rate',
      String(rate),
      '--sources',
      String(SOURCES),
      '--syslog',
      marker,
      '--max-ms',
      String(maxMs),
    ];
    const child = spawn(sender, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const t = setTimeout(() => child.kill('SIGKILL'), maxMs + 5000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      try {
        const r = JSON.parse(out.trim().split('\n').pop());
        resolve({ sent: r.sent, ms: r.ms, rate: r.rate });
      } catch {
        reject(new Error(`sender ${argv.join(' ')} failed (${code}): ${err}`));
      }
    });
  });
}

/** Polls until `want` lines are counted, or the count stops growing for `quietMs`, or the deadline. Resolves { n, lastGrowth }. */
async function settle(counter, want, quietMs, deadline) {
  let last = -1;
  let since = performance.now();
  for (;;) {
    const n = counter.poll();
    if (n !== last) {
      last = n;
      since = performance.now();
    }
    if (n >= want || performance.now() - since >= quietMs || Date.now() > deadline) return { n, lastGrowth: since };
    await sleep(20);
  }
}

async function startShardgram(dir, port, bin, name) {
  const out = join(dir, `${name}.jsonl`);
  // The app's defaults (engine, receive buffer, read delay): what `serve syslog` gives a user.
  // Another checkout's command runs in that checkout, so that `syslog` is its app too.
  const sg = await startServe(['syslog', '--port', String(port), '--workers', String(WORKERS), '--out', out], {
    workers: WORKERS,
    ...(bin ? { bin, cwd: resolve(bin, '../../../..') } : {}),
  });
  return { child: sg.child, out, stderr: sg.log, stop: () => sg.stop('SIGTERM', 15_000) };
}

/** Sends probes until one shows up in the output: the receiver is up and writing. */
async function warmUp(port, counter, deadline) {
  const s = dgram.createSocket('udp4');
  try {
    for (let i = 0; Date.now() < deadline; i++) {
      s.send(`<134>1 - h warm - - - ${counter.marker}${i}`, port, '127.0.0.1');
      await sleep(100);
      if (counter.poll() > 0) return true;
    }
    return false;
  } finally {
    s.close();
  }
}

// ---------------------------------------------------------------- the steps

async function benchTarget(target, sender, dir, log, budgetEnd, steps, seconds) {
  const port = await freePort('udp');
  const rx = await target.start(dir, port);
  const rows = [];
  try {
    const warm = new LineCounter(rx.out, 'sgbench-warm-');
    if (!(await warmUp(port, warm, Math.min(budgetEnd, Date.now() + 10_000)))) throw new Error(`${target.name} wrote nothing: ${rx.stderr()}`);
    // A first short load (JIT, caches, file growth), not measured.
    await runSender(sender, port, 'sgbench-pre-', Math.min(steps[0], 20_000), Math.min(steps[0], 20_000), 5000);
    await settle(new LineCounter(rx.out, 'sgbench-pre-'), Infinity, 300, Date.now() + 3000);
    for (const [k, rate] of steps.entries()) {
      if (Date.now() > budgetEnd - (seconds * 1000 + 5000)) {
        log(`${target.name}: skipping ${rate}/s (time budget)`);
        continue;
      }
      const marker = `sgbench-s${k}-`;
      const counter = new LineCounter(rx.out, marker);
      const count = Math.round(rate * seconds);
      const dropsBefore = kernelDrops(port);
      const cpuBefore = treeCpuMicros(rx.child.pid);
      const t0 = performance.now();
      const s = await runSender(sender, port, marker, count, rate, seconds * 1000 + 5000);
      const { n: written, lastGrowth } = await settle(counter, s.sent, 1000, Math.min(budgetEnd, Date.now() + 10_000));
      // CPU up to the last record written (not the quiet second after it, when nothing came).
      const cpuUs = treeCpuMicros(rx.child.pid) - cpuBefore;
      const drops = kernelDrops(port) - dropsBefore;
      const distinct = counter.seqs.size;
      const spanMs = Math.max(s.ms, lastGrowth - t0);
      rows.push({
        receiver: target.name,
        key: target.key,
        rate,
        sent: s.sent,
        sendRate: Math.round(s.rate),
        written,
        duplicates: written - distinct,
        lost: s.sent - distinct,
        kernelDrops: drops,
        writtenPerSec: Math.round(distinct / (spanMs / 1000)),
        receiverCpuMs: Math.round(cpuUs / 1000),
        cpuMicrosPerMessage: distinct ? cpuUs / distinct : null,
      });
      log(
        `${target.name}, ${rate}/s offered (sent at ${Math.round(s.rate)}/s): ${distinct} of ${s.sent} written, ${drops} kernel drops, ${distinct ? (cpuUs / distinct).toFixed(1) : '–'} µs CPU/message`,
      );
      await sleep(200);
    }
  } finally {
    await rx.stop();
  }
  return rows;
}

const fmtUs = (v) => (v === null || v === undefined ? '–' : `${v.toFixed(1)} µs`);

function toMarkdown(rows, meta) {
  const pct = (a, b) => (b ? `${((100 * a) / b).toFixed(2)} %` : '–');
  const lines = [
    `The same paced steps of RFC 5424 messages (~240 bytes, ${SOURCES} source ports, loopback; bench/c/sender.c --rate, ${meta.seconds} s per step) offered to each receiver.`,
    `Machine: ${meta.cpus} cores, Node ${process.version}${meta.peers.length ? `; ${meta.peers.join('; ')}` : ''}.`,
    `rsyslog: imudp with ${WORKERS} threads → omfile (%jsonmesg%); syslog-ng: ${WORKERS} network() sources with so-reuseport(1), flags(syslog-protocol) → file (format-json);`,
    `both asked for a ${RCVBUF / 1048576} MiB SO_RCVBUF. shardgram: \`serve syslog --workers ${WORKERS} --out FILE\`, nothing else: the app's defaults (${meta.defaults}).`,
    '',
    mdTable(
      ['receiver', 'offered', 'sent at', 'written / sent', 'lost', 'duplicates', 'kernel drops', 'written per s', 'receiver CPU', 'CPU per message'],
      rows.map((r) => [
        r.receiver,
        `${r.rate.toLocaleString('en-US')}/s`,
        `${r.sendRate.toLocaleString('en-US')}/s`,
        `${r.written - r.duplicates} / ${r.sent} (${pct(r.written - r.duplicates, r.sent)})`,
        r.lost,
        r.duplicates,
        r.kernelDrops,
        r.writtenPerSec.toLocaleString('en-US'),
        `${r.receiverCpuMs} ms`,
        fmtUs(r.cpuMicrosPerMessage),
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    'written / sent counts distinct messages; lost = sent − distinct written; kernel drops from /proc/net/udp for the port;',
    'receiver CPU is user + system time of the receiver process tree (rsyslogd; syslog-ng; shardgram supervisor and workers)',
    'from the start of the step until its last record was written; CPU per message = that over the distinct messages written.',
  ];
  const ratios = ratioRows(rows);
  if (ratios.table.length) {
    lines.push('', '**shardgram syslog against the peers, step by step** (CPU per message, same run):', '');
    lines.push(
      mdTable(['offered', ...ratios.peers.map((p) => `× ${p}`), 'shardgram kernel drops', ...ratios.peers.map((p) => `${p} kernel drops`)], ratios.table),
    );
    lines.push('', "× peer: shardgram syslog's CPU per message over that peer's at the same step (below 1: shardgram costs less).");
  }
  const targets = syslogTargets(rows);
  if (targets.length) {
    lines.push('', '**Targets**', '');
    for (const t of targets) lines.push(`- ${t.what}: ${t.detail} — ${t.met ? 'met' : '**missed**'}`);
  }
  for (const n of meta.notes) lines.push('', `note: ${n}`);
  return lines.join('\n');
}

/** Per step: shardgram's CPU per message over each peer's, and the drops. */
function ratioRows(rows) {
  const sg = rows.filter((r) => r.key === 'shardgram');
  const peers = [...new Set(rows.filter((r) => r.key !== 'shardgram').map((r) => r.key))];
  const table = sg.map((s) => {
    const at = (p) => rows.find((r) => r.key === p && r.rate === s.rate);
    return [
      `${s.rate.toLocaleString('en-US')}/s`,
      ...peers.map((p) => {
        const r = at(p);
        return r?.cpuMicrosPerMessage && s.cpuMicrosPerMessage ? (s.cpuMicrosPerMessage / r.cpuMicrosPerMessage).toFixed(2) : '–';
      }),
      s.kernelDrops,
      ...peers.map((p) => at(p)?.kernelDrops ?? '–'),
    ];
  });
  return { peers, table };
}

/** The issue's targets, against rsyslog: CPU per message ≤ rsyslog's at every step, no drop where rsyslog has none. */
export function syslogTargets(rows) {
  const sg = rows.filter((r) => r.key === 'shardgram');
  const rs = rows.filter((r) => r.key === 'rsyslog');
  if (!sg.length || !rs.length) return [];
  const pairs = sg.map((s) => ({ s, r: rs.find((r) => r.rate === s.rate) })).filter((p) => p.r);
  const cheaper = pairs.filter((p) => p.s.cpuMicrosPerMessage !== null && p.r.cpuMicrosPerMessage !== null);
  const clean = pairs.filter((p) => p.r.kernelDrops === 0 && p.r.lost === 0);
  return [
    {
      what: "shardgram syslog's CPU per message ≤ rsyslog's at every step",
      detail: cheaper.map((p) => `${p.s.rate / 1000}k: ${(p.s.cpuMicrosPerMessage / p.r.cpuMicrosPerMessage).toFixed(2)}`).join(', '),
      met: cheaper.length === pairs.length && cheaper.every((p) => p.s.cpuMicrosPerMessage <= p.r.cpuMicrosPerMessage),
    },
    {
      what: 'no kernel drop (nothing lost) at any step rsyslog holds without one',
      detail: clean.length ? clean.map((p) => `${p.s.rate / 1000}k: ${p.s.kernelDrops} drops, ${p.s.lost} lost`).join(', ') : 'rsyslog dropped at every step',
      met: clean.every((p) => p.s.kernelDrops === 0 && p.s.lost === 0),
    },
  ];
}

export async function runSyslogBench({ log = (line) => process.stderr.write(`${line}\n`), quick = false, steps, seconds, receivers, abBin } = {}) {
  const stepList = steps ?? (quick ? QUICK.steps : STEPS);
  const stepSeconds = seconds ?? (quick ? QUICK.seconds : STEP_SECONDS);
  const want = receivers ?? ['rsyslog', 'syslog-ng', 'shardgram'];
  const budgetEnd = Date.now() + TOTAL_BUDGET_MS;
  if (!existsSync(join(ROOT, 'packages/examples/dist/syslog.js'))) throw new Error('build first: npm run build');
  const notes = [];
  const c = compileC(join(BENCH, 'out'), notes);
  if (!c?.sender) throw new Error(`the paced sender needs a C compiler (cc, gcc or clang; ${SETUP_HINT})${notes.length ? `: ${notes.join('; ')}` : ''}`);
  const { defaults } = await import(pathToFileURL(join(ROOT, 'packages/examples/dist/syslog.js')).href);
  const defaultsText = defaults
    ? Object.entries(defaults)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')
    : 'none declared';
  const dir = mkdtempSync(join(tmpdir(), 'shardgram-syslog-bench-'));
  const rows = [];
  const peers = [];
  const targets = [];
  if (want.includes('rsyslog')) {
    const p = findRsyslog();
    if (p.missing) {
      log(`rsyslog row skipped: ${p.missing}`);
      peers.push(`rsyslog skipped: ${p.missing}`);
    } else {
      peers.push(p.version);
      targets.push({ key: 'rsyslog', name: `${p.version} imudp (${WORKERS} threads) → omfile`, start: (d, port) => startRsyslog(p, d, port) });
    }
  }
  if (want.includes('syslog-ng')) {
    const p = findSyslogNg();
    if (p.missing) {
      log(`syslog-ng row skipped: ${p.missing}`);
      peers.push(`syslog-ng skipped: ${p.missing}`);
    } else {
      peers.push(p.version);
      targets.push({ key: 'syslog-ng', name: `${p.version}, ${WORKERS} reuseport sources → file`, start: (d, port) => startSyslogNg(p, d, port) });
    }
  }
  if (want.includes('shardgram'))
    targets.push({
      key: 'shardgram',
      name: `shardgram syslog, ${WORKERS} workers (defaults)`,
      start: (d, port) => startShardgram(d, port, undefined, 'shardgram'),
    });
  if (abBin)
    targets.push({
      key: 'ab',
      name: `shardgram syslog, ${WORKERS} workers (defaults), A/B: ${resolve(abBin, '../../../..')}`,
      start: (d, port) => startShardgram(d, port, abBin, 'shardgram-ab'),
    });
  try {
    for (const t of targets) {
      try {
        rows.push(...(await benchTarget(t, c.sender, dir, log, budgetEnd, stepList, stepSeconds)));
      } catch (err) {
        log(`${t.name}: ${err.message}`);
        notes.push(`${t.name} did not run: ${err.message.split('\n')[0]}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const markdown = toMarkdown(rows, { cpus: availableParallelism(), peers, seconds: stepSeconds, defaults: defaultsText, notes });
  return { markdown, rows, targets: syslogTargets(rows) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const a = benchArgs(
    {
      steps: { type: 'string' },
      seconds: { type: 'string' },
      receivers: { type: 'string' },
      ab: { type: 'string' },
      quick: { type: 'boolean', default: false },
    },
    USAGE,
    'bench/syslog.js',
  );
  const fail = (m) => {
    process.stderr.write(`bench/syslog.js: ${m}\n`);
    process.exit(2);
  };
  let steps;
  if (a.steps !== undefined) {
    steps = a.steps.split(',').map((x) => Number(x.trim()));
    if (!steps.length || steps.some((x) => !Number.isInteger(x) || x < 100 || x > 1_000_000))
      fail(`--steps takes rates from 100 to 1000000 messages/s, comma-separated; got "${a.steps}"`);
  }
  let seconds;
  if (a.seconds !== undefined) {
    seconds = Number(a.seconds);
    if (!(seconds > 0 && seconds <= 30)) fail(`--seconds must be a number above 0, at most 30; got "${a.seconds}"`);
  }
  let receivers;
  if (a.receivers !== undefined) {
    receivers = a.receivers.split(',').map((x) => x.trim());
    for (const r of receivers) if (!['rsyslog', 'syslog-ng', 'shardgram'].includes(r)) fail(`--receivers takes rsyslog, syslog-ng, shardgram; got "${r}"`);
  }
  if (a.ab !== undefined && !existsSync(a.ab)) fail(`--ab: no file ${a.ab}`);
  const started = Date.now();
  runSyslogBench({ quick: a.quick, steps, seconds, receivers, abBin: a.ab }).then(
    ({ markdown }) => {
      process.stdout.write(`${markdown}\n\n(${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`bench/syslog.js: ${err.stack ?? err}\n`);
      process.exit(1);
    },
  );
}
