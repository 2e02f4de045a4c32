/**
 * `shardgram top`: the live view of a running service in a real terminal (tmux) and as
 * plain lines, and its pure layout (rates between readings, workers, warning, senders).
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Supervisor, startStatsServer, type StatsServer } from '@shardgram/udp-core';
import { line, screen, type Reading, type StatsView } from '../src/cli/top-view.js';
import { BIN, ROOT, runCli } from '@shardgram/test-kit/cli';
import { closeAll, openClients, send } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

const haveTmux = spawnSync('sh', ['-c', 'command -v tmux']).status === 0;
if (!haveTmux) console.log('tmux is not installed here (.ci/run installs it): the terminal test of `shardgram top` is skipped');

function tmux(socket: string, ...args: string[]): string {
  const r = spawnSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('shardgram top', () => {
  let sup: Supervisor;
  let http: StatsServer;

  beforeAll(async () => {
    sup = new Supervisor({ app: 'echo', port: 0, workers: 3, snapshotIntervalMs: 50, log: () => {} });
    await sup.start();
    http = await startStatsServer(sup, 0);
    const clients = await openClients(30);
    try {
      for (const c of clients) await send(c, 'x', sup.port);
      expect(await waitFor(() => sup.stats().total.datagrams === 30, 5_000)).toBe(true);
    } finally {
      closeAll(clients);
    }
  });

  afterAll(async () => {
    await http?.close();
    await sup?.stop();
  });

  it.skipIf(!haveTmux)('shows every worker in a real terminal, restores the screen and quits on q', async () => {
    const socket = `shardgram-test-${process.pid}`;
    // The shell prints top's exit status on the terminal once it has quit, then holds the
    // terminal open (cat waits on it) so that the line can be read.
    const cmd = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} top --stats-port ${http.port} --interval 200; echo "top exited with status $?"; exec cat`;
    try {
      tmux(socket, 'new-session', '-d', '-s', 'top', '-x', '132', '-y', '32', '-c', ROOT, cmd);
      const pane = (): string => tmux(socket, 'capture-pane', '-p', '-t', 'top');
      const pids = sup.workerPids();
      // Two refreshes at least: the rate column has a value once there are two readings.
      expect(await waitFor(() => pids.every((p) => pane().includes(String(p))) && /\n\s+2\s+\d+\s+running/.test(pane()), 10_000)).toBe(true);
      const shown = pane();
      expect(shown).toMatch(/^shardgram top · echo on 127\.0\.0\.1:\d+ · engine dgram · policy hash/m);
      expect(shown).toMatch(/fairness jain \d\.\d{3}/);
      for (const w of sup.stats().workers) expect(shown).toMatch(new RegExp(`^\\s+${w.index}\\s+${w.pid}\\s+running\\s+\\S*\\s*\\d+\\.\\d%`, 'm'));
      tmux(socket, 'send-keys', '-t', 'top', 'q');
      const ok = await waitFor(() => /^top exited with status \d+$/m.test(pane()), 5_000);
      if (!ok) console.log(`no exit 5 s after q:\n${pane()}`);
      expect(ok).toBe(true);
      expect(pane()).toMatch(/^top exited with status 0$/m);
      // The alternate screen is gone: the view is no longer on the terminal.
      expect(pane()).not.toContain('shardgram top ·');
    } finally {
      spawnSync('tmux', ['-L', socket, 'kill-server']);
    }
  });

  it('prints one line per refresh when not on a terminal, then stops after --count', async () => {
    const r = await runCli(['top', '--stats-port', String(http.port), '--interval', '100', '--count', '3'], { timeoutMs: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      expect(l).toMatch(/^\d\d:\d\d:\d\d [\d,]+ dgram\/s jain \d\.\d{3} drops 0 workers /);
      for (const w of sup.stats().workers) expect(l).toContain(` ${w.index}:${w.pid}:running:`);
    }
  });

  it('says in one line when nothing answers, and checks its options', async () => {
    const closed = await startStatsServer({ stats: () => sup.stats() }, 0);
    const port = closed.port;
    await closed.close();
    const r = await runCli(['top', '--stats-port', String(port)], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`shardgram: cannot read http://127.0.0.1:${port}/stats: nothing answers there; is the service running with that --stats-port?\n`);
    const bad = await runCli(['top', '--stats-port', '1', '--interval', '5']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe('shardgram: --interval must be from 100 to 60000; got 5');
    const help = await runCli(['top', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--stats-port', '--stats-url', '--interval', '--count']) expect(help.stdout).toContain(flag);
  });
});

describe('top view', () => {
  const stats = (datagrams: number[], extra: Partial<StatsView> = {}): StatsView => {
    const total = datagrams.reduce((a, b) => a + b, 0);
    return {
      service: { app: 'statsd', engine: 'native', address: '::1', port: 8125, family: 'udp6', workers: datagrams.length, uptimeSeconds: 3725 },
      workers: datagrams.map((d, i) => ({
        index: i,
        pid: 100 + i,
        state: i === 1 ? 'stalled' : 'running',
        engine: 'native',
        datagrams: d,
        kernelDrops: 0,
        queueBytes: 2048 * i,
        restarts: 0,
        share: total ? d / total : 0,
      })),
      total: { datagrams: total, kernelDrops: 5, restarts: 1, queueBytes: 0 },
      fairness: { jain: 0.7, minShare: 0.2, maxShare: 0.8 },
      ...extra,
    };
  };

  it('computes rates between readings and lays out workers, warning and senders', () => {
    const prev: Reading = { at: 0, stats: stats([100, 100]) };
    const cur: Reading = {
      at: 2000,
      stats: stats([900, 300], {
        imbalance: { detected: true, worker: 0, share: 0.8, advice: 'use --policy random' },
        topSenders: { total: 1200, errorBound: 3, senders: [{ sender: '[::1]:5000', count: 700, error: 0 }] },
      }),
    };
    cur.stats.workers[0]!.topSenders = { total: 900, errorBound: 0, senders: [{ sender: '[::1]:5000', count: 700, error: 0 }] };
    const lines = screen(prev, cur, { columns: 120, rows: 20, url: 'http://127.0.0.1:9/stats', intervalMs: 1000 });
    expect(lines[0]).toBe('shardgram top · statsd on [::1]:8125 · engine native · policy hash · up 1h02m · 2 workers');
    expect(lines[1]).toMatch(/^500 datagrams\/s · total 1,200 /);
    expect(lines[2]).toBe('! worker 0 holds 80%; use --policy random');
    expect(lines.find((l) => /^\s+0\s+100\s+running/.test(l))).toMatch(/75\.0%\s+400\s+0 B/);
    expect(lines.find((l) => /^\s+1\s+101\s+stalled/.test(l))).toMatch(/25\.0%\s+100\s+2\.0 KiB/);
    expect(lines.find((l) => l.includes('[::1]:5000'))).toMatch(/700\s+58\.3%\s+worker 0$/);
    for (const l of screen(prev, cur, { columns: 40, rows: 5, url: 'u', intervalMs: 1000 })) expect(l.length).toBeLessThanOrEqual(40);
    expect(screen(prev, cur, { columns: 40, rows: 5, url: 'u', intervalMs: 1000 })).toHaveLength(5);
    expect(line(prev, cur)).toMatch(/^00:00:02 500 dgram\/s jain 0\.700 drops 5 workers 0:100:running:75% 1:101:stalled:25% top \[::1\]:5000 58% ! worker 0/);
  });
});
