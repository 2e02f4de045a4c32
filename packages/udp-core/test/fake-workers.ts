/**
 * Fake worker processes for the supervisor's policy tests: a FakeProc whose readiness and
 * exit the test decides, and a Supervisor that launches them instead of real workers.
 */
import type { Counters } from '@shardgram/udp-core';
// The supervisor from the source: its control plane is reached through the source's own symbol.
import { Supervisor } from '../src/supervisor/supervisor.js';
import { controlOf } from '../src/supervisor/internal.js';
import type { Launcher } from '../src/supervisor/types.js';
import type { ExitInfo, WorkerHandle } from '../src/supervisor/worker-process.js';

/** A Supervisor whose workers are `launch`'s fakes. */
export function withFakes(opts: ConstructorParameters<typeof Supervisor>[0], fake: { launch: Launcher }): Supervisor {
  const sup = new Supervisor(opts);
  controlOf(sup).useLauncher(fake.launch);
  return sup;
}

let nextPid = 1000;

export class FakeProc implements WorkerHandle {
  readonly pid = nextPid++;
  expected = false;
  lastWords: string | undefined;
  readonly ready: Promise<void>;
  readonly exited: Promise<ExitInfo>;
  counts: Partial<Counters> = { datagrams: 0 };
  retired = 0;
  /** A fake sends no snapshots: it was last heard from when it was made. */
  readonly lastHeard = Date.now();
  private markReady!: () => void;
  private failReady!: (err: Error) => void;
  private markExited!: (e: ExitInfo) => void;

  constructor(readonly startedAt: number) {
    this.ready = new Promise<void>((res, rej) => {
      this.markReady = res;
      this.failReady = rej;
    });
    this.ready.catch(() => undefined);
    this.exited = new Promise((r) => (this.markExited = r));
  }

  counters(): Partial<Counters> {
    return this.counts;
  }

  becomeReady(): void {
    this.markReady();
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.failReady(new Error(`exited before it was ready`));
    this.markExited({ code, signal, why });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.exit(null, signal);
  }

  async retire(): Promise<void> {
    this.expected = true;
    this.retired++;
    this.exit(0);
    await this.exited;
  }
}
