// What the StatsD benches share (bench/statsd.js, bench/statsd-cold.js): Etsy statsd 0.9.0
// as a peer (where it is installed, its flush backend, the preload that gives it a receive
// buffer, starting it from a config written for the run), spawning a receiver with its
// output kept, the counter totals a receiver flushed, and the receivers' CPU.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, cpuMicros, freePort, waitFor } from './lib.js';
import { HOST } from './statsd-sender.js';

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

/**
 * Starts Etsy statsd on a free port of HOST with a config written in `dir`, flushing
 * (only on SIGTERM, FLUSH_MS) into `dump`; `rcvbuf`: its socket's SO_RCVBUF through the
 * preload (0: the system's). Resolves once it is up: `{ p, port }`.
 */
export async function startEtsy(dir, dump, { rcvbuf = 0 } = {}) {
  const port = await freePort('udp');
  writeFileSync(dump, '');
  const backend = join(dir, 'etsy-backend.cjs');
  writeFileSync(backend, ETSY_BACKEND);
  const config = join(dir, `etsy-${port}.js`);
  const settings = { port, address: HOST, mgmt_port: await freePort('tcp'), mgmt_address: HOST, flushInterval: FLUSH_MS, backends: [backend], dumpFile: dump };
  writeFileSync(config, JSON.stringify(settings));
  const p = spawnLogged(['-r', ETSY_PRELOAD, ETSY, config], { env: { ...process.env, ETSY_RCVBUF: String(rcvbuf) } });
  try {
    await waitFor(() => /server is up/.test(p.log()) || p.child.exitCode !== null, 10_000, 'Etsy statsd to start');
  } catch (err) {
    p.child.kill('SIGKILL');
    throw err;
  }
  if (p.child.exitCode !== null) throw new Error(`Etsy statsd exited at start:\n${p.log()}`);
  return { p, port };
}

/** The total of the bench.* counters a receiver flushed into a JSON-lines file (Etsy's backend above, shardgram's --json-out). */
export function benchCounterTotal(file) {
  let total = 0;
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    for (const [k, v] of Object.entries(JSON.parse(line).counters)) if (k.startsWith('bench.')) total += v;
  }
  return total;
}
