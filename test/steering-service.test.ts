import { afterEach, describe, expect, it } from 'vitest';
import { Supervisor } from '@shardgram/udp-core';
import { parseEchoReply } from '@shardgram/udp-core/load';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { sleep, waitFor } from '@shardgram/test-kit/wait';

let sup: Supervisor | undefined;
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
});

describe('steering policies on a running service', () => {
  it('one source port, 3 workers: random gives Jain ≥ 0.98 over 30 000 datagrams', async () => {
    sup = new Supervisor({ app: 'discard', port: 0, workers: 3, policy: { name: 'random' }, snapshotIntervalMs: 20, log: () => {} });
    await sup.start();
    expect(sup.stats().policy).toEqual({ name: 'random' });
    const [client] = await openClients(1);
    try {
      for (let i = 0; i < 30_000; i++) {
        client!.send('x', sup.port, '127.0.0.1');
        // Paced: the workers catch up every 300 datagrams (~100 a socket, well inside its buffer).
        if (i % 300 === 299) expect(await waitFor(() => sup!.stats().total.datagrams === i + 1, 5_000, 5)).toBe(true);
      }
      expect(await waitFor(() => sup!.stats().total.datagrams === 30_000, 10_000)).toBe(true);
    } finally {
      closeAll([client!]);
    }
    const s = sup.stats();
    expect(s.total.kernelDrops).toBe(0);
    expect(s.fairness.jain).toBeGreaterThanOrEqual(0.98);
    for (const w of s.workers) expect(w.datagrams).toBeGreaterThan(8_000);
  });

  it('key: each of 100 keys sent from many source ports is seen by exactly one worker, and every worker gets keys', async () => {
    sup = new Supervisor({ app: 'echo', port: 0, workers: 3, policy: { name: 'key', delimiter: 0x3a, maxLength: 64 }, log: () => {} });
    await sup.start();
    const clients = await openClients(50);
    const seen = new Map<string, Set<number>>();
    let replies = 0;
    for (const c of clients) {
      c.on('message', (m) => {
        const r = parseEchoReply(m);
        if (!r) return;
        replies++;
        const key = r.payload.toString().split(':')[0]!;
        const set = seen.get(key) ?? new Set();
        set.add(r.worker);
        seen.set(key, set);
      });
    }
    try {
      let n = 0;
      for (let round = 0; round < 5; round++) {
        for (let k = 0; k < 100; k++) await send(clients[(n++ * 7 + round) % 50]!, `metric.name.${k}:${round}|c`, sup.port);
      }
      expect(await waitFor(() => replies === 500, 10_000)).toBe(true);
    } finally {
      closeAll(clients);
    }
    expect(seen.size).toBe(100);
    for (const [, workers] of seen) expect(workers.size).toBe(1);
    const perWorker = [0, 1, 2].map((w) => [...seen.values()].filter((s) => s.has(w)).length);
    for (const c of perWorker) expect(c).toBeGreaterThan(10);
  });

  it('warns when one worker keeps far more than its share under hash, naming the fix, and /stats says so', async () => {
    const logs: string[] = [];
    sup = new Supervisor({
      app: 'discard',
      port: 0,
      workers: 3,
      snapshotIntervalMs: 50,
      log: (l) => logs.push(l),
      imbalance: { windowMs: 2_000, minDatagrams: 200, sustainMs: 1_000 },
    });
    await sup.start();
    const [client] = await openClients(1);
    try {
      // One busy source until the warning comes, at most 10 s.
      const end = Date.now() + 10_000;
      while (Date.now() < end && !sup.stats().imbalance?.detected) {
        for (let i = 0; i < 20; i++) client!.send('x', sup.port, '127.0.0.1');
        await sleep(10);
      }
    } finally {
      closeAll([client!]);
    }
    const s = sup.stats();
    expect(s.imbalance?.detected).toBe(true);
    expect(s.imbalance?.share).toBe(1);
    expect(s.imbalance?.advice).toMatch(/--policy random/);
    expect(logs.some((l) => /warning: worker \d has received 100% of the datagrams for \d+ s \(even would be 33%\).*--policy random/.test(l))).toBe(true);
  });
});
