// What the StatsD benches share (bench/statsd.js, bench/statsd-cold.js): Etsy statsd 0.9.0
// as a peer (where it is installed, its flush backend, the preload that gives it a receive
// buffer), spawning a receiver with its output kept, and the receivers' CPU.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, cpuMicros } from './lib.js';

export const ETSY = join(ROOT, 'node_modules', 'statsd', 'stats.js');
export const FLUSH_MS = 600_000; // longer than any run: the only flush is the one on SIGTERM

/** user+sys CPU in ms of the given processes. */
export const cpuMs = (pids) => pids.reduce((s, pid) => s + cpuMicros(pid), 0) / 1000;

export function spawnLogged(args, opts = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const exited = new Promise((r) => child.on('close', (code, signal) => r({ code, signal })));
  return { child, log: () => log, exited };
}

export const ETSY_BACKEND = `
const fs = require('fs');
exports.init = function (startup, config, events) {
  events.on('flush', function (ts, m) { fs.appendFileSync(config.dumpFile, JSON.stringify({ counters: m.counters }) + '\\n'); });
  return true;
};
`;

// Etsy statsd 0.9.0 has no receive-buffer setting; for the same-buffer rows this
// preload (shared with the tests) gives its dgram socket the SO_RCVBUF shardgram gets
// from --rcvbuf, and it gives Etsy back util.log, which Node 23 removed.
export const ETSY_PRELOAD = join(ROOT, 'packages', 'examples', 'test', 'fixtures', 'etsy-rcvbuf.cjs');

export const pct = (x) => `${(100 * x).toFixed(2)}%`;
export const int = (n) => Math.round(n).toLocaleString('en-US');
