/** The supervisor's public types: events, reports, and what a hand-over passes. */
import type { AdoptedSocket } from '../ffi/adopt.js';
import type { WorkerConfig } from '../ipc.js';
import type { PolicySpec } from '../steering/steering.js';
import type { Slot } from './slot.js';
import type { WorkerHandle } from './worker-process.js';

/** Who else holds the group's sockets (see Supervisor.sharedWith). */
export type SharedWith = 'service-manager' | 'hand-over' | undefined;

export interface StopReport {
  /** Bytes left in each socket's queue when it was closed (0 means nothing was dropped at stop). */
  leftBytes: number[];
  /** Datagrams those bytes were (read out and counted before the close). */
  droppedAtClose: number;
}

export interface SupervisorEvents {
  'worker-ready': [info: { index: number; pid: number; restart: boolean }];
  'worker-exit': [info: { index: number; pid: number; code: number | null; signal: NodeJS.Signals | null; expected: boolean }];
  resized: [info: { from: number; to: number }];
  reloaded: [info: { workers: number }];
  /** A socket is about to close (a shrink): a service manager holding it should let go first. */
  'socket-closing': [info: { index: number; inode: number }];
}

/** Sockets someone else opened, for `start()` to take instead of opening its own. */
export interface Adoption {
  /** They become sockets 0…n-1 of the group, in this order. */
  sockets: AdoptedSocket[];
  /** Where the options say nothing: the running state of the service handed over from. */
  workers?: number;
  policy?: PolicySpec;
  /** Kernel drops each socket had counted before this service (a hand-over: before the old one owned it). */
  dropsBefore?: number[];
  /** Per socket: a service manager keeps it open too (a .socket unit's), so it is never read out, closed, or left without a worker. */
  heldElsewhere?: readonly boolean[];
  /** Per socket: its own receive buffer size, to go back to after a change (a hand-over's sockets come raised). */
  rcvbufs?: readonly number[];
}

/** What an old supervisor offers the new one in an upgrade hand-over. */
export interface HandOverOffer {
  fds: number[];
  address: string;
  port: number;
  family: 'udp4' | 'udp6';
  workers: number;
  policy: PolicySpec;
  app: string;
  pid: number;
  /** Per socket: the kernel drops counted before the old service owned it (its drops since carry on in the new one's slots). */
  dropsBefore: number[];
  /** Per socket: its own receive buffer size (as asked), for the new side to put back after the change. */
  rcvbufs: number[];
  /** The old service raised the buffers at the new one's first word, and puts them back itself if the hand-over is abandoned. */
  braced: boolean;
}

/** For tests: how worker processes are started (a fake needs no process and no time). */
export interface SupervisorInternals {
  launch?(slot: Slot, config: WorkerConfig): WorkerHandle;
}

