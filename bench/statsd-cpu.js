// The StatsD bench's CPU-per-datagram section: shardgram statsd beside the C recvmmsg
// floor (bench/c/recv.c) and shardgram's discard app, fed the same datagrams by the same
// sender (bench/statsd-sender.js), rows interleaved. Run it as
// `node bench/statsd.js --per-datagram`, or from another script:
// `const { markdown, rows } = await runStatsdPerDatagram({ log })`.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, cpuMicros, mdTable, readSysctl, startServe, udpQueues, waitDrained } from './lib.js';
import { runSender } from './statsd-sender.js';

const FLUSH_MS = 600_000; // longer than any run: the only flush is the one on SIGTERM
/** user+sys CPU in ms of the given processes. */
const cpuMs = (pids) => pids.reduce((s, pid) => s + cpuMicros(pid), 0) / 1000;
const int = (n) => Math.round(n).toLocaleString('en-US');

/**
 * Starts one row of the per-datagram section: { port, pids, stop() }.
 * kind: 'c' (bench/c/recv.c), 'discard' or 'statsd' (`bin`: which checkout's shardgram).
 */
async function startPerDatagramRow(dir, kind, { c, workers, rcvbuf, bin, readDelay }) {
  if (kind === 'c') {
    const { startReceiver } = await import('./receivers.js');
    const rx = await startReceiver('c', { c, workers, rcvbuf });
    return { port: rx.port, pids: rx.pids, stop: () => rx.stop() };
  }
  const args = [kind, '--port', '0', '--workers', String(workers), '--engine', 'native', '--rcvbuf', String(rcvbuf)];
  if (readDelay !== undefined) args.push('--max-read-delay', String(readDelay));
  if (kind === 'statsd') args.push('-o', `jsonOut=${join(dir, `pd-${Date.now()}.jsonl`)}`, '-o', `flushInterval=${FLUSH_MS}`);
  const sg = await startServe(args, { workers, bin });
  return {
    port: sg.port,
    pids: sg.pids,
    async stop() {
      const { code } = await sg.stop('SIGTERM');
      if (code !== 0) throw new Error(`shardgram ${kind} exited ${code}:\n${sg.log()}`);
    },
  };
}

/**
 * What one statsd datagram costs the receiving processes, beside the C recvmmsg loop
 * (bench/c/recv.c, the floor) and shardgram's discard app (the native engine alone),
 * all fed the same statsd datagrams by the same sender, rows interleaved in every
 * round: a warm-up burst, then a measured one; cost = user+sys CPU of the receiving
 * processes over the measured burst and its drain / datagrams received (sent − kernel
 * drops). "× C floor" is each row's cost over the C loop's in the same round (the
 * median over the rounds), which compares across machines. `baseline`: the root of
 * another built checkout whose `shardgram serve statsd` gets a row of its own (an A/B
 * run of a change). Returns a markdown section and the rows.
 */
export async function runStatsdPerDatagram({
  log = (line) => process.stderr.write(`${line}\n`),
  count = 400_000,
  warmup = 50_000,
  sources = 64,
  names = 64,
  rounds = 3,
  workers = 2,
  rcvbuf = 4 << 20,
  baseline,
  maxMsPerBurst = 8000,
} = {}) {
  if (!existsSync(join(ROOT, 'packages', 'examples', 'dist', 'statsd.js'))) throw new Error('build first: npm run build');
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error('warmup: a whole number of datagrams ≥ 0');
  const { compileC } = await import('./receivers.js');
  const notes = [];
  const c = compileC(join(ROOT, 'bench', 'out'), notes);
  if (!c?.recv) notes.push('no C compiler, or bench/c/recv.c did not compile: no C floor row, no "× C floor"');
  const baseBin = baseline === undefined ? undefined : join(baseline, 'packages', 'udp-core', 'bin', 'shardgram.js');
  if (baseBin && !existsSync(join(baseline, 'packages', 'examples', 'dist', 'statsd.js')))
    throw new Error(`--baseline ${baseline}: not a built checkout (no packages/examples/dist/statsd.js)`);
  // The statsd app lets the engine wait up to its maxReadDelayUs under steady traffic; the
  // discard row gets the same, so that statsd − discard is the app's own cost. One more
  // statsd row runs with the engine's general default, to show what the longer wait saves.
  const { defaults } = await import('@shardgram/examples/statsd');
  const { DEFAULT_MAX_READ_DELAY_US } = await import(pathToFileURL(join(ROOT, 'packages', 'udp-core', 'dist', 'worker', 'engine', 'pacing.js')).href);
  const appDelay = defaults.maxReadDelayUs ?? DEFAULT_MAX_READ_DELAY_US;
  const rowDefs = [
    ...(c?.recv ? [{ key: 'c', name: 'C recvmmsg loop (the floor)', kind: 'c' }] : []),
    { key: 'discard', name: `shardgram discard, native engine, --max-read-delay ${appDelay}`, kind: 'discard', readDelay: appDelay },
    { key: 'statsd', name: `shardgram statsd, native engine (its default --max-read-delay ${appDelay})`, kind: 'statsd' },
    ...(appDelay !== DEFAULT_MAX_READ_DELAY_US
      ? [
          {
            key: 'statsdShort',
            name: `shardgram statsd, native engine, --max-read-delay ${DEFAULT_MAX_READ_DELAY_US} (the engine's general default)`,
            kind: 'statsd',
            readDelay: DEFAULT_MAX_READ_DELAY_US,
          },
        ]
      : []),
    ...(baseBin ? [{ key: 'baseline', name: 'shardgram statsd, native engine (baseline checkout)', kind: 'statsd', bin: baseBin }] : []),
  ];
  const cfg = { sources, names, batch: 64, maxMs: maxMsPerBurst };
  const dir = mkdtempSync(join(os.tmpdir(), 'shardgram-statsd-pd-'));
  const runs = new Map(rowDefs.map((r) => [r.key, []]));
  const started = Date.now();
  try {
    for (let round = 1; round <= rounds; round++) {
      // The row order turns every round, so that no row always follows the same one.
      const order = rowDefs.map((_, i) => rowDefs[(i + round - 1) % rowDefs.length]);
      for (const def of order) {
        const rx = await startPerDatagramRow(dir, def.kind, { c, workers, rcvbuf, bin: def.bin, readDelay: def.readDelay });
        try {
          if (warmup > 0) {
            await runSender({ ...cfg, count: warmup, port: rx.port });
            await waitDrained(rx.port);
          }
          const drops0 = udpQueues(rx.port).drops;
          const cpu0 = cpuMs(rx.pids);
          const s = await runSender({ ...cfg, count, port: rx.port });
          await waitDrained(rx.port);
          const cpu = cpuMs(rx.pids) - cpu0;
          const lost = udpQueues(rx.port).drops - drops0;
          const received = s.sent - lost;
          const us = (1000 * cpu) / Math.max(1, received);
          runs.get(def.key).push({ round, sent: s.sent, sendMs: s.ms, received, lost, us });
          log(
            `statsd per-datagram round ${round}/${rounds}: ${def.name}: sent ${int(s.sent)} at ${int(s.sent / (s.ms / 1000))}/s, lost ${int(lost)}, ${us.toFixed(3)} µs CPU/datagram`,
          );
        } finally {
          await rx.stop();
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const med = (xs) => {
    const a = [...xs].sort((x, y) => x - y);
    const m = Math.floor(a.length / 2);
    return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
  };
  const floor = runs.get('c');
  const rows = rowDefs.map((def) => {
    const rs = runs.get(def.key);
    const ratios = floor ? rs.map((r) => r.us / (floor.find((f) => f.round === r.round)?.us ?? NaN)).filter(Number.isFinite) : [];
    return {
      key: def.key,
      name: def.name,
      rounds: rs.length,
      sent: rs.reduce((a, r) => a + r.sent, 0),
      lost: rs.reduce((a, r) => a + r.lost, 0),
      us: med(rs.map((r) => r.us)),
      usMin: Math.min(...rs.map((r) => r.us)),
      usMax: Math.max(...rs.map((r) => r.us)),
      xFloor: ratios.length ? med(ratios) : undefined,
      perRound: rs.map((r) => r.us),
    };
  });
  const table = mdTable(
    ['receiver', 'µs / datagram (median)', 'min–max', '× C floor', 'sent', 'lost'],
    rows.map((r) => [
      r.name,
      r.us.toFixed(3),
      `${r.usMin.toFixed(2)}–${r.usMax.toFixed(2)}`,
      r.xFloor === undefined ? '–' : r.xFloor.toFixed(2),
      int(r.sent),
      int(r.lost),
    ]),
  );
  const statsd = rows.find((r) => r.key === 'statsd');
  const discard = rows.find((r) => r.key === 'discard');
  const base = rows.find((r) => r.key === 'baseline');
  const short = rows.find((r) => r.key === 'statsdShort');
  /** Median over the rounds of statsd's cost over row `key`'s in the same round, and the per-round ratios. */
  const paired = (key) => {
    const pairs = runs
      .get('statsd')
      .map((r) => r.us / (runs.get(key).find((b) => b.round === r.round)?.us ?? NaN))
      .filter(Number.isFinite);
    return `${med(pairs).toFixed(3)}× (median of the per-round ratios: ${pairs.map((x) => x.toFixed(2)).join(', ')})`;
  };
  const verdicts = [];
  if (statsd && discard)
    verdicts.push(
      `- the statsd app on top of the native engine: ${(statsd.us - discard.us).toFixed(3)} µs/datagram (statsd − discard, medians, both with --max-read-delay ${appDelay}).`,
    );
  if (statsd && short)
    verdicts.push(`- statsd with its ${appDelay} µs read delay against ${DEFAULT_MAX_READ_DELAY_US} µs: ${paired('statsdShort')} the CPU per datagram.`);
  if (statsd && base) verdicts.push(`- this checkout against the baseline checkout: ${paired('baseline')} its CPU per datagram.`);
  const markdown = [
    '## StatsD: CPU per datagram against the C floor',
    '',
    `${rounds} round${rounds > 1 ? 's' : ''}; in each, every receiver is started afresh, sent ${warmup > 0 ? `a ${int(warmup)}-datagram warm-up and then ` : '(from a cold start, no warm-up) '}a measured burst of ${int(count)} ` +
      `single-metric datagrams ("bench.cNN:1|c", ${names} name${names > 1 ? 's' : ''}) from ${sources} source ports with sendmmsg as fast as the sender goes; rows interleaved (the order turns every round). ` +
      `Cost = user+sys CPU of the ${workers} receiving processes over the burst and its drain / datagrams received (sent − kernel drops); ` +
      `"× C floor" = that over the C recvmmsg loop's (bench/c/recv.c) in the same round, the median over the rounds. Every receiver gets SO_RCVBUF ${int(rcvbuf)} (capped by net.core.rmem_max = ${readSysctl('net.core.rmem_max')}). ` +
      `The statsd app lets the engine wait up to ${appDelay} µs between reads under steady traffic (its default \`--max-read-delay\`); the discard row gets the same${appDelay !== DEFAULT_MAX_READ_DELAY_US ? `, and one more statsd row runs with the engine's general default of ${DEFAULT_MAX_READ_DELAY_US} µs` : ''}. ` +
      `${os.cpus().length} CPUs shared by the sender and the receivers; Node ${process.versions.node}.`,
    '',
    table,
    '',
    ...verdicts,
    ...notes.map((n) => `- ${n}`),
    '',
    `Generated by \`node bench/statsd.js --per-datagram\` on ${new Date().toISOString().slice(0, 10)} in ${((Date.now() - started) / 1000).toFixed(0)} s.`,
    '',
  ].join('\n');
  return { markdown, rows };
}

// ---------------------------------------------------------------- entry points
