import dgram from 'node:dgram';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ShardgramError, Supervisor } from '@shardgram/udp-core';
import { openReusePortSocket } from '@shardgram/udp-core/sockets';
import { BIN, runCli, startServe, type Serving } from '@shardgram/test-kit/cli';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

// The foreign process is the system python3 (readable by every uid, wherever the repo is cloned).
const PY = '/usr/bin/python3';
const PY_JOIN = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    print("bind failed", e.errno, flush=True); sys.exit(3)
print("joined", s.getsockname()[1], flush=True)
if len(sys.argv) > 2:
    sys.stdin.read()  # hold the port until the test closes our stdin
`;
const skipForeign = !isRoot ? 'needs root to start a process as another uid (nobody)' : !existsSync(PY) ? `needs ${PY}` : undefined;
if (skipForeign) console.log(`skipping foreign-uid tests: ${skipForeign}`);

/** Whether uid nobody can read this checkout (then our own CLI can run as nobody too). */
function nobodyReadsRepo(): boolean {
  if (!isRoot) return false;
  const r = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(BIN)})`], { uid: NOBODY, gid: NOBODY });
  return r.status === 0;
}

let serving: Serving | undefined;
let plain: dgram.Socket | undefined;
afterEach(async () => {
  await serving?.stop('SIGTERM');
  serving = undefined;
  plain?.close();
  plain = undefined;
});

async function bindPlain(port = 0): Promise<number> {
  plain = dgram.createSocket('udp4');
  await new Promise<void>((r) => plain!.bind(port, '127.0.0.1', () => r()));
  return plain.address().port;
}

describe('who may join the group', () => {
  it('serve fails with a clear error, and exit 1, when a socket without SO_REUSEPORT holds the port', async () => {
    const port = await bindPlain();
    const r = await runCli(['serve', 'discard', '--port', String(port), '--workers', '2'], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    const line = r.stderr.trim();
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain(`UDP 127.0.0.1:${port} is held by a socket without SO_REUSEPORT`);
    expect(line).toContain(`pid ${process.pid} (`); // it names the holder
    expect(line).toMatch(/choose another --port/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('the library error says which case it is, with errno and uid', () => {
    return bindPlain().then((port) => {
      let err: unknown;
      try {
        openReusePortSocket({ address: '127.0.0.1', port });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ShardgramError);
      const e = err as ShardgramError;
      expect(e.code).toBe('ERR_SHARDGRAM_PORT_HELD');
      expect(e.errnoName).toBe('EADDRINUSE');
      expect(e.port).toBe(port);
      expect(e.holders?.[0]?.pids).toContain(process.pid);
    });
  });

  it('a second service of the same user refuses to join a running group (it would split its traffic)', async () => {
    serving = await startServe(['discard', '--port', '0', '--workers', '2'], 2);
    const r = await runCli(['serve', 'discard', '--port', String(serving.port), '--workers', '1'], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`UDP 127.0.0.1:${serving.port} is already served by SO_REUSEPORT sockets of this user`);
    expect(r.stderr).toContain(`pid ${serving.pids[0]}`);
    expect(r.stderr).toMatch(/start this one with --takeover; otherwise stop it, or choose another --port/);
  });

  it.skipIf(skipForeign)('a process of another uid cannot join our group, and our workers keep all the traffic', async () => {
    serving = await startServe(['discard', '--port', '0', '--workers', '2', '--stats-port', '0'], 2);
    const joined = spawnSync(PY, ['-c', PY_JOIN, String(serving.port)], { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 10_000 });
    expect(joined.stdout.trim()).toBe('bind failed 98'); // EADDRINUSE
    expect(joined.status).toBe(3);
    if (nobodyReadsRepo()) {
      // Our own CLI, run as nobody, explains it.
      const r = await runCli(['serve', 'discard', '--port', String(serving.port), '--workers', '1'], { uid: NOBODY, gid: NOBODY, timeoutMs: 20_000 });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`UDP 127.0.0.1:${serving.port} is in use by a socket of another user`);
      expect(r.stderr).toMatch(/uid 0 root/);
      expect(r.stderr).toMatch(/only admits sockets of the same effective uid, and we run as uid 65534/);
    } else {
      console.log('uid nobody cannot read this checkout: the CLI-as-nobody half of this test is left out');
    }
    // Our group was never joined: all traffic from 200 ports reaches our workers.
    const statsUrl = serving.stats!;
    const clients = await openClients(200);
    try {
      for (const c of clients) await send(c, 'x', serving.port);
      const ok = await waitFor(
        async () => {
          const s = (await (await fetch(`${statsUrl}/stats`)).json()) as { total: { datagrams: number } };
          return s.total.datagrams === 200;
        },
        10_000,
        100,
      );
      expect(ok).toBe(true);
    } finally {
      closeAll(clients);
    }
  });

  it.skipIf(skipForeign)('we cannot join a group that belongs to another uid, and the error names its owner', async () => {
    const holder = spawn(PY, ['-c', PY_JOIN, '0', 'hold'], { uid: NOBODY, gid: NOBODY, stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        holder.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (!out.includes('\n')) return;
          const m = /joined (\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
          else reject(new Error(out));
        });
      });
      const sup = new Supervisor({ app: 'discard', port, workers: 2, log: () => {} });
      let err: unknown;
      try {
        await sup.start();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ShardgramError);
      const e = err as ShardgramError;
      expect(e.code).toBe('ERR_SHARDGRAM_FOREIGN_UID');
      expect(e.uid).toBe(0);
      expect(e.holders?.some((h) => h.uid === NOBODY && h.user === 'nobody' && h.pids.includes(holder.pid!))).toBe(true);
      expect(e.message).toMatch(/Run shardgram as uid 65534 \(nobody\)/);
      // The CLI says the same in one line and exits 1.
      const r = await runCli(['serve', 'discard', '--port', String(port), '--workers', '2'], { timeoutMs: 20_000 });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/is in use by a socket of another user: 127\.0\.0\.1:\d+ \(uid 65534 nobody by pid \d+ \(python3/);
    } finally {
      const gone = new Promise((r) => (holder.exitCode !== null || holder.signalCode !== null ? r(null) : holder.once('exit', r)));
      holder.stdin.end();
      holder.kill();
      await gone; // its socket is closed before the next test binds
    }
  });
});
