import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { Supervisor } from '@shardgram/udp-core';
import { runLoad } from '@shardgram/udp-core/load';
import { closeFd, openReusePortSocket, socketMemInfo } from '@shardgram/udp-core/sockets';
import { runCli, startServe } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';

/** Resolves once the load has sent `n` datagrams (throws after 30 s). */
type UntilSent = (n: number) => Promise<void>;

/** Starts a steady, sequenced echo load on `port`: the report, and a way to wait for its progress. */
function startLoad(port: number, count: number, rate: number, address = '127.0.0.1'): { load: ReturnType<typeof runLoad>; untilSent: UntilSent } {
  let sent = 0;
  const load = runLoad({ address, port, sources: 64, count, rate, size: 64, replyTimeoutMs: 2_000, maxDurationMs: 30_000, onProgress: (p) => (sent = p.sent) });
  const untilSent: UntilSent = async (n) => {
    if (!(await waitFor(() => sent >= n, 30_000))) throw new Error(`the load sent ${sent} of ${n} within 30 s`);
  };
  return { load, untilSent };
}

/** Runs a steady, sequenced echo load while `during` changes the service; returns the load report. */
async function underLoad(
  sup: Supervisor,
  during: (untilSent: UntilSent) => Promise<void>,
  count = 12_000,
  rate = 3_000,
): Promise<Awaited<ReturnType<typeof runLoad>>> {
  const { load, untilSent } = startLoad(sup.port, count, rate);
  await during(untilSent);
  return load;
}

describe('live resize and rolling reload lose nothing', () => {
  for (const policy of [{ name: 'hash' } as const, { name: 'random' } as const]) {
    it(`shrinks 4 → 2 and grows back to 4 under a steady load with ${policy.name} steering: received == sent, no kernel drops`, async () => {
      const logs: string[] = [];
      const sup = new Supervisor({ app: 'echo', port: 0, workers: 4, policy, log: (l) => logs.push(l) });
      await sup.start();
      try {
        const report = await underLoad(sup, async (untilSent) => {
          await untilSent(2_400); // a fifth of the load (~0.8 s) went to 4 workers
          expect(await sup.resize(2)).toEqual({ from: 4, to: 2 });
          expect(sup.workerPids()).toHaveLength(2);
          await untilSent(4_800); // and another ~0.8 s to 2 of them
          expect(await sup.resize(4)).toEqual({ from: 2, to: 4 });
        });
        expect(report.sent).toBe(12_000);
        expect(report.lost).toBe(0);
        expect(report.duplicates).toBe(0);
        await sup.stop();
        const s = sup.stats();
        // Retired workers' datagrams still count in the total; workers[] lists the live ones.
        expect(s.workers).toHaveLength(4);
        expect(s.retired.workers).toBe(2);
        expect(s.retired.datagrams).toBeGreaterThan(0);
        expect(s.total.datagrams).toBe(12_000);
        expect(s.total.kernelDrops).toBe(0);
        expect(logs.filter((l) => /still queued|dropped/.test(l))).toEqual([]);
      } finally {
        await sup.stop();
      }
    });
  }

  // Sealing a leaving socket bound to a wildcard address connects it to loopback, which
  // moves it to another of the kernel's lookup lists and out of the group before its drain.
  for (const [address, to] of [
    ['0.0.0.0', '127.0.0.1'],
    ['::', '::1'],
  ] as const) {
    it(`shrinks 4 → 1 and grows back to 4 on the wildcard ${address} under a steady load: received == sent`, async () => {
      const logs: string[] = [];
      const sup = new Supervisor({ app: 'echo', address, port: 0, workers: 4, log: (l) => logs.push(l) });
      await sup.start();
      try {
        const { load, untilSent } = startLoad(sup.port, 9_000, 3_000, to);
        await untilSent(2_400);
        expect(await sup.resize(1)).toEqual({ from: 4, to: 1 });
        await untilSent(4_800);
        expect(await sup.resize(4)).toEqual({ from: 1, to: 4 });
        const report = await load;
        expect(report.sent).toBe(9_000);
        expect(report.lost).toBe(0);
        await sup.stop();
        expect(sup.stats().total.datagrams).toBe(9_000);
        expect(logs.filter((l) => /could not seal|still queued|dropped/.test(l))).toEqual([]);
      } finally {
        await sup.stop();
      }
    });
  }

  it('SIGHUP reloads every worker onto new processes under load, with zero loss', async () => {
    const serving = await startServe(['echo', '--port', '0', '--workers', '3', '--stats-port', '0'], 3);
    try {
      const before = serving.pids;
      const { load, untilSent } = startLoad(serving.port, 9_000, 3_000);
      await untilSent(2_400); // ~0.8 s into the load
      serving.child.kill('SIGHUP');
      expect(await waitFor(() => /reloaded: 3 workers on new processes/.test(serving.output()), 15_000)).toBe(true);
      const report = await load;
      expect(report.sent).toBe(9_000);
      expect(report.lost).toBe(0);
      expect(report.duplicates).toBe(0);
      // Replies came from old and new processes of each worker.
      const pidsSeen = new Set(report.workers.flatMap((w) => w.pids));
      for (const p of before) expect(pidsSeen.has(p)).toBe(true);
      expect(pidsSeen.size).toBeGreaterThan(3);
      const statsUrl = serving.stats!;
      const s = (await (await fetch(`${statsUrl}/stats`)).json()) as { workers: { pid: number }[]; total: { kernelDrops: number; datagrams: number } };
      expect(s.workers.map((w) => w.pid).some((p) => before.includes(p))).toBe(false);
      expect(s.total.kernelDrops).toBe(0);
      // `shardgram scale` finds the service's control socket by its UDP port.
      const scaled = await runCli(['scale', '--port', String(serving.port), '--workers', '2']);
      expect(scaled.stdout).toBe('resized from 3 to 2 workers\n');
      expect(scaled.code).toBe(0);
      expect(await waitFor(() => /resized: 3 -> 2 workers/.test(serving.output()), 5_000)).toBe(true);
      const bad = await runCli(['scale', '--port', String(serving.port), '--workers', '0']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/--workers must be from 1 to 256/);
    } finally {
      await serving.stop();
    }
  });
});

describe('for contrast: the naive way', () => {
  it('closing a socket that still holds queued datagrams loses every one of them', async () => {
    const a = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    const b = openReusePortSocket({ address: '127.0.0.1', port: a.port });
    // Nobody reads either socket: whatever the hash gives each stays queued.
    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    const clients = [client];
    for (let i = 0; i < 31; i++) {
      const c = dgram.createSocket('udp4');
      await new Promise<void>((r) => c.bind(0, '127.0.0.1', () => r()));
      clients.push(c);
    }
    try {
      for (let i = 0; i < 128; i++) {
        await new Promise<void>((r) => clients[i % 32]!.send(`n${i}`, a.port, '127.0.0.1', () => r()));
      }
      // Every send's callback has fired: on loopback the datagrams are in the queues already.
      const queuedOnB = socketMemInfo(b.fd).queueBytes;
      expect(queuedOnB).toBeGreaterThan(0);
      // "Start a new instance, kill the old one": the old socket's queue dies with it.
      closeFd(b.fd);
      // The socket that stays never sees them: read it dry.
      const reader = dgram.createSocket('udp4');
      let got = 0;
      reader.on('message', () => got++);
      await new Promise<void>((r) => reader.bind({ fd: a.fd }, () => r()));
      // dgram emits each datagram as it reads it: once the queue is empty, `got` is final.
      expect(await waitFor(() => socketMemInfo(a.fd).queueBytes === 0, 5_000)).toBe(true);
      reader.close();
      expect(got).toBeGreaterThan(0);
      expect(got).toBeLessThan(128);
      console.log(`naive close: ${128 - got} of 128 datagrams lost with the closed socket's queue (${queuedOnB} bytes)`);
    } finally {
      for (const c of clients) c.close();
    }
  });
});
