/**
 * statsd: a StatsD (and DogStatsD-tag) receiver whose flushes are exactly what one
 * Etsy-statsd-like process would compute, however the datagrams were spread.
 *
 *   npx shardgram serve statsd --port 8125 --workers 4 \
 *       --flush-interval 10000 --percentiles 90,99 \
 *       --json-out ./flushes.jsonl --graphite 127.0.0.1:2003
 *
 * Worker side (default export): parses and aggregates its share of the datagrams; on
 * the supervisor's flush request it sends its partial and starts afresh; its close
 * hook sends the last one. Supervisor side (`supervisor`): the flush rounds, the
 * merge, and the outputs (JSON lines, Graphite plaintext, Prometheus remote write,
 * each behind its own backlog; /metrics). See docs/statsd.md.
 */
import { type AppDefaults, defineApp, defineAppSupervisor, ShardgramError, describeError } from '@shardgram/udp-core';
import { PartialAggregate } from './statsd/aggregate.js';
import { FlushCollector } from './statsd/collector.js';
import { FlushOutputs } from './statsd/outputs.js';
import { showUrl } from './outputs/remote-write.js';
import { Mapper } from './statsd/mapper.js';
import { effectiveTimerSchema, parseStatsdOptions, statsdWorkerOptions } from './statsd/options.js';
import { isFlushRequest, isFromWorker, type HelloMessage, type PartialMessage } from './statsd/protocol.js';

/**
 * What the supervisor uses for this app unless told otherwise: `random` steering, so
 * that one hot name is spread over every worker (counters, timers and sets merge
 * exactly; gauges are ordered by the kernel's receive timestamps, the same clock for
 * every socket); the native engine (which has those timestamps) and a 4 MiB receive
 * buffer per socket, which is what keeps a burst from being dropped (docs/statsd.md,
 * benchmark). `--policy key` keeps one name on one worker. StatsD is one-way and
 * flushed every few seconds, so the engine may let datagrams wait up to 2 ms in the
 * socket's queue under steady traffic: each wake-up then reads about four times as
 * many, for 13–21 % less CPU per datagram in side-by-side runs (docs/statsd.md).
 */
export const defaults: AppDefaults = {
  policy: { name: 'random' },
  engine: 'native',
  rcvbuf: 4 * 1024 * 1024,
  maxReadDelayUs: 2000,
};

/** Datagrams the worker runs through its handler before reading (AppHooks.warmup): every path of the parser. */
const WARMUP_SAMPLES = [
  'warmup.requests:1|c',
  'warmup.latency:12|ms',
  'warmup.level:7|g',
  'warmup.level:+3|g',
  'warmup.level:-1|g',
  'warmup.rate:2|c|@0.5',
  'warmup.t:3.5|ms|@0.1|#env:prod,az:b',
  'warmup.users:alice|s',
  'warmup.g:1.5|g|#k:v',
  'warmup.a:1|c\nwarmup.b:2|ms\nwarmup.c:3|g\nwarmup.d:x|s',
  'warmup.h:4|h',
  'warmup.d:5|d',
  'warmup.p:1:2|h|T1700000000|c:abc|x:y',
  'warmup.i,k=v:1|c',
];

export { statsdOptionSchema as options } from './statsd/options.js';
export const description = 'StatsD/DogStatsD aggregation, exact across workers (docs/statsd.md)';

export default defineApp((socket, ctx) => {
  const o = parseStatsdOptions(ctx.options); // a bad option stops the service at start, with its name
  const badLines = ctx.sampledLog('statsd: bad line');
  const mapper = new Mapper(o.mappingConfig);
  const agg = new PartialAggregate({
    maxNameLength: o.maxNameLength,
    maxKeys: o.maxKeys,
    tagStyles: o.tagStyles,
    timers: {
      mode: o.timerMode,
      schema: effectiveTimerSchema(o),
      maxBuckets: o.timerMaxBuckets,
      // Prometheus units: ms to seconds (as statsd_exporter), times a mapping's scale.
      scale: (name, type) => (type === 'ms' ? 0.001 : 1) * mapper.timerScale(name),
      // Classic buckets counted exactly (a native bucket can straddle a bound): the old layout's
      // timerBuckets against the values in ms, each once; else the mapping's, in seconds, as statsd_exporter observes.
      classic: (name, type) => {
        if (o.promLayout === 'labels') return { bounds: o.timerBucketsMs, convert: (v) => v, weighted: false };
        const c = mapper.classicBuckets(name);
        if (!c) return undefined;
        const { scale } = c;
        const seconds = type === 'ms';
        return { bounds: c.bounds, convert: (v) => (seconds ? v / 1000 : v) * (scale ?? 1), weighted: true };
      },
    },
    onBadLine: (line, reason) => badLines.note(() => `${JSON.stringify(line.length > 200 ? `${line.slice(0, 200)}…` : line)}: ${reason}`),
  });
  socket.on('message', (msg, rinfo) => agg.datagram(msg, rinfo));
  ctx.send({ t: 'statsd.hello', index: ctx.index, pid: ctx.pid } satisfies HelloMessage);
  let closed = false;
  const partial = (id: number | null, final: boolean): PartialMessage => ({
    t: 'statsd.partial',
    index: ctx.index,
    pid: ctx.pid,
    id,
    final,
    partial: agg.take(),
  });
  ctx.onSupervisorMessage((m) => {
    if (!closed && isFlushRequest(m)) ctx.send(partial(m.id, false));
  });
  return {
    // Warm start: the parser's fast and general paths and every metric type are compiled
    // before the socket is read; what the samples aggregated is then dropped.
    warmup: { samples: WARMUP_SAMPLES, done: () => void agg.take() },
    // The kernel's receive times order gauge operations across workers (native engine).
    timestamps: true,
    close() {
      // After the drain: everything this worker received goes to the last flush.
      closed = true;
      ctx.send(partial(null, true));
    },
  };
});

export const supervisor = defineAppSupervisor((ctx) => {
  const o = parseStatsdOptions(ctx.options);
  let outputs: FlushOutputs;
  try {
    // Fails now, not at the first flush, when jsonOut cannot be written. Failed deliveries count in output_errors.
    // Remote write sends the app's /metrics families (the same series a scrape gets) at each flush.
    outputs = new FlushOutputs(
      o,
      (l) => ctx.log(l),
      () => collector.countOutputError(),
      () => collector.writer(outputs).families(),
    );
  } catch (err) {
    throw new ShardgramError(
      'ERR_SHARDGRAM_INVALID_ARG',
      `jsonOut must be a file that can be appended to; got ${JSON.stringify(o.jsonOut)} (${describeError(err)})`,
      { option: 'jsonOut' },
    );
  }
  // Deprecated keys statsd_exporter still reads: said once, by the supervisor.
  for (const w of o.mappingConfig?.warnings ?? []) ctx.log(`statsd: warning: ${w}`);
  const collector = new FlushCollector({ options: o, log: (l) => ctx.log(l), broadcast: (m) => ctx.broadcast(m), outputs: outputs.list });
  collector.start();
  ctx.log(
    `statsd: flushing every ${o.flushIntervalMs} ms (percentiles ${o.percentiles.join(',')})` +
      (o.jsonOut !== undefined ? `; JSON lines to ${o.jsonOut}` : '') +
      (o.graphite ? `; Graphite to ${o.graphite.host}:${o.graphite.port}` : '') +
      (o.remoteWrite ? `; Prometheus remote write to ${showUrl(o.remoteWrite.url)}` : '') +
      `; timers as ${o.timerMode === 'exact' ? 'raw values (exact)' : `native histograms (schema ${effectiveTimerSchema(o)})`}` +
      `; Prometheus ${o.promLayout === 'labels' ? 'layout: labels (before statsd_exporter names)' : `names as statsd_exporter${o.mappingConfig ? ` with ${o.mappingConfig.mappings.length} mappings from ${o.mappingConfig.source}` : ''}`}`,
  );
  return {
    message(index, m) {
      if (isFromWorker(m)) collector.message(index, m);
    },
    async stop() {
      await collector.stop();
      await outputs.close((l) => ctx.log(l));
    },
    metrics: () => collector.writer(outputs).text(),
    metricFamilies: () => collector.writer(outputs).families(),
    // The workers get the mapping file's text read above, never its path: one that restarts maps as the service started.
    workerOptions: statsdWorkerOptions(ctx.options, o),
  };
});
