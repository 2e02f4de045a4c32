/**
 * The fd store (sd_notify FDSTORE=1, sd_listen_fds), through a minimal fake service
 * manager (./fixtures/fake-service-manager.py: there is no systemd as PID 1 here).
 * `serve echo` stores its group's sockets; the manager SIGKILLs the supervisor under
 * a steady sequenced load and starts it again with the stored fds. What was queued
 * survives: the only probes lost are ones the killed workers had read and not yet
 * answered (at most a batch each, all sent before the kill), the kernel dropped
 * nothing, the same sockets serve on, READY=1 comes again, and the killed
 * supervisor's workers died with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BIG_RCVBUF, BIN, ROOT } from '@shardgram/test-kit/cli';
import { isAlive, socketInodesOf, udpInodesOnPort } from '@shardgram/test-kit/procfs';
import { closeAll, openClients, udpPortQueues } from '@shardgram/test-kit/udp';
import { waitFor } from '@shardgram/test-kit/wait';

const PYTHON = '/usr/bin/python3';
const FAKE = fileURLToPath(new URL('./fixtures/fake-service-manager.py', import.meta.url));
if (!existsSync(PYTHON)) console.log(`fd store test skipped: ${PYTHON} is missing`);

const WORKERS = 2;
const BATCH = 16;
const RATE = 300; // probes a second: a restart's worth (~1-2 s) fits a stock 425984-byte buffer per socket
const MAX_PROBES = 3000;

interface Ev {
  event: string;
  pid?: number;
  code?: number | null;
  signal?: string | null;
  fields?: Record<string, string>;
  line?: string;
  slots?: Record<string, number>;
  listen_fds?: { name: string; inode: number }[];
  dir?: string;
}

/** The manager's JSON lines, as they come. */
class Events {
  readonly all: Ev[] = [];
  constructor(child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => this.all.push(JSON.parse(l) as Ev));
  }

  async wait(what: string, pred: (e: Ev) => boolean, timeoutMs = 30_000): Promise<Ev> {
    await waitFor(() => this.all.some(pred), timeoutMs);
    const e = this.all.find(pred);
    if (!e) throw new Error(`no ${what} from the fake manager within ${timeoutMs} ms; got:\n${this.all.map((x) => JSON.stringify(x)).join('\n')}`);
    return e;
  }
}

interface Ready {
  pid: number;
  port: number;
  workers: number[];
  stats: string;
}

const readyOf =
  (pid: number) =>
  (e: Ev): boolean =>
    e.event === 'stdout' && e.pid === pid && e.line!.startsWith('{');
const parseReady = (e: Ev): Ready => JSON.parse(e.line!) as Ready;

/** Sequenced probes from several clients at a steady rate; replies tallied per sequence number and per worker pid. */
class Prober {
  sent = 0;
  readonly answers = new Map<number, number>();
  readonly byPid = new Map<number, number>();
  readonly markers = new Set<number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly clients: dgram.Socket[],
    private readonly port: number,
  ) {
    clients.forEach((c, i) => {
      c.on('message', (m) => {
        const r = /^Hello from worker \d+ \(pid (\d+)\): ([qm])(\d+)$/.exec(m.toString());
        if (!r) return;
        this.byPid.set(Number(r[1]), (this.byPid.get(Number(r[1])) ?? 0) + 1);
        if (r[2] === 'm') this.markers.add(i);
        else this.answers.set(Number(r[3]), (this.answers.get(Number(r[3])) ?? 0) + 1);
      });
    });
  }

  start(): void {
    const t0 = performance.now();
    this.timer = setInterval(() => {
      const due = Math.min(MAX_PROBES, Math.floor(((performance.now() - t0) / 1000) * RATE));
      while (this.sent < due) {
        const seq = this.sent++;
        this.clients[seq % this.clients.length]!.send(`q${seq}`, this.port, '127.0.0.1');
      }
    }, 5);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One marker per client, after everything: its reply means all before it on that client's socket was handled. */
  sendMarkers(): void {
    this.clients.forEach((c, i) => {
      c.send(`m${i}`, this.port, '127.0.0.1');
    });
  }
}

describe.skipIf(!existsSync(PYTHON))('fd store: a supervisor SIGKILLed under load comes back on the same sockets', () => {
  it('loses only what the killed workers had read, keeps the sockets and queues, says READY=1 again, leaves no worker behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-fdstore-'));
    const serveArgs = [
      BIN,
      'serve',
      'echo',
      '--port',
      '0',
      '--workers',
      String(WORKERS),
      '--engine',
      'native',
      '--batch',
      String(BATCH),
      '--stats-port',
      '0',
      '--control',
      join(dir, 'control.sock'),
      '--ready-json',
      ...BIG_RCVBUF('1m'),
    ];
    const manager = spawn(PYTHON, [FAKE, '--fdstore', '8', '--', process.execPath, ...serveArgs], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    manager.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const managerClosed = new Promise<number | null>((r) => manager.on('close', (code) => r(code)));
    const ev = new Events(manager);
    const pids: number[] = [];
    let clients: dgram.Socket[] = [];
    let stopProbes = (): void => undefined;
    try {
      const hello = await ev.wait('hello', (e) => e.event === 'manager');
      const first = await ev.wait('start', (e) => e.event === 'started');
      pids.push(first.pid!);
      expect(first.listen_fds).toEqual([]);
      await ev.wait('READY=1', (e) => e.event === 'notify' && e.pid === first.pid && e.fields!.READY === '1');
      const ready1 = parseReady(await ev.wait('ready line', readyOf(first.pid!)));
      pids.push(...ready1.workers);
      // Every socket of the group went into the store before READY=1, named by slot.
      const stored = [...ev.all].reverse().find((e) => e.event === 'store')!.slots!;
      expect(Object.keys(stored)).toEqual(['slot0', 'slot1']);
      const inodes = Object.values(stored).sort((a, b) => a - b);
      expect(udpInodesOnPort(ready1.port)).toEqual(inodes);
      for (const e of ev.all.filter((x) => x.fields?.FDSTORE === '1')) expect(e.fields!.FDPOLL).toBe('0');

      clients = await openClients(8);
      const prober = new Prober(clients, ready1.port);
      stopProbes = () => prober.stop();
      prober.start();
      expect(await waitFor(() => prober.answers.size >= RATE / 2, 20_000)).toBe(true);

      manager.stdin!.write('kill-restart\n');
      const killed = await ev.wait('exit of the killed supervisor', (e) => e.event === 'exit' && e.pid === first.pid);
      const sentAtKill = prober.sent; // every probe sent after this found the supervisor dead
      expect(killed.signal).toBe('SIGKILL');
      const second = await ev.wait('restart', (e) => e.event === 'started' && e.pid !== first.pid);
      pids.push(second.pid!);
      // The stored sockets come back as LISTEN_FDS, named.
      expect(second.listen_fds).toEqual([
        { name: 'slot0', inode: stored.slot0 },
        { name: 'slot1', inode: stored.slot1 },
      ]);
      const ready2Notify = await ev.wait('READY=1 again', (e) => e.event === 'notify' && e.pid === second.pid && e.fields!.READY === '1');
      expect(ready2Notify.fields!.MAINPID).toBe(String(second.pid));
      const ready2 = parseReady(await ev.wait('second ready line', readyOf(second.pid!)));
      pids.push(...ready2.workers);
      expect(ready2.port).toBe(ready1.port);
      const restartedAt = prober.sent;

      // The killed supervisor's workers died with it, reaped by the manager: killed by
      // PR_SET_PDEATHSIG, or exited 0 on their IPC channel's close, which a worker can see
      // first (the kernel closes a dying process's files before it signals its children).
      for (const w of ready1.workers) {
        const reaped = await ev.wait(`worker ${w} reaped`, (e) => e.event === 'reaped' && e.pid === w, 10_000);
        expect(reaped.signal === 'SIGKILL' || (reaped.signal === null && reaped.code === 0), JSON.stringify(reaped)).toBe(true);
        expect(isAlive(w)).toBe(false);
      }

      // Load on the restarted service for as long again, then everything answered that will be.
      expect(await waitFor(() => prober.sent >= Math.min(MAX_PROBES, restartedAt + RATE), 20_000)).toBe(true);
      prober.stop();
      prober.sendMarkers();
      expect(await waitFor(() => prober.markers.size === clients.length, 20_000), 'every client marker answered').toBe(true);

      const lost: number[] = [];
      for (let s = 0; s < prober.sent; s++) if (!prober.answers.has(s)) lost.push(s);
      const doubles = [...prober.answers.values()].filter((n) => n > 1).length;
      const drops = udpPortQueues(ready1.port).drops;
      console.log(
        `fd store SIGKILL restart: ${prober.sent} probes at ${RATE}/s, ${prober.sent - lost.length} answered, ${lost.length} lost ` +
          `(bound ${WORKERS} workers x batch ${BATCH} = ${WORKERS * BATCH}), ${drops} kernel drops, ${restartedAt - sentAtKill} probes queued while no supervisor ran` +
          (lost.length ? `; lost: ${lost.join(' ')}` : ''),
      );
      expect(doubles).toBe(0);
      expect(drops).toBe(0);
      expect(lost.length).toBeLessThanOrEqual(WORKERS * BATCH);
      // Only what was read before the kill can be lost: the probes sent after it were queued and answered.
      for (const s of lost) expect(s).toBeLessThan(sentAtKill);
      expect(restartedAt - sentAtKill).toBeGreaterThan(0);

      // The same two sockets, no new ones; the restarted service stores nothing again.
      expect(udpInodesOnPort(ready2.port)).toEqual(inodes);
      for (const i of inodes) expect(socketInodesOf(second.pid!)).toContain(i);
      expect(ev.all.filter((e) => e.event === 'notify' && e.pid === second.pid && e.fields!.FDSTORE)).toEqual([]);
      expect(ev.all.filter((e) => e.event === 'rejected')).toEqual([]);
      // What the restarted service counts is what its workers answered.
      const answeredBySecond = ready2.workers.reduce((a, w) => a + (prober.byPid.get(w) ?? 0), 0);
      const answeredByFirst = ready1.workers.reduce((a, w) => a + (prober.byPid.get(w) ?? 0), 0);
      expect(answeredByFirst + answeredBySecond).toBe(prober.sent - lost.length + clients.length);
      let counted = -1;
      await waitFor(async () => {
        const s = (await (await fetch(`${ready2.stats}/stats`)).json()) as { total: { datagrams: number } };
        counted = s.total.datagrams;
        return counted === answeredBySecond;
      }, 10_000);
      expect(counted).toBe(answeredBySecond);

      // Stop: the service exits 0, the manager flushes its store, the sockets are gone.
      manager.stdin!.write('stop\n');
      const stopped = await ev.wait('exit after stop', (e) => e.event === 'exit' && e.pid === second.pid);
      expect(stopped.code, stderr).toBe(0);
      await ev.wait('bye', (e) => e.event === 'bye');
      expect(await managerClosed).toBe(0);
      expect(existsSync(hello.dir!)).toBe(false);
      for (const w of ready2.workers) expect(await waitFor(() => !isAlive(w), 10_000)).toBe(true);
      expect(udpInodesOnPort(ready2.port)).toEqual([]);
    } finally {
      stopProbes();
      closeAll(clients);
      if (manager.exitCode === null && manager.signalCode === null) manager.kill('SIGKILL');
      for (const p of pids) if (isAlive(p)) process.kill(p, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
