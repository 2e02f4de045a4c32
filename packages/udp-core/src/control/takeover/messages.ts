/**
 * The hand-over's messages, one JSON object a line over the control socket (framing:
 * ../framing.ts). The old side owns the group until it says `takeover-done`; the new
 * side owns it from then on. Either side that loses the other (its process exits: a
 * pidfd, and the connection closes) says so at once; a side that gave up on the other
 * says so in a message, and the side that wakes to it leaves without touching the group.
 *
 *   new → old   takeover-prepare                       (optional, first thing at its start: raise the buffers)
 *   old → new   {ok, heldMs}
 *   new → old   takeover {pid}
 *   old → new   takeover-offer {…state, nfds} + the fds (SCM_RIGHTS)     or {ok:false, error, code}
 *   new → old   takeover-ready                          (its workers read)  or takeover-abort {reason}
 *   old → new   takeover-done {total}                   (the group is the new side's now)
 *               or takeover-abandoned {reason}          (the old side waited too long: it serves on)
 *   new → old   takeover-ack                            (the old side lets go of its copies and exits 0)
 *               or takeover-taken {reason}              (the old side was silent too long after ready:
 *                                                         the new side owns the group; the old one, on waking, exits non-zero)
 */
import type { Counters } from '../../stats/counters.js';
import type { HandOverOffer } from '../../supervisor/types.js';

/** The offer as it travels: the fds go beside it; `rcvbufs` and `braced` are missing from a service of an older version. */
export type OfferMessage = Omit<HandOverOffer, 'fds' | 'rcvbufs' | 'braced'> & {
  ok: true;
  op: 'takeover-offer';
  nfds: number;
  rcvbufs?: number[];
  braced?: boolean;
};

export type FromOld =
  | OfferMessage
  | { ok: true; op: 'takeover-done'; total: Partial<Counters> }
  | { ok: true; op: 'takeover-abandoned'; reason: string }
  | { ok: false; error: string; code?: string };

export type FromNew = { op: 'takeover-ready' } | { op: 'takeover-abort'; reason: string } | { op: 'takeover-ack' } | { op: 'takeover-taken'; reason: string };

function parse(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A line from the new side, or undefined for one that is not a hand-over message (ignored, as before). */
export function parseFromNew(line: string): FromNew | undefined {
  const v = parse(line);
  switch (v?.op) {
    case 'takeover-ready':
    case 'takeover-ack':
      return { op: v.op };
    case 'takeover-abort':
    case 'takeover-taken':
      return { op: v.op, reason: String(v.reason ?? 'no reason given') };
    default:
      return undefined;
  }
}

/** A line from the old side after its offer, or undefined for one that is not a hand-over message. */
export function parseFromOld(line: string): FromOld | undefined {
  const v = parse(line);
  if (!v) return undefined;
  if (v.ok === false) return { ok: false, error: String(v.error ?? 'no reason given'), ...(typeof v.code === 'string' ? { code: v.code } : {}) };
  if (v.op === 'takeover-done')
    return { ok: true, op: 'takeover-done', total: (typeof v.total === 'object' && v.total !== null ? v.total : {}) as Partial<Counters> };
  if (v.op === 'takeover-abandoned') return { ok: true, op: 'takeover-abandoned', reason: String(v.reason ?? 'no reason given') };
  return undefined;
}
