/**
 * A worker that stops reading is found and replaced; workers never outlive their
 * supervisor; a stranger in the group is named.
 */
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Supervisor } from '@shardgram/udp-core';
import { startServe, type Serving } from '@shardgram/test-kit/cli';
import { isAlive } from '@shardgram/test-kit/procfs';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { sleep, waitFor } from '@shardgram/test-kit/wait';

let sup: Supervisor | undefined;
let serving: Serving | undefined;
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
  await serving?.stop('SIGKILL');
  serving = undefined;
});

const gone = (pid: number): boolean => !isAlive(pid);

describe('stalled workers', () => {
  it('reports a SIGSTOPped worker as stalled, replaces it on its socket, and the other workers lose nothing', async () => {
    const logs: string[] = [];
    let seenWhileStalled: { state: string; metrics: string } | undefined;
    sup = new Supervisor({
      app: 'echo',
      port: 0,
      workers: 3,
      // 30 heartbeats missed: a healthy worker (or the supervisor's reading of its heartbeats)
      // held back while a replacement process starts on a loaded machine is not taken for stalled.
      stallTimeoutMs: 3000,
      snapshotIntervalMs: 100,
      log: (l) => {
        logs.push(l);
        if (/worker 0 \(pid \d+\) is stalled/.test(l) && !seenWhileStalled)
          seenWhileStalled = { state: sup!.stats().workers[0]!.state, metrics: sup!.metrics() };
      },
    });
    await sup.start();
    const started = sup.workerPids();
    const stopped = started[0]!;
    process.kill(stopped, 'SIGSTOP');
    const clients = await openClients(30);
    let replies = 0;
    for (const c of clients) c.on('message', () => replies++);
    const sent = 300;
    try {
      // Spread over the sockets by source port; slow enough that the stopped socket's
      // queue (a stock 208 KiB buffer holds a few hundred small datagrams) never overflows.
      for (let i = 0; i < sent; i++) {
        await send(clients[i % clients.length]!, `m${i}`, sup.port);
        if (i % 30 === 29) await sleep(50);
      }
      expect(await waitFor(() => logs.some((l) => l.includes(`worker 0 (pid ${stopped}) is stalled: `)), 15_000)).toBe(true);
      expect(seenWhileStalled?.state).toBe('stalled');
      expect(seenWhileStalled?.metrics).toMatch(/shardgram_worker_stalled\{app="echo",port="\d+",worker="0"\} 1/);
      // The replacement reads what queued meanwhile.
      expect(await waitFor(() => sup!.workerPids()[0] !== stopped && sup!.stats().workers[0]!.state === 'running', 10_000)).toBe(true);
      expect(await waitFor(() => replies >= sent - 1, 10_000)).toBe(true);
      expect(gone(stopped)).toBe(true);
      // The stopped process was replaced; the running ones were not.
      expect(sup.workerPids().slice(1)).toEqual(started.slice(1));
      // Each stall is counted once, where it happened (the log says each one).
      const s = sup.stats();
      const stallLines = (w: string): number => logs.filter((l) => new RegExp(`worker ${w} \\(pid \\d+\\) is stalled`).test(l)).length;
      expect(s.workers[0]!.stalls).toBeGreaterThanOrEqual(1);
      expect(s.workers[0]!.stalls).toBe(stallLines('0'));
      expect(s.total.stalls).toBe(stallLines('\\d+'));
      for (const w of s.workers) expect(w.kernelDrops).toBe(0);
      // At most the one datagram the stopped process had taken and not answered.
      expect(s.total.datagrams).toBeGreaterThanOrEqual(sent - 1);
    } finally {
      closeAll(clients);
    }
  });

  it('replaces a worker whose handler never returns (no heartbeat) even with no traffic queued', async () => {
    const logs: string[] = [];
    // The same margin as above: 30 heartbeats.
    sup = new Supervisor({ app: './test/fixtures/spin-app.js', port: 0, workers: 2, stallTimeoutMs: 3000, snapshotIntervalMs: 100, log: (l) => logs.push(l) });
    await sup.start();
    const before = sup.workerPids();
    const c = dgram.createSocket('udp4');
    // 'spin' sends the worker that reads it into an endless loop.
    await send(c, 'spin', sup.port);
    c.close();
    // Which worker read it: the engine counts a datagram, in memory the supervisor reads, before the handler runs.
    let spinning = -1;
    expect(await waitFor(() => (spinning = sup!.stats().workers.findIndex((w) => w.datagrams === 1)) >= 0, 5_000)).toBe(true);
    const spinner = before[spinning]!;
    expect(
      await waitFor(() => logs.some((l) => l.includes(`worker ${spinning} (pid ${spinner}) is stalled: it has sent no heartbeat`)), 15_000),
      logs.join('\n'),
    ).toBe(true);
    expect(await waitFor(() => sup!.workerPids()[spinning] !== spinner && sup!.stats().workers.every((w) => w.state === 'running'), 10_000)).toBe(true);
    // The spinning worker was replaced by a new process on its socket; the other one was not.
    const now = sup.workerPids();
    expect(now[1 - spinning]).toBe(before[1 - spinning]);
    expect(now[spinning]).toBeGreaterThan(0);
    expect(await waitFor(() => gone(spinner), 5_000)).toBe(true);
    expect(sup.stats().workers[spinning]!.stalls).toBeGreaterThanOrEqual(1);
  });
});

describe('workers die with their supervisor', () => {
  it('a SIGSTOPped worker does not outlive a SIGKILLed supervisor, and the port is free again', async () => {
    serving = await startServe(['discard', '--port', '0', '--workers', '2', '--stall-timeout', '0'], 2);
    const { port, pids } = serving;
    process.kill(pids[0]!, 'SIGSTOP');
    await serving.stop('SIGKILL');
    serving = undefined;
    // The kernel sends SIGKILL to each worker when its parent dies (PR_SET_PDEATHSIG), stopped or not.
    expect(await waitFor(() => pids.every(gone), 10_000)).toBe(true);
    serving = await startServe(['discard', '--port', String(port), '--workers', '1'], 1);
    expect(serving.port).toBe(port);
  });
});

describe('group membership', () => {
  it('names a same-uid process that joins the group at run time, in the log and in /stats', async () => {
    const logs: string[] = [];
    sup = new Supervisor({ app: 'discard', port: 0, workers: 2, log: (l) => logs.push(l) });
    await sup.start();
    const py = spawn(
      '/usr/bin/python3',
      [
        '-c',
        `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("joined", flush=True)
sys.stdin.read()
`,
        String(sup.port),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((r) => py.stdout!.once('data', () => r()));
      expect(await waitFor(() => logs.some((l) => l.includes(`pid ${py.pid} (python3)`)), 10_000)).toBe(true);
      expect(logs.find((l) => /not ours is in this service's SO_REUSEPORT group/.test(l))).toContain(`127.0.0.1:${sup.port}`);
      const s = sup.stats();
      expect(s.intruders?.flatMap((h) => h.pids)).toContain(py.pid);
      expect(sup.metrics()).toMatch(/shardgram_group_intruders\{app="discard",port="\d+"\} 1/);
    } finally {
      py.stdin!.end();
      py.kill();
    }
    // Once it has gone, /stats says so.
    expect(await waitFor(() => (sup!.stats().intruders ?? []).length === 0, 10_000)).toBe(true);
  });
});
