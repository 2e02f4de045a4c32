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

type Refusal = Extract<FromOld, { ok: false }>;

function refusalOf(v: Record<string, unknown>): Refusal {
  return { ok: false, error: String(v.error ?? 'no reason given'), ...(typeof v.code === 'string' ? { code: v.code } : {}) };
}

/**
 * The old side's answer to `takeover`: its offer, or its refusal. A string says why the
 * line is neither (not JSON, another message, a field missing or of the wrong kind): a
 * service the new side cannot take the group from.
 */
export function parseOfferAnswer(line: string): OfferMessage | Refusal | string {
  const v = parse(line);
  if (!v) return 'not a JSON object';
  if (v.ok === false) return refusalOf(v);
  if (v.ok !== true || v.op !== 'takeover-offer') return `not an offer (op ${JSON.stringify(v.op) ?? 'missing'})`;
  const wrong = offerFieldWrong(v);
  return wrong ? `the offer's ${wrong}` : (v as unknown as OfferMessage);
}

const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 1;

/** The first field of an offer that is missing or of the wrong kind, said as such. */
function offerFieldWrong(v: Record<string, unknown>): string | undefined {
  if (!isCount(v.nfds)) return 'nfds is not a whole number of sockets';
  if (typeof v.address !== 'string') return 'address is not a string';
  if (!Number.isInteger(v.port) || (v.port as number) < 1 || (v.port as number) > 65535) return 'port is not a UDP port';
  if (v.family !== 'udp4' && v.family !== 'udp6') return 'family is neither udp4 nor udp6';
  if (!isCount(v.workers)) return 'workers is not a whole number of workers';
  const policy = v.policy as { name?: unknown } | null | undefined;
  if (typeof policy !== 'object' || policy === null || typeof policy.name !== 'string') return 'policy has no name';
  if (typeof v.app !== 'string') return 'app is not a string';
  if (!isCount(v.pid)) return 'pid is not a process id';
  const drops = v.dropsBefore;
  if (!Array.isArray(drops) || drops.length !== v.nfds || !drops.every((n) => Number.isSafeInteger(n) && n >= 0))
    return 'dropsBefore is not one count per socket';
  // rcvbufs and braced are missing from an older service; a bad rcvbufs is set aside where it is read (takeover.ts).
  if (v.braced !== undefined && typeof v.braced !== 'boolean') return 'braced is not true or false';
  return undefined;
}

/** A line from the old side after its offer, or undefined for one that is not a hand-over message. */
export function parseFromOld(line: string): FromOld | undefined {
  const v = parse(line);
  if (!v) return undefined;
  if (v.ok === false) return refusalOf(v);
  if (v.op === 'takeover-done')
    return { ok: true, op: 'takeover-done', total: (typeof v.total === 'object' && v.total !== null ? v.total : {}) as Partial<Counters> };
  if (v.op === 'takeover-abandoned') return { ok: true, op: 'takeover-abandoned', reason: String(v.reason ?? 'no reason given') };
  return undefined;
}
