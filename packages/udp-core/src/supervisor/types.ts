/** The supervisor's public types: events, reports, and what a hand-over passes. */
import type { Counters } from '../stats/counters.js';
import type { AdoptedSocket } from '../ffi/adopt.js';
import type { WorkerConfig } from '../worker/ipc.js';
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
export type Launcher = (slot: Slot, config: WorkerConfig) => WorkerHandle;

/** What the new side of a hand-over says, as the old side hears it (control/takeover/old-side.ts carries it). */
export type NewSideWord =
  | { word: 'ready' }
  | { word: 'ack' }
  /** The new side gives up (its start failed): the old one serves on. */
  | { word: 'abort'; reason: string }
  /** The new side waited too long for this one after its workers read, and owns the group: this one leaves. */
  | { word: 'taken'; reason: string }
  /** The connection closed; `died`: the new side's process has exited. */
  | { word: 'gone'; died: boolean }
  | { word: 'timeout' };

/** The old side's end of a hand-over: how it reaches the new side. */
export interface HandOverPeer {
  readonly pid: number;
  /** Sends the offer with its sockets; throws if it cannot. */
  offer(offer: HandOverOffer): void;
  /** The new side's next word, within `timeoutMs`. */
  next(timeoutMs: number): Promise<NewSideWord>;
  /** The group is the new side's now. */
  done(total: Partial<Counters>): void;
  /** This side waited too long (or the new one went away): it serves on; the new side must leave. */
  abandon(reason: string): void;
}

/** The old side lost, as the new side sees it: it died (the group is ours alone), or it gave up on us (we leave). */
export type SourceLoss = { lost: 'died' | 'abandoned'; detail: string };

/** The new side's end of a hand-over: the offer and sockets received, and how to reach the old side. */
export interface TakeoverSource {
  readonly offer: ReceivedOffer;
  readonly sockets: AdoptedSocket[];
  /** Settles if the old side is lost before it says done (never rejects). */
  readonly lost: Promise<SourceLoss>;
  /** Our workers read: resolves with the old side's counts once it says done, with a loss, or `silent` after `timeoutMs`. */
  ready(timeoutMs: number): Promise<{ done: Partial<Counters> } | SourceLoss | { silent: true }>;
  /** Tells the old side we hold the group (after done). */
  ack(): void;
  /** The old side said nothing for too long after ready: we own the group, it leaves when it wakes. */
  take(reason: string): void;
  /** We give up before ready; the old side serves on. */
  abort(reason: string): void;
}

/** The offer as the new side receives it: `rcvbufs` and `braced` are missing from a service of an older version. */
export type ReceivedOffer = Omit<HandOverOffer, 'fds' | 'rcvbufs' | 'braced'> & { nfds: number; rcvbufs?: number[]; braced?: boolean };
