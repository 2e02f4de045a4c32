/**
 * A worker slot's policies without processes or clocks: crash backoff, a slot's promotion
 * on reload and its restart decisions (with the receive buffer raised while no reader is
 * ready), and paced starts through the group's start gate. Worker processes are fakes
 * whose readiness and exit the test decides (fake-workers.ts). The supervisor's own
 * decisions over the group: supervisor-policy.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { OpenedSocket } from '@shardgram/udp-core/sockets';
import { CRASH_WINDOW_MS, MAX_BACKOFF_MS, nextRestart } from '../src/supervisor/backoff.js';
import { Slot, type SlotDeps } from '../src/supervisor/slot.js';
import { StartGate, defaultStartConcurrency } from '../src/supervisor/start-gate.js';
import { FakeProc } from './fake-workers.js';

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
    (h.slot.current as FakeProc).exit(null, 'SIGKILL');
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
      (h.slot.current as FakeProc).exit(null, 'SIGKILL');
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
    (h.slot.current as FakeProc).exit(1);
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
    (h.slot.current as FakeProc).exit(1);
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
