/**
 * The one list of per-worker counters. Everything else is derived from it: the
 * layout of the page a worker shares with the supervisor, the fields of a worker's
 * row and of the service totals in the report, the Prometheus families, and the
 * counter fields of the protobuf worker snapshot. Adding a counter is one entry
 * here plus the line of code that counts it.
 *
 * Where a counter is counted:
 * - `engine`:  by the worker's engine, in the shared page (exact even across SIGKILL);
 * - `process`: by the worker process, sampled into its protobuf snapshots;
 * - `socket`:  read by the supervisor from the kernel (SO_MEMINFO);
 * - `slot`:    by the supervisor, per socket.
 */

export interface CounterSpec {
  readonly key: string;
  readonly source: 'engine' | 'process' | 'socket' | 'slot';
  readonly help: string;
  /** Prometheus name part (before `_total`) and the factor from the counted unit. */
  readonly prom: { readonly name: string; readonly scale?: number };
  /** Field number in the protobuf worker snapshot (`process` counters only). */
  readonly wire?: number;
}

export const COUNTERS = [
  { key: 'datagrams', source: 'engine', help: 'Datagrams handed to the app.', prom: { name: 'datagrams' } },
  { key: 'bytes', source: 'engine', help: 'Payload bytes handed to the app.', prom: { name: 'bytes' } },
  { key: 'handlerErrors', source: 'engine', help: 'Exceptions thrown (or promises rejected) by the message handler.', prom: { name: 'handler_errors' } },
  { key: 'batches', source: 'engine', help: 'Receive calls that returned data (one per datagram for the dgram engine).', prom: { name: 'batches' } },
  {
    key: 'wakeups',
    source: 'engine',
    help: 'Times the native engine woke to read (readable events and pacing timers; 0 for the dgram engine, whose reads libuv makes).',
    prom: { name: 'wakeups' },
  },
  { key: 'truncated', source: 'engine', help: 'Datagrams larger than the receive buffer, counted and not delivered.', prom: { name: 'truncated' } },
  { key: 'sends', source: 'engine', help: 'Datagrams the app sent.', prom: { name: 'sends' } },
  { key: 'sendErrors', source: 'engine', help: 'Sends that failed.', prom: { name: 'send_errors' } },
  { key: 'cpuUserMicros', source: 'process', help: 'User CPU time of the worker processes.', prom: { name: 'cpu_user_seconds', scale: 1e-6 }, wire: 6 },
  { key: 'cpuSystemMicros', source: 'process', help: 'System CPU time of the worker processes.', prom: { name: 'cpu_system_seconds', scale: 1e-6 }, wire: 7 },
  { key: 'kernelDrops', source: 'socket', help: 'Datagrams the kernel dropped on the socket (receive buffer full).', prom: { name: 'kernel_drops' } },
  {
    key: 'droppedAtClose',
    source: 'slot',
    help: 'Datagrams still queued when the socket closed, read out and counted, not handled.',
    prom: { name: 'dropped_at_close' },
  },
  { key: 'restarts', source: 'slot', help: 'Worker process restarts on the socket.', prom: { name: 'restarts' } },
  {
    key: 'stalls',
    source: 'slot',
    help: 'Workers found stalled (reading nothing while their queue filled, or silent) and replaced.',
    prom: { name: 'stalls' },
  },
] as const satisfies readonly CounterSpec[];

export type CounterKey = (typeof COUNTERS)[number]['key'];
export type Counters = Record<CounterKey, number>;

type KeysOf<S extends CounterSpec['source']> = Extract<(typeof COUNTERS)[number], { source: S }>['key'];
export type EngineCounterKey = KeysOf<'engine'>;
export type ProcessCounterKey = KeysOf<'process'>;
/** What an engine counts (the shared page's fields). */
export type EngineCounters = Record<EngineCounterKey, number>;
export type ProcessCounters = Record<ProcessCounterKey, number>;

export const COUNTER_KEYS: readonly CounterKey[] = COUNTERS.map((c) => c.key);
/** The shared page's layout: the engine counters, one float64 each, in list order. */
export const ENGINE_COUNTER_KEYS: readonly EngineCounterKey[] = COUNTERS.filter((c) => c.source === 'engine').map((c) => c.key as EngineCounterKey);
export const PROCESS_COUNTERS = COUNTERS.filter((c): c is Extract<(typeof COUNTERS)[number], { source: 'process' }> => c.source === 'process');

export function zeroCounters(): Counters {
  const out = {} as Counters;
  for (const k of COUNTER_KEYS) out[k] = 0;
  return out;
}

export function zeroEngineCounters(): EngineCounters {
  const out = {} as EngineCounters;
  for (const k of ENGINE_COUNTER_KEYS) out[k] = 0;
  return out;
}

/** `into += from`, for every counter `from` has. */
export function addInto(into: Counters, from: Partial<Counters>): Counters {
  for (const k of COUNTER_KEYS) into[k] += from[k] ?? 0;
  return into;
}
