import { afterEach, describe, expect, it } from 'vitest';
import { Supervisor } from '@shardgram/udp-core';
import { closeAll, openClients, send, waitFor } from './helpers/udp.js';

let sup: Supervisor | undefined;
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

async function serviceWith(workers: number): Promise<Supervisor> {
  const s = new Supervisor({ app: 'discard', port: 0, workers, snapshotIntervalMs: 50, log: () => {} });
  await s.start();
  return s;
}

describe('distribution under the kernel hash', () => {
  for (const workers of [2, 3, 4]) {
    it(`spreads 400 source ports over ${workers} workers: every worker gets traffic, and the split passes chi-square`, async () => {
      sup = await serviceWith(workers);
      const clients = await openClients(400);
      try {
        // One datagram per source port: the ports are the independent units the hash spreads.
        for (const c of clients) await send(c, 'x', sup.port);
        expect(await waitFor(() => sup!.stats().total.datagrams === 400, 10_000)).toBe(true);
      } finally {
        closeAll(clients);
      }
      const s = sup.stats();
      expect(s.workers).toHaveLength(workers);
      for (const w of s.workers) expect(w.datagrams).toBeGreaterThan(0);
      // At the 0.1% level a correct hash fails this 1 time in 1000.
      expect(s.fairness.chiSquareP).toBeGreaterThan(0.001);
      expect(s.fairness.degreesOfFreedom).toBe(workers - 1);
      expect(s.fairness.jain).toBeGreaterThan(0.9);
      expect(s.total.kernelDrops).toBe(0);
      const shareSum = s.workers.reduce((a, w) => a + w.share, 0);
      expect(shareSum).toBeCloseTo(1, 9);
    });
  }

  it('sends everything from one source port to one worker (the known limit that steering addresses)', async () => {
    sup = await serviceWith(3);
    const [client] = await openClients(1);
    try {
      // Paced in batches of 50 so that one socket's 208 KiB buffer never overflows.
      for (let i = 0; i < 300; i++) {
        await send(client!, `n${i}`, sup.port);
        if (i % 50 === 49) await waitFor(() => sup!.stats().total.datagrams === i + 1, 10_000);
      }
      expect(await waitFor(() => sup!.stats().total.datagrams === 300, 10_000)).toBe(true);
    } finally {
      client!.close();
    }
    const counts = sup.stats().workers.map((w) => w.datagrams).sort((a, b) => b - a);
    expect(counts).toEqual([300, 0, 0]);
    const f = sup.stats().fairness;
    expect(f.maxShare).toBe(1);
    expect(f.jain).toBeCloseTo(1 / 3, 9);
    expect(f.chiSquareP).toBeLessThan(1e-6);
  });
});
