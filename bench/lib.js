// Helpers shared by the benchmark scripts (bench/run.js, bench/statsd.js,
// bench/syslog.js): free ports, process CPU from /proc, starting `shardgram serve`
// and waiting for its ready line, the socket queues of a port, and tables.
//
// Nothing here changes the host: the benchmarks write only into the repository
// (bench/out, docs/) and into temporary directories. Peers that are missing are
// skipped with a reason; bench/setup.sh installs them.
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const BENCH = join(ROOT, 'bench');
/** The `shardgram` command of this checkout. */
export const SHARDGRAM = join(ROOT, 'packages', 'udp-core', 'bin', 'shardgram.js');
/** What to run when a peer is missing. */
export const SETUP_HINT = 'bench/setup.sh installs it';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A bench script's flags: parseArgs (strict), or one line naming what is wrong, the
 * usage, and exit 2; `-h`/`--help` (added here) prints the usage and exits 0.
 */
export function benchArgs(options, usage, name = 'bench') {
  let values;
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h', default: false } }, strict: true }));
  } catch (err) {
    process.stderr.write(`${name}: ${err.message}\n\n${usage}`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return values;
}

/** A whole-number flag from `min` to `max`, or one line saying so and exit 2. */
export function intArg(name, v, min, max, script = 'bench') {
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`${script}: --${name} must be a whole number from ${min} to ${max}; got "${v}"\n`);
    process.exit(2);
  }
  return n;
}

/** Polls `fn` every `stepMs` until it is true; throws after `ms`. */
export async function waitFor(fn, ms, what, stepMs = 25) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(stepMs);
  }
  if (!(await fn())) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** A port that was free on 127.0.0.1 a moment ago (`udp` or `tcp`). */
export function freePort(kind = 'udp', host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    if (kind === 'tcp') {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, host, () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
      return;
    }
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.once('error', reject);
    s.bind(0, host, () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/** The path of a command on PATH, or undefined. */
export function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return join(dir, cmd);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A /proc/sys value as text (`net.core.rmem_max`), or '?'. */
export function readSysctl(name) {
  try {
    return readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim();
  } catch {
    return '?';
  }
}

let clkTck;
/** Clock ticks per second of /proc/PID/stat's times (getconf CLK_TCK; 100 on Linux). */
function ticksPerSecond() {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** utime+stime ticks and the parent pid of a process, from /proc/PID/stat; undefined once gone. */
function procStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the ")" of the command name: state(3) ppid(4) … utime(14) stime(15).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/** user+sys CPU of a process (all its threads) in µs; 0 once it is gone. */
export function cpuMicros(pid) {
  const s = procStat(pid);
  return s ? (s.ticks * 1e6) / ticksPerSecond() : 0;
}

/** user+sys CPU in µs of a process and all its descendants. */
export function treeCpuMicros(rootPid) {
  const stats = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s) stats.set(Number(name), s);
  }
  let ticks = 0;
  const todo = [rootPid];
  for (let guard = 0; todo.length && guard < 100_000; guard++) {
    const pid = todo.pop();
    ticks += stats.get(pid)?.ticks ?? 0;
    for (const [child, st] of stats) if (st.ppid === pid) todo.push(child);
  }
  return (ticks * 1e6) / ticksPerSecond();
}

/**
 * The receive queues of every UDP socket bound to `port` on loopback (IPv4 and IPv6),
 * from /proc/net/udp{,6}: bytes waiting (rx_queue) and datagrams dropped (drops).
 */
export function udpQueues(port) {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let queuedBytes = 0;
  let drops = 0;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 13 || !f[1].endsWith(hex)) continue;
      queuedBytes += parseInt(f[4].split(':')[1], 16);
      drops += Number(f[f.length - 1]) || 0;
    }
  }
  return { queuedBytes, drops };
}

/** Waits (bounded) until the port's queues are empty twice in a row, 50 ms apart. */
export async function waitDrained(port, maxMs = 10_000) {
  const end = Date.now() + maxMs;
  let empty = 0;
  while (Date.now() < end && empty < 2) {
    empty = udpQueues(port).queuedBytes === 0 ? empty + 1 : 0;
    await sleep(50);
  }
}

// ---------------------------------------------------------------- shardgram serve

/** Flags that `startServe` adds to every `serve` command line (see `readyState`). */
export const READY_FLAGS = ['--ready-json'];

/**
 * The one place that knows what "ready" looks like: `serve --ready-json` prints one
 * JSON line on standard output when the service is ready (its other lines go to
 * standard error). { port, pids, stats } once it has, undefined until then.
 */
export function readyState(stdout) {
  const line = stdout.split('\n').find((l) => l.startsWith('{'));
  if (!line) return undefined;
  const r = JSON.parse(line);
  return { port: r.port, pids: r.workers, stats: r.stats };
}

/**
 * Starts `shardgram serve <args>` and resolves once it is ready: { child, port, pids,
 * stats, log(), exited, stop(signal) }. Bounded by `timeoutMs`. `bin`: the `shardgram`
 * command to run (default: this checkout's; e.g. another built checkout's, for an A/B run).
 */
export function startServe(args, { workers, timeoutMs = 20_000, cwd = ROOT, bin = SHARDGRAM } = {}) {
  const child = spawn(process.execPath, [bin, 'serve', ...args, ...READY_FLAGS], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((r) => child.on('close', (code, signal) => r({ code, signal })));
  const log = () => `${stdout}${stderr}`;
  return waitReady(() => readyState(stdout), exited, timeoutMs, () => `shardgram serve ${args.join(' ')}:\n${log()}`).then(
    (ready) => ({
      child, ...ready, log, exited,
      async stop(signal = 'SIGTERM', killAfterMs = 15_000) {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        const t = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        const r = await exited;
        clearTimeout(t);
        return r;
      },
    }),
    (err) => {
      child.kill('SIGKILL');
      throw err;
    },
  );
}

/** Resolves with `check()`'s first defined result; rejects when the process exits first or on timeout. */
async function waitReady(check, exited, timeoutMs, describe) {
  let gone;
  void exited.then((r) => (gone = r));
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ready = check();
    if (ready) return ready;
    if (gone) throw new Error(`exited (${gone.code ?? gone.signal}) before it was ready: ${describe()}`);
    await sleep(20);
  }
  throw new Error(`not ready within ${timeoutMs} ms: ${describe()}`);
}

// ---------------------------------------------------------------- numbers and tables

/** The median (the mean of the middle two for an even count). */
export function median(values) {
  const a = [...values].sort((x, y) => x - y);
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

export function fmtInt(n) {
  return Math.round(n).toLocaleString('en-US');
}

/** A plain-text table for the terminal: first column left-aligned, the rest right-aligned. */
export function textTable(header, rows) {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

/** A markdown table; `align` per column: 'l' or 'r' (default: first 'l', the rest 'r'). */
export function mdTable(header, rows, align) {
  const esc = (s) => String(s).replaceAll('|', '\\|');
  const a = align ?? header.map((_, i) => (i === 0 ? 'l' : 'r'));
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, i) => (a[i] === 'r' ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
