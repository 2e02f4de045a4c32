/**
 * The hand-over over the control socket, the old side's end (the policy is
 * supervisor/handover.ts): the control server's `takeover-prepare` and `takeover`
 * handlers, and the HandOverPeer they give the supervisor.
 */
import type net from 'node:net';
import type { Counters } from '../../stats/counters.js';
import { ShardgramError, describeError } from '../../errors.js';
import { SCM_MAX_FD } from '../../ffi/kernel.js';
import { hasExited, ProcessHandle } from '../../ffi/pidfd.js';
import { sendWithFds, type PeerCred } from '../../ffi/unix.js';
import { controlOf } from '../../supervisor/internal.js';
import type { Supervisor } from '../../supervisor/supervisor.js';
import type { HandOverPeer, NewSideWord } from '../../supervisor/types.js';
import type { LineReader } from '../framing.js';
import { socketFd } from '../server.js';
import { parseFromNew, type OfferMessage } from './messages.js';

/**
 * How long the old side holds its buffers raised after `takeover-prepare` for the
 * takeover request to come (a new service's start takes well under a second or two).
 */
export const PREPARE_HOLD_MS = 15_000;
/** A peer whose connection closed is given this long to finish exiting before it is judged alive. */
const EXIT_GRACE_MS = 1000;

export interface HandedOverHooks {
  /** Closes this service's endpoints (control socket, stats port) before the new one takes them. */
  closeEndpoints(): Promise<void>;
  /** The group is the new service's: this one exits 0. */
  exit(counters: Partial<Counters>): void;
  /** The new service took the group while this one was silent: this one exits non-zero, touching nothing. */
  leave(reason: string): void;
  /** How long to wait for the new side's workers to read (default: the supervisor's). */
  patienceMs?: number;
}

/** Old side: the control server's `takeover-prepare` handler (the new service's first word, before its slow start). */
export function prepareTakeoverHandler(sup: Supervisor, log: (line: string) => void) {
  return (): Record<string, unknown> => {
    controlOf(sup).brace(PREPARE_HOLD_MS);
    log(`takeover: a new service is starting; receive buffers raised for up to ${PREPARE_HOLD_MS / 1000} s`);
    return { heldMs: PREPARE_HOLD_MS };
  };
}

/** The new side as the old side hears it, over one control connection. */
function peerOver(conn: net.Socket, reader: LineReader, pid: number): HandOverPeer {
  const handle = ProcessHandle.open(pid);
  return {
    pid,
    offer(offer) {
      const { fds, ...state } = offer;
      if (fds.length > SCM_MAX_FD)
        throw new ShardgramError(
          'ERR_SHARDGRAM_INVALID_ARG',
          `a group of ${fds.length} sockets cannot be handed over in one message (at most ${SCM_MAX_FD}); shrink it first`,
        );
      const answer: OfferMessage = { ok: true, op: 'takeover-offer', ...state, nfds: fds.length };
      sendWithFds(socketFd(conn), Buffer.from(`${JSON.stringify(answer)}\n`), fds);
    },
    async next(timeoutMs): Promise<NewSideWord> {
      for (;;) {
        const r = await reader.next(timeoutMs);
        if ('timeout' in r) return { word: 'timeout' };
        if ('closed' in r || 'tooLong' in r) {
          const died = hasExited(pid, handle, EXIT_GRACE_MS);
          handle?.close();
          return { word: 'gone', died };
        }
        const m = parseFromNew(r.line);
        if (!m) continue;
        if (m.op === 'takeover-ready') return { word: 'ready' };
        if (m.op === 'takeover-ack') return { word: 'ack' };
        return { word: m.op === 'takeover-abort' ? 'abort' : 'taken', reason: m.reason };
      }
    },
    done(total) {
      reader.send({ ok: true, op: 'takeover-done', total });
    },
    abandon(reason) {
      reader.send({ ok: true, op: 'takeover-abandoned', reason }, () => conn.destroy());
    },
  };
}

/** Old side: the control server's `takeover` handler; the connection and its reader are the hand-over's from here. */
export function takeoverHandler(sup: Supervisor, log: (line: string) => void, hooks: HandedOverHooks) {
  return (conn: net.Socket, reader: LineReader, peer: PeerCred, req: { pid: number }): void => {
    log(`takeover requested by pid ${peer.pid} (uid ${peer.uid})`);
    // The process on the other end, as the kernel says (the request's pid is its word only).
    const pid = peer.pid || req.pid;
    controlOf(sup)
      .handOver(peerOver(conn, reader, pid), hooks.patienceMs)
      .then(
        async (r) => {
          if (r.outcome === 'kept') {
            conn.destroy();
            return;
          }
          if (r.outcome === 'taken') {
            conn.destroy();
            hooks.leave(r.reason);
            return;
          }
          await hooks.closeEndpoints();
          conn.destroy();
          hooks.exit(r.counters);
        },
        (err: unknown) => {
          const code = err instanceof ShardgramError ? err.code : 'ERR_SHARDGRAM_WORKER';
          // A state refusal already reads "takeover refused: ..." (lifecycle.ts); anything else gets the prefix once.
          const text = describeError(err);
          reader.send({ ok: false, code, error: text.startsWith('takeover refused') ? text : `takeover refused: ${text}` }, () => conn.end());
        },
      );
  };
}
