import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Supervisor } from '@shardgram/udp-core';
import { parseEchoReply } from '@shardgram/udp-core/load';
import { socketMemInfo } from '@shardgram/udp-core/sockets';
import { BIG_RCVBUF, startServe, type Serving } from '@shardgram/test-kit/cli';
import { rcvbufShortfall, skipNote } from '@shardgram/test-kit/rcvbuf';
import { closeAll, openClients, send, udpQueuedBytes } from '@shardgram/test-kit/udp';
import { sleep, waitFor } from '@shardgram/test-kit/wait';
import type dgram from 'node:dgram';

let serving: Serving | undefined;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
});

/** Collects echo replies by request text. */
function collect(clients: dgram.Socket[]): { replies: Map<string, { worker: number; pid: number }[]>; count: () => number } {
  const replies = new Map<string, { worker: number; pid: number }[]>();
  let count = 0; // every reply, duplicates included
  for (const c of clients) {
    c.on('message', (m) => {
      const r = parseEchoReply(m);
      if (!r) return;
      count++;
      const key = r.payload.toString();
      const list = replies.get(key) ?? [];
      list.push({ worker: r.worker, pid: r.pid });
      replies.set(key, list);
    });
  }
  return { replies, count: () => count };
}

// ~1000 datagrams/s, and a worker may take a few hundred ms to come back on a loaded machine.
const noBigBuffer = skipNote(rcvbufShortfall('1m'), 'the kill -9 tests');
// The supervisor raises a socket waiting for a worker to --change-rcvbuf's 8 MiB.
const noChangeBuffer = skipNote(rcvbufShortfall('8m'), 'the restart buffer test');

describe('worker crash and restart', () => {
  it.skipIf(noBigBuffer).each(['dgram', 'native'])(
    'kill -9 of a worker mid-stream (%s engine): the restarted worker on the same socket answers everything that queued meanwhile',
    async (engine) => {
      serving = await startServe(['echo', '--port', '0', '--workers', '2', '--engine', engine, ...BIG_RCVBUF(), '--stats-port', '0'], 2);
      const clients = await openClients(20);
      const n = clients.length;
      const { replies, count } = collect(clients);
      // Which worker each client reaches: the kernel hash of its source port picks a socket,
      // and the group does not change while a worker restarts on its socket. One datagram
      // per client, answered before the stream starts.
      for (let k = 0; k < n; k++) await send(clients[k]!, `warm-${k}`, serving.port);
      expect(await waitFor(() => replies.size === n, 5_000)).toBe(true);
      const workerOf = clients.map((_, k) => replies.get(`warm-${k}`)![0]!);
      for (const r of workerOf) expect(r.pid).toBe(serving.pids[r.worker]);
      // The victim is the worker with the most clients (at least half of them): which one
      // that is, is chance; that the killed worker has clients, and so answers after its
      // restart, is not.
      const on = (w: number): number => workerOf.filter((r) => r.worker === w).length;
      const v = on(0) >= on(1) ? 0 : 1;
      const other = 1 - v;
      const victim = serving.pids[v]!;
      const victimsClient = (i: number): boolean => workerOf[i % n]!.worker === v;
      const total = 1500;
      const statsUrl = serving.stats!;
      type Stats = { workers: { restarts: number; kernelDrops: number }[]; total: { kernelDrops: number; datagrams: number } };
      const stats = async (): Promise<Stats> => (await (await fetch(`${statsUrl}/stats`)).json()) as Stats;
      try {
        for (let i = 0; i < total; i++) {
          await send(clients[i % n]!, `seq-${i}`, serving.port);
          if (i === 300) process.kill(victim, 'SIGKILL');
          if (i % 3 === 2) await sleep(1); // ~1.5 s of steady traffic, with the restart in the middle
        }
        await waitFor(() => replies.size >= n + total - 1, 10_000);
        // Every datagram was read (the queues are empty, and all but at most the one the
        // killed process had taken are counted), and every reply a worker sent has arrived
        // (the one being handled at the kill may have none): no late duplicate can still come.
        type Totals = Stats['total'] & { queueBytes: number };
        const readOut = async (): Promise<boolean> => {
          const t = (await stats()).total as Totals;
          return t.queueBytes === 0 && t.datagrams >= n + total - 1;
        };
        expect(await waitFor(readOut, 5_000, 50)).toBe(true);
        expect(await waitFor(() => count() >= n + total - 1, 5_000)).toBe(true);
      } finally {
        closeAll(clients);
      }
      // Everything sent after the kill queued on the socket (or went to the other worker) and
      // is answered exactly once. Before it, at most the one datagram the victim was handling
      // at the instant of the kill can be gone: it had left the queue.
      for (let k = 0; k < n; k++) expect(replies.get(`warm-${k}`), `warm-${k}`).toHaveLength(1);
      for (let i = 301; i < total; i++) expect(replies.get(`seq-${i}`), `seq-${i}`).toHaveLength(1);
      const before = Array.from({ length: 301 }, (_, i) => replies.get(`seq-${i}`)?.length ?? 0);
      expect(before.filter((x) => x > 1)).toEqual([]);
      expect(before.filter((x) => x === 0).length).toBeLessThanOrEqual(1);
      const newPids = new Set(
        [...replies.values()]
          .map((l) => l[0]!)
          .filter((r) => r.worker === v && r.pid !== victim)
          .map((r) => r.pid),
      );
      expect(newPids.size).toBe(1); // the victim came back as one new process…
      const [restarted] = [...newPids];
      expect(restarted).not.toBe(victim);
      // …on the same socket: it answered every datagram its clients sent after the kill, the
      // other worker's process answered its own clients' throughout, and nothing moved across.
      const answeredBy = (i: number): number | undefined => replies.get(`seq-${i}`)?.[0]?.pid;
      const wrong: string[] = [];
      for (let i = 0; i < total; i++) {
        const pid = answeredBy(i);
        if (pid === undefined) continue; // at most one, before the kill (checked above)
        const ok = !victimsClient(i) ? pid === serving.pids[other] : i > 300 ? pid === restarted : pid === victim || pid === restarted;
        if (!ok) wrong.push(`seq-${i} from a client of worker ${workerOf[i % n]!.worker} answered by pid ${pid}`);
      }
      expect(wrong).toEqual([]);
      const afterKill = Array.from({ length: total - 301 }, (_, j) => 301 + j).filter(victimsClient);
      expect(afterKill.length).toBeGreaterThanOrEqual(total / 3); // half the clients or more, round robin
      expect(serving.output()).toMatch(new RegExp(`worker ${v} restarted: pid ${restarted},`));
      expect(serving.stderr()).toMatch(new RegExp(`worker ${v} \\(pid ${victim}\\) was killed by SIGKILL after [\\d.]+ s; restarting it on the same socket`));
      const s = await stats();
      // The statistics count the killed process's datagrams too (they live in memory the
      // supervisor shares with each worker): every answered datagram, plus at most the one
      // that was being handled at the instant of the kill.
      expect(s.total.datagrams - replies.size).toBeGreaterThanOrEqual(0);
      expect(s.total.datagrams - replies.size).toBeLessThanOrEqual(1);
      expect(s.workers[v]!.restarts).toBe(1);
      expect(s.workers[other]!.restarts).toBe(0);
      expect(s.total.kernelDrops).toBe(0);
    },
  );

  it.skipIf(noChangeBuffer)('a socket waiting for its restarted worker has its buffer raised: a burst meanwhile is all read, none dropped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgram-gate-'));
    const gate = join(dir, 'hold');
    process.env.SHARDGRAM_TEST_GATE = gate;
    // A small buffer of its own (128 KiB): the burst below is about 30 times that.
    const sup = new Supervisor({ app: './test/fixtures/gated-start.js', port: 0, workers: 1, rcvbuf: 65536, snapshotIntervalMs: 50, log: () => {} });
    const clients = await openClients(8);
    try {
      await sup.start();
      const fd = sup.sockets()[0]!.fd;
      const normal = socketMemInfo(fd).rcvbuf;
      expect(normal).toBe(131072);
      // The restarted worker will wait at the gate: the socket has no reader until it opens.
      writeFileSync(gate, '');
      const exited = once(sup, 'worker-exit');
      process.kill(sup.workerPids()[0]!, 'SIGKILL');
      await exited;
      expect(socketMemInfo(fd).rcvbuf).toBeGreaterThanOrEqual(2 * 8 * 1024 * 1024);
      const total = 3000;
      const payload = 'x'.repeat(500);
      for (let i = 0; i < total; i++) await send(clients[i % clients.length]!, payload, sup.port);
      const queued = socketMemInfo(fd);
      expect(queued.drops).toBe(0);
      expect(queued.queueBytes).toBeGreaterThan(normal);
      rmSync(gate);
      expect(await waitFor(() => sup.stats().total.datagrams === total, 10_000)).toBe(true);
      // Once the new worker has read the backlog, the buffer is back to its own size.
      expect(await waitFor(() => socketMemInfo(fd).rcvbuf === normal, 5_000)).toBe(true);
      expect(sup.stats().total.kernelDrops).toBe(0);
      expect(sup.stats().workers[0]!.restarts).toBe(1);
    } finally {
      closeAll(clients);
      delete process.env.SHARDGRAM_TEST_GATE;
      await sup.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('backs off a worker that crashes in a loop, and logs why', async () => {
    const lines: string[] = [];
    process.env.SHARDGRAM_TEST_CRASH = '1';
    const sup = new Supervisor({ app: './test/fixtures/crash-on-start.js', port: 0, workers: 1, log: (l) => lines.push(l) });
    try {
      await sup.start();
      // 5 worker starts (each exits 10 ms after it starts) and 0.7 s of back-off between them: ~3 s
      // on an idle machine; the bound leaves room for a loaded 2-core one (5 starts of ~4 s each).
      expect(await waitFor(() => lines.filter((l) => /crash loop/.test(l)).length >= 3, 20_000)).toBe(true);
    } finally {
      delete process.env.SHARDGRAM_TEST_CRASH;
      await sup.stop();
    }
    const exits = lines.filter((l) => /worker 0 \(pid \d+\) exited with code 3/.test(l));
    expect(exits.length).toBeGreaterThanOrEqual(5);
    expect(exits.every((l) => /after [\d.]+ s/.test(l))).toBe(true);
    expect(exits[0]).toMatch(/restarting it on the same socket \(its queue is kept\) in 0 ms/);
    expect(exits[1]).toMatch(/restarting it on the same socket \(its queue is kept\) in 100 ms/);
    expect(exits[2]).toMatch(/3 times in a row within 5 s each: crash loop, backing off 200 ms/);
    const delays = lines
      .map((l) => /backing off (\d+) ms/.exec(l)?.[1])
      .filter(Boolean)
      .map(Number);
    expect(delays.slice(0, 3)).toEqual([200, 400, 800]);
    expect(sup.stats().workers[0]!.restarts).toBeGreaterThanOrEqual(4);
  });
});

describe('graceful stop', () => {
  it('SIGTERM drains what is already queued: every datagram is handled, then exit 0', async () => {
    serving = await startServe(['./test/fixtures/slow-echo.js', '--port', '0', '--workers', '1', ...BIG_RCVBUF(), '--app-option', 'busyMs=2'], 1);
    const clients = await openClients(10);
    const { replies } = collect(clients);
    const total = 300; // ~0.6 s of work for the worker, and ~250 KB of queue (fits a stock rmem_max)
    const worker = serving.pids[0]!;
    try {
      // The worker is stopped while the burst arrives: all of it is still queued at SIGTERM.
      process.kill(worker, 'SIGSTOP');
      for (let i = 0; i < total; i++) await send(clients[i % 10]!, `q-${i}`, serving.port);
      const queued = udpQueuedBytes(serving.port);
      expect(queued).toBeGreaterThan(0);
      expect(replies.size).toBe(0);
      const s = serving;
      serving = undefined;
      const stopped = s.stop('SIGTERM');
      // The supervisor's drain request waits in the stopped worker's IPC pipe until it runs again.
      expect(await waitFor(() => /SIGTERM: draining/.test(s.stderr()), 5_000)).toBe(true);
      process.kill(worker, 'SIGCONT');
      const r = await stopped;
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`stopped: ${total} datagrams received, 0 dropped by the kernel, 0 still queued at close \\(counted and dropped\\)`));
      expect(await waitFor(() => replies.size === total, 5_000)).toBe(true);
    } finally {
      closeAll(clients);
    }
  });

  it('counts a handler that throws, and the worker lives on', async () => {
    const lines: string[] = [];
    const sup = new Supervisor({ app: './test/fixtures/throwing.js', port: 0, workers: 1, snapshotIntervalMs: 50, log: (l) => lines.push(l) });
    await sup.start();
    const clients = await openClients(1);
    const { replies } = collect(clients);
    try {
      for (const m of ['boom1', 'ok1', 'boom2', 'ok2', 'boom3']) await send(clients[0]!, m, sup.port);
      expect(await waitFor(() => sup.stats().workers[0]!.handlerErrors === 3 && replies.size === 2, 5_000)).toBe(true);
      const pid = sup.workerPids()[0];
      expect(sup.stats().workers[0]).toMatchObject({ datagrams: 5, handlerErrors: 3, restarts: 0, pid });
      expect(lines.some((l) => /message handler threw, error #1: Error: boom on purpose/.test(l))).toBe(true);
    } finally {
      closeAll(clients);
      await sup.stop();
    }
  });
});

describe('IPv6', () => {
  it('serves echo on ::1 like on 127.0.0.1', async () => {
    serving = await startServe(['echo', '--address', '::1', '--port', '0', '--workers', '2'], 2);
    expect(serving.output()).toMatch(/udp \[::1\]:\d+/);
    const clients = await openClients(100, 'udp6');
    const { replies } = collect(clients);
    try {
      for (let i = 0; i < 100; i++) await send(clients[i]!, `v6-${i}`, serving.port, '::1');
      expect(await waitFor(() => replies.size === 100, 5_000)).toBe(true);
    } finally {
      closeAll(clients);
    }
    const workers = new Set([...replies.values()].map((l) => l[0]!.worker));
    expect(workers).toEqual(new Set([0, 1]));
    const pids = new Set([...replies.values()].map((l) => l[0]!.pid));
    expect(pids).toEqual(new Set(serving.pids));
  });
});
