/**
 * No key affinity needed (issue 13): `shardgram serve statsd` with its default
 * policy (random) spreads one hot name over every worker, and still flushes exactly
 * what one process reading one socket would have:
 *
 * 1. one counter name from 64 source ports: every worker gets a share (Jain's index
 *    ≥ 0.95) and the flushed total equals what was sent; 60 KB names are rejected and
 *    counted, and the flush line stays small;
 * 2. one gauge set and nudged by 16 senders, spread over 4 workers: the final value
 *    equals the single-socket reference, i.e. the operations applied in the kernel's
 *    arrival order. The test knows that order because it sends one datagram at a
 *    time, each after the previous send completed: on loopback a datagram is
 *    timestamped and queued in the sender's context before its send returns, so the
 *    kernel's receive times (SO_TIMESTAMPNS) follow send order (test/native-engine.test.ts
 *    checks that they increase in send order).
 *
 * Real processes, loopback only, bounded counts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FlushResult } from '../../src/statsd/merge.js';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { bigRcvbufArgs } from '@shardgram/test-kit/rcvbuf';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

const dir = mkdtempSync(join(tmpdir(), 'shardgram-statsd-hot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let serving: Serving | undefined;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
});

function readFlushes(path: string): FlushResult[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FlushResult);
}

async function workerDatagrams(s: Serving): Promise<number[]> {
  const url = s.stats!;
  const stats = (await (await fetch(`${url}/stats`)).json()) as { workers: { datagrams: number }[] };
  return stats.workers.map((w) => w.datagrams);
}

/** Jain's fairness index: 1 when every worker got the same, 1/n when one got all. */
const jain = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) ** 2 / (xs.length * xs.reduce((a, b) => a + b * b, 0));

function serveArgs(out: string, workers: number): string[] {
  // No --policy and no --engine: the app's defaults (random, native).
  return [
    'statsd',
    '--port',
    '0',
    '--workers',
    String(workers),
    ...bigRcvbufArgs('4m'),
    '--stats-port',
    '0',
    '-o',
    `jsonOut=${out}`,
    '-o',
    'flushInterval=600000',
  ];
}

describe('one hot name, default policy', () => {
  it('a counter from 64 source ports: every worker gets a share (Jain ≥ 0.95), the flushed total equals what was sent', async () => {
    const out = join(dir, 'hot-counter.jsonl');
    const workers = 4;
    serving = await startServe(serveArgs(out, workers), workers);
    const s = serving;
    expect(s.output()).toMatch(/native engine, reads wait up to 2 ms, random policy/);
    const clients = await openClients(64);
    const total = 20_000;
    const hugeNames = 50;
    try {
      // In rounds of one datagram per client: bounded in flight, no sleeps.
      for (let sent = 0; sent < total; ) {
        const round = clients.slice(0, Math.min(clients.length, total - sent));
        await Promise.all(round.map((c) => send(c, 'api.requests:1|c', s.port)));
        sent += round.length;
      }
      // 60 KB each: a few at a time, each group read before the next (a stock receive buffer holds ~6).
      const counted = async (n: number): Promise<boolean> => (await workerDatagrams(s)).reduce((a, b) => a + b, 0) === n;
      expect(await waitFor(() => counted(total), 10_000)).toBe(true);
      for (let i = 0; i < hugeNames; i += 2) {
        await Promise.all([i, i + 1].map((j) => send(clients[j % clients.length]!, `${'x'.repeat(60_000)}${j}:1|g`, s.port)));
        expect(await waitFor(() => counted(total + i + 2), 10_000)).toBe(true);
      }
    } finally {
      closeAll(clients);
    }
    const shares = await workerDatagrams(s);
    expect(
      shares.every((n) => n > 0),
      `shares ${shares.join(', ')}`,
    ).toBe(true);
    expect(jain(shares), `shares ${shares.join(', ')}`).toBeGreaterThanOrEqual(0.95);
    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ 0 dropped by the kernel/);
    const flushes = readFlushes(out);
    expect(flushes.reduce((n, f) => n + (f.counters['api.requests'] ?? 0), 0)).toBe(total);
    expect(flushes.reduce((n, f) => n + f.names_too_long, 0)).toBe(hugeNames);
    for (const line of readFileSync(out, 'utf8').split('\n')) expect(line.length).toBeLessThan(2000);
  });

  it('one gauge set and nudged by 16 senders over 4 workers ends exactly as a single socket would leave it', async () => {
    const out = join(dir, 'hot-gauge.jsonl');
    const workers = 4;
    serving = await startServe(serveArgs(out, workers), workers);
    const s = serving;
    const clients = await openClients(16);
    // A deterministic pseudo-random mix: ~15% absolute values, the rest signed deltas.
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const ops = 4000;
    let reference: number | undefined;
    try {
      for (let i = 0; i < ops; i++) {
        const kind = rnd(100);
        const v = rnd(1000);
        let line: string;
        if (kind < 15) {
          line = `pool.size:${v}|g`;
          reference = v;
        } else if (kind < 60) {
          line = `pool.size:+${v}|g`;
          reference = (reference ?? 0) + v;
        } else {
          line = `pool.size:-${v}|g`;
          reference = (reference ?? 0) - v;
        }
        // One at a time, each after the previous send completed: arrival order = send order.
        await send(clients[rnd(clients.length)]!, line, s.port);
      }
      expect(await waitFor(async () => (await workerDatagrams(s)).reduce((a, b) => a + b, 0) === ops, 10_000)).toBe(true);
    } finally {
      closeAll(clients);
    }
    const shares = await workerDatagrams(s);
    expect(
      shares.every((n) => n > ops / workers / 2),
      `shares ${shares.join(', ')}`,
    ).toBe(true);
    const r = await s.stop('SIGTERM');
    serving = undefined;
    expect(r.code).toBe(0);
    const flushes = readFlushes(out);
    expect(flushes.at(-1)!.gauges['pool.size']).toBe(reference);
  });
});
