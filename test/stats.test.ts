import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Supervisor, startStatsServer } from '@shardgram/udp-core';
import { decodeProbe, encodeProbe } from '@shardgram/udp-core/load';
import { decodeSnapshot, encodeSnapshot } from '@shardgram/udp-core/stats';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

const haveSocat = spawnSync('sh', ['-c', 'command -v socat']).status === 0;
if (!haveSocat) console.log('socat is not installed here (.ci/run installs it): the plain-client test is skipped');

describe('statistics', () => {
  it('round-trips snapshots and probes through protobuf; a snapshot carries the process counters only (the rest are in the shared page)', () => {
    const snap = { index: 3, pid: 1234, cpuUserMicros: 2 ** 40, cpuSystemMicros: 20.5, seq: 9, final: true, engine: 'native' };
    expect(decodeSnapshot(encodeSnapshot(snap))).toEqual(snap);
    // Engine counters are not sent twice: a snapshot given one drops it.
    expect(decodeSnapshot(encodeSnapshot({ ...snap, datagrams: 5 } as typeof snap))).toEqual(snap);
    const probe = decodeProbe(encodeProbe({ sender: 2, seq: 77, sentAt: 12.5, pad: Buffer.from('...') }));
    expect(probe).toMatchObject({ sender: 2, seq: 77, sentAt: 12.5 });
    expect(Buffer.from(probe.pad!).toString()).toBe('...');
  });

  it('serves /stats as JSON and /metrics as Prometheus text, cumulative per worker', async () => {
    const sup = new Supervisor({ app: 'echo', port: 0, workers: 2, snapshotIntervalMs: 50, log: () => {} });
    await sup.start();
    const http = await startStatsServer(sup, 0);
    const clients = await openClients(50);
    try {
      for (const c of clients) await send(c, 'hello', sup.port);
      // Counts are live (shared memory); CPU time comes with the next snapshot.
      expect(await waitFor(() => sup.stats().total.datagrams === 50 && sup.stats().workers.every((w) => w.cpuUserMicros > 0), 5_000)).toBe(true);
      const res = await fetch(`${http.url}/stats`);
      expect(res.headers.get('content-type')).toBe('application/json');
      const s = (await res.json()) as ReturnType<Supervisor['stats']>;
      expect(s.workers).toHaveLength(2);
      for (const w of s.workers) {
        for (const k of ['index', 'pid', 'datagrams', 'bytes', 'kernelDrops', 'queueBytes', 'cpuUserMicros', 'cpuSystemMicros', 'restarts']) {
          expect(typeof (w as unknown as Record<string, unknown>)[k]).toBe('number');
        }
        expect(w.cpuUserMicros).toBeGreaterThan(0);
      }
      expect(s.total).toMatchObject({ datagrams: 50, bytes: 250, kernelDrops: 0 });
      for (const k of ['jain', 'minShare', 'maxShare', 'chiSquareP']) expect(typeof (s.fairness as unknown as Record<string, number>)[k]).toBe('number');
      expect(s.workers.map((w) => w.pid)).toEqual(sup.workerPids());

      const metrics = await (await fetch(`${http.url}/metrics`)).text();
      const total = [...metrics.matchAll(/^shardgram_worker_datagrams_total\{app="echo",port="\d+",worker="\d"\} (\d+)$/gm)].reduce(
        (a, m) => a + Number(m[1]),
        0,
      );
      expect(total).toBe(50);
      expect(metrics).toMatch(/^# TYPE shardgram_fairness_jain gauge$/m);
      // Every sample line is "name{labels} number".
      for (const line of metrics
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('#')))
        expect(line).toMatch(/^[a-z_]+\{[^}]*\} [-\d.e+]+$/);
      expect((await fetch(`${http.url}/nope`)).status).toBe(404);
      // Not for web pages: a browser's cross-site request carries an Origin.
      expect((await fetch(`${http.url}/stats`, { headers: { origin: 'http://example.test' } })).status).toBe(403);
    } finally {
      closeAll(clients);
      await http.close();
      await sup.stop();
    }
  });

  it('refuses a stats port that is taken, naming it', async () => {
    const a = await startStatsServer(
      {
        stats: () => {
          throw new Error('unused');
        },
      },
      0,
    );
    try {
      await expect(
        startStatsServer(
          {
            stats: () => {
              throw new Error('unused');
            },
          },
          a.port,
        ),
      ).rejects.toThrow(new RegExp(`--stats-port ${a.port}: TCP 127.0.0.1:${a.port} is already in use`));
      await expect(startStatsServer({ stats: () => ({}) as never }, a.port)).rejects.toMatchObject({ code: 'ERR_SHARDGRAM_PORT_HELD', port: a.port });
    } finally {
      await a.close();
    }
  });

  it("a stats address that is not this host's is ERR_SHARDGRAM_ADDRESS, not a held port", async () => {
    // 192.0.2.1 (TEST-NET-1, RFC 5737) is on no interface here: listen fails with EADDRNOTAVAIL.
    const e = await startStatsServer({ stats: () => ({}) as never }, 0, '192.0.2.1').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toMatchObject({ code: 'ERR_SHARDGRAM_ADDRESS', address: '192.0.2.1', option: 'stats-port' });
    expect(String(e)).toMatch(/--stats-port 0: cannot listen on TCP 192\.0\.2\.1:0: .*EADDRNOTAVAIL/);
  });

  it.skipIf(!haveSocat)('the echo service answers a plain client (socat)', async () => {
    const sup = new Supervisor({ app: 'echo', port: 0, workers: 2, log: () => {} });
    await sup.start();
    try {
      const r = spawnSync('socat', ['-t', '2', '-', `UDP:127.0.0.1:${sup.port}`], { input: 'hi there\n', encoding: 'utf8', timeout: 10_000 });
      expect(r.stdout).toMatch(new RegExp(`^Hello from worker [01] \\(pid (${sup.workerPids().join('|')})\\): hi there\\n$`));
    } finally {
      await sup.stop();
    }
  });
});
