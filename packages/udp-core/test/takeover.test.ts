/**
 * Upgrading the whole service: a new supervisor takes the group over from the
 * running one (`serve --takeover`), under load, losing nothing.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runLoad, type LoadProgress } from '@shardgram/udp-core/load';
import { controlRequest } from '../src/control/client.js';
import { runCli, startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';
import { bigRcvbufArgs, rcvbufShortfall, skipNote } from '@shardgram/test-kit/rcvbuf';

// Starting a second supervisor and its workers takes the CPU from the running ones for a
// moment on a 2-core machine: a production-sized buffer (4 MiB) rides that out.
// An app that loads in the supervisor but throws in every worker.
const BROKEN_BUILD = fileURLToPath(new URL('./fixtures/throw-at-load.js', import.meta.url));

const noBigBuffer = skipNote(rcvbufShortfall('4m'), 'the lossless takeover tests');

const running: Serving[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) if (s.child.exitCode === null && s.child.signalCode === null) await s.stop('SIGKILL');
});

async function serve(args: string[], workers: number): Promise<Serving> {
  const s = await startServe(args, workers);
  running.push(s);
  return s;
}

function statsUrl(s: Serving): string {
  return s.stats!;
}

/** A load run, and a promise for the moment it has sent `n` probes. */
function loadWithMark(port: number, count: number, rate: number, mark: number) {
  let reached!: () => void;
  const marked = new Promise<void>((r) => (reached = r));
  const report = runLoad({
    port,
    sources: 64,
    count,
    rate,
    size: 64,
    replyTimeoutMs: 3_000,
    maxDurationMs: 60_000,
    onProgress: (p: LoadProgress) => {
      if (p.sent >= mark) reached();
    },
  });
  return { report, marked };
}

describe('serve --takeover', () => {
  it.skipIf(noBigBuffer)(
    'takes over under load with another worker count: every probe answered once, no kernel drop, the old one exits 0, totals go on',
    async () => {
      const old = await serve(['echo', '--port', '0', '--workers', '2', '--stats-port', '0', ...bigRcvbufArgs('4m')], 2);
      const count = 12_000;
      const { report, marked } = loadWithMark(old.port, count, 3_000, 3_000);
      await marked;
      const next = await serve(['echo', '--port', String(old.port), '--workers', '3', '--takeover', '--stats-port', '0'], 3);
      const oldExit = await new Promise<number | null>((r) => (old.child.exitCode !== null ? r(old.child.exitCode) : old.child.once('exit', (c) => r(c))));
      expect(oldExit).toBe(0);
      expect(old.output()).toMatch(/handed over: a new service has udp 127\.0\.0\.1:\d+; exiting/);
      const r = await report;
      expect(r.sent).toBe(count);
      expect(r.lost).toBe(0);
      expect(r.duplicates).toBe(0);
      // Replies came from the old processes and from the new ones.
      const pids = new Set(r.workers.flatMap((w) => w.pids));
      for (const p of [...old.pids, ...next.pids]) expect(pids.has(p)).toBe(true);
      // The new command's first word raised the old service's buffers before its slow start.
      expect(old.stderr()).toMatch(/takeover: a new service is starting; receive buffers raised/);
      // Under this traffic every new worker reads within the warm wait: its snapshots said so.
      expect(next.stderr()).not.toMatch(/have had no datagram/);
      type Stats = { workers: { rcvbuf: number }[]; total: { datagrams: number; kernelDrops: number }; inherited?: { pid: number; datagrams: number } };
      const stats = async (): Promise<Stats> => (await (await fetch(`${statsUrl(next)}/stats`)).json()) as Stats;
      // The sockets handed over go back to their own size (4 MiB, which the kernel reports doubled), not to
      // the raised one; the third, opened by the new service, has the new one's (the kernel's default).
      const own = async (): Promise<number[]> => (await stats()).workers.slice(0, 2).map((w) => w.rcvbuf);
      expect(await waitFor(async () => (await own()).every((b) => b === 2 * 4 * 1024 * 1024), 10_000), `rcvbuf ${(await own()).join(', ')}`).toBe(true);
      const s = await stats();
      expect(s.workers).toHaveLength(3);
      expect(s.total.kernelDrops).toBe(0);
      // Totals continue: what the old service counted plus what the new one did is every probe.
      expect(s.total.datagrams).toBe(count);
      expect(s.inherited?.pid).toBe(old.child.pid);
      expect(s.inherited!.datagrams).toBeGreaterThan(0);
      // The control socket now belongs to the new service.
      const status = await controlRequest(next.control, { op: 'status' });
      expect(status.pid).toBe(next.child.pid);
    },
  );

  it.skipIf(noBigBuffer)('a takeover whose workers cannot load leaves the old service serving with no loss, and exits non-zero saying why', async () => {
    const old = await serve(['echo', '--port', '0', '--workers', '2', '--stats-port', '0', ...bigRcvbufArgs('4m')], 2);
    const count = 6_000;
    const { report, marked } = loadWithMark(old.port, count, 3_000, 1_500);
    await marked;
    const failed = await runCli(['serve', BROKEN_BUILD, '--port', String(old.port), '--workers', '2', '--takeover'], {
      timeoutMs: 60_000,
    });
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/broken build: cannot load in a worker/);
    const r = await report;
    expect(r.sent).toBe(count);
    expect(r.lost).toBe(0);
    expect(r.duplicates).toBe(0);
    // Only the old workers answered, and the old service is still the one in charge.
    expect(new Set(r.workers.flatMap((w) => w.pids))).toEqual(new Set(old.pids));
    expect(old.child.exitCode).toBe(null);
    expect(await waitFor(() => /takeover abandoned: the new service \(pid \d+\) gave up: .*; this service goes on serving/.test(old.stderr()), 5_000)).toBe(
      true,
    );
    const status = await controlRequest(old.control, { op: 'status' });
    expect(status.pid).toBe(old.child.pid);
    // The buffers raised for the attempt go back to the old service's own size.
    type Rows = { workers: { rcvbuf: number }[] };
    const rows = async (): Promise<Rows> => (await (await fetch(`${statsUrl(old)}/stats`)).json()) as Rows;
    expect(await waitFor(async () => (await rows()).workers.every((w) => w.rcvbuf === 2 * 4 * 1024 * 1024), 10_000)).toBe(true);
  });

  it.skipIf(noBigBuffer)(
    'five takeovers in a row under one load: every probe answered exactly once, each old side exits 0, the totals carry on through all of them',
    async () => {
      let current = await serve(['echo', '--port', '0', '--workers', '2', '--stats-port', '0', ...bigRcvbufArgs('4m')], 2);
      const count = 30_000;
      const { report, marked } = loadWithMark(current.port, count, 3_000, 1_000);
      await marked;
      const pids = new Set<number>(current.pids);
      for (let i = 0; i < 5; i++) {
        const old = current;
        current = await serve(
          ['echo', '--port', String(old.port), '--workers', String(2 + (i % 2)), '--takeover', '--stats-port', '0', ...bigRcvbufArgs('4m')],
          2 + (i % 2),
        );
        for (const p of current.pids) pids.add(p);
        const oldExit = await new Promise<number | null>((r) => (old.child.exitCode !== null ? r(old.child.exitCode) : old.child.once('exit', (c) => r(c))));
        expect(oldExit, old.stderr()).toBe(0);
      }
      const r = await report;
      expect(r.sent).toBe(count);
      expect(r.lost).toBe(0);
      expect(r.duplicates).toBe(0);
      // The last service's totals are every probe: each hand-over passed the counts on.
      type Stats = { total: { datagrams: number; kernelDrops: number } };
      const s = (await (await fetch(`${statsUrl(current)}/stats`)).json()) as Stats;
      expect(s.total.datagrams).toBe(count);
      expect(s.total.kernelDrops).toBe(0);
    },
  );

  it('says clearly when there is nothing to take over, or the port differs', async () => {
    const old = await serve(['discard', '--port', '0', '--workers', '1'], 1);
    const r = await runCli(['serve', 'discard', '--port', String(old.port + 1 === 65536 ? 1 : old.port + 1), '--takeover'], { timeoutMs: 30_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--takeover: no running service answers on its control socket \S+/);
    // And a second service without --takeover is told about it.
    const second = await runCli(['serve', 'discard', '--port', String(old.port)], { timeoutMs: 30_000 });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/start this one with --takeover/);
  });
});
