/**
 * A worker's counters in memory shared with the supervisor (a memfd mapped by both):
 * the supervisor reads them live, and still has them exactly after the worker died,
 * even by SIGKILL. One mapping per worker process, so two processes of one slot (a
 * reload) never write the same counter.
 */
import koffi from 'koffi';
import { ShardgramError, errnoName } from '../errors.js';
import { MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE } from './kernel.js';
import { libc } from './libc.js';

/** The counters, in their order in the shared page (each a float64). */
export const COUNTER_FIELDS = ['datagrams', 'bytes', 'handlerErrors', 'batches', 'truncated', 'sends', 'sendErrors'] as const;
export type CounterField = (typeof COUNTER_FIELDS)[number];
export type CounterValues = Record<CounterField, number>;

const PAGE = 4096;

export class SharedCounters {
  /** The shared page as float64s. Valid until `unmap()`; never touched after it. */
  private view: Float64Array | undefined;
  private readonly mapping: unknown;

  private constructor(mapping: unknown) {
    this.mapping = mapping;
    this.view = new Float64Array(koffi.view(mapping, PAGE), 0, COUNTER_FIELDS.length);
  }

  /** Supervisor side: a new zeroed page; returns its fd (to hand to the worker) and the mapping. */
  static create(name: string): { fd: number; counters: SharedCounters } {
    const c = libc();
    const fd = c.memfdCreate(name, MFD_CLOEXEC);
    if (fd < 0) throw failure('memfd_create', c.errno());
    if (c.ftruncate(fd, PAGE) !== 0) {
      const e = c.errno();
      c.close(fd);
      throw failure('ftruncate', e);
    }
    try {
      return { fd, counters: SharedCounters.attach(fd) };
    } catch (err) {
      c.close(fd);
      throw err;
    }
  }

  /** Worker side (or supervisor): maps the page behind `fd`. */
  static attach(fd: number): SharedCounters {
    const p = libc().mmap(PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
    if (p === null) throw failure('mmap', libc().errno());
    return new SharedCounters(p);
  }

  /** The live float64 array (for the engine's counters). */
  get array(): Float64Array {
    if (!this.view) throw new Error('shared counters used after unmap');
    return this.view;
  }

  read(): CounterValues {
    const a = this.array;
    const out = {} as CounterValues;
    COUNTER_FIELDS.forEach((f, i) => (out[f] = a[i]!));
    return out;
  }

  unmap(): void {
    if (!this.view) return;
    this.view = undefined;
    libc().munmap(this.mapping, PAGE);
  }
}

function failure(call: string, errno: number): ShardgramError {
  return new ShardgramError('ERR_SHARDGRAM_SYSCALL', `${call} for a worker's shared counters failed: ${errnoName(errno)} (errno ${errno}). The statistics need memfd_create (Linux ≥ 3.17).`, {
    errno, syscall: call,
  });
}

/** The engine's counters as properties over the shared array (same names as EngineCounters). */
export class ArrayCounters implements CounterValues {
  constructor(private readonly a: Float64Array) {}
  get datagrams(): number { return this.a[0]!; }
  set datagrams(v: number) { this.a[0] = v; }
  get bytes(): number { return this.a[1]!; }
  set bytes(v: number) { this.a[1] = v; }
  get handlerErrors(): number { return this.a[2]!; }
  set handlerErrors(v: number) { this.a[2] = v; }
  get batches(): number { return this.a[3]!; }
  set batches(v: number) { this.a[3] = v; }
  get truncated(): number { return this.a[4]!; }
  set truncated(v: number) { this.a[4] = v; }
  get sends(): number { return this.a[5]!; }
  set sends(v: number) { this.a[5] = v; }
  get sendErrors(): number { return this.a[6]!; }
  set sendErrors(v: number) { this.a[6] = v; }
}
