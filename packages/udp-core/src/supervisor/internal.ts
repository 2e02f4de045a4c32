/**
 * The Supervisor's control plane, kept out of its public surface (as Node and undici
 * keep internals behind symbols): what `shardgram serve`, the control socket and the
 * hand-over use, and tests. An app author never needs it.
 */
import type { Counters } from '../stats/counters.js';
import type { HandOverResult } from './handover.js';
import type { State } from './lifecycle.js';
import type { TakeoverResult } from './takeover.js';
import type { Adoption, HandOverPeer, Launcher, SharedWith, TakeoverSource } from './types.js';

export const kControl: unique symbol = Symbol('shardgram.supervisor.control');

export interface SupervisorControl {
  /** Where the service is in its life (lifecycle.ts). */
  readonly state: State;
  /** Who else holds the group's sockets, as the state and a service manager say. */
  readonly sharedWith: SharedWith;
  /** The receive buffer every socket gets while the group changes (options.changeRcvbuf, else 8 MiB; 0: none). */
  readonly changeRcvbuf: number;
  /** For tests, before start: how worker processes are started. */
  useLauncher(launch: Launcher): void;
  /** Starts on sockets someone else opened (a service manager's), one worker each. */
  startAdopted(adopt: () => Promise<Adoption>): Promise<void>;
  /** A service manager's fd store holds every socket too: a stop lets go of them unread. */
  shareWithServiceManager(): void;
  /** A new service is starting up to take this one over: raise the buffers for up to `holdMs`. */
  brace(holdMs: number): void;
  /** The old side of a hand-over (handover.ts). */
  handOver(peer: HandOverPeer, patienceMs?: number): Promise<HandOverResult>;
  /** The new side of a hand-over (takeover.ts): starts this service on the old one's sockets. */
  takeOver(source: TakeoverSource, patienceMs?: number): Promise<TakeoverResult>;
  /** Carries on the counts of the service this one took over from. */
  inheritCounts(counters: Partial<Counters>, pid: number): void;
}

/** The control plane of a Supervisor. */
export function controlOf(sup: { [kControl]: SupervisorControl }): SupervisorControl {
  return sup[kControl];
}
