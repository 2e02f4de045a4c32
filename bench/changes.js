// The "changes under load" section of `npm run bench`: at the highest rate the native
// engine holds with no kernel drop on this machine, a takeover (`serve --takeover`),
// a rolling reload (SIGHUP) and a shrink then grow (`shardgram scale`), each during a
// steady stream; sent, received and dropped for each. Run twice, side by side: with
// the receive buffers raised for the length of the change (the default,
// --change-rcvbuf 8m) and without (--change-rcvbuf 0), since a freshly started worker
// is cold and a machine busy starting processes reads slower for a moment.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SHARDGRAM, fmtInt, mdTable, sleep, startServe, textTable, waitFor } from './lib.js';

const { runLoad } = await import('@shardgram/udp-core/load');
const run = promisify(execFile);

export const QUICK = { rates: [10_000, 20_000], seconds: 2 };
const FULL = { rates: [5_000, 10_000, 25_000, 50_000, 100_000, 200_000], seconds: 4 };

async function stats(url) {
  return (await fetch(`${url}/stats`)).json();
}

/** A native discard service with 2 workers; `extra` flags. */
function service(extra, port = '0') {
  return startServe(['discard', '--engine', 'native', '--workers', '2', '--port', String(port), '--stats-port', '0', ...extra], { workers: 2 });
}

/** Warms a fresh service (its workers' first burst is slow) and returns its totals after that. */
async function warm(s, rate) {
  await stream(s.port, rate, 0.5);
  await waitFor(async () => (await stats(s.stats)).total.queueBytes === 0, 10_000, 'queues empty');
  return (await stats(s.stats)).total;
}

/** Sends `rate`/s for `seconds` from 64 ports; `during` runs once a quarter has been sent. */
async function stream(port, rate, seconds, during) {
  const count = Math.round(rate * seconds);
  let fired;
  const load = runLoad({
    port,
    sources: 64,
    count,
    rate,
    size: 100,
    expectReplies: false,
    maxDurationMs: (seconds + 30) * 1000,
    onProgress: (p) => {
      if (!fired && during && p.sent >= count / 4) fired = during();
    },
  });
  const report = await load;
  await fired;
  return report.sent;
}

/** The highest of `rates` that loses nothing with no change going on. */
async function sustainedRate(rates, seconds, log) {
  let best = 0;
  for (const rate of rates) {
    const s = await service([]);
    try {
      const base = await warm(s, rate);
      const sent = await stream(s.port, rate, Math.min(seconds, 2));
      await waitFor(async () => (await stats(s.stats)).total.queueBytes === 0, 10_000, 'queues empty');
      const t = (await stats(s.stats)).total;
      const received = t.datagrams - base.datagrams;
      const drops = t.kernelDrops - base.kernelDrops;
      log(`  ${fmtInt(rate)}/s: sent ${fmtInt(sent)}, received ${fmtInt(received)}, kernel drops ${fmtInt(drops)}`);
      if (drops > 0 || received < sent) break;
      best = rate;
    } finally {
      await s.stop('SIGTERM');
    }
  }
  return best;
}

const CHANGES = {
  async takeover(s, flags) {
    const next = await service([...flags, '--takeover'], s.port);
    await s.exited;
    return next;
  },
  async reload(s) {
    s.child.kill('SIGHUP');
    await waitFor(() => /reloaded: 2 workers/.test(s.log()), 30_000, 'reload');
    return s;
  },
  async 'shrink 2→1, grow 1→2'(s) {
    await run(process.execPath, [SHARDGRAM, 'scale', '--port', String(s.port), '--workers', '1']);
    await run(process.execPath, [SHARDGRAM, 'scale', '--port', String(s.port), '--workers', '2']);
    return s;
  },
};

async function measure(change, rate, seconds, flags) {
  const s = await service(flags);
  let serving = s;
  try {
    const base = await warm(s, rate);
    const sent = await stream(s.port, rate, seconds, async () => (serving = await CHANGES[change](s, flags)));
    await waitFor(async () => (await stats(serving.stats)).total.queueBytes === 0, 10_000, 'queues empty');
    const t = (await stats(serving.stats)).total;
    const received = t.datagrams - base.datagrams;
    const drops = t.kernelDrops - base.kernelDrops;
    return { sent, received, drops, unaccounted: sent - received - drops };
  } finally {
    await serving.stop('SIGTERM');
    if (serving !== s) await s.stop('SIGKILL');
  }
}

export async function runChangesBench({ log, quick = false }) {
  const o = quick ? QUICK : FULL;
  log('changes: finding the highest rate held with no kernel drop (native engine, 2 workers, discard) …');
  const rate = await sustainedRate(o.rates, o.seconds, log);
  if (!rate) return { markdown: '## Changes under load\n\nNo rate tried was held without kernel drops on this machine; nothing measured.\n' };
  const variants = [
    ['buffers raised during the change (default)', []],
    ['no raise (--change-rcvbuf 0)', ['--change-rcvbuf', '0']],
  ];
  const rows = [];
  for (const change of Object.keys(CHANGES)) {
    for (const [name, flags] of variants) {
      const r = await measure(change, rate, o.seconds, flags);
      log(
        `  ${change}, ${name}: sent ${fmtInt(r.sent)}, received ${fmtInt(r.received)}, kernel drops ${fmtInt(r.drops)}, unaccounted ${fmtInt(r.unaccounted)}`,
      );
      rows.push([change, name, fmtInt(r.sent), fmtInt(r.received), fmtInt(r.drops), fmtInt(r.unaccounted)]);
    }
    await sleep(100);
  }
  const header = ['change', 'variant', 'sent', 'received', 'kernel drops', 'unaccounted'];
  log(`\n${textTable(header, rows)}`);
  return {
    markdown:
      `## Changes under load\n\n` +
      `A steady ${fmtInt(rate)} datagrams/s (the highest of ${o.rates.map(fmtInt).join(', ')}/s that the native engine held with no kernel drop here, ` +
      `2 workers, 100-byte datagrams from 64 ports, ${o.seconds} s per run after a half-second warm-up that is not counted), with one change a quarter of the way in. ` +
      `"received" counts what the workers handled (after a takeover: the new service's totals, which carry the old one's); ` +
      `"unaccounted" is sent − received − kernel drops (datagrams neither handled nor counted as dropped). ` +
      `Each change ran twice, side by side: with the receive buffers raised to 8 MiB for the length of the change (the default; for a takeover, from the new command's first word) and without.\n\n` +
      mdTable(header, rows, ['l', 'l', 'r', 'r', 'r', 'r']) +
      '\n',
  };
}
