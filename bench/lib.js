// Helpers shared by the benchmark scripts (bench/run.js, bench/statsd.js,
// bench/syslog.js): free ports, process CPU from /proc, starting `shardgram serve`
// and waiting for its ready line, the socket queues of a port, and tables. Waiting,
// `serve` and the /proc readers are the tests' own (@shardgram/test-kit), in the
// shapes the bench scripts use.
//
// Nothing here changes the host: the benchmarks write only into the repository
// (bench/out, docs/) and into temporary directories. Peers that are missing are
// skipped with a reason; bench/setup.sh installs them.
import dgram from 'node:dgram';
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startServe as startServeKit } from '@shardgram/test-kit/cli';
import { sleep, waitFor as waitForKit } from '@shardgram/test-kit/wait';
import { udpPortQueues } from '@shardgram/test-kit/udp';
export { cpuMicros, treeCpuMicros } from '@shardgram/test-kit/procfs';
export { sleep };

export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const BENCH = join(ROOT, 'bench');
/** The `shardgram` command of this checkout. */
export const SHARDGRAM = join(ROOT, 'packages', 'udp-core', 'bin', 'shardgram.js');
/** What to run when a peer is missing. */
export const SETUP_HINT = 'bench/setup.sh installs it';

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
  if (!(await waitForKit(fn, ms, stepMs))) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
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

/**
 * The receive queues of every UDP socket bound to `port` (IPv4 and IPv6), from
 * /proc/net/udp{,6}: bytes waiting (rx_queue) and datagrams dropped (drops).
 */
export const udpQueues = udpPortQueues;

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

/**
 * Starts `shardgram serve <args>` and resolves once it is ready: { child, port, pids,
 * stats, log(), exited, stop(signal, killAfterMs = 15 s) }. Bounded by `timeoutMs`. `bin`: the `shardgram`
 * command to run (default: this checkout's; e.g. another built checkout's, for an A/B run).
 */
export async function startServe(args, { workers, timeoutMs = 20_000, cwd = ROOT, bin = SHARDGRAM } = {}) {
  const s = await startServeKit(args, workers, { readyTimeoutMs: timeoutMs, cwd, bin });
  return { ...s, stop: (signal = 'SIGTERM', killAfterMs = 15_000) => s.stop(signal, killAfterMs) };
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
