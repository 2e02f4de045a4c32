/**
 * Resize and reload lose nothing unaccounted, by the kernel's own counters: in a network
 * namespace of its own (where every UDP datagram is this test's), a service under a
 * steady echo load is reloaded and resized 4 → 1 → 3 → 2 → 4 again and again, then
 * stopped while the load still runs. What the kernel delivered to a socket (read,
 * dropped, or queued and freed unread: /proc/net/snmp's Udp counters against what was
 * sent) must equal what the service counts (received + kernelDrops + droppedAtClose),
 * exactly; and nothing may have been freed unread with a closing socket. The load runs on
 * a thread of its own, so that datagrams arrive while a socket closes: before leaving
 * sockets were sealed, about 2 runs in 3 had one freed unread.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { run } from '@shardgram/test-kit/netns';

const FIXTURE = fileURLToPath(new URL('./fixtures/shrink-accounting.js', import.meta.url));

function unavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'needs root to create a network namespace';
  if (spawnSync('sh', ['-c', 'command -v ip']).status !== 0) return 'needs the ip command (iproute2)';
  return undefined;
}

interface Outcome {
  reps: number;
  changesUnderLoad: number;
  ms: number;
  sent: number;
  kernel: { read: number; dropped: number; noSocket: number; freedUnread: number };
  service: { received: number; kernelDrops: number; droppedAtClose: number };
  unaccounted: number;
  logs: string[];
}

/**
 * The run: REPS sequences, and more than MIN_REPS only while BUDGET_MS has not passed
 * (here 20 took 33 to 46 s on a 2-core machine busy with other work: up to 2.3 s each). The
 * load must run until the service has stopped, however slow the machine: it may run for
 * MIN_REPS sequences of REP_MS each (3.5 times what one takes here), or the budget and one
 * more, and the stop. Only a run slower than that fails; a normal one is not longer.
 */
const REPS = 20;
const MIN_REPS = 16;
const BUDGET_MS = 50_000;
const REP_MS = 8000;
const LOAD_MS = Math.max(MIN_REPS * REP_MS, BUDGET_MS + REP_MS) + 10_000;
/** The fixture's end after the load's: the sender's sockets read dry (at most 10 s), the counters. */
const KILL_MS = LOAD_MS + 20_000;

const why = unavailable();
if (why) console.log(`skipped: ${why}`);

describe.skipIf(why !== undefined)("resize and reload under load, by the kernel's counters (own network namespace)", { timeout: KILL_MS + 10_000 }, () => {
  it('delivered to a socket == received + kernelDrops + droppedAtClose, exactly, over at least 16 reload + 4→1→3→2→4 sequences', async () => {
    const ns = `sgshrink${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
    const made = await run('ip', ['netns', 'add', ns]);
    expect(made.code, made.stderr).toBe(0);
    try {
      expect((await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])).code).toBe(0);
      const r = await run(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          FIXTURE,
          JSON.stringify({ reps: REPS, minReps: MIN_REPS, budgetMs: BUDGET_MS, loadMs: LOAD_MS, rate: 80_000, loadThread: true }),
        ],
        {
          timeoutMs: KILL_MS,
        },
      );
      expect(r.code, r.stderr).toBe(0);
      const o = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Outcome;
      console.log(JSON.stringify(o));
      expect(o.reps).toBeGreaterThanOrEqual(MIN_REPS);
      // Every sequence ran under the load, and the stop too (the load's last datagrams found no socket).
      expect(o.changesUnderLoad).toBe(o.reps);
      expect(o.kernel.noSocket).toBeGreaterThan(0);
      expect(o.kernel.freedUnread).toBe(0);
      expect(o.service).toEqual({
        received: o.kernel.read - o.service.droppedAtClose,
        kernelDrops: o.kernel.dropped,
        droppedAtClose: o.service.droppedAtClose,
      });
      expect(o.unaccounted).toBe(0);
    } finally {
      // Anything still inside (the fixture killed at its timeout) goes with the namespace.
      const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await run('ip', ['netns', 'del', ns]);
    }
  });
});
