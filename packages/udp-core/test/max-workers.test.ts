/**
 * The documented maximum of workers starts on a small machine: worker starts are paced
 * (a few at a time, each with its ready limit from its own spawn), so that the processes
 * do not share the CPU so thinly that none gets ready in time; then every worker reads.
 */
import dgram from 'node:dgram';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { MAX_WORKERS } from '../src/supervisor/config.js';
import { startServe } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';

/** Datagrams sent: with `--policy random`, the chance that one of 256 workers gets none is 256·(255/256)^8192 < 1e-11. */
const DATAGRAMS = 8192;

interface Stats {
  workers: { index: number; datagrams: number; state: string }[];
  total: { datagrams: number; kernelDrops: number };
}

describe(`--workers ${MAX_WORKERS} (the documented maximum)`, () => {
  it(`starts on this ${availableParallelism()}-core machine within bounded time, and every worker reads`, async () => {
    const started = Date.now();
    // 256 Node processes on 2 cores take some 45 s here; unpaced, none got ready within its 20 s.
    const serving = await startServe(['discard', '--port', '0', '--workers', String(MAX_WORKERS), '--policy', 'random', '--stats-port', '0'], MAX_WORKERS, {
      readyTimeoutMs: 150_000,
    });
    try {
      const startMs = Date.now() - started;
      const client = dgram.createSocket('udp4');
      await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
      try {
        for (let i = 0; i < DATAGRAMS; i++) {
          await new Promise<void>((resolve, reject) => client.send(`probe ${i}`, serving.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
        }
      } finally {
        client.close();
      }
      const stats = async (): Promise<Stats> => (await (await fetch(`${serving.stats}/stats`)).json()) as Stats;
      const counted = await waitFor(
        async () => {
          const t = (await stats()).total;
          return t.datagrams + t.kernelDrops >= DATAGRAMS;
        },
        30_000,
        100,
      );
      const s = await stats();
      expect(counted, JSON.stringify(s.total)).toBe(true);
      expect(s.total.datagrams).toBe(DATAGRAMS);
      expect(s.workers).toHaveLength(MAX_WORKERS);
      expect(s.workers.filter((w) => w.state !== 'running')).toEqual([]);
      expect(s.workers.filter((w) => w.datagrams === 0).map((w) => w.index)).toEqual([]);
      console.log(
        `${MAX_WORKERS} workers ready after ${(startMs / 1000).toFixed(1)} s; every one read (fewest ${Math.min(...s.workers.map((w) => w.datagrams))} datagrams)`,
      );
    } finally {
      const r = await serving.stop();
      expect(r.code).toBe(0);
    }
  }, 240_000);
});
