/**
 * A hand-over whose other side is lost: one owner of the sockets at every instant, a
 * loss seen at once, nothing lost uncounted; and the control socket's own failures
 * (a path that is not a socket, idle connections, a file left behind, a second takeover).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../src/control/client.js';
import { BIN, ROOT, runCli, startServe, type Serving } from '@shardgram/test-kit/cli';
import { openClients, closeAll, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

// A scripted new side of a hand-over that speaks the real protocol and misbehaves on cue.
const TAKEOVER_PEER = fileURLToPath(new URL('./fixtures/takeover-peer.js', import.meta.url));

const running: Serving[] = [];
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
  }
  for (const s of running.splice(0)) if (s.child.exitCode === null && s.child.signalCode === null) await s.stop('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function serve(args: string[], workers: number): Promise<Serving> {
  const s = await startServe(args, workers);
  running.push(s);
  return s;
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sg-handover-'));
  dirs.push(d);
  return d;
}

/** A `serve … --takeover` process, with a promise per line of its stderr that matches. */
function startTakeover(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'serve', ...args, '--takeover', '--ready-json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let err = '';
  let out = '';
  const watchers: { re: RegExp; resolve: () => void }[] = [];
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of watchers.filter((x) => x.re.test(err))) {
      watchers.splice(watchers.indexOf(w), 1);
      w.resolve();
    }
  });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    exited,
    stderr: () => err,
    ready: () => out.split('\n').find((l) => l.startsWith('{"ready":true')),
    /** Resolves when stderr has matched `re`. */
    saw: (re: RegExp) => new Promise<void>((resolve) => (re.test(err) ? resolve() : watchers.push({ re, resolve }))),
  };
}

/** Resolves on the service's ready line; rejects if it exits first or `ms` pass. */
function readyWithin(t: ReturnType<typeof startTakeover>, ms: number): Promise<{ stats: string; control: string; workers: number[] }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within ${ms} ms:\n${t.stderr()}`)), ms);
    const check = (): void => {
      const line = t.ready();
      if (!line) return;
      clearTimeout(timer);
      t.child.stdout!.off('data', check);
      resolve(JSON.parse(line) as { stats: string; control: string; workers: number[] });
    };
    t.child.stdout!.on('data', check);
    void t.exited.then(() => {
      clearTimeout(timer);
      if (!t.ready()) reject(new Error(`exited before its ready line:\n${t.stderr()}`));
      else check();
    });
    check();
  });
}

describe('a hand-over that loses its other side', () => {
  it('old side SIGKILLed after its offer: the new side says so at once, owns the sockets, and a stop counts every datagram', async () => {
    const old = await serve(['discard', '--port', '0', '--workers', '2'], 2);
    const next = startTakeover(['discard', '--port', String(old.port), '--workers', '2', '--stats-port', '0']);
    await next.saw(/takeover: received 2 sockets/);
    const killedAt = Date.now();
    old.child.kill('SIGKILL');
    // Seen at once (the connection's close and the old pid's exit), not after a 60 s wait.
    const ready = await readyWithin(next, 15_000);
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(next.stderr()).toMatch(
      new RegExp(`takeover: the old service \\(pid ${old.child.pid}\\) exited during the hand-over; this service now owns the sockets alone`),
    );
    expect(next.stderr()).toMatch(
      new RegExp(`takeover: pid ${old.child.pid} died during the hand-over; this service serves udp 127\\.0\\.0\\.1:${old.port} alone`),
    );
    expect(next.stderr()).not.toMatch(/has handed over/);
    // It serves: its stats port and control socket are up, and it answers as the owner.
    expect((await controlRequest(ready.control, { op: 'status' })).pid).toBe(next.child.pid);
    const n = 2000;
    const clients = await openClients(8);
    for (let i = 0; i < n; i++) await send(clients[i % 8]!, `m${i}`, old.port);
    closeAll(clients);
    next.child.kill('SIGTERM');
    expect(await next.exited).toBe(0);
    // Every datagram sent to the group is in the stop's account: received, dropped, or read out at close.
    const m = /stopped: (\d+) datagrams received, (\d+) dropped by the kernel, (\d+) still queued at close/.exec(next.stderr());
    expect(m, next.stderr()).not.toBeNull();
    expect(Number(m![1]) + Number(m![2]) + Number(m![3])).toBe(n);
    expect(next.stderr()).not.toMatch(/stay open/);
  });

  it("new side stopped past the old side's patience: the old one serves on; the new one wakes, leaves the group untouched and exits non-zero", async () => {
    const old = await serve(['echo', '--port', '0', '--workers', '2', '--handover-timeout', '2'], 2);
    const next = startTakeover(['echo', '--port', String(old.port), '--workers', '2', '--stats-port', '0']);
    await next.saw(/takeover: received 2 sockets/);
    next.child.kill('SIGSTOP');
    expect(
      await waitFor(
        () => /takeover abandoned: the new service \(pid \d+\) did not say its workers read within 2 s; this service goes on serving/.test(old.stderr()),
        15_000,
      ),
      old.stderr(),
    ).toBe(true);
    next.child.kill('SIGCONT');
    expect(await next.exited).not.toBe(0);
    expect(next.stderr()).toMatch(/gave up on this service .*and serves on; this one leaves the group untouched/);
    expect(next.ready()).toBeUndefined();
    // One owner: the old service answers every datagram, from its own workers, and keeps its control socket.
    expect((await controlRequest(old.control, { op: 'status' })).pid).toBe(old.child.pid);
    const [c] = await openClients(1);
    const replies: string[] = [];
    c!.on('message', (m) => replies.push(m.toString()));
    for (let i = 0; i < 20; i++) await send(c!, `after ${i}`, old.port);
    expect(await waitFor(() => replies.length === 20, 10_000)).toBe(true);
    closeAll([c!]);
    const pids = new Set(replies.map((r) => Number(/pid (\d+)/.exec(r)?.[1])));
    for (const p of pids) expect(old.pids).toContain(p);
    expect(old.child.exitCode).toBe(null);
  });

  it('a second takeover during one is told which state refused it, and the first completes', async () => {
    const old = await serve(['discard', '--port', '0', '--workers', '1'], 1);
    const first = startTakeover(['discard', '--port', String(old.port), '--workers', '1']);
    await first.saw(/takeover: received 1 sockets/);
    first.child.kill('SIGSTOP');
    const second = await runCli(['serve', 'discard', '--port', String(old.port), '--takeover'], { timeoutMs: 30_000 });
    expect(second.code).not.toBe(0);
    expect(second.stderr).toMatch(new RegExp(`the running service said: takeover refused: the service is handing over to pid ${first.child.pid}`));
    expect(second.stderr).not.toMatch(/takeover refused: takeover refused/);
    first.child.kill('SIGCONT');
    await readyWithin(first, 20_000);
    const oldExit = await new Promise<number | null>((r) => (old.child.exitCode !== null ? r(old.child.exitCode) : old.child.once('exit', (c) => r(c))));
    expect(oldExit).toBe(0);
  });
});

describe('the control socket', () => {
  it('refuses a --control path that is a regular file, and leaves the file as it was', async () => {
    const dir = tempDir();
    const file = join(dir, 'precious.txt');
    writeFileSync(file, 'keep me\n');
    const r = await runCli(['serve', 'discard', '--port', '0', '--control', file], { timeoutMs: 30_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(`the control socket path ${file.replace(/[.]/g, '\\.')} exists and is not a socket \\(a regular file\\); refusing to replace it`),
    );
    expect(readFileSync(file, 'utf8')).toBe('keep me\n');
  });

  it('is removed when a service that arrived by takeover stops', async () => {
    const dir = tempDir();
    const path = join(dir, 'c.sock');
    const old = await serve(['discard', '--port', '0', '--workers', '1', '--control', path], 1);
    const next = await serve(['discard', '--port', String(old.port), '--workers', '1', '--control', path, '--takeover'], 1);
    expect(await waitFor(() => old.child.exitCode !== null, 10_000)).toBe(true);
    expect((await controlRequest(path, { op: 'status' })).pid).toBe(next.child.pid);
    const r = await next.stop('SIGTERM');
    expect(r.code).toBe(0);
    expect(existsSync(path)).toBe(false);
  });

  it('idle connections never block a change: the longest idle makes room', async () => {
    const dir = tempDir();
    const path = join(dir, 'c.sock');
    const s = await serve(['discard', '--port', '0', '--workers', '1', '--control', path], 1);
    const idle: net.Socket[] = [];
    for (let i = 0; i < 16; i++) {
      const c = net.connect(path);
      c.on('error', () => undefined);
      await new Promise<void>((r) => c.once('connect', () => r()));
      idle.push(c);
    }
    const t0 = Date.now();
    const r = await runCli(['scale', '--control', path, '--workers', '2'], { timeoutMs: 30_000 });
    expect(r.stderr + r.stdout).not.toMatch(/without answering/);
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(s.stderr()).toMatch(/control: 16 connections open; closed the longest idle one \(pid \d+, idle [\d.]+ s\) to make room/);
    for (const c of idle) c.destroy();
  });
});

describe('the old side of a hand-over', () => {
  it('restarts its workers on its sockets, queues intact, when the new side dies after done and before its ack', async () => {
    const old = await serve(['echo', '--port', '0', '--workers', '2'], 2);
    const peer = spawn(process.execPath, [TAKEOVER_PEER, old.control, 'die-after-done'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(peer);
    let out = '';
    peer.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const peerExit = await new Promise<number | null>((r) => peer.once('exit', (c) => r(c)));
    expect(out).toMatch(/^offer 2 2\ndone\n$/);
    expect(peerExit).toBe(0);
    // Sent while the old workers may be stopped: queued on the sockets the old side still holds.
    const [c] = await openClients(1);
    const replies: string[] = [];
    c!.on('message', (m) => replies.push(m.toString()));
    for (let i = 0; i < 50; i++) await send(c!, `q${i}`, old.port);
    expect(await waitFor(() => replies.length === 50, 15_000), `${replies.length} of 50 answered\n${old.stderr()}`).toBe(true);
    closeAll([c!]);
    expect(old.stderr()).toMatch(
      /takeover: the new service \(pid \d+\) died before it confirmed the hand-over; restarting this service's workers on its sockets/,
    );
    expect(old.child.exitCode).toBe(null);
    expect((await controlRequest(old.control, { op: 'status' })).pid).toBe(old.child.pid);
    // New processes answer now, on the same sockets.
    const pids = new Set(replies.map((r) => Number(/pid (\d+)/.exec(r)?.[1])));
    for (const p of pids) expect(old.pids).not.toContain(p);
  });
});
