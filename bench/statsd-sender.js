// The sender of the StatsD benches (bench/statsd.js, bench/statsd-cpu.js): a child
// process running shardgram's native sender (packages/udp-core/src/load/sender.ts,
// `NativeSender.sendPayloads`): prebuilt datagrams ("bench.c17:1|c", `names` names)
// sent with sendmmsg, round-robin over `sources` source sockets bound to 127.0.0.1, as
// fast as it can, bounded by a count and a time. Build first (`npm run build`).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ROOT } from './lib.js';

const SELF = fileURLToPath(import.meta.url);
const SENDER_JS = join(ROOT, 'packages', 'udp-core', 'dist', 'load', 'sender.js');
const SENDER_ENV = 'SHARDGRAM_STATSD_BENCH_SENDER';
export const HOST = '127.0.0.1';

/** Sends `count` datagrams with the library's sendmmsg sender; prints {"sent","ms","errors"}. */
async function senderMain(cfg) {
  const { NativeSender } = await import(pathToFileURL(SENDER_JS).href);
  const payloads = Array.from({ length: cfg.batch }, (_, i) => Buffer.from(`bench.c${String(i % cfg.names).padStart(2, '0')}:1|c`));
  const sender = new NativeSender({ address: HOST, port: cfg.port, sources: cfg.sources, batch: cfg.batch });
  try {
    const r = await sender.sendPayloads({ payloads, count: cfg.count, maxDurationMs: cfg.maxMs });
    process.stdout.write(`${JSON.stringify({ sent: r.sent - r.sendErrors, ms: r.durationMs, errors: r.sendErrors })}\n`);
  } finally {
    sender.close();
  }
}

/** Runs the sender child with `cfg` ({ port, count, sources, names, batch, maxMs }); resolves with its {sent, ms, errors}. */
export function runSender(cfg) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SELF], { env: { ...process.env, [SENDER_ENV]: JSON.stringify(cfg) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), cfg.maxMs + 15_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(`sender exited ${code}: ${err}`);
        resolve(JSON.parse(out.trim().split('\n').pop()));
      } catch (e) {
        reject(e);
      }
    });
  });
}

if (process.env[SENDER_ENV] && process.argv[1] === SELF) {
  senderMain(JSON.parse(process.env[SENDER_ENV])).catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
  });
}
