/**
 * systemd socket activation, through the real thing: Debian's
 * `systemd-socket-activate --datagram` opens the socket, waits for the first
 * datagram and execs `shardgram serve` with LISTEN_FDS/LISTEN_PID. No systemd as
 * PID 1 is needed. `serve` must use the socket passed (no socket of its own on
 * the port), and refuse, before any worker starts, more workers than a socket
 * without SO_REUSEPORT can have.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { BIN, ROOT } from '@shardgram/test-kit/cli';
import { isAlive, socketInodesOf, udpInodesOnPort } from '@shardgram/test-kit/procfs';
import { waitFor } from '@shardgram/test-kit/wait';

const ACTIVATE = '/usr/bin/systemd-socket-activate';
const have = existsSync(ACTIVATE);
if (!have) console.log(`socket activation tests skipped: ${ACTIVATE} is missing (Debian package systemd)`);

interface Activated {
  child: ChildProcess;
  port: number;
  /** Inodes of the sockets systemd-socket-activate opened, in the order passed. */
  inodes: number[];
  out: () => string;
  err: () => string;
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: ChildProcess[] = [];

afterEach(() => {
  for (const c of started.splice(0)) if (c.pid && isAlive(c.pid)) c.kill('SIGKILL');
});

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(r));
  return port;
}

/** `systemd-socket-activate --datagram -l 127.0.0.1:P` × `listens`, then `serve echo --port P …`, listening. */
async function activate(serveArgs: string[], listens = 1): Promise<Activated> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const ls = Array.from({ length: listens }, () => ['-l', `127.0.0.1:${port}`]).flat();
    const child = spawn(ACTIVATE, ['--datagram', ...ls, process.execPath, BIN, 'serve', 'echo', '--port', String(port), ...serveArgs], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('close', (code, signal) => r({ code, signal })));
    let exited = false;
    void closed.then(() => (exited = true));
    const listening = (): number[] => socketInodesOf(child.pid!).filter((i) => udpInodesOnPort(port).includes(i));
    await waitFor(() => exited || listening().length === listens, 10_000);
    if (listening().length === listens) return { child, port, inodes: listening(), out: () => out, err: () => err, closed };
    // The port was taken between our probe and its bind: another one.
    if (attempt === 3) throw new Error(`systemd-socket-activate did not listen on 127.0.0.1:${port}: ${err}`);
  }
}

/** Sends one datagram from a fresh client and resolves with the reply (undefined after `timeoutMs`). */
async function probe(port: number, text: string, timeoutMs = 20_000): Promise<string | undefined> {
  const c = dgram.createSocket('udp4');
  await new Promise<void>((r) => c.bind(0, '127.0.0.1', r));
  try {
    const reply = new Promise<string | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), timeoutMs);
      c.once('message', (m) => {
        clearTimeout(t);
        resolve(m.toString());
      });
    });
    c.send(text, port, '127.0.0.1');
    return await reply;
  } finally {
    c.close();
  }
}

function readyLine(out: string): { pid: number; port: number; workers: number[] } | undefined {
  const line = out.split('\n').find((l) => l.startsWith('{'));
  return line ? (JSON.parse(line) as { pid: number; port: number; workers: number[] }) : undefined;
}

describe.skipIf(!have)('socket activation (systemd-socket-activate --datagram)', () => {
  it('serve echo uses the socket passed: the datagram that woke it is echoed, and no socket of its own is on the port', async () => {
    const a = await activate(['--ready-json']);
    expect(a.inodes).toHaveLength(1);
    const [passed] = a.inodes;
    // The first datagram makes systemd-socket-activate exec serve; it waits in the passed socket's queue.
    const reply = await probe(a.port, 'wake up');
    expect(reply, `no reply; stderr:\n${a.err()}`).toBeDefined();
    expect(await waitFor(() => readyLine(a.out()) !== undefined, 10_000)).toBe(true);
    const ready = readyLine(a.out())!;
    // exec: the process systemd-socket-activate was is now the supervisor.
    expect(ready.pid).toBe(a.child.pid);
    expect(ready.port).toBe(a.port);
    expect(ready.workers).toHaveLength(1);
    expect(reply).toBe(`Hello from worker 0 (pid ${ready.workers[0]}): wake up`);
    // The kernel's view: one socket on the port, the one passed, open in the supervisor and its worker.
    expect(udpInodesOnPort(a.port)).toEqual([passed]);
    expect(socketInodesOf(ready.pid)).toContain(passed);
    expect(socketInodesOf(ready.workers[0]!)).toContain(passed);
    expect(await probe(a.port, 'again')).toBe(`Hello from worker 0 (pid ${ready.workers[0]}): again`);

    a.child.kill('SIGTERM');
    const end = await a.closed;
    expect(end, a.err()).toEqual({ code: 0, signal: null });
    expect(a.err()).toMatch(/stopped: 2 datagrams received/);
    expect(isAlive(ready.workers[0]!)).toBe(false);
  });

  it('--workers 2 on a passed socket without SO_REUSEPORT fails at once, saying what to set, before any worker starts', async () => {
    const a = await activate(['--workers', '2', '--ready-json']);
    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const replies: string[] = [];
    client.on('message', (m) => replies.push(m.toString()));
    try {
      const t0 = Date.now();
      client.send('wake up', a.port, '127.0.0.1');
      const end = await a.closed;
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect(end.signal).toBeNull();
      expect(end.code).not.toBe(0);
      expect(a.err()).toMatch(/the socket passed for udp 127\.0\.0\.1:\d+ has no SO_REUSEPORT, so 2 workers cannot share the port/);
      expect(a.err()).toMatch(/ReusePort=yes/);
      expect(a.err()).toMatch(/--workers 1/);
      expect(a.err()).not.toMatch(/worker \d+ ready/);
      expect(a.out()).toBe('');
      // It held the only copy of the socket: gone with it, unanswered.
      expect(udpInodesOnPort(a.port)).toEqual([]);
      expect(replies).toEqual([]);
    } finally {
      client.close();
    }
  });

  it('two sockets passed on one port without SO_REUSEPORT (SO_REUSEADDR only) are refused the same way', async () => {
    const a = await activate(['--ready-json'], 2);
    expect(a.inodes).toHaveLength(2);
    void probe(a.port, 'wake up', 2_000);
    const end = await a.closed;
    expect(end.code).not.toBe(0);
    expect(a.err()).toMatch(/2 of the 2 sockets passed for udp 127\.0\.0\.1:\d+ have no SO_REUSEPORT, so 2 workers cannot share the port/);
    expect(a.err()).toMatch(/ReusePort=yes/);
    expect(a.err()).not.toMatch(/worker \d+ ready/);
  });
});
