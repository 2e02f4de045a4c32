/**
 * `maxReadDelayUs` under a real Supervisor and the native engine: a service that
 * allows a longer read delay wakes up less often for the same steady traffic, and
 * however long it allows, its waits stay short enough for its receive buffer. Traffic
 * to 127.0.0.1 only, bounded in count and time; the buffers fit a stock
 * net.core.rmem_max, so no root is needed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Supervisor } from '@shardgram/udp-core';
import { runCli } from '@shardgram/test-kit/cli';
import { bigRcvbufOptions } from '@shardgram/test-kit/rcvbuf';
import { waitFor } from '@shardgram/test-kit/wait';

let sup: Supervisor | undefined;
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

/**
 * Sends `count` datagrams at `rate`/s to `port` with `shardgram load`, in a process of its
 * own as a real client is: in this one, the supervisor's work (a reload, the stats
 * snapshots) would hold the sender's clock back, and its rate would then catch up in one
 * burst that a small buffer cannot hold, whatever the worker's waits.
 */
async function loadFromOwnProcess(port: number, count: number, rate: number): Promise<{ sent: number; sendErrors: number }> {
  const done = await runCli(
    [
      'load',
      '--port',
      String(port),
      '--count',
      String(count),
      '--rate',
      String(rate),
      '--sources',
      '8',
      '--size',
      '64',
      '--no-replies',
      '--max-duration',
      '20000',
      '--json',
    ],
    { timeoutMs: 30_000 },
  );
  expect(done.code, done.stderr).toBe(0);
  return JSON.parse(done.stdout) as { sent: number; sendErrors: number };
}

/** Runs `count` datagrams at `rate`/s into a 1-worker discard service; returns what its worker counted. */
async function steadyRun(opts: { maxReadDelayUs?: number; rcvbuf?: number; rcvbufForce?: boolean; rate: number; count: number }) {
  sup = new Supervisor({
    app: 'discard',
    port: 0,
    workers: 1,
    engine: 'native',
    snapshotIntervalMs: 50,
    log: () => {},
    ...(opts.maxReadDelayUs !== undefined ? { maxReadDelayUs: opts.maxReadDelayUs } : {}),
    ...(opts.rcvbuf !== undefined ? { rcvbuf: opts.rcvbuf, rcvbufForce: opts.rcvbufForce ?? false } : {}),
  });
  await sup.start();
  const s = sup;
  const r = await loadFromOwnProcess(s.port, opts.count, opts.rate);
  expect(r.sendErrors).toBe(0);
  // Everything sent is either handled or counted as dropped by the kernel.
  const settled = await waitFor(() => {
    const w = s.stats().workers[0]!;
    return w.datagrams + w.kernelDrops === r.sent && w.queueBytes === 0;
  }, 10_000);
  const w = s.stats().workers[0]!;
  expect(settled, `handled ${w.datagrams} + dropped ${w.kernelDrops} of ${r.sent}`).toBe(true);
  await s.stop();
  sup = undefined;
  return {
    sent: r.sent,
    datagrams: w.datagrams,
    drops: w.kernelDrops,
    wakeups: w.wakeups,
    perWakeup: w.datagrams / Math.max(1, w.wakeups),
    // Small datagrams the socket's own buffer holds (~832 bytes of kernel memory each on loopback).
    capacity: w.rcvbuf / 832,
  };
}

describe('native engine: maxReadDelayUs', () => {
  it('allowing 2 ms instead of the default 500 µs reads at least twice as many datagrams per wake-up at 20,000/s, and loses none', async () => {
    // A 1 MiB buffer (where this user may have one): a busy machine may not run the worker for a few ms.
    const buf = bigRcvbufOptions('1m');
    const short = await steadyRun({ ...buf, rate: 20_000, count: 20_000 });
    const long = await steadyRun({ ...buf, maxReadDelayUs: 2000, rate: 20_000, count: 20_000 });
    expect(short.drops).toBe(0);
    expect(long.drops).toBe(0);
    console.log(`per wake-up at 20,000/s: ${short.perWakeup.toFixed(1)} (500 µs), ${long.perWakeup.toFixed(1)} (2 ms)`);
    expect(long.perWakeup, `per wake-up: ${long.perWakeup.toFixed(1)} with 2 ms, ${short.perWakeup.toFixed(1)} with 500 µs`).toBeGreaterThanOrEqual(
      2 * short.perWakeup,
    );
  });

  it('a 100 ms allowance on a 256 KiB buffer waits only as long as a quarter of the buffer lasts: nothing is dropped', async () => {
    // 524288 bytes as the kernel counts them (425984 where net.core.rmem_max is a stock 212992),
    // ~832 a datagram: ~630 datagrams, 63 ms at 10,000/s; a quarter is ~157. Waiting the whole
    // 100 ms would queue ~1000 and drop a third of them. The buffer is raised (to 8 MiB where
    // this user may) until the worker is ready: the waits must be sized for its own size all the same.
    const r = await steadyRun({ maxReadDelayUs: 100_000, rcvbuf: 256 * 1024, rate: 10_000, count: 20_000 });
    console.log(`100 ms allowed, ${r.capacity.toFixed(0)}-datagram buffer, 10,000/s: ${r.perWakeup.toFixed(1)} datagrams per wake-up, ${r.drops} dropped`);
    expect(r.drops).toBe(0);
    expect(r.datagrams).toBe(r.sent);
    // Paced (well over one a wake-up), and never waiting for much more than a quarter of the buffer.
    expect(r.perWakeup, `${r.perWakeup.toFixed(1)} datagrams per wake-up`).toBeGreaterThan(20);
    expect(r.perWakeup, `${r.perWakeup.toFixed(1)} datagrams per wake-up, buffer ${r.capacity.toFixed(0)}`).toBeLessThan(0.4 * r.capacity);
  });

  it('through a reload, whose buffers are raised for the change and then lowered, a 100 ms allowance on a 256 KiB buffer drops nothing', async () => {
    // The new worker starts on a raised buffer: were its waits sized for that one, the wait
    // running when the supervisor lowers the buffer again would overflow the socket's own.
    sup = new Supervisor({
      app: 'discard',
      port: 0,
      workers: 1,
      engine: 'native',
      snapshotIntervalMs: 50,
      log: () => {},
      maxReadDelayUs: 100_000,
      rcvbuf: 256 * 1024,
    });
    await sup.start();
    const s = sup;
    // The sender in a process of its own: in this one, the reload's work would hold its
    // clock back, and its rate would then catch up in one burst the 63 ms buffer cannot hold.
    const load = loadFromOwnProcess(s.port, 30_000, 10_000);
    expect(await waitFor(() => s.stats().total.datagrams >= 5000, 10_000)).toBe(true);
    const before = s.stats().workers[0]!.pid;
    await s.reload();
    const w = s.stats().workers[0]!;
    expect(w.pid).not.toBe(before);
    const r = await load;
    expect(r.sendErrors).toBe(0);
    const settled = await waitFor(() => s.stats().total.datagrams + s.stats().total.kernelDrops === r.sent && s.stats().total.queueBytes === 0, 10_000);
    const t = s.stats().total;
    const nw = s.stats().workers[0]!;
    const perWakeup = nw.datagrams / Math.max(1, nw.wakeups);
    const capacity = nw.rcvbuf / 832;
    console.log(
      `reload under 10,000/s with 100 ms allowed on 256 KiB: ${t.datagrams} handled, ${t.kernelDrops} dropped of ${r.sent}; the new worker ${perWakeup.toFixed(1)} per wake-up, buffer ${capacity.toFixed(0)}`,
    );
    expect(settled, `handled ${t.datagrams} + dropped ${t.kernelDrops} of ${r.sent}`).toBe(true);
    // The new worker's waits are sized for the socket's own buffer, not the raised one.
    expect(perWakeup, `${perWakeup.toFixed(1)} datagrams per wake-up, buffer ${capacity.toFixed(0)}`).toBeLessThan(0.4 * capacity);
    expect(t.kernelDrops).toBe(0);
  });
});
