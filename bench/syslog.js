// Syslog receivers side by side: the same bursts of RFC 5424 messages over UDP to
// rsyslog's imudp (writing %jsonmesg% lines with omfile) and to `shardgram serve
// syslog` on 2 workers (writing its JSON records), both on loopback with the same
// SO_RCVBUF. Counted: messages written to the output file vs messages sent.
//
//   node bench/syslog.js [--quick]   (after `npm run build`)
//
// rsyslogd is not installed by the benchmark: without it its rows are skipped with the
// reason (bench/setup.sh installs it). Export: runSyslogBench({ log, quick }) →
// { markdown, rows }. Bounded: every phase has a count and a deadline, and the whole
// run stops starting new work after 50 s.
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, fstatSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, SETUP_HINT, freePort, mdTable, sleep, startServe, treeCpuMicros, udpQueues, which } from './lib.js';

const RCVBUF = 4 * 1024 * 1024;
const TOTAL_BUDGET_MS = 50_000;
const SOURCES = 32;

/** The bursts: two paced ones, and one as fast as a Node sender goes (on 2 cores it then competes with the receiver). */
const BURSTS = [
  { name: 'paced 20 000 msg/s', count: 40_000, rate: 20_000 },
  { name: 'paced 50 000 msg/s', count: 100_000, rate: 50_000 },
  { name: 'flat out', count: 100_000, rate: 0 },
];
/** `--quick`: one short burst per receiver, to check that every row works. */
const QUICK_BURSTS = [{ name: 'paced 20 000 msg/s (quick)', count: 5_000, rate: 20_000 }];

const kernelDrops = (port) => udpQueues(port).drops;
const treeCpuMs = (pid) => treeCpuMicros(pid) / 1000;

/** Counts the lines of a growing file that contain `marker`, reading only what is new. */
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
      if (size <= this.offset) return this.count;
      const buf = Buffer.alloc(size - this.offset);
      readSync(fd, buf, 0, buf.length, this.offset);
      this.offset = size;
      const text = this.tail + buf.toString('utf8');
      const lines = text.split('\n');
      this.tail = lines.pop();
      for (const line of lines) {
        const m = this.re.exec(line);
        if (!m) continue;
        this.count++;
        this.seqs.add(Number(m[1]));
      }
    } finally {
      closeSync(fd);
    }
    return this.count;
  }
}

/** Sends `count` RFC 5424 messages from SOURCES ports, at `rate` per second (0: as fast as possible). */
async function sendBurst(port, marker, count, rate, deadline) {
  const socks = [];
  for (let i = 0; i < SOURCES; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise((r) => s.bind(0, '127.0.0.1', r));
    socks.push(s);
  }
  const head = `<134>1 2025-06-15T10:00:00.000000Z benchhost benchapp 4242 BENCH [bench@32473 run="${marker}"] `;
  const pad = ' lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore';
  const started = performance.now();
  let sent = 0;
  let errors = 0;
  const window = 256;
  try {
    for (let i = 0; i < count && Date.now() < deadline; i += window) {
      const n = Math.min(window, count - i);
      await new Promise((resolve) => {
        let left = n;
        for (let k = 0; k < n; k++) {
          const seq = i + k;
          socks[seq % SOURCES].send(`${head}${marker}${seq}${pad}`, port, '127.0.0.1', (err) => {
            if (err) errors++;
            else sent++;
            if (--left === 0) resolve();
          });
        }
      });
      if (rate > 0) {
        const due = ((i + n) / rate) * 1000 - (performance.now() - started);
        if (due > 1) await sleep(due);
      }
    }
  } finally {
    for (const s of socks) s.close();
  }
  return { sent, errors, ms: performance.now() - started };
}

/** Polls until the count stops growing for `quietMs` (or reaches `want`, or the deadline). */
async function settle(counter, want, quietMs, deadline) {
  let last = -1;
  let since = Date.now();
  for (;;) {
    const n = counter.poll();
    if (n >= want) return n;
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return n;
    if (Date.now() > deadline) return n;
    await sleep(50);
  }
}

function waitForExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function startRsyslog(bin, dir, port) {
  const work = join(dir, 'rsyslog-work');
  mkdirSync(work, { recursive: true });
  const out = join(dir, 'rsyslog.jsonl');
  const conf = join(dir, 'rsyslog.conf');
  // Only imudp is loaded: no imuxsock (/dev/log), no imklog; own pid file and work directory.
  writeFileSync(
    conf,
    [
      `global(workDirectory="${work}" net.enableDNS="off" maxMessageSize="8k")`,
      'module(load="imudp" threads="2")',
      `input(type="imudp" address="127.0.0.1" port="${port}" rcvbufSize="${RCVBUF}")`,
      'template(name="bench" type="string" string="%jsonmesg%\\n")',
      'if ($msg contains "sgbench-") then {',
      `  action(type="omfile" file="${out}" template="bench")`,
      '}',
      '',
    ].join('\n'),
  );
  execFileSync(bin, ['-N1', '-f', conf], { stdio: 'ignore' });
  const child = spawn(bin, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return { child, out, stderr: () => stderr, stop: async () => { child.kill('SIGTERM'); await waitForExit(child, 5000); } };
}

async function startShardgram(dir, port, engine) {
  const out = join(dir, `shardgram-${engine}.jsonl`);
  const sg = await startServe(['syslog', '--port', String(port), '--workers', '2', '--engine', engine, '--rcvbuf', String(RCVBUF), '--app-option', `out=${out}`], { workers: 2 });
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

async function benchTarget(name, start, dir, log, budgetEnd, bursts) {
  const port = await freePort('udp');
  const target = await start(dir, port);
  const rows = [];
  try {
    const warm = new LineCounter(target.out, 'sgbench-warm-');
    if (!(await warmUp(port, warm, Math.min(budgetEnd, Date.now() + 10_000)))) throw new Error(`${name} wrote nothing: ${target.stderr()}`);
    for (const [b, burst] of bursts.entries()) {
      if (Date.now() > budgetEnd - 5_000) {
        log(`${name}: skipping "${burst.name}" (time budget)`);
        continue;
      }
      const marker = `sgbench-r${b}-`;
      const counter = new LineCounter(target.out, marker);
      const dropsBefore = kernelDrops(port);
      const receiverCpuBefore = treeCpuMs(target.child.pid);
      const cpuBefore = process.cpuUsage();
      const s = await sendBurst(port, marker, burst.count, burst.rate, Math.min(budgetEnd, Date.now() + 15_000));
      const sendCpu = process.cpuUsage(cpuBefore);
      const t0 = performance.now();
      const written = await settle(counter, s.sent, 1000, Math.min(budgetEnd, Date.now() + 10_000));
      const doneMs = s.ms + (performance.now() - t0);
      const drops = kernelDrops(port) - dropsBefore;
      const receiverCpuMs = Math.round(treeCpuMs(target.child.pid) - receiverCpuBefore);
      rows.push({
        receiver: name, burst: burst.name, sent: s.sent, written, duplicates: written - counter.seqs.size, lost: s.sent - counter.seqs.size,
        kernelDrops: drops, sendMs: Math.round(s.ms), sendRate: Math.round(s.sent / (s.ms / 1000)),
        writtenPerSec: Math.round(written / (Math.max(s.ms, doneMs - 1000) / 1000)), senderCpuMs: Math.round((sendCpu.user + sendCpu.system) / 1000),
        receiverCpuMs, cpuMicrosPerMessage: written ? Number(((receiverCpuMs * 1000) / written).toFixed(1)) : null,
      });
      log(`${name}, ${burst.name}: ${written} of ${s.sent} written (${drops} kernel drops)`);
      await sleep(200);
    }
  } finally {
    await target.stop();
  }
  return rows;
}

function toMarkdown(rows, meta) {
  const pct = (a, b) => (b ? `${((100 * a) / b).toFixed(2)} %` : '–');
  const lines = [
    `Same bursts of RFC 5424 messages (~240 bytes, ${SOURCES} source ports, loopback) to each receiver; SO_RCVBUF ${RCVBUF / 1048576} MiB asked on every socket.`,
    `Machine: ${meta.cpus} cores, Node ${process.version}, ${meta.rsyslog ?? `rsyslog not installed (its rows are skipped; ${SETUP_HINT})`}.`,
    '',
    mdTable(
      ['receiver', 'burst', 'sent', 'written', 'written / sent', 'lost', 'duplicates', 'kernel drops', 'send time', 'written per s', 'receiver CPU', 'CPU per message'],
      rows.map((r) => [
        r.receiver, r.burst, r.sent, r.written, pct(r.written - r.duplicates, r.sent), r.lost, r.duplicates, r.kernelDrops,
        `${r.sendMs} ms`, r.writtenPerSec, `${r.receiverCpuMs} ms`, `${r.cpuMicrosPerMessage ?? '–'} µs`,
      ]),
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    'written / sent counts distinct messages; lost = sent − distinct written; kernel drops from /proc/net/udp for the port;',
    'receiver CPU is user + system time of the receiver process tree (rsyslogd; shardgram supervisor and workers) over the burst.',
  ];
  return lines.join('\n');
}

export async function runSyslogBench({ log = (line) => process.stderr.write(`${line}\n`), quick = false } = {}) {
  const bursts = quick ? QUICK_BURSTS : BURSTS;
  const budgetEnd = Date.now() + TOTAL_BUDGET_MS;
  if (!existsSync(join(ROOT, 'packages/examples/dist/syslog.js'))) throw new Error('build first: npm run build');
  const dir = mkdtempSync(join(tmpdir(), 'shardgram-syslog-bench-'));
  const rows = [];
  let rsyslogVersion;
  try {
    const bin = which('rsyslogd') ?? (existsSync('/usr/sbin/rsyslogd') ? '/usr/sbin/rsyslogd' : undefined);
    if (bin) {
      rsyslogVersion = /rsyslogd\s+([\d.]+)/.exec(execFileSync(bin, ['-v'], { encoding: 'utf8' }))?.[1];
      rsyslogVersion = rsyslogVersion ? `rsyslog ${rsyslogVersion}` : 'rsyslog';
      rows.push(...(await benchTarget(`${rsyslogVersion} imudp (2 threads) → omfile`, (d, p) => startRsyslog(bin, d, p), dir, log, budgetEnd, bursts)));
    } else {
      log(`rsyslogd is not installed: its rows are skipped (${SETUP_HINT})`);
    }
    for (const engine of ['dgram', 'native']) {
      rows.push(...(await benchTarget(`shardgram syslog, 2 workers (${engine} engine)`, (d, p) => startShardgram(d, p, engine), dir, log, budgetEnd, bursts)));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const cpus = availableParallelism();
  return { markdown: toMarkdown(rows, { cpus, rsyslog: rsyslogVersion }), rows };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = Date.now();
  runSyslogBench({ quick: process.argv.includes('--quick') }).then(
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
