/**
 * Entry point of a worker process: takes the socket on fd 4, starts the engine,
 * loads the app, reports snapshots, and drains on a stop request.
 */
import { encodeSnapshot } from '../stats/snapshot.js';
import { COUNTERS_FD, WORKER_ENV, WORKER_FD, type ToSupervisor, type ToWorker, type WorkerConfig } from './ipc.js';
import { ArrayCounters, SharedCounters } from '../stats/shared-counters.js';
import { libc } from '../ffi/libc.js';
import { PR_SET_PDEATHSIG, SIGKILL } from '../ffi/kernel.js';
import type { AppHooks, AppModule, AppWarmup } from '../app/shard-socket.js';
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

async function main(): Promise<void> {
  const raw = process.env[WORKER_ENV];
  if (!raw || !process.send) {
    console.error('worker-main is started by the shardgram supervisor, not by hand.');
    process.exit(2);
  }
  const config = JSON.parse(raw) as WorkerConfig;
  // Die with the supervisor, whatever this process is doing (a busy handler, SIGSTOP):
  // an orphan would keep its socket, and the port, in the group.
  libc().prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (process.ppid !== config.supervisorPid) process.exit(0); // it died before prctl took effect
  // The supervisor going away (crash, SIGKILL) must not leave an orphan reading the
  // socket: it would keep the socket in the group for the next instance. Listen from
  // the start, since a missed 'disconnect' is not replayed.
  let stopping = false;
  process.on('disconnect', () => process.exit(0));
  if (!process.connected) process.exit(0);
  // Messages that arrive while the app is still starting wait here, in order.
  const early: ToWorker[] = [];
  const queueEarly = (msg: ToWorker): void => void early.push(msg);
  process.on('message', queueEarly);
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

  let app: AppModule['default'];
  try {
    app = (await importApp(config.app, config.app)).default;
  } catch (err) {
    fatal(describeError(err));
  }
  // biome-ignore lint/suspicious/noConfusingVoidType: what a ShardApp returns (nothing, or its hooks)
  let hooks: void | AppHooks;
  const fromSupervisor: ((m: unknown) => void)[] = [];
  try {
    hooks = await withoutExit(config.app, 'it started', async () =>
      app(engine, {
        index: config.index,
        workers: config.workers,
        pid: process.pid,
        options: config.appOptions,
        log,
        sampledLog: (what, options) => sampledLog(log, what, options),
        send: (m) => send({ t: 'app', m }),
        onSupervisorMessage: (h) => void fromSupervisor.push(h),
      }),
    );
  } catch (err) {
    fatal(err instanceof AppEndedProcessError ? err.message : `app ${config.app} failed to start: ${describeError(err)}`);
  }
  // An app that returns something else (e.g. the socket, from `(s) => s.on(…)`) declared no hooks.
  if ((hooks as unknown) === engine || typeof hooks !== 'object' || hooks === null) hooks = undefined;
  if (hooks?.timestamps === true) engine.requestTimestamps();
  if (hooks?.warmup && Array.isArray(hooks.warmup.samples)) warmUp(engine, hooks.warmup);
  else if (hooks?.warmup) log('warm-up ignored: AppHooks.warmup needs a `samples` array');
  const snapshotBytes = (seq: number, final: boolean): Uint8Array => {
    const cpu = process.cpuUsage();
    return encodeSnapshot({
      index: config.index,
      pid: process.pid,
      cpuUserMicros: cpu.user,
      cpuSystemMicros: cpu.system,
      seq,
      final,
      engine: engine.engine,
      topSenders: engine.topSenders?.report(),
    });
  };
  // protobufjs builds its encoder on first use (some 20 ms of CPU): now, before the socket
  // is read, rather than at the first snapshot, while the first datagrams queue up.
  snapshotBytes(0, false);
  await engine.start();

  let seq = 0;
  const snapshot = (final: boolean): void => {
    send({ t: 'snap', b: snapshotBytes(seq++, final) });
  };
  const timer = setInterval(() => snapshot(false), config.snapshotIntervalMs);

  const onMessage = (msg: ToWorker): void => {
    if (msg.t === 'app') {
      for (const h of fromSupervisor) guarded(log, 'supervisor message handler', () => h(msg.m));
      return;
    }
    if (msg.t !== 'stop' || stopping) return;
    stopping = true;
    void (async () => {
      const { leftBytes } = await engine.drain(msg.timeoutMs);
      clearInterval(timer);
      await guarded(log, 'app close hook', () => hooks?.close?.());
      snapshot(true);
      // Exit once the last messages have left, whatever handles the app left open.
      process.send!({ t: 'drained', leftBytes } satisfies ToSupervisor, () => process.exit(0));
    })();
  };
  process.off('message', queueEarly);
  process.on('message', onMessage);
  send({ t: 'ready', pid: process.pid });
  for (const msg of early.splice(0)) onMessage(msg);
}

main().catch((err: unknown) => {
  // After fatal() the report is already on its way and the exit follows it.
  if (process.exitCode === 70) return;
  sendFatalAndExit(describeError(err));
});
