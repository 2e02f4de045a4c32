/**
 * A worker's counters in memory shared with the supervisor (a memfd mapped by both):
 * the supervisor reads them live, and still has them exactly after the worker died,
 * even by SIGKILL. One mapping per worker process, so two processes of one slot (a
 * reload) never write the same counter.
 */
import koffi from 'koffi';
import { ShardgramError, errnoName } from '../errors.js';
import { MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE } from '../ffi/kernel.js';
import { libc } from '../ffi/libc.js';

import { ENGINE_COUNTER_KEYS, type EngineCounters } from './counters.js';

const PAGE = 4096;

export class SharedCounters {
  /** The shared page as float64s. Valid until `unmap()`; never touched after it. */
  private view: Float64Array | undefined;
  private readonly mapping: unknown;

  private constructor(mapping: unknown) {
    this.mapping = mapping;
    this.view = new Float64Array(koffi.view(mapping, PAGE), 0, ENGINE_COUNTER_KEYS.length);
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

  read(): EngineCounters {
    const a = this.array;
    const out = {} as EngineCounters;
    ENGINE_COUNTER_KEYS.forEach((f, i) => {
      out[f] = a[i]!;
    });
    return out;
  }

  unmap(): void {
    if (!this.view) return;
    this.view = undefined;
    libc().munmap(this.mapping, PAGE);
  }
}

function failure(call: string, errno: number): ShardgramError {
  return new ShardgramError(
    'ERR_SHARDGRAM_SYSCALL',
    `${call} for a worker's shared counters failed: ${errnoName(errno)} (errno ${errno}). The statistics need memfd_create (Linux ≥ 3.17).`,
    {
      errno,
      syscall: call,
    },
  );
}

/**
 * The engine's counters as properties over the shared array, one accessor pair per
 * engine counter of the list (defined once on the prototype: as fast as written-out ones).
 */
export interface ArrayCounters extends EngineCounters {}
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the accessors below are defined on the prototype, one per counter of the list; the interface says they are there
export class ArrayCounters {
  constructor(protected readonly a: Float64Array) {}
}
ENGINE_COUNTER_KEYS.forEach((key, i) => {
  Object.defineProperty(ArrayCounters.prototype, key, {
    get(this: { a: Float64Array }) {
      return this.a[i];
    },
    set(this: { a: Float64Array }, v: number) {
      this.a[i] = v;
    },
  });
});
