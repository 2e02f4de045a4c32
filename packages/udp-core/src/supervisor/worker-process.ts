/**
 * One worker process, as an object: started on an inherited socket with its counters
 * page, ready (or not) within a timeout, retired on request, gone when it exits. It
 * knows nothing of slots or restarts: that policy is the slot's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PROCESS_COUNTERS, type Counters, type ProcessCounters } from '../stats/counters.js';
import { ShardgramError, describeError } from '../errors.js';
import { SharedCounters } from '../stats/shared-counters.js';
import { closeFd } from '../ffi/socket.js';
import { WORKER_ENV, type ToSupervisor, type ToWorker, type WorkerConfig } from '../worker/ipc.js';
import { decodeSnapshot } from '../stats/snapshot.js';
import type { TopSendersReport } from '../stats/top-senders.js';

export const START_TIMEOUT_MS = 20_000;
/** After a drain timeout, how much longer a retiring process gets before SIGKILL. */
export const RETIRE_GRACE_MS = 5000;
/** How long to wait for the IPC channel to end after the process exited (its last messages). */
const LAST_WORDS_MS = 2000;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** `exited with code 1`, `was killed by SIGKILL`, `could not be started`. */
  why: string;
}

/** What a slot needs of a worker process (a fake one in unit tests). */
export interface WorkerHandle {
  readonly pid: number;
  readonly startedAt: number;
  /** Asked to leave (stop, reload, shrink): its exit is no crash. */
  readonly expected: boolean;
  readonly lastWords: string | undefined;
  /** Resolves once it reads its socket; rejects if it exits, fails or times out first. */
  readonly ready: Promise<void>;
  /** Resolves once it has exited and its last messages were handled. */
  readonly exited: Promise<ExitInfo>;
  /** Its counters so far (after its exit: final). */
  counters(): Partial<Counters>;
  /** Its engine's top senders, from its last snapshot. */
  readonly topSenders?: TopSendersReport | undefined;
  /** When it last sent the supervisor anything (its snapshots are its heartbeat), ms since the epoch. */
  readonly lastHeard: number;
  /** Ends it at once (a stalled worker). */
  kill(signal?: NodeJS.Signals): void;
  /** Asks it to drain its socket and exit; resolves when it has. */
  retire(drainTimeoutMs: number): Promise<void>;
}

export interface WorkerProcessOptions {
  config: WorkerConfig;
  /** The socket it reads (inherited as fd 4). */
  socketFd: number;
  log: (line: string) => void;
  onAppMessage: (message: unknown) => void;
  /** Called at each snapshot it sends (its counts have moved on: the shared page holds them). */
  onSnapshot?: () => void;
  startTimeoutMs?: number;
}

const WORKER_MAIN = fileURLToPath(new URL('../worker/worker-main.js', import.meta.url));

function zeroProcessCounters(): ProcessCounters {
  const out = {} as ProcessCounters;
  for (const c of PROCESS_COUNTERS) out[c.key] = 0;
  return out;
}

export class WorkerProcess implements WorkerHandle {
  readonly pid: number;
  readonly startedAt = Date.now();
  readonly name: string;
  readonly ready: Promise<void>;
  readonly exited: Promise<ExitInfo>;
  expected = false;
  lastWords: string | undefined;
  lastHeard = Date.now();
  private readonly child: ChildProcess;
  private readonly shared: SharedCounters;
  private processCounters = zeroProcessCounters();
  topSenders: TopSendersReport | undefined;
  /** The shared page as read at exit (the page is unmapped then). */
  private final: Partial<Counters> | undefined;
  private gone = false;
  private drainAsked = true;

  /** Spawns the process; throws ERR_SHARDGRAM_WORKER if it cannot. */
  constructor(private readonly opts: WorkerProcessOptions) {
    const { config } = opts;
    const { fd: sharedFd, counters } = SharedCounters.create(`shardgram-worker-${config.index}`);
    this.shared = counters;
    try {
      this.child = spawn(process.execPath, [WORKER_MAIN], {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc', opts.socketFd, sharedFd],
        env: { ...process.env, [WORKER_ENV]: JSON.stringify(config) },
        serialization: 'advanced',
        // Own process group: a terminal's Ctrl-C reaches the supervisor only, which then drains the workers.
        detached: true,
      });
    } catch (err) {
      counters.unmap();
      throw new ShardgramError('ERR_SHARDGRAM_WORKER', `cannot start worker ${config.index}: ${describeError(err)}`);
    } finally {
      // The child has its own copy of the fd (or none); the mapping lives on without it.
      closeFd(sharedFd);
    }
    const child = this.child;
    this.pid = child.pid ?? 0;
    this.name = `worker ${config.index} (pid ${this.pid})`;
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        this.lastWords = line;
        opts.log(`${this.name}: ${line}`);
      });
    }
    let onExit!: (info: ExitInfo) => void;
    const exitSeen = new Promise<ExitInfo>((r) => (onExit = r));
    // Exited, and its IPC channel read to the end: its last messages (final snapshot,
    // an app's final partial) have been handled. 'exit' alone can come before them.
    this.exited = exitSeen.then((info) =>
      child.connected
        ? new Promise<ExitInfo>((r) => {
            const t = setTimeout(() => r(info), LAST_WORDS_MS);
            child.once('disconnect', () => {
              clearTimeout(t);
              r(info);
            });
          })
        : info,
    );
    this.ready = new Promise<void>((resolve, reject) => {
      const timeoutMs = opts.startTimeoutMs ?? START_TIMEOUT_MS;
      const timer = setTimeout(() => {
        reject(new ShardgramError('ERR_SHARDGRAM_WORKER', `${this.name} did not report ready within ${timeoutMs / 1000} s`));
        child.kill('SIGKILL');
      }, timeoutMs);
      timer.unref();
      const settle = (err?: Error): void => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      child.on('message', (msg: ToSupervisor) => this.onMessage(msg, settle));
      const gone = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.gone) return;
        this.gone = true;
        this.final = this.shared.read();
        this.shared.unmap();
        const why = signal ? `was killed by ${signal}` : code === null ? 'could not be started' : `exited with code ${code}`;
        settle(new ShardgramError('ERR_SHARDGRAM_WORKER', `${this.name} ${why} before it was ready${this.lastWords ? `: ${this.lastWords}` : ''}`));
        onExit({ code, signal, why });
      };
      child.on('exit', gone);
      child.on('error', (err) => {
        this.lastWords = err.message;
        // No pid: the process never existed, and no 'exit' will come.
        if (child.pid === undefined) gone(null, null);
      });
    });
    // A caller that never awaits `ready` (a restart) must not see an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  private onMessage(msg: ToSupervisor, settle: (err?: Error) => void): void {
    this.lastHeard = Date.now();
    switch (msg.t) {
      case 'ready':
        settle();
        break;
      case 'snap': {
        // Engine counts come from the shared page; a snapshot brings the process counters.
        const snap = decodeSnapshot(msg.b);
        for (const c of PROCESS_COUNTERS) this.processCounters[c.key] = snap[c.key];
        this.topSenders = snap.topSenders ?? undefined;
        this.opts.onSnapshot?.();
        break;
      }
      case 'log':
        this.lastWords = msg.line;
        this.opts.log(`${this.name}: ${msg.line}`);
        break;
      case 'fatal':
        this.lastWords = msg.message;
        this.opts.log(`${this.name}: fatal: ${msg.message}`);
        settle(new ShardgramError('ERR_SHARDGRAM_APP', `${this.name} could not start: ${msg.message}`));
        break;
      case 'app':
        this.opts.onAppMessage(msg.m);
        break;
      case 'drained':
        // With no drain asked for (a hand-over: the socket stays open elsewhere), a queue is no news.
        if (msg.leftBytes > 0 && this.drainAsked) this.opts.log(`${this.name}: drain timed out with ${msg.leftBytes} bytes still queued`);
        break;
    }
  }

  get alive(): boolean {
    return !this.gone && this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  counters(): Partial<Counters> {
    return { ...(this.final ?? this.shared.read()), ...this.processCounters };
  }

  /** Sends a message if the IPC channel is open. */
  send(message: ToWorker): void {
    if (this.child.connected) this.child.send(message);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    // A stopped process (SIGSTOP) dies of SIGKILL too.
    if (this.alive) this.child.kill(signal);
  }

  async retire(drainTimeoutMs: number): Promise<void> {
    this.expected = true;
    this.drainAsked = drainTimeoutMs > 0;
    if (!this.alive) {
      await this.exited;
      return;
    }
    try {
      this.child.send({ t: 'stop', timeoutMs: drainTimeoutMs } satisfies ToWorker);
    } catch {
      this.child.kill('SIGKILL');
    }
    const kill = setTimeout(() => {
      this.opts.log(`${this.name} did not stop within ${(drainTimeoutMs + RETIRE_GRACE_MS) / 1000} s; killing it`);
      this.child.kill('SIGKILL');
    }, drainTimeoutMs + RETIRE_GRACE_MS);
    await this.exited;
    clearTimeout(kill);
  }
}
