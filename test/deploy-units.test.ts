/**
 * The example systemd units under deploy/systemd/: systemd's own checker accepts
 * them (`systemd-analyze verify` runs without systemd as PID 1), and they say what
 * shardgram needs (ReusePort=yes, the fd store, Type=notify, the same address and
 * port in the socket and in ExecStart).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, ROOT } from '@shardgram/test-kit/cli';

const ANALYZE = '/usr/bin/systemd-analyze';
const DIR = join(ROOT, 'deploy', 'systemd');
const SOCKET = 'shardgram-echo.socket';
const SERVICE = 'shardgram-echo.service';

const read = (name: string): string => readFileSync(join(DIR, name), 'utf8');
const values = (unit: string, key: string): string[] =>
  unit
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1).trim());

/** Runs `systemd-analyze verify` on copies of `units` (name → text) in a temp dir. */
function verify(units: Record<string, string>): { status: number | null; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sg-units-'));
  try {
    for (const [name, text] of Object.entries(units)) writeFileSync(join(dir, name), text);
    const r = spawnSync(ANALYZE, ['verify', ...Object.keys(units).map((n) => join(dir, n))], { encoding: 'utf8', timeout: 30_000 });
    // Complaints about the host's own unit files (a Debian package's, say) are not about ours.
    const ours = (r.stderr ?? '')
      .split('\n')
      .filter((l) => l.trim() !== '' && !(/^\/\S+\.(service|socket|target|timer|mount):\d+:/.test(l) && !l.startsWith(dir)));
    return { status: r.status, stderr: ours.join('\n') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether verify works here at all (a trivial unit passes), and why not. */
function verifyWorks(): string | undefined {
  if (!existsSync(ANALYZE)) return `${ANALYZE} is missing (Debian package systemd)`;
  const r = verify({ 'sg-probe.service': '[Service]\nType=oneshot\nExecStart=/bin/true\n' });
  return r.status === 0 && r.stderr.trim() === '' ? undefined : `systemd-analyze verify cannot run here: ${r.stderr.trim() || `exit ${r.status}`}`;
}

const cannot = verifyWorks();
if (cannot) console.log(`unit verification skipped: ${cannot}`);

describe('deploy/systemd units', () => {
  it.skipIf(cannot !== undefined)('pass systemd-analyze verify, and a broken key does not', () => {
    // ExecStart must name an executable that exists: this checkout's.
    const service = read(SERVICE).replace('/usr/local/bin/shardgram', BIN);
    const ok = verify({ [SOCKET]: read(SOCKET), [SERVICE]: service });
    expect(ok.stderr.trim()).toBe('');
    expect(ok.status).toBe(0);
    const broken = verify({ [SOCKET]: read(SOCKET).replace(/^ReusePort=yes$/m, 'ReusePort=perhaps'), [SERVICE]: service });
    expect(broken.stderr).toMatch(/ReusePort|boolean/);
  });

  it('say what shardgram needs: a SO_REUSEPORT group, Type=notify with the fd store, the same address and port', () => {
    const socket = read(SOCKET);
    const service = read(SERVICE);
    expect(values(socket, 'ReusePort')).toEqual(['yes']);
    const listens = values(socket, 'ListenDatagram');
    expect(listens.length).toBeGreaterThan(1);
    expect(new Set(listens).size).toBe(1);
    expect(values(socket, 'ReceiveBuffer')).toHaveLength(1);
    expect(values(service, 'Type')).toEqual(['notify']);
    expect(values(service, 'NotifyAccess')).toEqual(['main']);
    expect(Number(values(service, 'FileDescriptorStoreMax')[0])).toBeGreaterThanOrEqual(listens.length);
    expect(values(service, 'Restart')).toEqual(['on-failure']);
    expect(values(service, 'KillMode')).toEqual(['mixed']);
    const exec = values(service, 'ExecStart')[0]!;
    const [address, port] = [/--address (\S+)/.exec(exec)?.[1], /--port (\d+)/.exec(exec)?.[1]];
    expect(`${address}:${port}`).toBe(listens[0]);
    // No --workers: as many workers as the socket unit has sockets.
    expect(exec).not.toMatch(/--workers/);
    expect(values(service, 'ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
  });
});
