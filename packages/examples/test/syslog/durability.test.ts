/**
 * The syslog app as a service (`shardgram serve syslog`) losing nothing: a worker killed
 * mid-stream, a graceful stop right after a burst, and rotation by size under load across
 * two workers (every record in exactly one file, `keep` honoured). What it receives and
 * how it records it: reception.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type dgram from 'node:dgram';
import { BIG_RCVBUF } from '@shardgram/test-kit/cli';
import { rcvbufShortfall, skipNote } from '@shardgram/test-kit/rcvbuf';
import { closeAll, openClients, send, udpQueuedBytes, waitQueuesEmpty } from '@shardgram/test-kit/udp';
import { sleep, waitFor } from '@shardgram/test-kit/wait';
import { countLines, readRecords, recordsWhen, syslogPerTest } from './helpers.js';
import type { SyslogRecord } from '@shardgram/examples';

const service = syslogPerTest();

describe('syslog: durability', () => {
  it('a worker killed with SIGKILL mid-stream: after the restart every message is in the file exactly once', async () => {
    const dir = service.dir();
    const out = join(dir, 'kill.jsonl');
    const s = await service.serve(2, { out }, [...BIG_RCVBUF('1m'), '--stats-port', '0']);
    const victim = s.pids[0]!;
    const clients = await openClients(50);
    const total = 1500;
    const killAt = 400;
    let killedAt = 0;
    try {
      for (let i = 0; i < total; i++) {
        await send(clients[i % clients.length]!, `<134>1 ${new Date().toISOString()} seqhost seqapp ${process.pid} SEQ - seq-${i}`, s.port);
        if (i === killAt) {
          // Kill between two datagrams: the one a worker is handling at the instant of a
          // SIGKILL can die with it (see docs/syslog.md), the queued ones must not.
          expect(await waitFor(() => countLines(out) === killAt + 1, 5_000)).toBe(true);
          process.kill(victim, 'SIGKILL');
          killedAt = Date.now();
        }
        if (i % 3 === 2) await sleep(1); // ~1.5 s of paced traffic, the restart in the middle
      }
      const records = await recordsWhen(out, total, 15_000);
      const seen = new Map<number, SyslogRecord[]>();
      for (const r of records) {
        const m = /^seq-(\d+)$/.exec(r.message ?? '');
        expect(m, JSON.stringify(r)).not.toBeNull();
        const k = Number(m![1]);
        seen.set(k, [...(seen.get(k) ?? []), r]);
      }
      const missing = Array.from({ length: total }, (_, i) => i).filter((i) => !seen.has(i));
      const twice = [...seen.entries()].filter(([, l]) => l.length > 1).map(([k]) => k);
      expect({ missing, twice }).toEqual({ missing: [], twice: [] });
      expect(records).toHaveLength(total);

      // Worker 0 came back as one new process, which read what queued meanwhile and the rest.
      const byNew = records.filter((r) => r.worker === 0 && r.workerPid !== victim);
      expect(new Set(byNew.map((r) => r.workerPid)).size).toBe(1);
      expect(byNew.length).toBeGreaterThan(100);
      // Some waited in the socket's queue while no process read it: received well after they were sent (TIMESTAMP).
      const queued = byNew.filter((r) => Date.parse(r.receivedAt) - Date.parse(r.timestamp!) > 50);
      expect(queued.length).toBeGreaterThan(0);
      expect(Math.min(...queued.map((r) => Date.parse(r.timestamp!)))).toBeGreaterThanOrEqual(killedAt - 5);
      expect(s.output()).toMatch(/worker 0 restarted: pid \d+/);
      const statsUrl = s.stats!;
      const st = (await (await fetch(`${statsUrl}/stats`)).json()) as { workers: { restarts: number }[]; total: { kernelDrops: number } };
      expect(st.workers[0]!.restarts).toBe(1);
      expect(st.total.kernelDrops).toBe(0);
    } finally {
      closeAll(clients);
    }
  });

  it.skipIf(skipNote(rcvbufShortfall('4m'), 'the syslog burst test'))('SIGTERM right after a burst: everything queued is written, then exit 0', async () => {
    const dir = service.dir();
    const out = join(dir, 'stop.jsonl');
    const s = await service.serve(2, { out }, BIG_RCVBUF('4m'));
    const clients = await openClients(32);
    const total = 3000;
    const tail = 200; // sent while the workers are stopped: still queued at SIGTERM (~150 KB, fits a stock rmem_max)
    try {
      let sent = 0;
      const burst = (from: number, to: number): Promise<void> =>
        new Promise((resolve, reject) => {
          for (let i = from; i < to; i++) {
            clients[i % 32]!.send(`<14>Jun 15 10:00:00 host burst[${i}]: burst-${i}`, s.port, '127.0.0.1', (err) => {
              if (err) reject(err);
              else if (++sent === to) resolve();
            });
          }
        });
      for (let i = 0; i < total - tail; i += 200) {
        await burst(i, i + 200);
        // Paced on the workers: each burst is read before the next goes.
        expect(await waitQueuesEmpty(s.port)).toBe(true);
      }
      for (const pid of s.pids) process.kill(pid, 'SIGSTOP');
      await burst(total - tail, total); // every send's callback has fired: the datagrams are in the queues
      expect(udpQueuedBytes(s.port)).toBeGreaterThan(0);
      service.stopped();
      const stopping = s.stop('SIGTERM');
      expect(await waitFor(() => /SIGTERM: draining/.test(s.stderr()), 5_000)).toBe(true);
      for (const pid of s.pids) process.kill(pid, 'SIGCONT');
      const r = await stopping;
      expect(r.code).toBe(0);
      const line = /stopped: (\d+) datagrams received, (\d+) dropped by the kernel, (\d+)/.exec(r.stdout);
      expect(line, r.stdout).not.toBeNull();
      const [received, drops, atClose] = [Number(line![1]), Number(line![2]), Number(line![3])];
      expect(drops).toBe(0);
      expect(atClose).toBe(0); // the drain read everything before the sockets closed
      expect(received).toBe(total);
      // Every datagram is on disk once the service has stopped.
      const records = readRecords(out);
      expect(records).toHaveLength(total);
      expect(new Set(records.map((x) => x.procId)).size).toBe(total);
      expect(r.stderr).toMatch(new RegExp(`app: syslog: ${total} messages received, ${total} records written to .*stop\\.jsonl`));
    } finally {
      closeAll(clients);
    }
  });
});

describe('syslog: rotation', () => {
  /** The rotated set: file, file.1 … file.N that exist. */
  function fileSet(out: string): string[] {
    const names = readdirSync(join(out, '..'));
    const n = names
      .filter((f) => /\.jsonl\.\d+$/.test(f))
      .map((f) => Number(f.split('.').pop()))
      .sort((a, b) => a - b);
    return [out, ...n.map((k) => `${out}.${k}`)];
  }

  async function stream(port: number, total: number, tag: string): Promise<void> {
    const clients: dgram.Socket[] = await openClients(40);
    try {
      for (let i = 0; i < total; i++) {
        await send(clients[i % 40]!, `<14>1 - rothost ${tag} - - - ${tag}-${i} ${'x'.repeat(200)}`, port);
        // Paced (about a MB/s): a rotated file overshoots maxBytes by what arrives while
        // the workers reopen, and the bound below assumes a steady, not a saturating, stream.
        if (i % 2 === 1) await sleep(1);
      }
    } finally {
      closeAll(clients);
    }
  }

  it('two workers, one file rotated by size: every record in exactly one file, whole lines, sizes near maxBytes', async () => {
    const dir = service.dir();
    const out = join(dir, 'rot.jsonl');
    const maxBytes = 64 * 1024;
    const s = await service.serve(2, { out, maxBytes: '64k', keep: '100' }, ['--stats-port', '0']);
    const total = 3000; // ~1.6 MB of records: about 25 rotations
    await stream(s.port, total, 'rot');
    expect(await waitFor(() => fileSet(out).reduce((a, f) => a + countLines(f), 0) >= total, 10_000)).toBe(true);
    service.stopped();
    const stopped = await s.stop('SIGTERM');
    expect(stopped.code).toBe(0);

    const files = fileSet(out);
    expect(files.length).toBeGreaterThan(10);
    const all = files.flatMap((f) => readRecords(f)); // throws on a broken line
    expect(all).toHaveLength(total);
    expect(new Set(all.map((r) => r.message!.split(' ')[0])).size).toBe(total);
    expect(new Set(all.map((r) => r.worker))).toEqual(new Set([0, 1]));
    // Rotated files reach maxBytes, and overshoot by what arrives before the workers reopen:
    // a few ms of the stream as a rule (1.03–1.22 × maxBytes here), longer when a busy
    // machine holds a process up (a CI run saw one file at 3.4 ×: ~0.3 s of this stream).
    // So the typical file is held close and any file within ~1 s of the stream (8 ×).
    // A worker writes what one read brought in one write (up to 50 ms of its share of the
    // stream under the app's read delay, ~25 KB here), so the file that crosses maxBytes
    // takes up to one such write per worker before they reopen: the typical file stays
    // under 2 × (it was under 1.5 × with one write per record).
    const ratios = files.slice(1).map((f) => statSync(f).size / maxBytes);
    console.log(`rotated sizes / maxBytes: ${ratios.map((r) => r.toFixed(2)).join(' ')}`);
    for (const [i, r] of ratios.entries()) {
      expect(r, files[i + 1]).toBeGreaterThanOrEqual(1);
      expect(r, files[i + 1]).toBeLessThan(8);
    }
    expect([...ratios].sort((a, b) => a - b)[ratios.length >> 1], 'the median rotated file / maxBytes').toBeLessThan(2);
    expect(statSync(out).size).toBeLessThan(maxBytes * 8);
    expect(stopped.stderr).toMatch(/app: rotated .*rot\.jsonl at \d+ bytes \(rotation 1, keeping 100\)/);
    const rotations = /(\d+) rotations\)/.exec(stopped.stderr);
    expect(Number(rotations?.[1])).toBe(files.length - 1);
  });

  it('keeps only `keep` rotated files', async () => {
    const dir = service.dir();
    const out = join(dir, 'keep.jsonl');
    const s = await service.serve(2, { out, maxBytes: '32k', keep: '2' });
    await stream(s.port, 1200, 'keep');
    // The last record is in the current file: every rotation the stream causes has happened.
    const written = (f: string): boolean => {
      try {
        return readFileSync(f, 'utf8').includes('"message":"keep-1199 ');
      } catch {
        return false; // rotated away meanwhile
      }
    };
    expect(await waitFor(() => fileSet(out).some(written), 10_000)).toBe(true);
    service.stopped();
    const stopped = await s.stop('SIGTERM');
    expect(stopped.code).toBe(0);
    expect(Number(/(\d+) rotations\)/.exec(stopped.stderr)?.[1])).toBeGreaterThan(3);
    expect(fileSet(out)).toEqual([out, `${out}.1`, `${out}.2`]);
    expect(existsSync(`${out}.3`)).toBe(false);
    // The newest records are all there, in the kept files.
    const kept = [out, `${out}.1`, `${out}.2`].flatMap((f) => readRecords(f));
    const seqs = new Set(kept.map((r) => Number(r.message!.split(' ')[0]!.slice(5))));
    expect(seqs.has(1199)).toBe(true);
    expect(seqs.size).toBe(kept.length);
  });
});
