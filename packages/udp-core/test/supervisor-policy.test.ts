/**
 * The supervisor's policies without processes or clocks: crash backoff, a slot's
 * promotion on reload and its restart decisions, and the rollback of a failed grow.
 * Worker processes are fakes whose readiness and exit the test decides.
 */
import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import type { Counters } from '../src/stats/counters.js';
import type { OpenedSocket } from '../src/ffi/socket.js';
import { CRASH_WINDOW_MS, MAX_BACKOFF_MS, nextRestart } from '../src/supervisor/backoff.js';
import { Slot, type SlotDeps } from '../src/supervisor/slot.js';
import { StartGate, defaultStartConcurrency } from '../src/supervisor/start-gate.js';
import { Supervisor } from '../src/supervisor/supervisor.js';
import { controlOf } from '../src/supervisor/internal.js';
import type { Launcher, TakeoverSource } from '../src/supervisor/types.js';

/** A Supervisor whose workers are `launch`'s fakes. */
function withFakes(opts: ConstructorParameters<typeof Supervisor>[0], fake: { launch: Launcher }): Supervisor {
  const sup = new Supervisor(opts);
  controlOf(sup).useLauncher(fake.launch);
  return sup;
}
import type { ExitInfo, WorkerHandle } from '../src/supervisor/worker-process.js';

let nextPid = 1000;

class FakeProc implements WorkerHandle {
  readonly pid = nextPid++;
  expected = false;
  lastWords: string | undefined;
  readonly ready: Promise<void>;
  readonly exited: Promise<ExitInfo>;
  counts: Partial<Counters> = { datagrams: 0 };
  retired = 0;
  private markReady!: () => void;
  private failReady!: (err: Error) => void;
  private markExited!: (e: ExitInfo) => void;

  constructor(readonly startedAt: number) {
    this.ready = new Promise<void>((res, rej) => {
      this.markReady = res;
      this.failReady = rej;
    });
    this.ready.catch(() => undefined);
    this.exited = new Promise((r) => (this.markExited = r));
  }

  counters(): Partial<Counters> {
    return this.counts;
  }

  becomeReady(): void {
    this.markReady();
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.failReady(new Error(`exited before it was ready`));
    this.markExited({ code, signal, why });
  }

  async retire(): Promise<void> {
    this.expected = true;
    this.retired++;
    this.exit(0);
    await this.exited;
  }
}

/** A slot with fake processes, a hand-driven clock and hand-fired timers. */
function harness(spawnFails: () => boolean = () => false) {
  const procs: FakeProc[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const logs: string[] = [];
  /** The receive buffer's state as the slot set it: 'raised' while it waits for a reader. */
  const buffer: string[] = [];
  let now = 0;
  let stopping = false;
  const deps: SlotDeps = {
    raiseBuffer: () => {
      buffer.push('raised');
      return () => buffer.push('lowered');
    },
    launch: () => {
      if (spawnFails()) throw new Error('spawn EMFILE');
      const p = new FakeProc(now);
      procs.push(p);
      return p;
    },
    log: (l) => logs.push(l),
    drainTimeoutMs: 1000,
    stopping: () => stopping,
    setTimer: (fn, ms) => {
      const t = { fn, ms };
      timers.push(t);
      return t;
    },
    clearTimer: (t) => void timers.splice(timers.indexOf(t as (typeof timers)[number]), 1),
    now: () => now,
  };
  const slot = new Slot(0, { fd: -1, port: 1, inode: 1 } as unknown as OpenedSocket, deps);
  return {
    slot,
    procs,
    timers,
    logs,
    buffer,
    advance: (ms: number) => void (now += ms),
    stop: () => void (stopping = true),
    /** Fires the pending restart timer (the backoff elapsed). */
    fire: () => timers.shift()!.fn(),
  };
}

/** Lets promise callbacks run (no time passes). */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('crash backoff', () => {
  it('restarts the first crash at once, then doubles from 100 ms up to 10 s', () => {
    const delays: number[] = [];
    let streak = 0;
    for (let i = 0; i < 12; i++) {
      const d = nextRestart(streak, 10);
      streak = d.streak;
      delays.push(d.delayMs);
    }
    expect(delays).toEqual([0, 100, 200, 400, 800, 1600, 3200, 6400, MAX_BACKOFF_MS, MAX_BACKOFF_MS, MAX_BACKOFF_MS, MAX_BACKOFF_MS]);
  });

  it('calls three quick exits in a row a crash loop, and a process that lived past the window starts a new streak', () => {
    expect(nextRestart(1, 10).crashLoop).toBe(false);
    expect(nextRestart(2, 10).crashLoop).toBe(true);
    expect(nextRestart(7, CRASH_WINDOW_MS)).toEqual({ streak: 1, delayMs: 0, crashLoop: false });
  });
});

describe('a slot', () => {
  it('fills an empty slot at once, and on reload promotes the new process only when it is ready', async () => {
    const h = harness();
    const first = h.slot.start();
    expect(h.slot.current).toBe(h.procs[0]);
    h.procs[0]!.becomeReady();
    await first;
    expect(h.slot.state).toBe('running');

    h.procs[0]!.counts = { datagrams: 7 };
    const reload = h.slot.start();
    await settle();
    // Not ready yet: the old process still reads the socket and is not asked to leave.
    expect(h.slot.current).toBe(h.procs[0]);
    expect(h.procs[0]!.retired).toBe(0);
    h.procs[1]!.counts = { datagrams: 3 };
    h.procs[1]!.becomeReady();
    await reload;
    expect(h.slot.current).toBe(h.procs[1]);
    expect(h.procs[0]!.retired).toBe(1);
    await settle();
    // The old process's counts stay counted after it left.
    expect(h.slot.counters().datagrams).toBe(10);
    expect(h.timers).toHaveLength(0);
  });

  it("raises the socket's buffer while it has no ready reader (first start, crash restart), not for a reload", async () => {
    const h = harness();
    const first = h.slot.start();
    expect(h.buffer).toEqual(['raised']);
    h.procs[0]!.becomeReady();
    await first;
    expect(h.buffer).toEqual(['raised', 'lowered']);

    // A reload: the old process reads on until the new one is ready; nothing to raise.
    const reload = h.slot.start();
    h.procs[1]!.becomeReady();
    await reload;
    await settle();
    expect(h.buffer).toEqual(['raised', 'lowered']);

    // A crash: raised from the exit, through the backoff, until the new process is ready.
    h.advance(10);
    h.slot.current!.exit(null, 'SIGKILL');
    await settle();
    expect(h.buffer).toEqual(['raised', 'lowered', 'raised']);
    h.fire();
    await settle();
    expect(h.buffer).toHaveLength(3);
    h.procs.at(-1)!.becomeReady();
    await settle();
    expect(h.buffer).toEqual(['raised', 'lowered', 'raised', 'lowered']);

    // A stop's exits are asked for: no raise.
    h.stop();
    await h.slot.retireAll();
    expect(h.buffer).toHaveLength(4);
  });

  it('keeps the old process when a reload’s new one dies before it is ready', async () => {
    const h = harness();
    const first = h.slot.start();
    h.procs[0]!.becomeReady();
    await first;
    const reload = h.slot.start();
    h.procs[1]!.exit(70);
    await expect(reload).rejects.toThrow(/before it was ready/);
    await settle();
    expect(h.slot.current).toBe(h.procs[0]);
    expect(h.procs[0]!.retired).toBe(0);
    expect(h.timers).toHaveLength(0);
  });

  it('restarts a crashed process on the same socket after a growing backoff, and not once the service stops', async () => {
    const h = harness();
    const first = h.slot.start();
    h.procs[0]!.becomeReady();
    await first;
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      h.advance(10);
      h.slot.current!.exit(null, 'SIGKILL');
      await settle();
      expect(h.slot.state).toBe('backoff');
      delays.push(h.timers[0]!.ms);
      h.fire();
      (h.procs.at(-1) as FakeProc).becomeReady();
      await settle();
      expect(h.slot.state).toBe('running');
    }
    expect(delays).toEqual([0, 100, 200]);
    expect(h.slot.restarts).toBe(3);
    expect(h.procs).toHaveLength(4);
    expect(h.logs.at(-1)).toMatch(/crash loop, backing off 200 ms/);
    h.stop();
    h.slot.current!.exit(1);
    await settle();
    expect(h.timers).toHaveLength(0);
    expect(h.slot.state).toBe('stopped');
  });

  it('retries a start that could not even spawn, with backoff, without a process to wait for', async () => {
    let fail = true;
    const h = harness(() => fail);
    const first = h.slot.start();
    await expect(first).rejects.toThrow(/EMFILE/);
    // The first start's failure belongs to its caller; a restart's failure is retried.
    fail = false;
    const ok = h.slot.start();
    h.procs[0]!.becomeReady();
    await ok;
    fail = true;
    h.slot.current!.exit(1);
    await settle();
    h.fire();
    await settle();
    expect(h.logs.some((l) => /EMFILE/.test(l))).toBe(true);
    expect(h.timers).toHaveLength(1);
    fail = false;
    h.fire();
    h.procs.at(-1)!.becomeReady();
    await settle();
    expect(h.slot.state).toBe('running');
  });
});

describe('paced starts (a start gate shared by the group)', () => {
  /** `n` slots with fake processes sharing one gate of `concurrency` turns. */
  function gated(n: number, concurrency: number) {
    const procs: FakeProc[] = [];
    const gate = new StartGate(concurrency);
    const deps: SlotDeps = {
      launch: () => {
        const p = new FakeProc(0);
        procs.push(p);
        return p;
      },
      // (stopping: an exit is not restarted, so a failed start stays failed here)
      log: () => undefined,
      drainTimeoutMs: 1000,
      stopping: () => true,
      startGate: gate,
    };
    const slots = Array.from({ length: n }, (_, i) => new Slot(i, { fd: -1, port: 1, inode: i + 1 } as unknown as OpenedSocket, deps));
    return { procs, gate, slots };
  }

  it('spawns at most `concurrency` processes before they are ready; each ready one lets the next spawn', async () => {
    const g = gated(10, 3);
    const all = Promise.allSettled(g.slots.map((s) => s.start()));
    await settle();
    expect(g.procs).toHaveLength(3);
    expect(g.gate.queued).toBe(7);
    g.procs[0]!.becomeReady();
    await settle();
    expect(g.procs).toHaveLength(4);
    // A start that fails (exits before ready) gives its turn back too.
    g.procs[1]!.exit(1);
    await settle();
    expect(g.procs).toHaveLength(5);
    for (let i = 0; i < 20 && g.procs.length < 10; i++) {
      for (const p of g.procs.slice(2)) p.becomeReady();
      await settle();
    }
    expect(g.procs).toHaveLength(10);
    for (const p of g.procs.slice(2)) p.becomeReady();
    const outcomes = await all;
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', ...Array<string>(8).fill('fulfilled')]);
    expect(g.gate.inFlight).toBe(0);
    expect(g.gate.queued).toBe(0);
  });

  it('starts nothing for a slot retired while it waited for its turn', async () => {
    const g = gated(2, 1);
    const first = g.slots[0]!.start();
    const second = g.slots[1]!.start();
    await settle();
    expect(g.procs).toHaveLength(1);
    await g.slots[1]!.retireAll();
    g.procs[0]!.becomeReady();
    await first;
    await expect(second).rejects.toThrow(/worker 1 was retired before its turn to start came/);
    expect(g.procs).toHaveLength(1);
    expect(g.gate.inFlight).toBe(0);
  });

  it('allows two starts per core, at least two', () => {
    expect(defaultStartConcurrency(1)).toBe(2);
    expect(defaultStartConcurrency(2)).toBe(4);
    expect(defaultStartConcurrency(16)).toBe(32);
  });
});

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
    const { openReusePortSocket } = await import('../src/ffi/socket.js');
    const { adoptSocket } = await import('../src/ffi/adopt.js');
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
    const { openReusePortSocket, socketMemInfo } = await import('../src/ffi/socket.js');
    const { adoptSocket } = await import('../src/ffi/adopt.js');
    const { libc } = await import('../src/ffi/libc.js');
    const { F_DUPFD_CLOEXEC } = await import('../src/ffi/kernel.js');
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
    const { openReusePortSocket, socketMemInfo } = await import('../src/ffi/socket.js');
    const { adoptSocket } = await import('../src/ffi/adopt.js');
    const { libc } = await import('../src/ffi/libc.js');
    const { F_DUPFD_CLOEXEC } = await import('../src/ffi/kernel.js');
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
    for (const s of g.olds) closeFdOf(s.fd);
  });
});

function closeFdOf(fd: number): void {
  void import('../src/ffi/socket.js').then(({ closeFd }) => closeFd(fd));
}
