/**
 * The supervisor's decisions over its group, with fake worker processes (fake-workers.ts):
 * a grow that fails rolls back to the old size, sockets a service manager holds open are
 * never left without a worker and get their own buffer back, and the new side of a
 * hand-over whose workers fail leaves the queued datagrams to the old service. One
 * worker slot's policies: slot-policy.test.ts.
 */
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { closeFd, openReusePortSocket, socketMemInfo } from '@shardgram/udp-core/sockets';
import { adoptSocket } from '../src/ffi/adopt.js';
import { F_DUPFD_CLOEXEC } from '../src/ffi/kernel.js';
import { libc } from '../src/ffi/libc.js';
import { controlOf } from '../src/supervisor/internal.js';
import type { TakeoverSource } from '../src/supervisor/types.js';
import { FakeProc, withFakes } from './fake-workers.js';
describe('a grow that fails', () => {
  it('rolls back to the old size: the new sockets are closed and nothing was steered to them', async () => {
    let failNew = false;
    const launched: FakeProc[] = [];
    const sup = withFakes(
      { app: 'discard', port: 0, workers: 2, policy: { name: 'random' }, log: () => {} },
      {
        launch: () => {
          const p = new FakeProc(Date.now());
          launched.push(p);
          if (failNew) queueMicrotask(() => p.exit(70));
          else queueMicrotask(() => p.becomeReady());
          return p;
        },
      },
    );
    await sup.start();
    failNew = true;
    await expect(sup.resize(4)).rejects.toThrow(/before it was ready/);
    expect(sup.workers).toBe(2);
    // The fakes read nothing: every datagram sent now stays queued on a socket of the
    // group, and the stop reads them out and counts them. One on a closed socket would be lost.
    const client = dgram.createSocket('udp4');
    const n = 200;
    for (let i = 0; i < n; i++) await new Promise<void>((r) => client.send(`d${i}`, sup.port, '127.0.0.1', () => r()));
    client.close();
    const report = await sup.stop();
    expect(report.droppedAtClose).toBe(n);
    expect(sup.stats().retired.workers).toBe(0);
    // And the policy is back to `random` over 2: from one source port, both sockets get
    // about half (a program left for 4 sockets would send half the traffic to the
    // kernel's hash fallback, all on one socket: ~50/150).
    const perSocket = sup.stats().workers.map((w) => w.droppedAtClose);
    expect(perSocket).toHaveLength(2);
    for (const c of perSocket) expect(c).toBeGreaterThanOrEqual(65);
  });
});

describe('sockets a service manager holds open', () => {
  it('are never left without a worker: a start or a shrink below their number is refused, and a stop leaves their queues alone', async () => {
    const a = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    const b = openReusePortSocket({ address: '127.0.0.1', port: a.port });
    const unit = [adoptSocket(a.fd, 'unit socket 0'), adoptSocket(b.fd, 'unit socket 1')];
    const fake = {
      launch: () => {
        const p = new FakeProc(Date.now());
        queueMicrotask(() => p.becomeReady());
        return p;
      },
    };
    const tooFew = withFakes({ app: 'discard', port: a.port, workers: 1, log: () => {} }, fake);
    await expect(controlOf(tooFew).startAdopted(async () => ({ sockets: unit, heldElsewhere: [true, true] }))).rejects.toThrow(
      /keeps 2 sockets of this group open \(its \.socket unit\): 1 workers would leave some unread/,
    );
    const sup = withFakes({ app: 'discard', port: a.port, log: () => {} }, fake);
    await controlOf(sup).startAdopted(async () => ({ sockets: unit, heldElsewhere: [true, true] }));
    expect(sup.workers).toBe(2);
    await expect(sup.resize(1)).rejects.toThrow(/keeps 2 sockets/);
    expect(sup.workers).toBe(2);
    // A datagram queued on them is not read out by our stop (the manager's copies go on holding it).
    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.send('kept', a.port, '127.0.0.1', () => r()));
    client.close();
    const report = await sup.stop();
    expect(report.droppedAtClose).toBe(0);
  });

  it('get their own buffer size back at a stop that leaves them to the manager, even with a raise in force', async () => {
    const a = openReusePortSocket({ address: '127.0.0.1', port: 0, rcvbuf: 8192 });
    // The manager's copy: what is left of the socket once the service has let go.
    const managers = libc().fcntl(a.fd, F_DUPFD_CLOEXEC, 0);
    const fake = {
      launch: () => {
        const p = new FakeProc(Date.now());
        queueMicrotask(() => p.becomeReady());
        return p;
      },
    };
    const sup = withFakes({ app: 'discard', port: a.port, changeRcvbuf: 100_000, log: () => {} }, fake);
    try {
      await controlOf(sup).startAdopted(async () => ({ sockets: [adoptSocket(a.fd, 'stored socket 0')] }));
      controlOf(sup).shareWithServiceManager();
      controlOf(sup).brace(60_000); // raised, as for a takeover that never came
      expect(socketMemInfo(managers).rcvbuf).toBe(200_000);
      // A backlog the fake workers never read: more than the socket's own buffer holds.
      const client = dgram.createSocket('udp4');
      for (let i = 0; i < 40; i++) await new Promise<void>((r) => client.send(Buffer.alloc(500), a.port, '127.0.0.1', () => r()));
      client.close();
      expect(socketMemInfo(managers).queueBytes).toBeGreaterThan(16384);
      await sup.stop();
      // The next service would read a raised size as the socket's own: it goes back first.
      expect(socketMemInfo(managers).rcvbuf).toBe(16384);
      expect(socketMemInfo(managers).drops).toBe(0);
    } finally {
      libc().close(managers);
    }
  });
});

describe('the new side of a hand-over', () => {
  /** Two group sockets, as an old service holds them, and our copies of them for the new side. */
  async function oldGroup() {
    const a = openReusePortSocket({ address: '127.0.0.1', port: 0 });
    const b = openReusePortSocket({ address: '127.0.0.1', port: a.port });
    const given = [a, b].map((s, i) => adoptSocket(libc().fcntl(s.fd, F_DUPFD_CLOEXEC, 0), `socket ${i} of the old service`));
    return { port: a.port, olds: [a, b], given, queued: () => (a.fd >= 0 ? socketMemInfo(a.fd).queueBytes + socketMemInfo(b.fd).queueBytes : 0) };
  }

  /** A source whose old side answers nothing and never goes away (the new side fails first). */
  function silentSource(g: Awaited<ReturnType<typeof oldGroup>>): TakeoverSource & { aborted: string[] } {
    const aborted: string[] = [];
    return {
      aborted,
      offer: { address: '127.0.0.1', port: g.port, family: 'udp4', workers: 2, policy: { name: 'hash' }, app: 'discard', pid: 1, dropsBefore: [0, 0], nfds: 2 },
      sockets: g.given,
      lost: new Promise(() => undefined),
      ready: () => new Promise(() => undefined),
      ack: () => undefined,
      take: () => undefined,
      abort: (reason) => void aborted.push(reason),
    };
  }

  it('whose workers fail to start lets the sockets go unread: what is queued stays for the old service', async () => {
    const g = await oldGroup();
    const client = dgram.createSocket('udp4');
    for (let i = 0; i < 50; i++) await new Promise<void>((r) => client.send(`q${i}`, g.port, '127.0.0.1', () => r()));
    client.close();
    const before = g.queued();
    expect(before).toBeGreaterThan(0);
    const sup = withFakes(
      { app: 'discard', port: g.port, log: () => {} },
      {
        launch: () => {
          const p = new FakeProc(Date.now());
          queueMicrotask(() => p.exit(70));
          return p;
        },
      },
    );
    const source = silentSource(g);
    await expect(controlOf(sup).takeOver(source)).rejects.toThrow(/before it was ready/);
    expect(source.aborted).toHaveLength(1);
    // Nothing read out, nothing counted as dropped here: the queues are the old service's still.
    expect(sup.stats().total.droppedAtClose).toBe(0);
    expect(g.queued()).toBe(before);
    for (const s of g.olds) closeFd(s.fd);
  });
});
