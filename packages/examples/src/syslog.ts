/**
 * Syslog receiver: RFC 5424 and BSD (RFC 3164) messages over UDP, one per datagram
 * (RFC 5426), every one kept as a JSON line — malformed ones too, with their bytes.
 *
 *   npx shardgram serve syslog --port 5514 --workers 2 \
 *     --app-option out=/var/log/shardgram/syslog.jsonl --app-option maxBytes=100m --app-option keep=5
 *   logger -d -n 127.0.0.1 -P 5514 --rfc5424 'hello'
 *
 * Options (`--app-option key=value`): `out` (file; default standard output), `maxBytes`
 * (rotate at this size, e.g. 100m; default never), `keep` (rotated files kept, default 5).
 * See docs/syslog.md.
 */
import {
  type AppContext,
  type AppDefaults,
  type AppSupervisorContext,
  defineApp,
  defineAppSupervisor,
  type GuardedOutput,
  guardOutput,
  type RemoteInfo,
  type SampledLog,
  ShardgramError,
  describeError,
} from '@shardgram/udp-core';
import { countFormat, newSyslogCounters, type SyslogCounters, SyslogTotals } from './syslog/counters.js';
import { isToSyslogSupervisor, isToSyslogWorker, type ToSyslogSupervisor } from './syslog/messages.js';
import { parseSyslogOptions, type SyslogOptions } from './syslog/options.js';
import { parseSyslog } from './syslog/parse.js';
import { recordLine, toRecord } from './syslog/record.js';
import { RotationCoordinator } from './syslog/rotation.js';
import { FileSink, FLUSH_BYTES, type FlushOutcome, ForwardSink, type RecordSink } from './syslog/sink.js';
import { WriteFailure } from './syslog/writer.js';

const STATUS_INTERVAL_MS = 500;

/**
 * What `serve syslog` runs with unless told otherwise (docs/syslog.md, "Defaults"): the
 * native engine (batched recvmmsg: one read, and one write(2) of the records, per batch),
 * a 4 MiB receive buffer per socket (the system's default, 208 KiB, overflows in a burst
 * of a few thousand messages while a worker writes), and a read delay of 50 ms: syslog is
 * one-way and its records are read by people and log shippers, so a message may wait that
 * long in the socket's queue under steady traffic; each wake-up then reads and writes many
 * messages, which is most of the cost at the rates syslog receivers live at.
 */
export const defaults: AppDefaults = {
  engine: 'native',
  rcvbuf: 4 * 1024 * 1024,
  maxReadDelayUs: 50_000,
  snapshotIntervalMs: 1000,
};

export { syslogOptions as options } from './syslog/options.js';
export const description = 'RFC 5424/3164 receiver writing JSON lines (docs/syslog.md)';

/** Records in a batch of lines. */
function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * One worker's side: each datagram parsed and kept as a record, the records of one read
 * written at once and counted, its status sent to the supervisor side, the output reopened
 * when that side rotated the file.
 */
class SyslogWorker {
  private readonly options: SyslogOptions;
  private readonly counters: SyslogCounters;
  private readonly malformed: SampledLog;
  private readonly writeErrors: SampledLog;
  /** Records failing for one cause since the last one written. */
  private failing: { reason: string; count: number } | undefined;
  private readonly sink: RecordSink;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: AppContext) {
    this.options = parseSyslogOptions(ctx.options);
    this.counters = newSyslogCounters();
    this.malformed = ctx.sampledLog('malformed datagram');
    this.writeErrors = ctx.sampledLog('cannot write a record, write error');
    this.sink = this.options.out ? new FileSink(this.options.out, this.options.maxBytes, ctx) : new ForwardSink(ctx);
  }

  status(final = false): void {
    const { ctx, sink } = this;
    ctx.send({ t: 'syslog.status', pid: ctx.pid, file: sink.fileId, counters: { ...this.counters }, final } satisfies ToSyslogSupervisor);
  }

  /** One datagram: parsed, counted, its record added to the batch. */
  receive(msg: Buffer, rinfo: RemoteInfo): void {
    const { ctx, counters, sink } = this;
    const receivedAt = new Date();
    const parsed = parseSyslog(msg, receivedAt);
    counters.messages++;
    countFormat(counters, parsed.format);
    if (!parsed.utf8) counters.notUtf8++;
    if (parsed.error !== null) {
      counters.malformed++;
      this.malformed.note(() => `${msg.length} bytes from ${rinfo.address}:${rinfo.port}, stored with its bytes: ${parsed.error}`);
    }
    sink.add(recordLine(toRecord(msg, { receivedAt, worker: ctx.index, workerPid: ctx.pid, senderAddress: rinfo.address, senderPort: rinfo.port }, parsed)));
    // A batch of big records goes out before its end.
    if (sink.pendingSize >= FLUSH_BYTES) this.flush();
  }

  /** Writes what the batch made, and counts it. */
  flush(): void {
    const { counters } = this;
    const o = this.sink.flush();
    for (const f of o.failed) this.countFailure(f);
    if (o.written === 0) return;
    counters.written += o.written;
    counters.writtenBytes += o.bytes;
    if (this.failing && o.failed.length === 0) {
      this.ctx.log(`writing records again; ${this.failing.count} were not written (${this.failing.reason})`);
      this.failing = undefined;
    }
  }

  private countFailure(f: FlushOutcome['failed'][number]): void {
    const { counters } = this;
    counters.writeErrors += f.records;
    if (f.error instanceof WriteFailure && f.error.torn) counters.torn++;
    // Said once per cause (a full disk, a removed directory), then counted.
    const reason = describeError(f.error);
    if (this.failing?.reason === reason) this.failing.count += f.records;
    else {
      this.failing = { reason, count: f.records };
      this.writeErrors.note(
        () => `record #${counters.messages}: ${reason} (the next ones failing the same way are only counted: shardgram_syslog_write_errors_total)`,
      );
    }
  }

  /** The supervisor side rotated the file: the records from now on go to the new one. */
  supervisorMessage(m: unknown): void {
    // After close, the file is synced and closed for good: a late reopen must not open it again.
    if (this.closed || !isToSyslogWorker(m)) return;
    this.flush(); // nothing is pending between batches; said for clarity: no record goes to the new file early
    try {
      this.sink.reopen();
    } catch (err) {
      this.ctx.log(`cannot reopen ${this.options.out ?? 'the output'}: ${describeError(err)}`);
    }
    this.status();
  }

  /** The status now, then every STATUS_INTERVAL_MS. */
  startStatus(): void {
    this.status();
    this.timer = setInterval(() => this.status(), STATUS_INTERVAL_MS);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.flush();
    try {
      this.sink.close();
    } catch (err) {
      this.ctx.log(`closing ${this.options.out ?? 'the output'} failed: ${describeError(err)}`);
    }
    this.status(true);
    this.ctx.log(this.summary());
  }

  /** The worker's last log line. */
  private summary(): string {
    const c = this.counters;
    const out = this.options.out;
    return (
      `syslog: ${c.messages} messages (${c.rfc5424} RFC 5424, ${c.rfc3164} RFC 3164, ${c.unknown} unknown; ${c.malformed} malformed, ${c.notUtf8} not UTF-8), ` +
      `${c.written} records written (${c.writtenBytes} bytes) to ${out ?? 'standard output'}${out ? ', fsynced' : ''}, ${c.writeErrors} write errors${c.torn ? ` (${c.torn} left a broken line)` : ''}`
    );
  }
}

export default defineApp((socket, ctx) => {
  const worker = new SyslogWorker(ctx);
  socket.on('message', (msg, rinfo) => worker.receive(msg, rinfo));
  // The records of one read (a recvmmsg batch; one datagram on the dgram engine): one write(2).
  socket.on('batchEnd', () => worker.flush());
  ctx.onSupervisorMessage((m) => worker.supervisorMessage(m));
  worker.startStatus();
  return { close: () => worker.close() };
});

/** The rotation of the shared file `out`, started (the file created if needed, its periodic check running). */
function startRotation(out: string, options: SyslogOptions, ctx: AppSupervisorContext): RotationCoordinator {
  const rotation = new RotationCoordinator({
    path: out,
    maxBytes: options.maxBytes,
    keep: options.keep,
    log: (line) => ctx.log(line),
    broadcast: () => ctx.broadcast({ t: 'syslog.reopen' }),
  });
  try {
    rotation.start();
  } catch (err) {
    throw new ShardgramError('ERR_SHARDGRAM_INVALID_ARG', `out must be a file that can be appended to; got ${JSON.stringify(out)} (${describeError(err)})`, {
      option: 'out',
    });
  }
  return rotation;
}

/** Records for standard output: a reader that goes away (`| head`) stops this output, not the service. */
function guardStdout(ctx: AppSupervisorContext): GuardedOutput {
  return guardOutput(
    process.stdout,
    'syslog: standard output',
    (l) => ctx.log(l),
    'records are counted as unwritten (shardgram_syslog_stdout_unwritten_total), the service runs on',
  );
}

/** The supervisor side: rotation of the shared file, standard output, and the counters for /metrics. */
export const supervisor = defineAppSupervisor((ctx) => {
  const options = parseSyslogOptions(ctx.options);
  const totals = new SyslogTotals();
  const rotation = options.out ? startRotation(options.out, options, ctx) : undefined;
  const stdout = options.out ? undefined : guardStdout(ctx);
  return {
    message(index, m) {
      if (!isToSyslogSupervisor(m)) return;
      switch (m.t) {
        case 'syslog.lines':
          stdout?.write(m.text, countLines(m.text));
          break;
        case 'syslog.status':
          totals.update(index, m.pid, m.counters);
          rotation?.report(m.pid, m.file, m.final);
          break;
        case 'syslog.full':
          rotation?.full();
          break;
      }
    },
    metrics() {
      return totals.prometheus(rotation ? { rotations: rotation.rotations, bytes: rotation.size() } : undefined, stdout?.unwritten);
    },
    stop() {
      rotation?.stop();
      const t = totals.total();
      ctx.log(
        `syslog: ${t.messages} messages received, ${t.written} records written to ${options.out ?? 'standard output'}` +
          ` (${t.malformed} malformed, ${t.writeErrors} write errors${rotation ? `, ${rotation.rotations} rotations` : ''}` +
          `${stdout?.closed ? `; ${stdout.unwritten} not written: standard output was closed` : ''})`,
      );
    },
  };
});
