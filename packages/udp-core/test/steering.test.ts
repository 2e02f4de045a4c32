/**
 * Steering policies on a real 3-socket reuseport group on loopback, read with
 * node:dgram in this process. Sends are paced (batches of 100, each waited for) so
 * no receive buffer overflows, and every socket's kernel drop counter is checked.
 */
import dgram from 'node:dgram';
import { availableParallelism } from 'node:os';
import koffi from 'koffi';
import { afterEach, describe, expect, it } from 'vitest';
import { ShardgramError } from '@shardgram/udp-core';
import { openReusePortSocket, socketMemInfo } from '@shardgram/udp-core/sockets';
import { fairness } from '@shardgram/udp-core/stats';
import { attachProgram, attachSteering, detachSteering, insn, keySocketIndex, parsePolicy } from '@shardgram/udp-core/steering';
import { sleep } from '@shardgram/test-kit/wait';

const HOST = '127.0.0.1';
const BATCH = 100;

interface Group {
  port: number;
  fds: number[];
  counts: number[];
  /** key (payload before ':') → sockets it arrived on. */
  keys: Map<string, Set<number>>;
  /** source port → sockets its datagrams arrived on. */
  ports: Map<number, Set<number>>;
  received(): number;
  reset(): void;
  close(): Promise<void>;
}

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

async function openGroup(n: number): Promise<Group> {
  const first = openReusePortSocket({ address: HOST, port: 0 });
  const fds = [first.fd];
  for (let i = 1; i < n; i++) fds.push(openReusePortSocket({ address: HOST, port: first.port }).fd);
  const counts = new Array<number>(n).fill(0);
  const keys = new Map<string, Set<number>>();
  const ports = new Map<number, Set<number>>();
  const socks = await Promise.all(
    fds.map(
      (fd, i) =>
        new Promise<dgram.Socket>((resolve, reject) => {
          const s = dgram.createSocket('udp4');
          s.on('message', (msg, rinfo) => {
            counts[i]!++;
            let from = ports.get(rinfo.port);
            if (!from) ports.set(rinfo.port, (from = new Set()));
            from.add(i);
            const text = msg.toString('latin1');
            const colon = text.indexOf(':');
            if (colon >= 0) {
              const k = text.slice(0, colon);
              let set = keys.get(k);
              if (!set) keys.set(k, (set = new Set()));
              set.add(i);
            }
          });
          s.once('error', reject);
          s.bind({ fd }, () => resolve(s)); // the dgram socket now owns (and will close) fd
        }),
    ),
  );
  const g: Group = {
    port: first.port,
    fds,
    counts,
    keys,
    ports,
    received: () => counts.reduce((a, b) => a + b, 0),
    reset: () => {
      counts.fill(0);
      keys.clear();
      ports.clear();
    },
    close: () => Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined),
  };
  open.push(g);
  return g;
}

async function openClients(n: number): Promise<dgram.Socket[]> {
  const out: dgram.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, HOST, () => r()));
    out.push(s);
  }
  open.push({
    close: async () => {
      for (const s of out) s.close();
    },
  });
  return out;
}

/**
 * Sends `total` datagrams, `payload(i)` from `client(i)`, in batches of BATCH; after
 * each batch waits (≤ 5 s) until the group has received everything sent so far.
 * Throws if a batch does not arrive or the whole run passes 60 s.
 */
async function sendPaced(g: Group, total: number, client: (i: number) => dgram.Socket, payload: (i: number) => string): Promise<void> {
  const start = g.received();
  const deadline = Date.now() + 60_000;
  for (let sent = 0; sent < total; ) {
    const end = Math.min(total, sent + BATCH);
    for (; sent < end; sent++) client(sent).send(payload(sent), g.port, HOST);
    const batchDeadline = Math.min(deadline, Date.now() + 5_000);
    while (g.received() - start < sent && Date.now() < batchDeadline) await new Promise((r) => setImmediate(r));
    if (g.received() - start < sent) await sleep(1);
    if (g.received() - start < sent) {
      throw new Error(`after ${sent} sent, only ${g.received() - start} received; drops per socket: ${g.fds.map((fd) => socketMemInfo(fd).drops).join(', ')}`);
    }
  }
}

function drops(g: Group): number[] {
  return g.fds.map((fd) => socketMemInfo(fd).drops);
}

describe('steering a 3-socket group', () => {
  it('random: 30 000 datagrams from one source port spread evenly (Jain ≥ 0.98), attached through the last member', async () => {
    const g = await openGroup(3);
    const [c] = await openClients(1);
    const r = attachSteering(g.fds[2]!, 'random', 3);
    expect(r.program).toHaveLength(3);
    await sendPaced(
      g,
      30_000,
      () => c!,
      (i) => `r${i}`,
    );
    const f = fairness(g.counts);
    console.log(`random: counts ${g.counts.join('/')}, Jain ${f.jain.toFixed(6)}, chi-square p ${f.chiSquareP.toFixed(3)}`);
    expect(g.received()).toBe(30_000);
    expect(drops(g)).toEqual([0, 0, 0]);
    expect(f.jain).toBeGreaterThanOrEqual(0.98);
    expect(f.minShare).toBeGreaterThan(0.3);
    // 1e-6: a correct spread fails once in a million runs (CI runs this twice per submission);
    // one socket 1.5 points over its third (34.8 %, the others 32.6 %) still fails it (p ≈ 3e-7).
    expect(f.chiSquareP).toBeGreaterThan(1e-6);
  });

  it('hash (no program): 30 000 datagrams from one source port all go to one socket', async () => {
    const g = await openGroup(3);
    const [c] = await openClients(1);
    const r = attachSteering(g.fds[0]!, 'hash', 3);
    expect(r.program).toBeUndefined();
    await sendPaced(
      g,
      30_000,
      () => c!,
      (i) => `h${i}`,
    );
    console.log(`hash: counts ${g.counts.join('/')}`);
    expect(g.received()).toBe(30_000);
    expect(drops(g)).toEqual([0, 0, 0]);
    expect([...g.counts].sort((a, b) => a - b)).toEqual([0, 0, 30_000]);
  });

  it('key: 100 StatsD keys from 20 source ports — each key on exactly the socket the hash predicts, every socket gets keys', async () => {
    const g = await openGroup(3);
    const clients = await openClients(20);
    const policy = parsePolicy('key');
    attachSteering(g.fds[1]!, policy, 3);
    // Each key 3 times, from 3 different source ports, with different values.
    const src = (i: number): dgram.Socket => clients[(Math.floor(i / 100) * 7 + i) % 20]!;
    const msg = (i: number): string => `metric.name.${i % 100}:${i}|c`;
    await sendPaced(g, 300, src, msg);
    expect(g.received()).toBe(300);
    expect(drops(g)).toEqual([0, 0, 0]);
    expect(g.keys.size).toBe(100);
    const perSocket = [0, 0, 0];
    let mispredicted = 0;
    for (const [k, set] of g.keys) {
      expect(set.size, `key ${k} arrived on sockets ${[...set].join(', ')}`).toBe(1);
      const [only] = [...set];
      perSocket[only!]!++;
      if (only !== keySocketIndex(Buffer.from(`${k}:`), 3)) mispredicted++;
    }
    const f = fairness(perSocket);
    console.log(`key: keys per socket ${perSocket.join('/')}, Jain ${f.jain.toFixed(4)}, mispredicted ${mispredicted}`);
    expect(mispredicted).toBe(0);
    for (const n of perSocket) expect(n).toBeGreaterThanOrEqual(20);

    // Back to the hash: each source port on one socket again, so a key now follows its
    // senders. It splits exactly when its 3 source ports hash to different sockets; which
    // ports do is up to the ephemeral port numbers, so the count is checked against the
    // ports' own sockets, not against a guess.
    expect(detachSteering(g.fds[0]!)).toBe(true);
    g.reset();
    await sendPaced(g, 300, src, msg);
    const socketOfPort = new Map<number, number>();
    for (const [port, set] of g.ports) {
      expect(set.size, `source port ${port} arrived on sockets ${[...set].join(', ')}`).toBe(1);
      socketOfPort.set(port, [...set][0]!);
    }
    expect(socketOfPort.size).toBe(20);
    const portSockets = new Set(socketOfPort.values());
    let expected = 0;
    for (let k = 0; k < 100; k++) {
      const on = new Set([0, 1, 2].map((round) => socketOfPort.get(src(round * 100 + k).address().port)!));
      if (on.size > 1) expected++;
    }
    const split = [...g.keys.values()].filter((s) => s.size > 1).length;
    console.log(`key after detach: ${split} of 100 keys on more than one socket (20 source ports on ${portSockets.size} sockets)`);
    // 20 ports all hashing to one of 3 sockets: about 1 run in 10^9.
    expect(portSockets.size).toBeGreaterThan(1);
    expect(split).toBe(expected);
    expect(split).toBeGreaterThan(0);
  });

  it('detach returns to hash behaviour: one source port spread by random, then on one socket again', async () => {
    const g = await openGroup(3);
    const [c] = await openClients(1);
    attachSteering(g.fds[0]!, 'random', 3);
    await sendPaced(
      g,
      3_000,
      () => c!,
      (i) => `d${i}`,
    );
    const before = [...g.counts];
    expect(Math.min(...before)).toBeGreaterThan(800);
    expect(detachSteering(g.fds[2]!)).toBe(true);
    expect(detachSteering(g.fds[2]!)).toBe(false); // ENOENT: nothing attached any more
    g.reset();
    await sendPaced(
      g,
      3_000,
      () => c!,
      (i) => `d${i}`,
    );
    console.log(`detach: random ${before.join('/')}, then hash ${g.counts.join('/')}`);
    expect([...g.counts].sort((a, b) => a - b)).toEqual([0, 0, 3_000]);
    expect(drops(g)).toEqual([0, 0, 0]);
  });

  it('an index ≥ the group size falls back to the hash (ret #7 on 3 sockets)', async () => {
    const g = await openGroup(3);
    const clients = await openClients(30);
    attachProgram(g.fds[0]!, [insn(0x06, 7)]);
    await sendPaced(
      g,
      300,
      () => clients[0]!,
      (i) => `f${i}`,
    );
    expect([...g.counts].sort((a, b) => a - b)).toEqual([0, 0, 300]);
    g.reset();
    await sendPaced(
      g,
      300,
      (i) => clients[i % 30]!,
      (i) => `f${i}`,
    );
    expect(g.counts.filter((n) => n > 0).length).toBeGreaterThan(1);
  });

  it("cpu: the socket is the receiving CPU mod N (loopback: the sender's CPU)", async () => {
    const cpus = availableParallelism();
    const lib = koffi.load('libc.so.6');
    const getaff = lib.func('int sched_getaffinity(int, size_t, void *)');
    const setaff = lib.func('int sched_setaffinity(int, size_t, void *)');
    const saved = Buffer.alloc(128);
    expect(getaff(0, saved.length, saved)).toBe(0);
    const allowed = Array.from({ length: Math.min(cpus, 3) }, (_, i) => i).filter((i) => (saved[i >> 3]! >> (i & 7)) & 1);
    const g = await openGroup(3);
    const [c] = await openClients(1);
    attachSteering(g.fds[0]!, 'cpu', 3);
    const seen: string[] = [];
    try {
      for (const cpu of allowed) {
        const mask = Buffer.alloc(128);
        mask[cpu >> 3] = 1 << (cpu & 7);
        expect(setaff(0, mask.length, mask)).toBe(0);
        g.reset();
        await sendPaced(
          g,
          500,
          () => c!,
          (i) => `c${i}`,
        );
        seen.push(`cpu ${cpu}: ${g.counts.join('/')}`);
        expect(g.counts[cpu % 3]).toBe(500);
      }
    } finally {
      setaff(0, saved.length, saved);
    }
    console.log(`cpu: ${seen.join('; ')}`);
    expect(allowed.length).toBeGreaterThan(0);
  });

  it('explains a bad fd, and accepts the attach on any member', async () => {
    const g = await openGroup(2);
    let err: unknown;
    try {
      attachSteering(100_000, 'random', 2);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShardgramError);
    expect((err as ShardgramError).code).toBe('ERR_SHARDGRAM_SYSCALL');
    expect((err as ShardgramError).errnoName).toBe('EBADF');
    expect((err as ShardgramError).message).toMatch(/SO_ATTACH_REUSEPORT_CBPF.*EBADF.*not an open socket/);
    for (const fd of g.fds) expect(() => attachSteering(fd, 'key', 2, { delimiter: '|', maxLength: 32 })).not.toThrow();
  });
});
