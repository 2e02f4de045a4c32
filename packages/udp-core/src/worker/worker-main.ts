/**
 * Entry point of a worker process: takes the socket on fd 4, starts the engine,
 * loads the app, reports snapshots, and drains on a stop request.
 */
import { encodeSnapshot } from '../stats/snapshot.js';
import { COUNTERS_FD, WORKER_ENV, WORKER_FD, type ToSupervisor, type ToWorker, type WorkerConfig } from './ipc.js';
import { ArrayCounters, SharedCounters } from '../stats/shared-counters.js';
import { libc } from '../ffi/libc.js';
import { PR_SET_PDEATHSIG, SIGKILL } from '../ffi/kernel.js';
import type { AppContext, AppHooks, AppModule, AppWarmup } from '../app/shard-socket.js';
import { AppEndedProcessError, describeError, guarded, importApp, withoutExit } from '../app/app-host.js';
import { DgramEngineSocket } from './engine/dgram.js';
import { sampledLog } from '../app/log-sampler.js';
import type { EngineSocket, EngineOptions } from './engine/base.js';

/** Warm-up deliveries by default, and the most time they may take (AppHooks.warmup). */
const WARMUP_COUNT = 10_000;
const WARMUP_BUDGET_MS = 100;

function send(msg: ToSupervisor): void {
  if (process.connected) process.send?.(msg);
}

function log(line: string): void {
  send({ t: 'log', line });
}

/** Reports a fatal error and exits 70 once the IPC message has left (at once without IPC). */
function sendFatalAndExit(message: string): void {
  process.exitCode = 70;
  if (process.connected && process.send) process.send({ t: 'fatal', message } satisfies ToSupervisor, () => process.exit(70));
  else process.exit(70);
}

function fatal(message: string): never {
  sendFatalAndExit(message);
  throw new Error(message);
}

async function createEngine(config: WorkerConfig, opts: EngineOptions): Promise<EngineSocket> {
  if (config.engine === 'native') {
    const { NativeEngineSocket } = await import('./engine/native.js');
    return new NativeEngineSocket(opts);
  }
  return new DgramEngineSocket(opts);
}

/** Runs the app's warm-up samples through the engine before the socket is read (AppHooks.warmup). */
function warmUp(engine: EngineSocket, w: AppWarmup): void {
  const samples = w.samples.map((x) => (typeof x === 'string' ? Buffer.from(x) : Buffer.from(x.buffer, x.byteOffset, x.byteLength)));
  try {
    engine.warmup(samples, w.count ?? WARMUP_COUNT, WARMUP_BUDGET_MS);
    w.done?.();
  } catch (err) {
    log(`warm-up failed (the worker starts cold): ${describeError(err)}`);
  }
}

/**
 * A worker's life, step by step: its config read (configFromEnv), its life tied to the
 * supervisor's (tieToSupervisor), early messages held (EarlyMessages), the engine opened
 * on its socket (openEngine), the app imported and started (importAppOrDie, startApp,
 * applyHooks), snapshots begun (Snapshots), then `ready`, and the supervisor's messages
 * handled (messageHandler) until `stop` drains it (drainAndExit).
 */
async function main(): Promise<void> {
  const config = configFromEnv();
  tieToSupervisor(config);
  // Messages that arrive while the app is still starting wait here, in order.
  const early = new EarlyMessages();
  const engine = await openEngine(config);
  const app = await importAppOrDie(config);
  const fromSupervisor: ((m: unknown) => void)[] = [];
  const hooks = await startApp(app, engine, config, fromSupervisor);
  applyHooks(engine, hooks);
  const snapshots = new Snapshots(config.index, engine);
  // protobufjs builds its encoder on first use (some 20 ms of CPU): now, before the socket
  // is read, rather than at the first snapshot, while the first datagrams queue up.
  snapshots.warmEncoder();
  await engine.start();
  snapshots.every(config.snapshotIntervalMs);
  const onMessage = messageHandler(engine, hooks, fromSupervisor, snapshots);
  const missed = early.handTo(onMessage);
  send({ t: 'ready', pid: process.pid });
  for (const msg of missed) onMessage(msg);
}

/** The config the supervisor put in the environment; exits 2 when started by hand. */
function configFromEnv(): WorkerConfig {
  const raw = process.env[WORKER_ENV];
  if (!raw || !process.send) {
    console.error('worker-main is started by the shardgram supervisor, not by hand.');
    process.exit(2);
  }
  return JSON.parse(raw) as WorkerConfig;
}

/** This process exits (or is killed) when the supervisor goes, whatever the way. */
function tieToSupervisor(config: WorkerConfig): void {
  // Die with the supervisor, whatever this process is doing (a busy handler, SIGSTOP):
  // an orphan would keep its socket, and the port, in the group.
  libc().prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (process.ppid !== config.supervisorPid) process.exit(0); // it died before prctl took effect
  // The supervisor going away (crash, SIGKILL) must not leave an orphan reading the
  // socket: it would keep the socket in the group for the next instance. Listen from
  // the start, since a missed 'disconnect' is not replayed.
  process.on('disconnect', () => process.exit(0));
  if (!process.connected) process.exit(0);
}

/** The supervisor's messages from the start, kept in order until the handler that runs the app takes over. */
class EarlyMessages {
  readonly #queued: ToWorker[] = [];
  readonly #queue = (msg: ToWorker): void => void this.#queued.push(msg);

  constructor() {
    process.on('message', this.#queue);
  }

  /** From now on messages go to `handler`; returns those that came before, for it to take in turn. */
  handTo(handler: (msg: ToWorker) => void): ToWorker[] {
    process.off('message', this.#queue);
    process.on('message', handler);
    return this.#queued.splice(0);
  }
}

/** The engine on the socket (WORKER_FD), counting in the page shared with the supervisor (COUNTERS_FD). */
async function openEngine(config: WorkerConfig): Promise<EngineSocket> {
  const handlerErrors = sampledLog(log, 'message handler threw, error', { keepLines: true });
  // Counted in memory the supervisor also maps: exact even if this process is SIGKILLed.
  const shared = SharedCounters.attach(COUNTERS_FD);
  libc().close(COUNTERS_FD);
  const engine = await createEngine(config, {
    fd: WORKER_FD,
    counters: new ArrayCounters(shared.array),
    family: config.family,
    index: config.index,
    maxDatagram: config.maxDatagram,
    batch: config.batch,
    maxReadDelayUs: config.maxReadDelayUs,
    ownRcvbuf: config.ownRcvbuf,
    // The first few with their stack, then one line per thousand with the count.
    onHandlerError: (error) => handlerErrors.note(() => describeError(error, true)),
  });
  engine.on('error', (err) => log(`socket error: ${err.message}`));
  return engine;
}

/** The app's default export; a module that cannot be imported is fatal. */
async function importAppOrDie(config: WorkerConfig): Promise<AppModule['default']> {
  try {
    return (await importApp(config.app, config.app)).default;
  } catch (err) {
    fatal(describeError(err));
  }
}

/** Runs the app on the engine (it may not exit the process) and returns its hooks; an app that throws is fatal. */
async function startApp(
  app: AppModule['default'],
  engine: EngineSocket,
  config: WorkerConfig,
  fromSupervisor: ((m: unknown) => void)[],
): Promise<AppHooks | undefined> {
  let returned: unknown;
  try {
    returned = await withoutExit(config.app, 'it started', async () => app(engine, appContext(config, fromSupervisor)));
  } catch (err) {
    fatal(err instanceof AppEndedProcessError ? err.message : `app ${config.app} failed to start: ${describeError(err)}`);
  }
  // An app that returns something else (e.g. the socket, from `(s) => s.on(…)`) declared no hooks.
  if (returned === engine || typeof returned !== 'object' || returned === null) return undefined;
  return returned as AppHooks;
}

/** What the app is given besides its socket; the handlers it gives for the supervisor's messages go into `fromSupervisor`. */
function appContext(config: WorkerConfig, fromSupervisor: ((m: unknown) => void)[]): AppContext {
  return {
    index: config.index,
    workers: config.workers,
    pid: process.pid,
    options: config.appOptions,
    log,
    sampledLog: (what, options) => sampledLog(log, what, options),
    send: (m) => send({ t: 'app', m }),
    onSupervisorMessage: (h) => void fromSupervisor.push(h),
  };
}

/** What the app's hooks ask of the engine before it reads: kernel timestamps, a warm-up. */
function applyHooks(engine: EngineSocket, hooks: AppHooks | undefined): void {
  if (hooks?.timestamps === true) engine.requestTimestamps();
  if (hooks?.warmup && Array.isArray(hooks.warmup.samples)) warmUp(engine, hooks.warmup);
  else if (hooks?.warmup) log('warm-up ignored: AppHooks.warmup needs a `samples` array');
}

/** The worker's snapshots (its heartbeat, with its CPU time): one every interval, a final one after the drain. */
class Snapshots {
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly index: number,
    private readonly engine: EngineSocket,
  ) {}

  /** Encodes one, unsent, so that the encoder is built before the socket is read. */
  warmEncoder(): void {
    this.#bytes(0, false);
  }

  every(intervalMs: number): void {
    this.#timer = setInterval(() => this.report(false), intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  report(final: boolean): void {
    send({ t: 'snap', b: this.#bytes(this.#seq++, final) });
  }

  #bytes(seq: number, final: boolean): Uint8Array {
    const cpu = process.cpuUsage();
    return encodeSnapshot({
      index: this.index,
      pid: process.pid,
      cpuUserMicros: cpu.user,
      cpuSystemMicros: cpu.system,
      seq,
      final,
      engine: this.engine.engine,
      topSenders: this.engine.topSenders?.report(),
    });
  }
}

/** The supervisor's messages once the app runs: the app's go to its handlers, the first `stop` drains. */
function messageHandler(
  engine: EngineSocket,
  hooks: AppHooks | undefined,
  fromSupervisor: ((m: unknown) => void)[],
  snapshots: Snapshots,
): (msg: ToWorker) => void {
  let stopping = false;
  return (msg) => {
    if (msg.t === 'app') {
      for (const h of fromSupervisor) guarded(log, 'supervisor message handler', () => h(msg.m));
      return;
    }
    if (msg.t !== 'stop' || stopping) return;
    stopping = true;
    void drainAndExit(engine, hooks, snapshots, msg.timeoutMs);
  };
}

/** Reads until the queue is empty, runs the app's close hook, sends the final snapshot, and exits. */
async function drainAndExit(engine: EngineSocket, hooks: AppHooks | undefined, snapshots: Snapshots, timeoutMs: number): Promise<void> {
  const { leftBytes } = await engine.drain(timeoutMs);
  snapshots.stop();
  await guarded(log, 'app close hook', () => hooks?.close?.());
  snapshots.report(true);
  // Exit once the last messages have left, whatever handles the app left open.
  process.send!({ t: 'drained', leftBytes } satisfies ToSupervisor, () => process.exit(0));
}

main().catch((err: unknown) => {
  // After fatal() the report is already on its way and the exit follows it.
  if (process.exitCode === 70) return;
  sendFatalAndExit(describeError(err));
});
