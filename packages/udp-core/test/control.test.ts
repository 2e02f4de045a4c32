/**
 * The control socket: the owner changes a running service through it; nobody else can.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../src/control/client.js';
import { startControlServer, type ControlServer } from '../src/control/server.js';
import { runCli, startServe, type Serving } from '@shardgram/test-kit/cli';
import { waitFor } from '@shardgram/test-kit/wait';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const PY = '/usr/bin/python3';
const skipNobody = !isRoot ? 'needs root to connect as another uid (nobody)' : !existsSync(PY) ? `needs ${PY}` : undefined;
if (skipNobody) console.log(`skipping the foreign-uid control test: ${skipNobody}`);

// Connects to a unix socket, sends one request line, prints the answer line.
const PY_ASK = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect failed", e.errno, flush=True); sys.exit(3)
s.sendall(sys.argv[2].encode() + b"\\n")
print(s.makefile().readline().strip(), flush=True)
`;

let serving: Serving | undefined;
let server: ControlServer | undefined;
let dir: string | undefined;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
  await server?.close();
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function controlPathOf(s: Serving): string {
  return s.control;
}

describe('the control socket', () => {
  it('is printed at start, 0600 in a 0700 directory, and answers its owner', async () => {
    serving = await startServe(['discard', '--port', '0', '--workers', '2'], 2);
    const path = controlPathOf(serving);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(path)).mode & 0o777).toBe(0o700);
    const status = await controlRequest(path, { op: 'status' });
    expect(status.port).toBe(serving.port);
    expect((status.workers as number[]).length).toBe(2);
    const resized = await controlRequest(path, { op: 'resize', workers: 3 });
    expect(resized).toMatchObject({ from: 2, to: 3 });
  });

  it('answers a bad request with an error and stays up', async () => {
    serving = await startServe(['discard', '--port', '0', '--workers', '1', '--control', join((dir = mkdtempSync(join(tmpdir(), 'sg-ctl-'))), 'c.sock')], 1);
    const path = controlPathOf(serving);
    const raw = await new Promise<string>((resolve) => {
      const c = net.connect(path, () => c.write('{"op":"explode"}\nnot json\n{"op":"resize","workers":"x"}\n'));
      let buf = '';
      c.on('data', (d) => {
        buf += d.toString();
        if (buf.split('\n').length > 3) {
          c.destroy();
          resolve(buf);
        }
      });
    });
    expect(
      raw
        .split('\n')
        .slice(0, 3)
        .map((l) => JSON.parse(l).ok),
    ).toEqual([false, false, false]);
    expect(raw).toContain('unknown op');
    await expect(controlRequest(path, { op: 'resize', workers: 0 })).rejects.toThrow(/workers/);
    expect((await controlRequest(path, { op: 'status' })).port).toBe(serving.port);
  });

  it.skipIf(skipNobody)('refuses another uid by its SO_PEERCRED even when the file modes would let it in', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-ctl-'));
    const path = join(dir, 'ctl', 'c.sock');
    const logs: string[] = [];
    let resized = 0;
    server = await startControlServer({ status: () => ({ fine: true }), resize: async () => ({ from: 1, to: ++resized }) }, path, (l) => logs.push(l));
    // Open the files up, as a careless operator might: the peer check still holds.
    chmodSync(dir, 0o755);
    chmodSync(dirname(path), 0o755);
    chmodSync(path, 0o666);
    // Not spawnSync: the server answers from this very process.
    const child = spawn(PY, ['-c', PY_ASK, path, JSON.stringify({ op: 'resize', workers: 32 })], { uid: NOBODY, gid: NOBODY, timeout: 10_000 });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    await new Promise((r) => child.once('close', r));
    const r = { stdout };
    expect(r.stdout).toMatch(/"ok":false/);
    expect(r.stdout).toMatch(/permission denied: this service is controlled by uid 0 only; you are uid 65534/);
    expect(resized).toBe(0);
    expect(logs.join('\n')).toMatch(/refused a connection from uid 65534/);
    // The owner still gets in.
    expect(await controlRequest(path, { op: 'resize', workers: 2 })).toMatchObject({ to: 1 });
  });

  it('replaces a stale socket file, and refuses to take over a live one', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-ctl-'));
    const path = join(dir, 'c.sock');
    // A stale socket: bound and listened on by a process that then died without cleaning up.
    const made = spawnSync(PY, ['-c', 'import socket,os,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); os._exit(0)', path]);
    expect(made.status).toBe(0);
    expect(existsSync(path)).toBe(true);
    server = await startControlServer({ status: () => ({ n: 1 }) }, path, () => {});
    expect((await controlRequest(path, { op: 'status' })).n).toBe(1);
    await expect(startControlServer({ status: () => ({ n: 2 }) }, path, () => {})).rejects.toThrow(/belongs to a running service/);
  });

  it('a takeover handler that throws closes only its connection: logged, and the server answers the next request', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-ctl-'));
    const path = join(dir, 'c.sock');
    const logs: string[] = [];
    server = await startControlServer(
      {
        status: () => ({ n: 7 }),
        takeover: () => {
          throw new Error('hand-off broke');
        },
      },
      path,
      (l) => logs.push(l),
    );
    const closed = await new Promise<string>((resolve) => {
      const c = net.connect(path, () => c.write(`${JSON.stringify({ op: 'takeover', pid: process.pid })}\n`));
      let got = '';
      c.on('data', (d) => (got += d.toString()));
      c.on('error', () => undefined);
      c.on('close', () => resolve(got));
    });
    expect(closed).toBe('');
    expect(logs.join('\n')).toMatch(/control: a request failed \(.*hand-off broke.*\); closing its connection/);
    expect((await controlRequest(path, { op: 'status' })).n).toBe(7);
  });

  it('scale finds the service by its UDP port, and says what it looked for when there is none', async () => {
    serving = await startServe(['discard', '--port', '0', '--workers', '2'], 2);
    const r = await runCli(['scale', '--port', String(serving.port), '--workers', '1']);
    expect(r.stdout).toBe('resized from 2 to 1 workers\n');
    expect(await waitFor(() => /resized: 2 -> 1 workers/.test(serving!.output()), 5_000)).toBe(true);
    const none = await runCli(['scale', '--port', '1', '--workers', '1']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no control socket for UDP port 1 in \S+: is a service running there/);
    dir = mkdtempSync(join(tmpdir(), 'sg-ctl-'));
    writeFileSync(join(dir, 'not-a-socket'), '');
    const dead = await runCli(['scale', '--control', join(dir, 'not-a-socket'), '--workers', '1']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/no shardgram service answers on the control socket/);
  });
});
